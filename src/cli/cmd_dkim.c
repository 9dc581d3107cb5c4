/*
 * cmd_dkim - `sluice dkim keygen DOMAIN [--selector S] [--type rsa|ed25519]
 * [--bits N] [--dir DIR] [--json]`: make a DKIM signing key.
 *
 * Writes the private key (PKCS#8 PEM, mode 0600) to DIR/DOMAIN.SELECTOR.key
 * (DIR: /etc/sluice/dkim, created 0700 if missing), never over an existing
 * file. Run as root, the key (and a DIR it creates) is given to the
 * config's `user`: the relay reads it after dropping privileges. Prints
 * the DNS TXT record to publish (in strings of at most 255 octets) and the
 * dkim-sign line for the config. The default selector is TYPE-YYYYMM, so
 * a new key for a rotation or a second algorithm gets its own name.
 * Exit: 0 ok; 64 usage; 65 bad domain or selector; 73 the file exists or
 * cannot be written; 78 config (as root); 70 key generation failed.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "dkim.h"

#define DKIM_DEFAULT_DIR	"/etc/sluice/dkim"
#define TXT_STRING_MAX		255

static const char usage_dkim[] =
    "usage: sluice [-c FILE] dkim keygen DOMAIN [--selector S]\n"
    "           [--type rsa|ed25519] [--bits N] [--dir DIR] [--json]\n"
    "\n"
    "Make a DKIM signing key for DOMAIN: the private key goes to\n"
    "DIR/DOMAIN.SELECTOR.key (mode 0600, owned by the config's user when\n"
    "run as root; never overwritten), then the DNS TXT record to publish\n"
    "and the dkim-sign line for the config are printed.\n"
    "  --selector S  default TYPE-YYYYMM (e.g. rsa-202611)\n"
    "  --type T      rsa (default) or ed25519\n"
    "  --bits N      RSA key size, 1024 to 8192 (default 2048)\n"
    "  --dir DIR     default " DKIM_DEFAULT_DIR "\n"
    "  --json        the result as one JSON object\n"
    "exit: 0 ok, 64 usage, 65 bad domain or selector, 70 generation\n"
    "      failed, 73 key file exists or cannot be written, 78 config\n";

struct keygen {
	const char	*domain, *selector, *dir;
	enum dkim_alg	 alg;
	unsigned	 bits;
	int		 json;
	char		 sel[DKIM_SELECTOR_MAX + 1];
	char		 dom[256];
	char		 path[PATH_MAX];
};

static int
keygen_args(struct keygen *g, int argc, char **argv)
{
	char	*end;

	g->dir = DKIM_DEFAULT_DIR;
	g->bits = 2048;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--json") == 0) {
			g->json = 1;
			continue;
		}
		if (a[0] != '-') {
			if (g->domain)
				return -1;
			g->domain = a;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "--selector") == 0)
			g->selector = v;
		else if (strcmp(a, "--dir") == 0)
			g->dir = v;
		else if (strcmp(a, "--type") == 0 && strcmp(v, "rsa") == 0)
			g->alg = DKIM_RSA_SHA256;
		else if (strcmp(a, "--type") == 0 && strcmp(v, "ed25519") == 0)
			g->alg = DKIM_ED25519_SHA256;
		else if (strcmp(a, "--bits") == 0) {
			errno = 0;
			unsigned long n = strtoul(v, &end, 10);
			if (errno || *end || end == v || n < DKIM_RSA_MIN_BITS ||
			    n > DKIM_RSA_MAX_BITS) {
				cli_err("dkim keygen: --bits: %d to %d",
				    DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
				return -1;
			}
			g->bits = (unsigned)n;
		} else
			return -1;
	}
	return g->domain ? 0 : -1;
}

/* the selector and the file's path; EX_DATAERR on a bad name */
static int
keygen_names(struct keygen *g)
{
	time_t		 now = time(NULL);
	struct tm	 tm;
	const char	*ok = "abcdefghijklmnopqrstuvwxyz0123456789-_.";
	int		 n;

	snprintf(g->dom, sizeof(g->dom), "%s", g->domain);
	cli_lower(g->dom);
	if (strlen(g->domain) >= sizeof(g->dom) ||
	    !cli_hostname_valid(g->dom)) {
		cli_err("dkim keygen: \"%s\" is not a domain name", g->domain);
		return EX_DATAERR;
	}
	if (g->selector == NULL) {
		gmtime_r(&now, &tm);
		snprintf(g->sel, sizeof(g->sel), "%s-%04d%02d",
		    g->alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519",
		    tm.tm_year + 1900, tm.tm_mon + 1);
	} else if (strlen(g->selector) >= sizeof(g->sel) ||
	    g->selector[0] == '\0' || g->selector[0] == '.') {
		cli_err("dkim keygen: bad selector \"%s\"", g->selector);
		return EX_DATAERR;
	} else
		snprintf(g->sel, sizeof(g->sel), "%s", g->selector);
	cli_lower(g->sel);
	if (strspn(g->sel, ok) != strlen(g->sel) || strstr(g->sel, "..")) {
		cli_err("dkim keygen: bad selector \"%s\" (letters, digits, "
		    "- _ .)", g->sel);
		return EX_DATAERR;
	}
	n = snprintf(g->path, sizeof(g->path), "%s/%s.%s.key", g->dir, g->dom,
	    g->sel);
	if (n < 0 || (size_t)n >= sizeof(g->path) || g->dir[0] != '/') {
		cli_err("dkim keygen: --dir must be an absolute path, not too "
		    "long");
		return EX_USAGE;
	}
	return 0;
}

/* write the key: O_EXCL (never over a key in use), 0600, fsync */
static int
keygen_write(const struct keygen *g, const struct buf *pem, uid_t uid,
    gid_t gid, int chown_it)
{
	int	 fd;

	if (mkdir(g->dir, 0700) == 0 && chown_it &&
	    chown(g->dir, uid, gid) == -1) {
		cli_err("%s: chown: %s", g->dir, strerror(errno));
		return EX_CANTCREAT;
	}
	fd = open(g->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		cli_err("%s: %s%s", g->path, strerror(errno), errno == EEXIST ?
		    " (not overwritten: choose another --selector)" : "");
		return EX_CANTCREAT;
	}
	if ((chown_it && fchown(fd, uid, gid) == -1) ||
	    write_all(fd, pem->data, pem->len) == -1 || fsync(fd) == -1) {
		cli_err("%s: %s", g->path, strerror(errno));
		close(fd);
		unlink(g->path);
		return EX_CANTCREAT;
	}
	if (close(fd) == -1) {
		cli_err("%s: %s", g->path, strerror(errno));
		unlink(g->path);
		return EX_CANTCREAT;
	}
	return 0;
}

/* the record's value, in quoted strings of at most 255 octets */
static void
print_txt(FILE *fp, const char *v)
{
	size_t	 n = strlen(v);

	for (size_t i = 0; i < n; i += TXT_STRING_MAX)
		fprintf(fp, "%s\"%.*s\"", i ? " " : "",
		    (int)(n - i < TXT_STRING_MAX ? n - i : TXT_STRING_MAX),
		    v + i);
}

static void
keygen_print(const struct keygen *g, const struct dkim_key *k,
    const char *txt)
{
	char	 name[400], line[PATH_MAX + 400];

	snprintf(name, sizeof(name), "%s._domainkey.%s", g->sel, g->dom);
	snprintf(line, sizeof(line), "dkim-sign %s %s %s", g->dom, g->sel,
	    g->path);
	if (g->json) {
		printf("{\"domain\":");
		cli_json_str(stdout, g->dom);
		printf(",\"selector\":");
		cli_json_str(stdout, g->sel);
		printf(",\"type\":\"%s\",\"keyfile\":", dkim_key_kind(k));
		cli_json_str(stdout, g->path);
		printf(",\"dns_name\":");
		cli_json_str(stdout, name);
		printf(",\"dns_txt\":");
		cli_json_str(stdout, txt);
		printf(",\"config\":");
		cli_json_str(stdout, line);
		printf("}\n");
		return;
	}
	printf("# %s key written to %s\n", dkim_key_kind(k), g->path);
	printf("# publish this DNS record, then add the config line below\n");
	printf("%s. IN TXT ", name);
	print_txt(stdout, txt);
	printf("\n%s\n", line);
}

static int
dkim_keygen(struct cli *cli, struct keygen *g)
{
	struct dkim_key	*k;
	struct buf	 pem, pub, txt;
	struct passwd	*pw = NULL;
	char		 err[256];
	int		 rc;

	if ((rc = keygen_names(g)) != 0)
		return rc;
	if (geteuid() == 0) {
		if ((rc = cli_config(cli)) != 0)
			return rc;
		if ((pw = getpwnam(cli->cfg.user)) == NULL) {
			cli_err("user %s (the config's) does not exist",
			    cli->cfg.user);
			return EX_CONFIG;
		}
	}
	if ((k = dkim_key_generate(g->alg, g->bits, err, sizeof(err))) ==
	    NULL) {
		cli_err("dkim keygen: %s", err);
		return EX_SOFTWARE;
	}
	buf_init(&pem, DKIM_KEYFILE_MAX);
	buf_init(&pub, 8192);
	buf_init(&txt, 8192);
	if (dkim_key_pem(k, &pem) == -1 || dkim_key_public(k, &pub) == -1 ||
	    buf_addf(&txt, "v=DKIM1; k=%s; p=%s", dkim_key_kind(k),
	    pub.data) == -1) {
		cli_err("dkim keygen: cannot encode the key");
		rc = EX_SOFTWARE;
	} else if ((rc = keygen_write(g, &pem, pw ? pw->pw_uid : 0,
	    pw ? pw->pw_gid : 0, pw != NULL)) == 0)
		keygen_print(g, k, txt.data);
	if (pem.data)
		OPENSSL_cleanse(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&pub);
	buf_free(&txt);
	dkim_key_free(k);
	return rc;
}

int
cmd_dkim(struct cli *cli, int argc, char **argv)
{
	struct keygen	 g;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_dkim, 1);
	memset(&g, 0, sizeof(g));
	if (argc < 2 || strcmp(argv[1], "keygen") != 0 ||
	    keygen_args(&g, argc, argv) == -1)
		return cli_usage(usage_dkim, 0);
	return dkim_keygen(cli, &g);
}

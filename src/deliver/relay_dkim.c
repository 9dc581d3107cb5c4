/*
 * relay_dkim - the relay's DKIM keys and signing (relay_dkim.h).
 *
 * XXX: the body is hashed with blocking pread()s in the event loop; at
 * disk speed that is milliseconds for ordinary mail, and the spool file
 * is local. A thread would only pay off for very large messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dkim.h"
#include "log.h"
#include "relay_dkim.h"
#include "rewrite.h"

#define BODY_CHUNK	(64 * 1024)

struct rkey {
	char		 domain[256];
	char		 selector[64];
	struct dkim_key	*key;
};

static struct rkey	 keys[CONFIG_DKIM_MAX];
static size_t		 nkeys;

void
relay_dkim_load(const struct config *c)
{
	char	 err[PATH_MAX + 256];

	for (size_t i = 0; i < nkeys; i++)
		dkim_key_free(keys[i].key);
	nkeys = 0;
	for (size_t i = 0; i < c->ndkim && i < CONFIG_DKIM_MAX; i++) {
		const struct dkim_sign_cfg *d = &c->dkim[i];
		struct dkim_key *k;
		if ((k = dkim_key_load(d->keyfile, err, sizeof(err))) == NULL) {
			log_warnx("dkim-sign %s %s: %s (mail from %s goes out "
			    "without this signature)", d->domain, d->selector,
			    err, d->domain);
			continue;
		}
		snprintf(keys[nkeys].domain, sizeof(keys[nkeys].domain), "%s",
		    d->domain);
		snprintf(keys[nkeys].selector, sizeof(keys[nkeys].selector),
		    "%s", d->selector);
		keys[nkeys++].key = k;
	}
}

size_t
relay_dkim_nkeys(void)
{
	return nkeys;
}

/* the domain that signs: the first From: address's, else the sender's */
static int
signing_domain(const char *qid, const char *envfrom, const char *hdr,
    size_t hlen, char *dom, size_t domlen)
{
	static char	 from[4][HEADER_ADDR_MAX];
	const char	*a, *at;
	int		 n;

	n = header_addresses(hdr, hlen, "From", from, 4);
	if (n == -1) {
		log_info("%s: dkim: From: cannot be read, not signed", qid);
		return -1;
	}
	a = n > 0 ? from[0] : envfrom;
	if ((at = strrchr(a, '@')) == NULL || at[1] == '\0')
		return -1;
	snprintf(dom, domlen, "%s", at + 1);
	return 0;
}

/* the body hash of fd from off on; 0 or -1 */
static int
body_hash(int fd, uint64_t off, unsigned char bh[DKIM_HASH_LEN])
{
	struct dkim_body b;
	char		*chunk;
	ssize_t		 n;

	if ((chunk = malloc(BODY_CHUNK)) == NULL)
		return -1;
	if (dkim_body_init(&b, NULL) == -1) {
		free(chunk);
		return -1;
	}
	for (;;) {
		n = pread(fd, chunk, BODY_CHUNK, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		dkim_body_update(&b, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	free(chunk);
	if (n == -1) {
		dkim_body_abort(&b);
		return -1;
	}
	return dkim_body_final(&b, bh);
}

size_t
relay_dkim_sign(const char *qid, const char *envfrom, const char *hdr,
    size_t hlen, int fd, uint64_t body_off, struct buf *sigs)
{
	unsigned char	 bh[DKIM_HASH_LEN];
	char		 dom[256], err[256];
	size_t		 i, done = 0, any = 0;

	if (signing_domain(qid, envfrom, hdr, hlen, dom, sizeof(dom)) == -1)
		return 0;
	for (i = 0; i < nkeys; i++)
		any += strcasecmp(keys[i].domain, dom) == 0;
	if (any == 0)
		return 0;
	if (body_hash(fd, body_off, bh) == -1) {
		log_warnx("%s: dkim: cannot hash the body (%s), sent unsigned",
		    qid, strerror(errno));
		return 0;
	}
	for (i = 0; i < nkeys; i++) {
		struct dkim_sign_req r = { keys[i].domain, keys[i].selector,
		    keys[i].key, (long long)time(NULL) };
		if (strcasecmp(keys[i].domain, dom) != 0)
			continue;
		if (dkim_sign(&r, hdr, hlen, bh, sigs, err, sizeof(err)) ==
		    -1) {
			log_warnx("%s: dkim: d=%s s=%s: %s, sent without this "
			    "signature", qid, keys[i].domain, keys[i].selector,
			    err);
			continue;
		}
		log_info("%s: dkim: signed d=%s s=%s a=%s", qid,
		    keys[i].domain, keys[i].selector,
		    keys[i].key->alg == DKIM_RSA_SHA256 ? "rsa-sha256" :
		    "ed25519-sha256");
		done++;
	}
	return done;
}

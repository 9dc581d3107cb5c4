/*
 * test_config - unit tests of src/common/config.c: defaults, every value
 * type, FILE:LINE errors, the cross-directive checks, netmasks, the config
 * path rule and the dump of non-default settings.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char	 cfgfile[64];

/* Write text to a fresh temporary file; its path is in cfgfile. */
static const char *
write_cfg(const char *text)
{
	int	 fd;
	size_t	 n = strlen(text);

	snprintf(cfgfile, sizeof(cfgfile), "/tmp/test_config.XXXXXX");
	fd = mkstemp(cfgfile);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	return cfgfile;
}

/* Load text; returns config_load's result, err filled. */
static int
load(const char *text, struct config *c, char *err, size_t errlen)
{
	int	 rc;

	err[0] = '\0';
	rc = config_load(c, write_cfg(text), err, errlen);
	unlink(cfgfile);
	return rc;
}

/* Expect a failure whose message is "FILE:LINE: ..." containing what. */
static void
expect_error(const char *text, unsigned line, const char *what)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[1024], prefix[128];

	assert_non_null(c);
	assert_int_equal(load(text, c, err, sizeof(err)), -1);
	if (line > 0) {
		snprintf(prefix, sizeof(prefix), "%s:%u: ", cfgfile, line);
		assert_memory_equal(err, prefix, strlen(prefix));
	}
	if (strstr(err, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, what);
	free(c);
}

static void
test_defaults(void **state)
{
	struct config	*c = malloc(sizeof(*c));

	(void)state;
	assert_non_null(c);
	config_defaults(c);
	assert_string_equal(c->spool, "/var/spool/sluice");
	assert_string_equal(c->mailboxes, "/var/mail/vhosts");
	assert_string_equal(c->database, "sqlite:/var/lib/sluice/sluice.db");
	assert_string_equal(c->user, "_sluice");
	assert_string_equal(c->log, "syslog");
	assert_true(c->hostname[0] != '\0');
	assert_int_equal(c->max_message_size, 35ULL * 1024 * 1024);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->smtp_timeout, 300);
	assert_int_equal(c->retry_interval, 300);
	assert_int_equal(c->retry_max, 3600);
	assert_int_equal(c->max_queue_lifetime, 5 * 86400);
	assert_int_equal(c->nlisten, 0);
	assert_int_equal(c->ntrusted, 0);
	assert_int_equal(c->log_json, 0);
	free(c);
}

static void
test_full_file(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[1024];

	(void)state;
	assert_non_null(c);
	assert_int_equal(load(
	    "# a comment\n"
	    "\n"
	    "hostname   mx.example.test   # trailing comment\n"
	    "spool\t/tmp/spool\n"
	    "mailboxes /tmp/mail\n"
	    "database sqlite:/tmp/x.db\n"
	    "listen 0.0.0.0:25 smtp\n"
	    "listen [::1]:587 submission\n"
	    "tls-cert /etc/cert.pem\n"
	    "tls-key /etc/key.pem\n"
	    "trusted-networks 10.0.0.0/8 ::1\n"
	    "trusted-networks 192.168.1.7\n"
	    "max-message-size 10M\n"
	    "smtp-timeout 2m\n"
	    "max-queue-lifetime 2d\n"
	    "log-format json\n"
	    "resolver [::1]:5353\n"
	    "smtp-out-port 2525\n"
	    "relay-host smtp.isp.test:587\n", c, err, sizeof(err)), 0);
	assert_string_equal(c->resolver, "[::1]:5353");
	assert_int_equal(c->smtp_out_port, 2525);
	assert_string_equal(c->hostname, "mx.example.test");
	assert_string_equal(c->spool, "/tmp/spool");
	assert_string_equal(c->database, "sqlite:/tmp/x.db");
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(c->listen[0].host, "0.0.0.0");
	assert_string_equal(c->listen[0].port, "25");
	assert_int_equal(c->listen[0].kind, LISTEN_SMTP);
	assert_string_equal(c->listen[1].host, "::1");
	assert_string_equal(c->listen[1].port, "587");
	assert_int_equal(c->listen[1].kind, LISTEN_SUBMISSION);
	assert_int_equal(c->ntrusted, 3);
	assert_int_equal(c->trusted[0].bits, 8);
	assert_int_equal(c->trusted[1].family, AF_INET6);
	assert_int_equal(c->trusted[1].bits, 128);
	assert_int_equal(c->trusted[2].bits, 32);
	assert_int_equal(c->max_message_size, 10ULL * 1024 * 1024);
	assert_int_equal(c->smtp_timeout, 120);
	assert_int_equal(c->max_queue_lifetime, 2 * 86400);
	assert_int_equal(c->log_json, 1);
	assert_int_equal(c->nroutes, 1);
	assert_int_equal(c->routes[0].kind, ROUTE_HOST);
	assert_int_equal(c->routes[0].relay_host, 1);
	assert_string_equal(c->routes[0].host, "smtp.isp.test");
	assert_string_equal(c->routes[0].port, "587");
	assert_string_equal(c->path, cfgfile);
	free(c);
}

static void
test_continuation_lines(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[1024];

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("hostname a.test\n"
	    "route *.lan via [10.0.0.1]:25   # the office\n"
	    "    when *\n"
	    "\n"
	    "\t# a comment inside\n"
	    "\tsenders *@home.test\n"
	    "retry-interval 2m\n", c, err, sizeof(err)), 0);
	assert_int_equal(c->nroutes, 1);
	assert_string_equal(c->routes[0].when, "*");
	assert_string_equal(c->routes[0].senders, "*@home.test");
	assert_int_equal(c->routes[0].line, 2);
	assert_int_equal(c->retry_interval, 120);
	/* an error in a continued directive names its first line */
	expect_error("hostname a.test\nroute * via mx\n  tls maybe\n", 2,
	    "required, optional");
	free(c);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("hostname a\nfrobnicate 1\n", 2, "unknown directive");
	expect_error("\n\n\nspool\n", 4, "missing value");
	expect_error("spool relative/path\n", 1, "absolute path");
	expect_error("max-message-size 10Q\n", 1, "invalid size");
	expect_error("max-message-size 1k\n", 1, "out of range");
	expect_error("max-message-size 99999999999999999999\n", 1, "invalid");
	expect_error("max-recipients lots\n", 1, "invalid number");
	expect_error("max-recipients -5\n", 1, "invalid number");
	expect_error("max-recipients 10\n", 1, "out of range");
	expect_error("smtp-timeout 5x\n", 1, "invalid duration");
	expect_error("listen 0.0.0.0:25\n", 1, "listen");
	expect_error("listen 0.0.0.0 smtp\n", 1, "bad address");
	expect_error("listen 0.0.0.0:0 smtp\n", 1, "bad address");
	expect_error("listen 0.0.0.0:65536 smtp\n", 1, "bad address");
	expect_error("listen 0.0.0.0:25 pop3\n", 1, "unknown kind");
	expect_error("trusted-networks 10.0.0.0/33\n", 1, "bad network");
	expect_error("trusted-networks example.com\n", 1, "bad network");
	expect_error("log-format xml\n", 1, "text or json");
	expect_error("route example.org\n", 1, "PATTERNS via");
	expect_error("route example.org via\n", 1, "PATTERNS via");
	expect_error("route example.org via host\n", 1, "bad destination");
	expect_error("route a,,b via mx\n", 1, "empty item");
	expect_error("route * via mx tls maybe\n", 1, "required, optional");
	expect_error("route * via mx auth /x\n", 1, "only for a HOST:PORT");
	expect_error("route * via h:25 auth /x tls none\n", 1,
	    "never without TLS");
	expect_error("route * via h:25 auth x\n", 1, "absolute path");
	expect_error("route * via h:25 when a/b\n", 1, "bad state");
	expect_error("route * via h:25 frob 1\n", 1, "unknown option");
	expect_error("route * via h:25 tls\n", 1, "missing value");
	expect_error("route * wait tls required\n", 1, "not for a route");
	expect_error("route * via mx rewrite-sender nobody\n", 1,
	    "not an address");
	expect_error("relay-host a:1\nrelay-host b:2\n", 2, "only one");
	expect_error("relay-host mx\n", 1, "bad destination");
	expect_error("online-state sometimes\n", 1, "always, file");
	expect_error("online-state file rel\n", 1, "absolute path");
	expect_error("online-state file /a /b\n", 1, "always, file");
	expect_error("double-bounce-to nobody\n", 0, "not an address");
	expect_error("hostname x\n\n\n\n\nuser toolong-toolong-toolong-toolong-"
	    "toolong-toolong-toolong-toolong-toolong\n", 6, "too long");
}

static void
test_cross_checks(void **state)
{
	(void)state;
	expect_error("tls-cert /etc/c.pem\n", 0, "tls-cert and tls-key");
	expect_error("listen 0.0.0.0:587 submission\n", 0,
	    "needs tls-cert and tls-key");
	expect_error("database mysql://x\n", 0, "unknown kind");
	/* finding the DNS server must not need DNS */
	expect_error("resolver dns.example:53\n", 0, "is not IP:PORT");
	expect_error("resolver 127.0.0.1\n", 0, "is not IP:PORT");
	expect_error("resolver 127.0.0.1:0\n", 0, "is not IP:PORT");
}

static void
test_line_too_long(void **state)
{
	char	*text = malloc(6000);

	(void)state;
	assert_non_null(text);
	memcpy(text, "hostname ", 9);
	memset(text + 9, 'a', 5000);
	memcpy(text + 5009, "\n", 2);
	expect_error(text, 1, "line too long");
	free(text);
}

static void
test_missing_file(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[512];

	(void)state;
	assert_non_null(c);
	assert_int_equal(config_load(c, "/nonexistent/sluice.conf", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/sluice.conf"));
	free(c);
}

static void
test_path(void **state)
{
	(void)state;
	setenv("SLUICE_CONFIG", "/env/sluice.conf", 1);
	assert_string_equal(config_path("/opt/x.conf"), "/opt/x.conf");
	assert_string_equal(config_path(NULL), "/env/sluice.conf");
	setenv("SLUICE_CONFIG", "", 1);
	assert_string_equal(config_path(NULL), CONFIG_DEFAULT_PATH);
	unsetenv("SLUICE_CONFIG");
	assert_string_equal(config_path(NULL), CONFIG_DEFAULT_PATH);
}

static struct sockaddr_storage
sa(const char *ip)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1)
		in->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
	}
	return ss;
}

static int
match(const char *net, const char *ip)
{
	struct netmask		 m;
	struct sockaddr_storage	 ss = sa(ip);

	assert_int_equal(netmask_parse(net, &m), 0);
	return netmask_match(&m, (struct sockaddr *)&ss);
}

static void
test_netmask(void **state)
{
	struct netmask	 m;

	(void)state;
	assert_true(match("10.0.0.0/8", "10.200.3.4"));
	assert_false(match("10.0.0.0/8", "11.0.0.1"));
	assert_true(match("192.168.1.0/25", "192.168.1.127"));
	assert_false(match("192.168.1.0/25", "192.168.1.128"));
	assert_true(match("0.0.0.0/0", "8.8.8.8"));
	assert_true(match("127.0.0.1", "127.0.0.1"));
	assert_false(match("127.0.0.1", "127.0.0.2"));
	assert_true(match("2001:db8::/32", "2001:db8:1::5"));
	assert_false(match("2001:db8::/32", "2001:db9::5"));
	assert_true(match("10.0.0.0/8", "::ffff:10.1.2.3"));	/* mapped */
	assert_false(match("::1", "127.0.0.1"));
	assert_int_equal(netmask_parse("", &m), -1);
	assert_int_equal(netmask_parse("/8", &m), -1);
	assert_int_equal(netmask_parse("10.0.0.0/", &m), -1);
	assert_int_equal(netmask_parse("10.0.0.0/8x", &m), -1);
	assert_int_equal(netmask_parse("::/129", &m), -1);
}

static void
test_trusted(void **state)
{
	struct config		*c = malloc(sizeof(*c));
	struct sockaddr_storage	 a = sa("10.9.9.9"), b = sa("172.16.0.1");
	char			 err[512];

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("trusted-networks 10.0.0.0/8 ::1\n", c, err,
	    sizeof(err)), 0);
	assert_true(config_trusted(c, (struct sockaddr *)&a));
	assert_false(config_trusted(c, (struct sockaddr *)&b));
	free(c);
}

static void
test_dump(void **state)
{
	struct config	*c = malloc(sizeof(*c)), *c2 = malloc(sizeof(*c2));
	char		 err[512], out[4096];
	FILE		*fp;
	size_t		 n;

	(void)state;
	assert_non_null(c);
	assert_non_null(c2);
	assert_int_equal(load("spool /tmp/s\nmax-message-size 1M\n"
	    "smtp-timeout 60\nlisten [::1]:25 smtp\nlog-format json\n"
	    "trusted-networks 10.0.0.0/8\n", c, err, sizeof(err)), 0);
	fp = tmpfile();
	assert_non_null(fp);
	config_dump(c, fileno(fp));
	rewind(fp);
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	fclose(fp);
	assert_non_null(strstr(out, "spool /tmp/s\n"));
	assert_non_null(strstr(out, "max-message-size 1048576\n"));
	assert_non_null(strstr(out, "smtp-timeout 60s\n"));
	assert_non_null(strstr(out, "listen [::1]:25 smtp\n"));
	assert_non_null(strstr(out, "log-format json\n"));
	assert_non_null(strstr(out, "trusted-networks 10.0.0.0/8\n"));
	assert_null(strstr(out, "mailboxes"));		/* default */
	assert_null(strstr(out, "max-recipients"));
	/* the dump is itself a config that loads to the same settings */
	assert_int_equal(load(out, c2, err, sizeof(err)), 0);
	assert_string_equal(c2->spool, c->spool);
	assert_int_equal(c2->max_message_size, c->max_message_size);
	assert_int_equal(c2->smtp_timeout, c->smtp_timeout);
	assert_int_equal(c2->nlisten, 1);
	assert_int_equal(c2->ntrusted, 1);
	/* a database password never appears in a dump */
	assert_int_equal(load("database postgresql://mail:s3cret@db.test:5432/"
	    "sluice\n", c, err, sizeof(err)), 0);
	fp = tmpfile();
	assert_non_null(fp);
	config_dump(c, fileno(fp));
	rewind(fp);
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	fclose(fp);
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "database postgresql://mail:***@db.test"));
	free(c);
	free(c2);
}

static void
test_srs(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[512], out[4096];
	FILE		*fp;
	size_t		 n;

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("hostname mx.fwd.test\n", c, err, sizeof(err)),
	    0);
	assert_int_equal(c->nsrs_secrets, 0);		/* off */
	assert_int_equal(c->srs_max_age, 21);
	assert_string_equal(config_srs_domain(c), "mx.fwd.test");
	assert_int_equal(load("srs-secret 0123456789abcdef older-secret-"
	    "still-valid\nsrs-domain srs.fwd.test\nsrs-max-age 7\n", c, err,
	    sizeof(err)), 0);
	assert_int_equal(c->nsrs_secrets, 2);
	assert_string_equal(c->srs_secrets[0], "0123456789abcdef");
	assert_string_equal(c->srs_secrets[1], "older-secret-still-valid");
	assert_string_equal(config_srs_domain(c), "srs.fwd.test");
	assert_int_equal(c->srs_max_age, 7);
	/* never shown */
	fp = tmpfile();
	assert_non_null(fp);
	config_dump(c, fileno(fp));
	rewind(fp);
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	fclose(fp);
	assert_null(strstr(out, "0123456789abcdef"));
	assert_null(strstr(out, "older-secret"));
	assert_non_null(strstr(out, "srs-secret ******** ********\n"));
	assert_non_null(strstr(out, "srs-domain srs.fwd.test\n"));
	expect_error("srs-secret short\n", 1, "secret 1 is 5 characters");
	expect_error("srs-secret 0123456789abcdef x\n", 1, "secret 2 is 1");
	expect_error("srs-secret 0123456789abcdef\nsrs-secret "
	    "0123456789abcdef\n", 2, "only once");
	expect_error("srs-max-age 0\n", 1, "out of range");
	expect_error("srs-max-age 1024\n", 1, "out of range");
	expect_error("srs-domain not/a/domain\n", 0, "not a domain name");
	expect_error("srs-domain a@b.test\n", 0, "not a domain name");
	free(c);
}

/* dkim-sign DOMAIN SELECTOR KEYFILE: repeatable, checked, dumped */
static void
test_dkim_sign(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[1024];
	int		 fd;

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("dkim-sign example.test rsa1 /k/a.key\n"
	    "dkim-sign example.test ed1 /k/b.key\n", c, err, sizeof(err)), 0);
	assert_int_equal(c->ndkim, 2);
	assert_string_equal(c->dkim[1].selector, "ed1");
	assert_string_equal(c->dkim[1].keyfile, "/k/b.key");
	assert_int_equal(c->dkim[1].line, 2);
	fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	if (fd != -1) {
		config_dump(c, fd);
		char out[4096] = "";
		ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
		assert_true(n > 0);
		assert_non_null(strstr(out, "dkim-sign example.test ed1 "
		    "/k/b.key\n"));
		close(fd);
	}
	free(c);
	expect_error("dkim-sign example.test\n", 1, "DOMAIN SELECTOR KEYFILE");
	expect_error("dkim-sign a b c d\n", 1, "DOMAIN SELECTOR KEYFILE");
	expect_error("dkim-sign example.test s rel.key\n", 1, "absolute path");
	expect_error("dkim-sign exa/mple s /k\n", 1, "a domain");
	expect_error("dkim-sign example.test s;x /k\n", 1, "a selector");
	expect_error("dkim-sign d.test s /k\ndkim-sign D.test S /j\n", 2,
	    "twice");
}

/* mailbox-transport: the three forms, their parts, and what is refused */
static void
test_mailbox_transport(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[512], host[128], port[16];

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("", c, err, sizeof(err)), 0);
	assert_string_equal(c->mailbox_transport, "maildir");
	assert_int_equal(load("mailbox-transport lmtp:unix:/run/d/lmtp\n", c,
	    err, sizeof(err)), 0);
	assert_int_equal(config_mailbox_transport(c->mailbox_transport, host,
	    sizeof(host), port, sizeof(port), err, sizeof(err)),
	    MBOX_LMTP_UNIX);
	assert_string_equal(host, "/run/d/lmtp");
	assert_int_equal(config_mailbox_transport("lmtp:[::1]:24", host,
	    sizeof(host), port, sizeof(port), err, sizeof(err)),
	    MBOX_LMTP_INET);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "24");
	assert_int_equal(config_mailbox_transport("lmtp:127.0.0.1:2424", host,
	    sizeof(host), port, sizeof(port), err, sizeof(err)),
	    MBOX_LMTP_INET);
	assert_int_equal(config_mailbox_transport("maildir", NULL, 0, NULL,
	    0, err, sizeof(err)), MBOX_MAILDIR);
	free(c);
	expect_error("mailbox-transport lmtp\n", 1, "mailbox-transport");
	expect_error("\nmailbox-transport mbox\n", 2, "not maildir");
	expect_error("mailbox-transport lmtp:unix:rel/sock\n", 1,
	    "absolute socket path");
	expect_error("mailbox-transport lmtp:unix:\n", 1, "absolute");
	expect_error("mailbox-transport lmtp:localhost:24\n", 1, "not a name");
	expect_error("mailbox-transport lmtp:127.0.0.1:0\n", 1, "lmtp:IP:PORT");
	expect_error("mailbox-transport lmtp:127.0.0.1:65536\n", 1,
	    "lmtp:IP:PORT");
	expect_error("mailbox-transport lmtp:127.0.0.1:24x\n", 1,
	    "lmtp:IP:PORT");
	expect_error("mailbox-transport lmtp:unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaa\n", 1, "107");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_continuation_lines),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_netmask),
		cmocka_unit_test(test_trusted),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_srs),
		cmocka_unit_test(test_dkim_sign),
		cmocka_unit_test(test_mailbox_transport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

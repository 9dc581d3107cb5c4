/*
 * test_envelope - envelope writer and parser, queue ids.
 *
 * Golden files: golden/envelope/NAME.in is parsed and written back; the
 * result must equal NAME.ref, which is either an envelope or a single line
 * "error: MESSAGE" when the parse must fail. Run from tests/unit.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "envelope.h"

#define OUT_MAX	(32 * 1024 * 1024)
#define GOLDEN	"golden/envelope"

static const char *const valid_id = "0192AB34CD56E0001F2A";

/* An envelope with every field set, three recipients and folded hdrs. */
static void
fill(struct envelope *e)
{
	static const char	 h1[] = "Received: from mx.example.org "
	    "(mx.example.org [192.0.2.1])";
	static const char	 h2[] = "\tby mx.example.test (sluice) "
	    "with ESMTPS id 0192AB34CD56E0001F2A";
	static const char	 h3[] = "\tfor <bob@example.test>; "
	    "Tue, 1 Oct 2024 10:00:00 +0000";

	envelope_init(e);
	memcpy(e->id, valid_id, QUEUE_ID_LEN + 1);
	e->created = 1727776800;
	snprintf(e->from, sizeof(e->from), "alice@example.org");
	snprintf(e->helo, sizeof(e->helo), "mx.example.org");
	snprintf(e->client_addr, sizeof(e->client_addr), "192.0.2.1");
	snprintf(e->client_name, sizeof(e->client_name), "mx.example.org");
	snprintf(e->proto, sizeof(e->proto), "ESMTPSA");
	snprintf(e->tls, sizeof(e->tls), "TLSv1.3 TLS_AES_256_GCM_SHA384");
	snprintf(e->auth, sizeof(e->auth), "alice@example.org");
	e->flags = ENV_F_LOCAL | ENV_F_8BITMIME;
	e->size = 123456;
	e->hops = 3;
	assert_int_equal(envelope_add_rcpt(e, "bob@example.test", NULL), 0);
	assert_int_equal(envelope_add_rcpt(e, "carol@example.test",
	    "list@example.test"), 0);
	assert_int_equal(envelope_add_rcpt(e, "\"dan smith\"@example.net",
	    ""), 0);
	e->rcpts[1].state = RCPT_DEFERRED;
	e->rcpts[1].attempts = 4;
	e->rcpts[1].next_try = 1727780400;
	snprintf(e->rcpts[1].error, sizeof(e->rcpts[1].error),
	    "451 4.3.0 mailbox busy: try later");
	e->rcpts[2].state = RCPT_BOUNCED;
	e->rcpts[2].attempts = 1;
	snprintf(e->rcpts[2].error, sizeof(e->rcpts[2].error),
	    "550 5.1.1 no such user");
	assert_int_equal(envelope_add_hdr(e, h1, strlen(h1)), 0);
	assert_int_equal(envelope_add_hdr(e, h2, strlen(h2)), 0);
	assert_int_equal(envelope_add_hdr(e, h3, strlen(h3)), 0);
}

/* Parse text, expecting failure whose message contains want. */
static void
parse_fails(const char *text, size_t len, const char *want)
{
	struct envelope	 e;
	char		 err[256] = "";

	if (envelope_parse(&e, text, len, err, sizeof(err)) != -1)
		fail_msg("parsed, but should fail with \"%s\":\n%s", want, text);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	/* left empty: nothing to leak, free is harmless */
	assert_int_equal(e.nrcpts, 0);
	assert_null(e.rcpts);
	assert_int_equal(e.hdrs.len, 0);
	envelope_free(&e);
}

static void
parse_fails_s(const char *text, const char *want)
{
	parse_fails(text, strlen(text), want);
}

static int
parse_ok_s(const char *text, struct envelope *e)
{
	char	 err[256] = "";
	int	 r;

	r = envelope_parse(e, text, strlen(text), err, sizeof(err));
	if (r != 0)
		print_error("parse failed: %s\n", err);
	return r;
}

#define HEAD	"sluice-envelope 1\nid 0192AB34CD56E0001F2A\n" \
		"created 1727776800\nfrom <>\nproto ESMTP\n"

static void
test_roundtrip(void **state)
{
	struct envelope	 e, p;
	struct buf	 out, out2;
	char		 err[256];

	(void)state;
	fill(&e);
	buf_init(&out, OUT_MAX);
	buf_init(&out2, OUT_MAX);
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), 0);
	assert_int_equal(envelope_parse(&p, out.data, out.len, err,
	    sizeof(err)), 0);
	assert_true(envelope_equal(&e, &p));
	assert_int_equal(envelope_write(&p, &out2, err, sizeof(err)), 0);
	assert_int_equal(out.len, out2.len);
	assert_memory_equal(out.data, out2.data, out.len);
	/* orig equal to addr is not written; differing orig is */
	assert_non_null(strstr(out.data,
	    "rcpt pending 0 0 bob@example.test\nrcpt deferred"));
	assert_non_null(strstr(out.data, "rcpt-orig list@example.test\n"));
	assert_non_null(strstr(out.data,
	    "rcpt bounced 1 0 \"dan smith\"@example.net\n"));
	assert_non_null(strstr(out.data, "hdr \tby mx.example.test"));
	assert_int_equal(envelope_pending(&p), 2);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&out);
	buf_free(&out2);
}

/* alias targets: rcpt-via and rcpt-target survive a round trip */
static void
test_targets(void **state)
{
	struct envelope	 e, p;
	struct buf	 out;
	char		 err[256];

	(void)state;
	fill(&e);
	e.rcpts[0].state = RCPT_EXPANDED;
	assert_int_equal(envelope_add_target(&e, "bob@example.test",
	    "bob@example.test", VIA_PIPE, 1000, "tag",
	    "/usr/local/bin/robot --queue \"a b\" 'x;y'"), 0);
	assert_int_equal(envelope_add_target(&e, "bob@example.test", NULL,
	    VIA_FILE, 0, "", "/var/mail/bob.mbox"), 0);
	assert_int_equal(envelope_add_target(&e, "carl@example.test",
	    "bob@example.test", VIA_MAILBOX, 0, "x-y", NULL), 0);
	assert_int_equal(envelope_add_target(&e, "far@remote.test",
	    "bob@example.test", VIA_REMOTE, 0, "", NULL), 0);
	/* a pipe needs its command, a mailbox must not have one */
	assert_int_equal(envelope_add_target(&e, "b@example.test", NULL,
	    VIA_PIPE, 0, "", NULL), -1);
	assert_int_equal(envelope_add_target(&e, "b@example.test", NULL,
	    VIA_MAILBOX, 0, "", "/x"), -1);
	assert_int_equal(envelope_add_target(&e, "b@example.test", NULL,
	    VIA_MAILBOX, 0, "has space", NULL), 0);
	buf_init(&out, OUT_MAX);
	/* an extension with a space cannot be written */
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), -1);
	free(e.rcpts[--e.nrcpts].target);
	buf_reset(&out);
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out.data, "rcpt expanded 0 0 bob@example.test\n"
	    "rcpt deferred"));
	assert_non_null(strstr(out.data, "rcpt pending 0 0 bob@example.test\n"
	    "rcpt-via pipe 1000 tag\nrcpt-target /usr/local/bin/robot --queue "
	    "\"a b\" 'x;y'\n"));
	assert_non_null(strstr(out.data, "rcpt-via file 0\nrcpt-target "
	    "/var/mail/bob.mbox\n"));
	assert_non_null(strstr(out.data, "rcpt-orig bob@example.test\n"
	    "rcpt-via mailbox 0 x-y\n"));
	assert_non_null(strstr(out.data, "rcpt-via remote 0\n"));
	assert_int_equal(envelope_parse(&p, out.data, out.len, err,
	    sizeof(err)), 0);
	assert_true(envelope_equal(&e, &p));
	assert_int_equal(p.rcpts[3].via, VIA_PIPE);
	assert_string_equal(p.rcpts[3].ext, "tag");
	assert_int_equal(p.rcpts[3].owner, 1000);
	/* expanded is final: not pending */
	assert_int_equal(envelope_pending(&p), 1 + 4);
	/* a newline in a target cannot be written */
	e.rcpts[3].target[3] = '\n';
	buf_reset(&out);
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), -1);
	envelope_free(&e);
	envelope_free(&p);
	buf_free(&out);
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-target /x\nend\n",
	    "rcpt-target without a pipe or file");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-via rocket 0\nend\n",
	    "rcpt-via: unknown kind");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-via pipe x\nend\n",
	    "rcpt-via: bad owner");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-via pipe\nend\n",
	    "rcpt-via: too few fields");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-via pipe 0 a b\nend\n",
	    "rcpt-via: bad extension");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-error x\n"
	    "rcpt-via pipe 0\nend\n", "out of order");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-via pipe 0\n"
	    "rcpt-target /x\nrcpt-target /y\nend\n", "out of order");
}

static void
test_null_sender_and_omitted(void **state)
{
	struct envelope	 e, p;
	struct buf	 out;
	char		 err[256];
	static const char want[] = "sluice-envelope 1\n"
	    "id 0192AB34CD56E0001F2A\ncreated 0\nfrom <>\nproto LOCAL\n"
	    "flags 0\nsize 0\nhops 0\nend\n";

	(void)state;
	envelope_init(&e);
	memcpy(e.id, valid_id, QUEUE_ID_LEN + 1);
	snprintf(e.proto, sizeof(e.proto), "LOCAL");
	buf_init(&out, OUT_MAX);
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), 0);
	assert_string_equal(out.data, want);
	assert_int_equal(envelope_parse(&p, out.data, out.len, err,
	    sizeof(err)), 0);
	assert_string_equal(p.from, "");
	assert_true(envelope_equal(&e, &p));
	envelope_free(&p);
	/* empty optional text records are accepted when present */
	assert_int_equal(parse_ok_s(HEAD "tls \nrcpt pending 0 0 a@b\n"
	    "rcpt-error \nend\n", &p), 0);
	assert_string_equal(p.tls, "");
	assert_string_equal(p.rcpts[0].orig, "a@b");
	envelope_free(&p);
	/* "<>" is how the null path is written, so it is not an address */
	snprintf(e.from, sizeof(e.from), "<>");
	buf_reset(&out);
	assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), -1);
	envelope_free(&e);
	buf_free(&out);
}

struct strfield {
	const char	*name;
	size_t		 off;
	size_t		 size;
};

#define SF(n, m) { n, offsetof(struct envelope, m), \
	sizeof(((struct envelope *)0)->m) }
#define RF(n, m) { n, offsetof(struct env_rcpt, m), \
	sizeof(((struct env_rcpt *)0)->m) }

static const struct strfield env_fields[] = {
	SF("id", id), SF("from", from), SF("helo", helo),
	SF("client-addr", client_addr), SF("client-name", client_name),
	SF("proto", proto), SF("tls", tls), SF("auth", auth),
};
static const struct strfield rcpt_fields[] = {
	RF("addr", addr), RF("orig", orig), RF("error", error),
};

/* Write must refuse, name the field, and leave out as it was. */
static void
write_refused(const struct envelope *e, const char *name)
{
	struct buf	 out;
	char		 err[256] = "";

	buf_init(&out, OUT_MAX);
	buf_adds(&out, "prefix");
	if (envelope_write(e, &out, err, sizeof(err)) != -1)
		fail_msg("field %s: injection written", name);
	if (strstr(err, name) == NULL)
		fail_msg("field %s: error \"%s\" does not name it", name, err);
	assert_int_equal(out.len, 6);
	assert_string_equal(out.data, "prefix");
	buf_free(&out);
}

static void
test_injection(void **state)
{
	static const int	 bad[] = { '\r', '\n' };
	struct envelope		 e;
	char			*p;
	size_t			 i, j, k;

	(void)state;
	for (i = 0; i < sizeof(env_fields) / sizeof(env_fields[0]); i++) {
		for (k = 0; k < 3; k++) {
			fill(&e);
			p = (char *)&e + env_fields[i].off;
			if (k < 2)
				p[3] = (char)bad[k];	/* CR, LF */
			else	/* NUL: no terminator in the whole array */
				memset(p, 'A', env_fields[i].size);
			write_refused(&e, env_fields[i].name);
			envelope_free(&e);
		}
	}
	for (j = 0; j < 3; j++)
		for (i = 0; i < sizeof(rcpt_fields) / sizeof(rcpt_fields[0]);
		    i++)
			for (k = 0; k < 3; k++) {
				fill(&e);
				p = (char *)&e.rcpts[j] + rcpt_fields[i].off;
				if (k < 2) {
					p[0] = 'x';
					p[1] = (char)bad[k];
					p[2] = '\0';
				} else
					memset(p, 'A', rcpt_fields[i].size);
				write_refused(&e, rcpt_fields[i].name);
				envelope_free(&e);
			}
	/* hdrs: a CR, a NUL, an empty line, a missing final LF */
	for (k = 0; k < 4; k++) {
		fill(&e);
		if (k == 0)
			e.hdrs.data[5] = '\r';
		else if (k == 1)
			e.hdrs.data[5] = '\0';
		else if (k == 2)
			e.hdrs.data[0] = '\n';
		else
			e.hdrs.len--;
		write_refused(&e, "hdr");
		envelope_free(&e);
	}
	/* and envelope_add_hdr refuses them up front */
	envelope_init(&e);
	assert_int_equal(envelope_add_hdr(&e, "X-A: b\r", 7), -1);
	assert_int_equal(envelope_add_hdr(&e, "X-A: b\nX-B: c", 13), -1);
	assert_int_equal(envelope_add_hdr(&e, "X-A: \0b", 7), -1);
	assert_int_equal(envelope_add_hdr(&e, "", 0), -1);
	assert_int_equal(e.hdrs.len, 0);
	envelope_free(&e);
}

static void
test_writer_other_checks(void **state)
{
	struct envelope	 e;

	(void)state;
	fill(&e);
	snprintf(e.id, sizeof(e.id), "0192ab34cd56e0001f2a");
	write_refused(&e, "id");
	envelope_free(&e);
	fill(&e);
	e.proto[0] = '\0';
	write_refused(&e, "proto");
	envelope_free(&e);
	fill(&e);
	e.created = -1;
	write_refused(&e, "created");
	envelope_free(&e);
	fill(&e);
	e.rcpts[0].addr[0] = '\0';
	write_refused(&e, "rcpt 1 addr");
	envelope_free(&e);
	fill(&e);
	e.rcpts[2].state = (enum rcpt_state)7;
	write_refused(&e, "rcpt 3");
	envelope_free(&e);
}

static void
test_parse_errors(void **state)
{
	static const char	 full[] = HEAD "rcpt pending 0 0 a@b\nhdr X: y\n"
	    "end\n";
	size_t			 i;

	(void)state;
	/* truncated anywhere: never parses */
	for (i = 0; i < sizeof(full) - 1; i++)
		parse_fails(full, i, i == 0 ? "empty file" : "truncated");
	parse_fails_s("\x01\xff garbage\n\n", "line 1: not an envelope file");
	parse_fails_s("sluice-envelope 2\nend\n", "unsupported envelope version");
	parse_fails_s("sluice-envelope 1 \nend\n", "unsupported");
	parse_fails_s(HEAD "foo bar\nend\n", "line 6: unknown record \"foo\"");
	parse_fails_s(HEAD "foo\x01 bar\nend\n", "unknown record \"foo?\"");
	parse_fails_s(HEAD "helo\nend\n", "line 6: record \"helo\" without");
	parse_fails_s(HEAD "end\nend\n", "line 7: data after the end record");
	parse_fails_s(HEAD "end\n\n", "data after the end record");
	parse_fails_s(HEAD "end\nx", "data after the end record");
	parse_fails_s(HEAD "helo a\r\nend\n", "line 6: NUL or CR");
	parse_fails(HEAD "helo a\0b\nend\n", sizeof(HEAD) + 10, "NUL or CR");
	/* duplicates and order */
	parse_fails_s(HEAD "proto SMTP\nend\n", "line 6: duplicate record \"proto\"");
	parse_fails_s(HEAD "helo x\nend\n", "record \"helo\" out of order");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nflags 0\nend\n", "out of order");
	parse_fails_s(HEAD "hdr X: y\nrcpt pending 0 0 a@b\nend\n", "out of order");
	parse_fails_s(HEAD "rcpt-orig a@b\nend\n", "\"rcpt-orig\" out of order");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-error x\nrcpt-orig c@d\n"
	    "end\n", "\"rcpt-orig\" out of order");
	parse_fails_s(HEAD "rcpt pending 0 0 a@b\nrcpt-error x\nrcpt-error y\n"
	    "end\n", "out of order");
	/* missing required records */
	parse_fails_s("sluice-envelope 1\ncreated 1\nfrom <>\nproto X\nend\n",
	    "line 5: missing record \"id\"");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\nfrom <>\n"
	    "proto X\nend\n", "missing record \"created\"");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\ncreated 1\n"
	    "proto X\nend\n", "missing record \"from\"");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\ncreated 1\n"
	    "from <>\nend\n", "missing record \"proto\"");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\ncreated 1\n"
	    "from <>\nproto \nend\n", "empty \"proto\"");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\ncreated 1\n"
	    "from \nproto X\nend\n", "empty from");
	/* ids */
	parse_fails_s("sluice-envelope 1\nid 0192ab34cd56e0001f2a\nend\n",
	    "bad queue id");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2\nend\n",
	    "bad queue id");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2AB\nend\n",
	    "bad queue id");
}

static void
test_parse_numbers(void **state)
{
	struct envelope	 e;

	(void)state;
	parse_fails_s(HEAD "size 18446744073709551616\nend\n", "bad number");
	parse_fails_s(HEAD "size 99999999999999999999999\nend\n", "bad number");
	parse_fails_s(HEAD "flags 4294967296\nend\n", "bad number");
	parse_fails_s(HEAD "hops -1\nend\n", "bad number");
	parse_fails_s(HEAD "hops +1\nend\n", "bad number");
	parse_fails_s(HEAD "hops 01\nend\n", "bad number");
	parse_fails_s(HEAD "hops 0x1\nend\n", "bad number");
	parse_fails_s(HEAD "hops \nend\n", "bad number");
	parse_fails_s(HEAD "hops 1 \nend\n", "bad number");
	parse_fails_s("sluice-envelope 1\nid 0192AB34CD56E0001F2A\n"
	    "created 9223372036854775808\nend\n", "bad number");
	parse_fails_s(HEAD "rcpt pending 4294967296 0 a@b\nend\n", "rcpt: bad number");
	parse_fails_s(HEAD "rcpt pending 0 -5 a@b\nend\n", "rcpt: bad number");
	parse_fails_s(HEAD "rcpt pending 0 0\nend\n", "too few fields");
	parse_fails_s(HEAD "rcpt pending 0 0 \nend\n", "empty or too long");
	parse_fails_s(HEAD "rcpt snoozing 0 0 a@b\nend\n", "unknown state");
	parse_fails_s(HEAD "rcpt  pending 0 0 a@b\nend\n", "unknown state");
	assert_int_equal(parse_ok_s(HEAD "flags 4294967295\n"
	    "size 18446744073709551615\nhops 0\n"
	    "rcpt delivered 4294967295 9223372036854775807 a@b\nend\n", &e), 0);
	assert_int_equal(e.flags, UINT_MAX);
	assert_true(e.size == ULLONG_MAX);
	assert_int_equal(e.rcpts[0].attempts, UINT_MAX);
	assert_int_equal(e.rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(envelope_pending(&e), 0);
	envelope_free(&e);
}

/* A record of name with a value of n 'x' characters. */
static char *
with_value(const char *name, size_t n, const char *suffix)
{
	struct buf	 b;

	buf_init(&b, 1 << 20);
	buf_adds(&b, HEAD);
	buf_addf(&b, "%s ", name);
	while (n-- > 0)
		buf_addc(&b, 'x');
	buf_addf(&b, "%s\nend\n", suffix);
	assert_int_equal(b.err, BUF_OK);
	return b.data;
}

static void
test_parse_lengths(void **state)
{
	struct envelope	 e;
	char		*t;

	(void)state;
	/* text fields: size - 1 fits, size does not */
	t = with_value("tls", 63, "");
	assert_int_equal(parse_ok_s(t, &e), 0);
	envelope_free(&e);
	free(t);
	t = with_value("tls", 64, "");
	parse_fails_s(t, "\"tls\" too long");
	free(t);
	t = with_value("rcpt-error", ENV_TEXT_MAX, "");
	parse_fails_s(t, "out of order");
	free(t);
	t = with_value("rcpt pending 0 0", ADDR_STR_MAX, "");
	assert_int_equal(parse_ok_s(t, &e), 0);
	assert_int_equal(strlen(e.rcpts[0].addr), ADDR_STR_MAX);
	envelope_free(&e);
	free(t);
	t = with_value("rcpt pending 0 0", ADDR_STR_MAX + 1, "");
	parse_fails_s(t, "too long address");
	free(t);
	t = with_value("hdr", ENV_HDRS_MAX, "");
	parse_fails_s(t, "headers too big");
	free(t);
	t = with_value("hdr", ENV_HDRS_MAX - 1, "");
	assert_int_equal(parse_ok_s(t, &e), 0);
	assert_int_equal(e.hdrs.len, ENV_HDRS_MAX);
	envelope_free(&e);
	free(t);
}

static void
test_parse_counts(void **state)
{
	struct envelope	 e;
	struct buf	 b;
	size_t		 i;
	char		 want[64], want_last[64];

	(void)state;
	snprintf(want_last, sizeof(want_last), "%d@example.test",
	    ENV_RCPT_MAX - 1);
	buf_init(&b, OUT_MAX);
	buf_adds(&b, HEAD);
	for (i = 0; i < ENV_RCPT_MAX; i++)
		buf_addf(&b, "rcpt pending 0 0 u%zu@example.test\n", i);
	buf_adds(&b, "hdr X-Last: 1\nend\n");
	assert_int_equal(parse_ok_s(b.data, &e), 0);
	assert_int_equal(e.nrcpts, ENV_RCPT_MAX);
	assert_string_equal(e.rcpts[ENV_RCPT_MAX - 1].addr + 1, want_last);
	envelope_free(&e);
	buf_reset(&b);
	buf_adds(&b, HEAD);
	for (i = 0; i <= ENV_RCPT_MAX; i++)
		buf_addf(&b, "rcpt pending 0 0 u%zu@example.test\n", i);
	buf_adds(&b, "end\n");
	snprintf(want, sizeof(want), "line %d: too many recipients",
	    ENV_RCPT_MAX + 6);
	parse_fails_s(b.data, want);
	/* many hdr lines, together over the cap */
	buf_reset(&b);
	buf_adds(&b, HEAD);
	for (i = 0; i < ENV_HDRS_MAX / 8; i++)
		buf_addf(&b, "hdr X-Many: %03zu\n", i % 1000);
	buf_adds(&b, "end\n");
	parse_fails_s(b.data, "headers too big");
	buf_free(&b);
	/* the writer's side of the count limit */
	envelope_init(&e);
	for (i = 0; i < ENV_RCPT_MAX; i++)
		assert_int_equal(envelope_add_rcpt(&e, "a@b", NULL), 0);
	assert_int_equal(envelope_add_rcpt(&e, "a@b", NULL), -1);
	envelope_free(&e);
}

static void
test_add_limits(void **state)
{
	struct envelope	 e;
	char		 big[ENV_HDRS_MAX + 1];

	(void)state;
	envelope_init(&e);
	memset(big, 'a', sizeof(big));
	assert_int_equal(envelope_add_rcpt(&e, "", NULL), -1);
	memset(big, 'a', ADDR_STR_MAX + 1);
	big[ADDR_STR_MAX + 1] = '\0';
	assert_int_equal(envelope_add_rcpt(&e, big, NULL), -1);
	assert_int_equal(envelope_add_rcpt(&e, "a@b", big), -1);
	big[ADDR_STR_MAX] = '\0';
	assert_int_equal(envelope_add_rcpt(&e, big, NULL), 0);
	memset(big, 'a', sizeof(big));
	assert_int_equal(envelope_add_hdr(&e, big, ENV_HDRS_MAX), -1);
	/* a refused line leaves the buffer usable */
	assert_int_equal(envelope_add_hdr(&e, big, ENV_HDRS_MAX - 1), 0);
	assert_int_equal(envelope_add_hdr(&e, "X", 1), -1);
	assert_int_equal(e.hdrs.err, BUF_OK);
	envelope_free(&e);
}

static char *
slurp(const char *path, size_t *lenp)
{
	FILE	*f;
	struct buf b;
	char	 chunk[4096];
	size_t	 n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	buf_init(&b, 1 << 24);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	buf_addc(&b, 0);	/* make sure data is allocated */
	assert_int_equal(b.err, BUF_OK);
	*lenp = b.len - 1;
	return b.data;
}

static int
golden_one(const char *name)
{
	struct envelope	 e;
	struct buf	 out;
	char		 path[512], err[256], *in, *ref;
	size_t		 inlen, reflen;
	int		 ok;

	snprintf(path, sizeof(path), GOLDEN "/%s.in", name);
	assert_non_null(in = slurp(path, &inlen));
	snprintf(path, sizeof(path), GOLDEN "/%s.ref", name);
	if ((ref = slurp(path, &reflen)) == NULL)
		fail_msg("%s: no .ref", name);
	buf_init(&out, OUT_MAX);
	if (envelope_parse(&e, in, inlen, err, sizeof(err)) == -1)
		buf_addf(&out, "error: %s\n", err);
	else {
		assert_int_equal(envelope_write(&e, &out, err, sizeof(err)), 0);
		envelope_free(&e);
	}
	ok = out.len == reflen && memcmp(out.data, ref, reflen) == 0;
	if (!ok)
		print_error("golden %s: got\n%s--- want\n%s", name, out.data, ref);
	buf_free(&out);
	free(in);
	free(ref);
	return ok;
}

static void
test_golden(void **state)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 n, count = 0, bad = 0;
	char		 name[256];

	(void)state;
	assert_non_null(d = opendir(GOLDEN));
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n < 4 || strcmp(de->d_name + n - 3, ".in") != 0 ||
		    n - 3 >= sizeof(name))
			continue;
		memcpy(name, de->d_name, n - 3);
		name[n - 3] = '\0';
		count++;
		if (!golden_one(name))
			bad++;
	}
	closedir(d);
	assert_true(count >= 5);
	assert_int_equal(bad, 0);
}

static void
test_queue_id(void **state)
{
	enum { N = 100000 };
	char	(*ids)[QUEUE_ID_LEN + 1];
	size_t	 i;

	(void)state;
	assert_non_null(ids = calloc(N, sizeof(*ids)));
	for (i = 0; i < N; i++) {
		queue_id_new(ids[i], sizeof(ids[i]));
		assert_true(queue_id_valid(ids[i]));
		/* strictly increasing, hence unique */
		if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %zu %s not after %s", i, ids[i],
			    ids[i - 1]);
	}
	free(ids);
	assert_true(queue_id_valid("0123456789ABCDEF0123"));
	assert_false(queue_id_valid("0123456789abcdef0123"));
	assert_false(queue_id_valid("0123456789ABCDEF012"));
	assert_false(queue_id_valid("0123456789ABCDEF01234"));
	assert_false(queue_id_valid("0123456789ABCDEF012G"));
	assert_false(queue_id_valid(""));
}

static int
cmpid(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Ids made by several processes at the same time never collide. */
static void
test_queue_id_processes(void **state)
{
	enum { NPROC = 4, PER = 20000 };
	char	(*ids)[QUEUE_ID_LEN + 1];
	int	 fds[NPROC][2], st;
	pid_t	 pids[NPROC];
	size_t	 i, j, got;
	ssize_t	 r;

	(void)state;
	assert_non_null(ids = calloc(NPROC * PER, sizeof(*ids)));
	for (i = 0; i < NPROC; i++) {
		assert_int_equal(pipe(fds[i]), 0);
		if ((pids[i] = fork()) == 0) {
			close(fds[i][0]);
			for (j = 0; j < PER; j++)
				queue_id_new(ids[j], sizeof(ids[j]));
			r = write(fds[i][1], ids, PER * sizeof(*ids));
			_exit(r == (ssize_t)(PER * sizeof(*ids)) ? 0 : 1);
		}
		assert_true(pids[i] > 0);
		close(fds[i][1]);
	}
	for (i = 0; i < NPROC; i++) {
		for (got = 0; got < PER * sizeof(*ids); got += (size_t)r) {
			r = read(fds[i][0], (char *)ids[i * PER] + got,
			    PER * sizeof(*ids) - got);
			assert_true(r > 0);
		}
		close(fds[i][0]);
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	qsort(ids, NPROC * PER, sizeof(*ids), cmpid);
	for (i = 1; i < NPROC * PER; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("duplicate id %s", ids[i]);
	free(ids);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_null_sender_and_omitted),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_writer_other_checks),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_numbers),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_parse_counts),
		cmocka_unit_test(test_add_limits),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_queue_id),
		cmocka_unit_test(test_queue_id_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

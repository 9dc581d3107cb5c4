/* mask: codes, VERP, the relayed copy's header section, checks (mask.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "addr.h"
#include "mask.h"

#define KEY	"0123456789abcdef0123"
#define OLD	"an older key, still honoured"
#define DOM	"mask.test"
#define FROMM	"user-aaaaaaaaaaaaaaaabbbb@mask.test"

static const char *const one[] = { KEY };
static const char *const both[] = { KEY, OLD };
static const char *const old_only[] = { OLD };

/* ---- codes ---- */

/* vectors computed outside sluice (Python hmac, the definition in mask.h) */
static void
test_code_vector(void **state)
{
	(void)state;
	assert_int_equal(mask_code_valid(MASK_SERVICE,
	    "abcdefghijklmnopcm6i", one, 1), 1);
	assert_int_equal(mask_code_valid(MASK_USER,
	    "abcdefghijklmnophz3y", one, 1), 1);
	/* the kinds do not mix */
	assert_int_equal(mask_code_valid(MASK_USER,
	    "abcdefghijklmnopcm6i", one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_SERVICE,
	    "abcdefghijklmnophz3y", one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_NONE,
	    "abcdefghijklmnopcm6i", one, 1), 0);
	/* any case */
	assert_int_equal(mask_code_valid(MASK_SERVICE,
	    "ABCDEFGHIJKLMNOPCM6I", one, 1), 1);
}

static void
test_code_new(void **state)
{
	char	 a[MASK_CODE_LEN + 1], b[MASK_CODE_LEN + 1], t[64];

	(void)state;
	assert_int_equal(mask_code_new(MASK_SERVICE, KEY, a, sizeof(a)), 0);
	assert_int_equal(mask_code_new(MASK_SERVICE, KEY, b, sizeof(b)), 0);
	assert_int_equal(strlen(a), MASK_CODE_LEN);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < MASK_CODE_LEN; i++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567",
		    a[i]));
	assert_int_equal(mask_code_valid(MASK_SERVICE, a, one, 1), 1);
	assert_int_equal(mask_code_valid(MASK_USER, a, one, 1), 0);
	assert_int_equal(mask_code_new(MASK_USER, KEY, b, sizeof(b)), 0);
	assert_int_equal(mask_code_valid(MASK_USER, b, one, 1), 1);
	assert_int_equal(mask_code_valid(MASK_SERVICE, b, one, 1), 0);
	/* every single-character change fails */
	for (size_t i = 0; i < MASK_CODE_LEN; i++) {
		memcpy(t, a, sizeof(a));
		t[i] = t[i] == 'a' ? 'b' : 'a';
		assert_int_equal(mask_code_valid(MASK_SERVICE, t, one, 1), 0);
	}
	/* wrong length and alphabet */
	memcpy(t, a, sizeof(a));
	t[MASK_CODE_LEN - 1] = '\0';
	assert_int_equal(mask_code_valid(MASK_SERVICE, t, one, 1), 0);
	snprintf(t, sizeof(t), "%sa", a);
	assert_int_equal(mask_code_valid(MASK_SERVICE, t, one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_SERVICE,
	    "abcdefghijklmn0pcm6i", one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_SERVICE,
	    "abcdefghijklmn1pcm6i", one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_SERVICE, "", one, 1), 0);
	assert_int_equal(mask_code_valid(MASK_SERVICE, NULL, one, 1), 0);
	/* refusals */
	assert_int_equal(mask_code_new(MASK_SERVICE, KEY, t, MASK_CODE_LEN),
	    -1);
	assert_int_equal(mask_code_new(MASK_SERVICE, "short", t, sizeof(t)),
	    -1);
	assert_int_equal(mask_code_new(MASK_NONE, KEY, t, sizeof(t)), -1);
	assert_int_equal(mask_code_new(MASK_SERVICE, NULL, t, sizeof(t)), -1);
}

static void
test_code_rotation(void **state)
{
	char	 c[MASK_CODE_LEN + 1];

	(void)state;
	assert_int_equal(mask_code_new(MASK_USER, OLD, c, sizeof(c)), 0);
	assert_int_equal(mask_code_valid(MASK_USER, c, both, 2), 1);
	assert_int_equal(mask_code_valid(MASK_USER, c, one, 1), 0);
	assert_int_equal(mask_code_new(MASK_USER, KEY, c, sizeof(c)), 0);
	assert_int_equal(mask_code_valid(MASK_USER, c, both, 2), 1);
	assert_int_equal(mask_code_valid(MASK_USER, c, old_only, 1), 0);
	assert_int_equal(mask_code_valid(MASK_USER, c, both, 0), 0);
}

static void
test_local_parse(void **state)
{
	char	 c[MASK_CODE_LEN + 1], big[200];

	(void)state;
	assert_int_equal(mask_local_parse("Service-ABCdef", c, sizeof(c)),
	    MASK_SERVICE);
	assert_string_equal(c, "abcdef");
	assert_int_equal(mask_local_parse("USER-x2", c, sizeof(c)),
	    MASK_USER);
	assert_string_equal(c, "x2");
	assert_int_equal(mask_local_parse("users-x", c, sizeof(c)),
	    MASK_NONE);
	assert_string_equal(c, "");
	assert_int_equal(mask_local_parse("service", c, sizeof(c)),
	    MASK_NONE);
	assert_int_equal(mask_local_parse("ann", c, sizeof(c)), MASK_NONE);
	assert_int_equal(mask_local_parse(NULL, c, sizeof(c)), MASK_NONE);
	/* a code too long for the buffer: still a mask address, no code */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "user-", 5);
	assert_int_equal(mask_local_parse(big, c, sizeof(c)), MASK_USER);
	assert_string_equal(c, "");
	assert_int_equal(mask_code_valid(MASK_USER, c, one, 1), 0);
	/* parse + valid: the path RCPT takes */
	assert_int_equal(mask_local_parse("SERVICE-ABCDEFGHIJKLMNOPCM6I", c,
	    sizeof(c)), MASK_SERVICE);
	assert_int_equal(mask_code_valid(MASK_SERVICE, c, one, 1), 1);
}

/* ---- VERP ---- */

static void
test_verp(void **state)
{
	char			 l[80], pc[MASK_CODE_LEN + 1], t[80];
	unsigned long long	 no = 0;

	(void)state;
	assert_int_equal(mask_verp_new(KEY, "ABCDEFGHIJKLMNOPQRST", 42, l,
	    sizeof(l)), 0);
	assert_string_equal(l, "bounce-abcdefghijklmnopqrst-42-sjyoco7s");
	assert_int_equal(mask_verp_parse(l, one, 1, pc, sizeof(pc), &no), 0);
	assert_string_equal(pc, "abcdefghijklmnopqrst");
	assert_true(no == 42);
	/* any case */
	for (char *p = l; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(mask_verp_parse(l, one, 1, pc, sizeof(pc), &no), 0);
	/* rotation, foreign key */
	assert_int_equal(mask_verp_new(OLD, "abc", ~0ULL, l, sizeof(l)), 0);
	assert_int_equal(mask_verp_parse(l, both, 2, pc, sizeof(pc), &no), 0);
	assert_true(no == ~0ULL);
	assert_int_equal(mask_verp_parse(l, one, 1, pc, sizeof(pc), &no), -1);
	/* tampering */
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-43-sjyoco7s", one, 1, pc, sizeof(pc),
	    &no), -1);
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrsa-42-sjyoco7s", one, 1, pc, sizeof(pc),
	    &no), -1);
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-042-sjyoco7s", one, 1, pc, sizeof(pc),
	    &no), -1);
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-42-sjyoco7", one, 1, pc, sizeof(pc),
	    &no), -1);
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-42-sjyoco7s-x", one, 1, pc,
	    sizeof(pc), &no), -1);
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-99999999999999999999-sjyoco7s", one,
	    1, pc, sizeof(pc), &no), -1);
	assert_int_equal(mask_verp_parse("bounce--42-sjyoco7s", one, 1, pc,
	    sizeof(pc), &no), -1);
	assert_int_equal(mask_verp_parse("ann", one, 1, pc, sizeof(pc), &no),
	    -1);
	/* the caller's buffer too small: no truncated code */
	assert_int_equal(mask_verp_parse(
	    "bounce-abcdefghijklmnopqrst-42-sjyoco7s", one, 1, pc, 5, &no),
	    -1);
	/* refusals */
	assert_int_equal(mask_verp_new(KEY, "", 1, l, sizeof(l)), -1);
	assert_int_equal(mask_verp_new(KEY, "abc-d", 1, l, sizeof(l)), -1);
	assert_int_equal(mask_verp_new(KEY, "abcdefghijklmnopqrstu", 1, l,
	    sizeof(l)), -1);
	assert_int_equal(mask_verp_new(KEY, "abc", 1, t, 10), -1);
	assert_string_equal(t, "");
	assert_int_equal(mask_verp_new("short", "abc", 1, l, sizeof(l)), -1);
}

/* ---- mask_rewrite ---- */

struct pairs {
	const char	*real[4];
	const char	*mask[4];
	int		 fail;
	int		 calls;
};

/* known addresses to their masks; a mask address stays; others drop */
static int
map_pairs(void *arg, const char *addr, char *out, size_t outlen)
{
	struct pairs	*p = arg;

	p->calls++;
	if (p->fail)
		return -1;
	for (int i = 0; i < 4 && p->real[i]; i++)
		if (strcasecmp(addr, p->real[i]) == 0) {
			snprintf(out, outlen, "%s", p->mask[i]);
			return MASK_ADDR_KEEP;
		}
	if (strlen(addr) > 10 && strcmp(addr + strlen(addr) - 10,
	    "@" DOM) == 0) {
		snprintf(out, outlen, "%s", addr);
		return MASK_ADDR_KEEP;
	}
	return MASK_ADDR_DROP;
}

static int
map_all(void *arg, const char *addr, char *out, size_t outlen)
{
	(void)arg;
	(void)addr;
	snprintf(out, outlen, "x@" DOM);
	return MASK_ADDR_KEEP;
}

static struct pairs	 P = {
	{ "svc@shop.test", NULL }, { "service-abc@" DOM, NULL }, 0, 0
};

static struct mask_map	 M = {
	DOM, FROMM, NULL, "pairmark", map_pairs, &P
};

/* every line of s: at most 998 octets, no CR or NUL (NUL: len check) */
static void
check_lines(const char *s, size_t len)
{
	size_t	 col = 0;

	assert_int_equal(strlen(s), len);
	for (size_t i = 0; i < len; i++) {
		assert_int_not_equal(s[i], '\r');
		col = s[i] == '\n' ? 0 : col + 1;
		assert_true(col <= MASK_LINE_MAX);
	}
}

/* the rewritten section of h with map m, or NULL with *why */
static char *
rw(const char *h, const struct mask_map *m, enum mask_err *why)
{
	struct buf	 b;
	enum mask_err	 e;
	char		*r;

	buf_init(&b, 1 << 22);
	if (mask_rewrite(h, strlen(h), m, &b, &e) == -1) {
		assert_int_not_equal(e, MASK_OK);
		if (why)
			*why = e;
		buf_free(&b);
		return NULL;
	}
	assert_int_equal(e, MASK_OK);
	check_lines(b.data, b.len);
	r = strdup(b.data);
	assert_non_null(r);
	buf_free(&b);
	return r;
}

static void
expect(const char *h, const char *want)
{
	char	*got = rw(h, &M, NULL);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void
test_rewrite_basic(void **state)
{
	(void)state;
	expect("Received: from x by y\n"
	    "Return-Path: <ann@real.test>\n"
	    "From: Ann Example <ann@real.test>\n"
	    "To: Shop <service-abc@mask.test>\n"
	    "Subject: a question\n"
	    "Date: Mon, 1 Jan 2026 10:00:00 +0000\n"
	    "Message-ID: <1@real.test>\n"
	    "X-Mailer: thing\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "\n"
	    "body ann@real.test\n",
	    "From: \"Ann Example via mask.test\" <" FROMM ">\n"
	    "To: <service-abc@mask.test>\n"
	    "Subject: a question\n"
	    "Date: Mon, 1 Jan 2026 10:00:00 +0000\n"
	    "Message-ID: <1@real.test>\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "X-Sluice-Mask: pairmark\n"
	    "\n");
	/* no empty line in, none out; no From: in, one out */
	expect("Subject: x", "Subject: x\n"
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	expect("", "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	expect("\n", "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n\n");
}

static void
test_rewrite_reply_to(void **state)
{
	struct mask_map	 m = M;
	char		*got;

	(void)state;
	m.reply_to = "user-zzz@" DOM;
	got = rw("Reply-To: <ann@real.test>\nFrom: <ann@real.test>\n"
	    "Reply-To: other@real.test\n", &m, NULL);
	assert_non_null(got);
	assert_string_equal(got,
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "Reply-To: <user-zzz@mask.test>\n"
	    "X-Sluice-Mask: pairmark\n");
	free(got);
}

/* the real address is nowhere in the relayed copy */
static void
test_rewrite_leaks(void **state)
{
	char	*got;
	const char *h =
	    "Received: from [10.0.0.1] (ann@real.test) by mx\n"
	    "Return-Path: <ann@real.test>\n"
	    "Delivered-To: ann@real.test\n"
	    "X-Original-To: ann@real.test\n"
	    "Sender: Ann <ann@real.test>\n"
	    "Reply-To: \"Ann\" <ann@real.test>\n"
	    "DKIM-Signature: v=1; i=ann@real.test; b=xx\n"
	    "Disposition-Notification-To: ann@real.test\n"
	    "Return-Receipt-To: ann@real.test\n"
	    "Errors-To: ann@real.test\n"
	    "Resent-From: ann@real.test\n"
	    "X-Forwarded-For: ann@real.test\n"
	    "From: \"ann@real.test\" <ann@real.test>\n"
	    "From: Bob <bob@real.test>\n"
	    "To: \"ann@real.test\" <service-abc@mask.test>,\n"
	    "  =?utf-8?q?ann=40real=2Etest?= <ann@real.test> (ann@real.test),\n"
	    "  friends: carl@real.test, \"x\" <dan@real.test>;\n"
	    "Cc: (ann@real.test) svc@shop.test, =?utf-8?b?YW5uQHJlYWwudGVzdA==?="
	    " <ann@real.test>\n"
	    "Cc: <ann@real.test\n"
	    "Subject: hi\n"
	    "\n";

	(void)state;
	got = rw(h, &M, NULL);
	assert_non_null(got);
	assert_null(strstr(got, "real.test"));
	assert_null(strstr(got, "ann"));
	assert_null(strstr(got, "YW5uQHJlYWwudGVzdA"));
	assert_string_equal(got,
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "To: <service-abc@mask.test>\n"
	    "Cc: <service-abc@mask.test>\n"
	    "Subject: hi\n"
	    "X-Sluice-Mask: pairmark\n\n");
	free(got);
	/* an encoded display name of From: hiding the address */
	got = rw("From: =?utf-8?q?ann=40real=2Etest?= <ann@real.test>\n", &M,
	    NULL);
	assert_non_null(got);
	assert_null(strstr(got, "ann"));
	free(got);
	got = rw("From: =?utf-8?b?YW5uQHJlYWwudGVzdA==?= <ann@real.test>\n",
	    &M, NULL);
	assert_non_null(got);
	assert_null(strstr(got, "YW5u"));
	free(got);
	/* full-width at sign, UTF-7 */
	got = rw("From: \"ann\xef\xbc\xa0real.test\" <ann@real.test>\n", &M,
	    NULL);
	assert_null(strstr(got, "real"));
	free(got);
	got = rw("From: =?utf-7?q?ann+AEA-real?= <ann@real.test>\n", &M,
	    NULL);
	assert_null(strstr(got, "real"));
	free(got);
	/* a comment as the only name */
	expect("From: ann@real.test (Ann Example)\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

static void
test_rewrite_names(void **state)
{
	(void)state;
	/* a quoted string: quotes kept, escapes kept right */
	expect("From: \"Ann \\\"The\\\" Ex\\ample\" <a@real.test>\n",
	    "From: \"Ann \\\"The\\\" Example via mask.test\"\n"
	    " <" FROMM ">\nX-Sluice-Mask: pairmark\n");
	/* a plain phrase, folded, with a comment */
	expect("From: Ann\n  (the boss) Example\n <a@real.test>\n",
	    "From: \"Ann Example via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	/* encoded words as they are */
	expect("From: =?UTF-8?Q?J=C3=BCrgen?= <j@real.test>\n",
	    "From: =?UTF-8?Q?J=C3=BCrgen?= \"via mask.test\"\n"
	    " <" FROMM ">\nX-Sluice-Mask: pairmark\n");
	/* raw UTF-8: encoded */
	expect("From: \"J\xc3\xbcrgen\" <j@real.test>\n",
	    "From: =?UTF-8?B?SsO8cmdlbiB2aWEgbWFzay50ZXN0?=\n <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	/* invalid UTF-8, controls, an empty name: Someone */
	expect("From: \"J\xfcrgen\" <j@real.test>\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	expect("From: \"\" <j@real.test>\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	expect("From: \"a\x01\" <j@real.test>\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	/* several mailboxes and fields: the first name, one From: */
	expect("fROM: Ann <a@real.test>, Bob <b@real.test>\n"
	    "From: Carl <c@real.test>\n",
	    "From: \"Ann via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	/* a group: its name is not a display name */
	expect("From: Team: <a@real.test>;\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	/* unreadable From: */
	expect("From: \"Ann <a@real.test>\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

/* a long UTF-8 name becomes several encoded words of whole characters */
static void
test_rewrite_long_name(void **state)
{
	char	 h[600], *got, *p;
	size_t	 k = 0;

	(void)state;
	k += (size_t)snprintf(h, sizeof(h), "From: \"");
	for (int i = 0; i < 90; i++) {
		h[k++] = '\xc3';
		h[k++] = '\xa9';
	}
	snprintf(h + k, sizeof(h) - k, "\" <a@real.test>\n");
	got = rw(h, &M, NULL);
	assert_non_null(got);
	for (p = got; (p = strstr(p, "=?UTF-8?B?")) != NULL; p++) {
		const char *e = strstr(p, "?=");
		assert_non_null(e);
		assert_true(e + 2 - p <= 75);
	}
	for (p = got; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	free(got);
	/* over MASK_NAME_MAX: Someone */
	memset(h, 'a', sizeof(h));
	memcpy(h, "From: ", 6);
	snprintf(h + 6 + MASK_NAME_MAX + 1, 40, " <a@real.test>\n");
	expect(h, "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

static void
test_rewrite_threading(void **state)
{
	const char	*refs =
	    "References: <1@a.test>\n <2@b.test>\n\t<3@c.test>  \n"
	    "In-Reply-To:   <3@c.test>\n"
	    "Message-ID:<4@d.test>\n";
	char		 h[400], *got;

	(void)state;
	snprintf(h, sizeof(h), "X-A: b\n%sX-B: c\n\n", refs);
	got = rw(h, &M, NULL);
	assert_non_null(got);
	assert_non_null(strstr(got, refs));
	free(got);
}

static void
test_rewrite_allow_list(void **state)
{
	(void)state;
	expect("SUBJECT: s\ncontent-type: text/plain\n"
	    "Content-Transfer-Encoding: 8bit\nList-Id: <l.test>\n"
	    "List-Unsubscribe: <mailto:u@l.test>\nAuto-Submitted: auto-replied\n"
	    "Mime-Version: 1.0\nContent-: x\nList-: y\nContent x: z\n"
	    "Subject : w\nX-Sluice-Mask: forged\nBcc: b@real.test\n"
	    " continuation without field\nno colon\n",
	    "SUBJECT: s\ncontent-type: text/plain\n"
	    "Content-Transfer-Encoding: 8bit\nList-Id: <l.test>\n"
	    "List-Unsubscribe: <mailto:u@l.test>\nAuto-Submitted: auto-replied\n"
	    "Mime-Version: 1.0\n"
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

/* kept fields with a bare CR, a NUL, or a line over 998: left out */
static void
test_rewrite_bad_lines(void **state)
{
	struct buf	 b;
	char		 h[3000];
	size_t		 k;
	const char	 nul[] = "Subject: a\0b\nDate: d\n";

	(void)state;
	expect("Subject: a\rb\nDate: d\n", "Date: d\n"
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	buf_init(&b, 1 << 20);
	assert_int_equal(mask_rewrite(nul, sizeof(nul) - 1, &M, &b, NULL), 0);
	assert_int_equal(strlen(b.data), b.len);
	assert_null(strstr(b.data, "Subject"));
	assert_non_null(strstr(b.data, "Date: d\n"));
	buf_free(&b);
	/* 998 octets is fine, 999 is not; folded long fields are fine */
	k = (size_t)snprintf(h, sizeof(h), "Subject: ");
	memset(h + k, 'x', MASK_LINE_MAX - k);
	snprintf(h + MASK_LINE_MAX, sizeof(h) - MASK_LINE_MAX,
	    "\n more\nDate: d\n");
	{
		char *got = rw(h, &M, NULL);
		assert_non_null(strstr(got, "xx\n more\n"));
		free(got);
	}
	memset(h + k, 'x', MASK_LINE_MAX + 1 - k);
	snprintf(h + MASK_LINE_MAX + 1, sizeof(h) - MASK_LINE_MAX - 1,
	    "\nDate: d\n");
	expect(h, "Date: d\n"
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

static void
test_rewrite_lists(void **state)
{
	struct mask_map	 m = M;
	struct pairs	 p = { { "svc@shop.test", "b@shop.test", NULL },
	    { "service-abc@" DOM, "service-def@" DOM, NULL }, 0, 0 };

	(void)state;
	m.arg = &p;
	/* mapped, dropped, group and comments gone, a dropped field gone */
	expect("To: svc@shop.test (Shop), other@x.test, undisclosed:;\n"
	    "cc: Friends: \"Bob, B.\" <b@shop.test>, c@x.test;,"
	    " <@route.test:svc@shop.test>\n"
	    "Cc: third@x.test\n"
	    "To: <>, , not-an-address, \"\" <a b@c>\n",
	    "To: <service-abc@mask.test>\n"
	    "Cc: <service-abc@mask.test>\n"
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
	{
		char *got = rw("To: svc@shop.test, b@shop.test\n", &m, NULL);
		assert_string_equal(got, "To: <service-abc@mask.test>,"
		    " <service-def@mask.test>\n"
		    "From: \"Someone via mask.test\" <" FROMM ">\n"
		    "X-Sluice-Mask: pairmark\n");
		free(got);
	}
	/* unreadable fields: left out whole, never raw */
	expect("To: \"svc@shop.test\n"
	    "Cc: <svc@shop.test\n"
	    "To: svc@shop.test (unclosed\n"
	    "To: svc@shop.test>\n"
	    "To: <svc@shop.test> <b@shop.test>\n"
	    "To: <svc@shop.test> trailing\n",
	    "From: \"Someone via mask.test\" <" FROMM ">\n"
	    "X-Sluice-Mask: pairmark\n");
}

/* 100 addresses per field pass (folded), 101 and 1000 do not */
static void
test_rewrite_many(void **state)
{
	struct mask_map	 m = M;
	struct buf	 h;
	enum mask_err	 why = MASK_OK;
	char		*got;

	(void)state;
	m.map_addr = map_all;
	buf_init(&h, 1 << 20);
	buf_adds(&h, "To: a0@real.test");
	for (int i = 1; i < MASK_ADDRS_MAX; i++)
		buf_addf(&h, ",\n a%d@real.test", i);
	buf_adds(&h, "\n");
	got = rw(h.data, &m, NULL);
	assert_non_null(got);
	assert_null(strstr(got, "real.test"));
	free(got);
	h.len--;
	buf_adds(&h, ", b@real.test\n");
	assert_null(rw(h.data, &m, &why));
	assert_int_equal(why, MASK_ERR_ADDRS);
	buf_reset(&h);
	buf_adds(&h, "Cc: ");
	for (int i = 0; i < 1000; i++)
		buf_addf(&h, "%s\"n%d\" <a%d@real.test>", i ? ", " : "", i, i);
	buf_adds(&h, "\n");
	why = MASK_OK;
	assert_null(rw(h.data, &m, &why));
	assert_int_equal(why, MASK_ERR_ADDRS);
	assert_string_equal(mask_strerr(why),
	    "too many addresses in a header field");
	buf_free(&h);
}

static void
test_rewrite_errors(void **state)
{
	struct mask_map	 m = M;
	struct pairs	 p = P;
	struct buf	 b, h;
	enum mask_err	 why;
	char		*got;

	(void)state;
	/* a failed look-up fails the rewrite (temporary for the caller) */
	p.fail = 1;
	m.arg = &p;
	assert_null(rw("To: svc@shop.test\n", &m, &why));
	assert_int_equal(why, MASK_ERR_MAP);
	/* no call for a field that is then found unreadable */
	p.calls = 0;
	got = rw("To: svc@shop.test, \"x\n", &m, &why);
	assert_non_null(got);
	free(got);
	assert_int_equal(p.calls, 0);
	/* a NUL in an address: no call, nothing written */
	p.fail = 0;
	p.calls = 0;
	buf_init(&b, 1 << 20);
	assert_int_equal(mask_rewrite("To: svc\0@shop.test\n", 19, &m, &b,
	    &why), 0);
	assert_int_equal(p.calls, 0);
	assert_int_equal(strlen(b.data), b.len);
	assert_null(strstr(b.data, "To:"));
	buf_free(&b);
	/* bad maps */
	m = M;
	m.domain = "mask test";
	assert_null(rw("", &m, &why));
	assert_int_equal(why, MASK_ERR_ARGS);
	m = M;
	m.mark = "a\nb";
	assert_null(rw("", &m, &why));
	m = M;
	m.from_mask = "x@y>\nBcc: z@w";
	assert_null(rw("", &m, &why));
	m = M;
	m.reply_to = "nope";
	assert_null(rw("", &m, &why));
	m = M;
	m.map_addr = NULL;
	assert_null(rw("", &m, &why));
	assert_int_equal(why, MASK_ERR_ARGS);
	/* the caller's buffer cap */
	buf_init(&b, 40);
	assert_int_equal(mask_rewrite("Subject: x\n", 11, &M, &b, &why), -1);
	assert_int_equal(why, MASK_ERR_TOOBIG);
	buf_free(&b);
	/* MASK_OUT_MAX */
	buf_init(&h, 1 << 21);
	while (h.len < MASK_OUT_MAX + 1000)
		buf_adds(&h, "Content-X: 0123456789012345678901234567890123\n");
	buf_init(&b, 1 << 22);
	assert_int_equal(mask_rewrite(h.data, h.len, &M, &b, &why), -1);
	assert_int_equal(why, MASK_ERR_TOOBIG);
	buf_free(&b);
	buf_free(&h);
}

/* ---- checks ---- */

static void
test_mark(void **state)
{
	const char	*h = "Subject: x\nX-Sluice-Mask:\n  PairMark \n\nX: y\n";

	(void)state;
	assert_int_equal(mask_mark_present(h, strlen(h), "pairmark"), 1);
	assert_int_equal(mask_mark_present(h, strlen(h), "pair"), 0);
	assert_int_equal(mask_mark_present(h, strlen(h), ""), 0);
	/* after the header section: not there */
	h = "Subject: x\n\nX-Sluice-Mask: pairmark\n";
	assert_int_equal(mask_mark_present(h, strlen(h), "pairmark"), 0);
	/* what mask_rewrite writes is found */
	{
		char *got = rw("Subject: x\n\n", &M, NULL);
		assert_int_equal(mask_mark_present(got, strlen(got),
		    "pairmark"), 1);
		free(got);
	}
}

static int
autosub(const char *h)
{
	return mask_auto_submitted(h, strlen(h));
}

static void
test_auto_submitted(void **state)
{
	(void)state;
	assert_int_equal(autosub("Subject: x\n"), 0);
	assert_int_equal(autosub("Auto-Submitted: no\n"), 0);
	assert_int_equal(autosub("auto-submitted: NO (a person)\n"), 0);
	assert_int_equal(autosub("Auto-Submitted: (c) no ; x=y\n"), 0);
	assert_int_equal(autosub("Auto-Submitted: auto-replied\n"), 1);
	assert_int_equal(autosub("Auto-Submitted: auto-generated (x)\n"), 1);
	assert_int_equal(autosub("Auto-Submitted: nope\n"), 1);
	assert_int_equal(autosub("Auto-Submitted:\n"), 1);
	assert_int_equal(autosub("Auto-Submitted: (unclosed no\n"), 1);
	assert_int_equal(autosub("Precedence: bulk\n"), 1);
	assert_int_equal(autosub("PRECEDENCE: Junk (x)\n"), 1);
	assert_int_equal(autosub("Precedence:\n list\n"), 1);
	assert_int_equal(autosub("Precedence: first-class\n"), 0);
	assert_int_equal(autosub("Content-Type: multipart/report;\n"
	    " report-type=disposition-notification; boundary=\"b\"\n"), 1);
	assert_int_equal(autosub("Content-Type: Multipart/Report; boundary="
	    "\"a;b\"; report-type=\"Disposition-Notification\"\n"), 1);
	assert_int_equal(autosub("Content-Type: multipart/report; "
	    "report-type=delivery-status\n"), 0);
	assert_int_equal(autosub("Content-Type: multipart/reports; "
	    "report-type=disposition-notification\n"), 0);
	assert_int_equal(autosub("Content-Type: text/plain; "
	    "report-type=disposition-notification\n"), 0);
	assert_int_equal(autosub("Subject: x\n\nAuto-Submitted: yes\n"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_vector),
		cmocka_unit_test(test_code_new),
		cmocka_unit_test(test_code_rotation),
		cmocka_unit_test(test_local_parse),
		cmocka_unit_test(test_verp),
		cmocka_unit_test(test_rewrite_basic),
		cmocka_unit_test(test_rewrite_reply_to),
		cmocka_unit_test(test_rewrite_leaks),
		cmocka_unit_test(test_rewrite_names),
		cmocka_unit_test(test_rewrite_long_name),
		cmocka_unit_test(test_rewrite_threading),
		cmocka_unit_test(test_rewrite_allow_list),
		cmocka_unit_test(test_rewrite_bad_lines),
		cmocka_unit_test(test_rewrite_lists),
		cmocka_unit_test(test_rewrite_many),
		cmocka_unit_test(test_rewrite_errors),
		cmocka_unit_test(test_mark),
		cmocka_unit_test(test_auto_submitted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * smtp_parse - pure parsers for SMTP command lines. See smtp_parse.h.
 *
 * Contract: every function reads (pointer, length) only, never past len,
 * writes only its out argument, and returns an smtp_perr that the session
 * maps to a reply. Nothing is allocated; the result never points into
 * anything but the caller's line.
 *
 * Error mapping: the verb is a run of ASCII letters and must be followed by
 * the end or a space, else SMTP_P_SYNTAX (cmd->verb is still set so the
 * session can choose 500 for an unknown verb). A missing "FROM:"/"TO:" or
 * junk right after the '>' is SMTP_P_SYNTAX; a bad path is SMTP_P_ADDR with
 * the addr_err; anything wrong in the ESMTP parameters (unknown keyword,
 * duplicate, missing or malformed value, SIZE overflow, BODY=BINARYMIME)
 * is SMTP_P_PARAM. Parameters may be separated by more than one space.
 */
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "smtp_parse.h"

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} verbs[] = {
	{ "HELO", SMTP_V_HELO }, { "EHLO", SMTP_V_EHLO },
	{ "MAIL", SMTP_V_MAIL }, { "RCPT", SMTP_V_RCPT },
	{ "DATA", SMTP_V_DATA }, { "BDAT", SMTP_V_BDAT },
	{ "RSET", SMTP_V_RSET }, { "NOOP", SMTP_V_NOOP },
	{ "QUIT", SMTP_V_QUIT }, { "VRFY", SMTP_V_VRFY },
	{ "EXPN", SMTP_V_EXPN }, { "HELP", SMTP_V_HELP },
	{ "STARTTLS", SMTP_V_STARTTLS }, { "AUTH", SMTP_V_AUTH },
};

/* One "KEYWORD[=value]" of a MAIL or RCPT command. */
struct param {
	const char	*key;
	size_t		 keylen;
	const char	*val;	/* NULL: no '=' */
	size_t		 vallen;
};

static int
is_alpha(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

/* Case-insensitive compare of s[0..n) with the whole of word. */
static int
word_eq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* 1*DIGIT into *v; 0 on an empty string, a non-digit or overflow. */
static int
parse_ull(const char *s, size_t n, unsigned long long *v)
{
	unsigned long long	 x = 0;
	unsigned		 d;
	size_t			 i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return 0;
		d = (unsigned)(s[i] - '0');
		if (x > (~0ULL - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

enum smtp_perr
smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t	 i, k;

	cmd->verb = SMTP_V_UNKNOWN;
	cmd->arg = line + len;
	cmd->arglen = 0;
	if (memchr(line, '\0', len) != NULL)
		return SMTP_P_NUL;
	for (i = 0; i < len && is_alpha((unsigned char)line[i]); i++)
		;
	for (k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (word_eq(line, i, verbs[k].name))
			cmd->verb = verbs[k].verb;
	if (i == len)
		return SMTP_P_OK;
	if (line[i] != ' ')
		return SMTP_P_SYNTAX;
	cmd->arg = line + i + 1;
	cmd->arglen = len - i - 1;
	while (cmd->arglen > 0 && cmd->arg[cmd->arglen - 1] == ' ')
		cmd->arglen--;
	return SMTP_P_OK;
}

/*
 * Split the next parameter off s[*i..len), skipping spaces before it.
 * Returns 0 at the end, 1 with *p filled, -1 if it is malformed:
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"),
 * esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 octets (RFC 6531),
 * which we pass through since the values we interpret are checked again.
 */
static int
next_param(const char *s, size_t len, size_t *i, struct param *p)
{
	unsigned	 c;
	size_t		 k = *i;

	while (k < len && s[k] == ' ')
		k++;
	if (k == len)
		return 0;
	p->key = s + k;
	p->val = NULL;
	p->vallen = 0;
	while (k < len && (is_alpha(c = (unsigned char)s[k]) || is_digit(c) ||
	    (c == '-' && s + k > p->key)))
		k++;
	p->keylen = (size_t)(s + k - p->key);
	if (p->keylen == 0)
		return -1;
	if (k < len && s[k] == '=') {
		p->val = s + ++k;
		while (k < len && (c = (unsigned char)s[k]) != ' ' &&
		    c != '=' && c > 32 && c != 127)
			k++;
		p->vallen = (size_t)(s + k - p->val);
		if (p->vallen == 0)
			return -1;
	}
	if (k < len && s[k] != ' ')
		return -1;
	*i = k;
	return 1;
}

/*
 * Match "FROM:" / "TO:" and the optional single space many clients put
 * after the colon. Returns the offset of the path or 0 if no match.
 */
static size_t
skip_prefix(const char *arg, size_t len, const char *prefix)
{
	size_t	 n = strlen(prefix);

	if (len < n || strncasecmp(arg, prefix, n) != 0)
		return 0;
	if (n < len && arg[n] == ' ')
		n++;
	return n;
}

enum { MP_SIZE, MP_BODY, MP_SMTPUTF8, MP_AUTH, MP_RET, MP_ENVID, MP_N };
static const char *const mail_params[MP_N] = {
	[MP_SIZE] = "SIZE", [MP_BODY] = "BODY", [MP_SMTPUTF8] = "SMTPUTF8",
	[MP_AUTH] = "AUTH", [MP_RET] = "RET", [MP_ENVID] = "ENVID",
};

/* Apply one MAIL parameter; *seen catches duplicates. */
static enum smtp_perr
mail_param(const struct param *p, struct smtp_mail_args *out, unsigned *seen)
{
	unsigned	 k;

	for (k = 0; k < MP_N; k++)
		if (word_eq(p->key, p->keylen, mail_params[k]))
			break;
	if (k == MP_N || (*seen & (1U << k)))
		return SMTP_P_PARAM;
	*seen |= 1U << k;
	/* SMTPUTF8 takes no value, all the others need one. */
	if ((k == MP_SMTPUTF8) != (p->val == NULL))
		return SMTP_P_PARAM;
	switch (k) {
	case MP_SIZE:
		if (!parse_ull(p->val, p->vallen, &out->size))
			return SMTP_P_PARAM;
		break;
	case MP_BODY:
		/* BINARYMIME is refused: we do not advertise it. */
		if (word_eq(p->val, p->vallen, "7BIT"))
			out->body = SMTP_BODY_7BIT;
		else if (word_eq(p->val, p->vallen, "8BITMIME"))
			out->body = SMTP_BODY_8BITMIME;
		else
			return SMTP_P_PARAM;
		break;
	case MP_SMTPUTF8:
		out->smtputf8 = 1;
		break;
	default:
		break;	/* AUTH, RET, ENVID: accepted, ignored for now */
	}
	return SMTP_P_OK;
}

enum smtp_perr
smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *out)
{
	struct param	 p;
	enum smtp_perr	 pe;
	size_t		 pos, used, i;
	unsigned	 seen = 0;
	int		 r;

	memset(out, 0, sizeof(*out));
	if ((pos = skip_prefix(arg, len, "FROM:")) == 0)
		return SMTP_P_SYNTAX;
	/* 8-bit is judged below, once we know whether SMTPUTF8 was given. */
	out->addr_err = addr_parse_path(arg + pos, len - pos,
	    ADDR_F_NULL_OK | ADDR_F_UTF8, &out->from, &used);
	if (out->addr_err != ADDR_OK)
		return SMTP_P_ADDR;
	if ((i = pos + used) < len && arg[i] != ' ')
		return SMTP_P_SYNTAX;	/* "<a@b>x" */
	while ((r = next_param(arg, len, &i, &p)) == 1)
		if ((pe = mail_param(&p, out, &seen)) != SMTP_P_OK)
			return pe;
	if (r == -1)
		return SMTP_P_PARAM;
	if (!out->smtputf8) {
		out->addr_err = addr_parse_path(arg + pos, len - pos,
		    ADDR_F_NULL_OK, &out->from, &used);
		if (out->addr_err != ADDR_OK)
			return SMTP_P_ADDR;
	}
	return SMTP_P_OK;
}

enum smtp_perr
smtp_parse_rcpt(const char *arg, size_t len, int smtputf8,
    struct smtp_rcpt_args *out)
{
	struct param	 p;
	size_t		 pos, used, i;
	unsigned	 seen = 0, bit;
	int		 r;

	memset(out, 0, sizeof(*out));
	if ((pos = skip_prefix(arg, len, "TO:")) == 0)
		return SMTP_P_SYNTAX;
	out->addr_err = addr_parse_path(arg + pos, len - pos,
	    ADDR_F_POSTMASTER | (smtputf8 ? ADDR_F_UTF8 : 0), &out->to, &used);
	if (out->addr_err != ADDR_OK)
		return SMTP_P_ADDR;
	if ((i = pos + used) < len && arg[i] != ' ')
		return SMTP_P_SYNTAX;	/* "<a@b>x" */
	/* DSN's NOTIFY and ORCPT: accepted and ignored until DSN lands. */
	while ((r = next_param(arg, len, &i, &p)) == 1) {
		if (word_eq(p.key, p.keylen, "NOTIFY"))
			bit = 1;
		else if (word_eq(p.key, p.keylen, "ORCPT"))
			bit = 2;
		else
			return SMTP_P_PARAM;
		if ((seen & bit) || p.val == NULL)
			return SMTP_P_PARAM;
		seen |= bit;
	}
	return r == -1 ? SMTP_P_PARAM : SMTP_P_OK;
}

/* RFC 3030: chunk-size [ SP "LAST" ], nothing else. */
enum smtp_perr
smtp_parse_bdat(const char *arg, size_t len, struct smtp_bdat_args *out)
{
	const char	*sp;
	size_t		 n;

	memset(out, 0, sizeof(*out));
	sp = memchr(arg, ' ', len);
	n = sp ? (size_t)(sp - arg) : len;
	if (!parse_ull(arg, n, &out->size))
		return SMTP_P_SYNTAX;
	if (sp == NULL)
		return SMTP_P_OK;
	if (!word_eq(sp + 1, len - n - 1, "LAST"))
		return SMTP_P_SYNTAX;
	out->last = 1;
	return SMTP_P_OK;
}

/*
 * Lenient on purpose: many clients send a bare or odd name, and we only
 * log it. What must not pass is what could corrupt a header or a log line.
 */
enum smtp_perr
smtp_parse_helo(const char *arg, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 255 || !addr_utf8_valid(arg, len))
		return SMTP_P_SYNTAX;
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] < 0x80 &&
		    (arg[i] < 33 || arg[i] > 126))
			return SMTP_P_SYNTAX;
	return SMTP_P_OK;
}

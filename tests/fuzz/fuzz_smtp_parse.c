/*
 * fuzz_smtp_parse - libFuzzer target for src/smtpd/smtp_parse.c.
 *
 * Input: one control byte (bit 0: the transaction declared SMTPUTF8), then
 * a command line. Every argument parser is run on the argument whatever
 * the verb, and their results are checked against what they promise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static void
check_mail(const char *arg, size_t len)
{
	struct smtp_mail_args	 m;
	enum smtp_perr		 e;

	e = smtp_parse_mail(arg, len, &m);
	if ((e == SMTP_P_ADDR) != (m.addr_err != ADDR_OK))
		abort();
	if (e == SMTP_P_OK && !m.smtputf8 &&
	    (has_8bit(m.from.local) || has_8bit(m.from.domain)))
		abort();
	if (e == SMTP_P_OK && m.body == SMTP_BODY_BINARY)
		abort();
}

static void
check_rcpt(const char *arg, size_t len, int utf8)
{
	struct smtp_rcpt_args	 r;
	enum smtp_perr		 e;

	e = smtp_parse_rcpt(arg, len, utf8, &r);
	if ((e == SMTP_P_ADDR) != (r.addr_err != ADDR_OK))
		abort();
	if (e == SMTP_P_OK && (addr_is_null(&r.to) || (!utf8 &&
	    (has_8bit(r.to.local) || has_8bit(r.to.domain)))))
		abort();
}

static void
check_bdat(const char *arg, size_t len)
{
	struct smtp_bdat_args	 b;
	size_t			 i;

	if (smtp_parse_bdat(arg, len, &b) != SMTP_P_OK)
		return;
	for (i = 0; i < len && arg[i] != ' '; i++)
		if (arg[i] < '0' || arg[i] > '9')
			abort();
	if (b.last != (i < len))
		abort();
}

static void
check_helo(const char *arg, size_t len)
{
	size_t	 i;

	if (smtp_parse_helo(arg, len) != SMTP_P_OK)
		return;
	if (len == 0 || len > 255)
		abort();
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] <= 0x20 || arg[i] == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd	 c;
	const char	*line;
	enum smtp_perr	 e;

	if (size < 1)
		return 0;
	line = (const char *)data + 1;
	e = smtp_parse_cmd(line, size - 1, &c);
	if (c.arg < line || c.arg + c.arglen > line + size - 1)
		abort();
	if (c.arglen > 0 && c.arg[c.arglen - 1] == ' ')
		abort();
	if (e == SMTP_P_NUL && memchr(line, '\0', size - 1) == NULL)
		abort();
	if (e != SMTP_P_OK)
		return 0;
	check_mail(c.arg, c.arglen);
	check_rcpt(c.arg, c.arglen, data[0] & 1);
	check_bdat(c.arg, c.arglen);
	check_helo(c.arg, c.arglen);
	return 0;
}

/*
 * envelope - read and write the spool's envelope file. See envelope.h and
 * docs/queue.md for the format.
 *
 * Contract:
 * - envelope_write() validates every field first and writes nothing unless
 *   all are good: no CR, LF or NUL anywhere (P7), every string terminated
 *   inside its array, a valid id, a non-empty proto, numbers in range. So
 *   anything it writes, envelope_parse() reads back to an equal envelope.
 * - envelope_parse() is strict: magic and version first, records in the
 *   order the writer uses, each single record at most once, numbers in
 *   canonical decimal, values that fit their fields, "end" last and nothing
 *   after it. It only reads data[0..len) and is meant to be fuzzed. It
 *   initialises *e itself (pass a fresh or freed envelope); on any defect
 *   it frees what it built, leaves *e empty and says "line N: why" in err.
 * - The null reverse path is written "from <>"; an empty value is refused.
 *   Empty optional text fields (helo, client-addr, client-name, tls, auth)
 *   are omitted by the writer; the parser accepts them present but empty.
 * - queue_id_new() makes 13 hex digits of microseconds since the epoch and
 *   7 hex digits of (pid << 6 | sequence); see there.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"

#define ENV_MAGIC	"sluice-envelope"
/* largest time_t, assuming a signed two's complement type */
#define ENV_TIME_MAX \
	((unsigned long long)(((uintmax_t)1 << (sizeof(time_t) * CHAR_BIT - 1)) - 1))

enum ftype {
	F_ID,		/* queue id */
	F_TIME,		/* time_t >= 0 */
	F_UINT,		/* unsigned */
	F_ULL,		/* unsigned long long */
	F_FROM,		/* reverse path, "<>" for the null path */
	F_TEXT,		/* any bytes but CR, LF, NUL */
};

/* The single records, in the order they are written and must be read. */
struct field {
	const char	*name;
	enum ftype	 type;
	size_t		 off;
	size_t		 size;
	int		 required;	/* must be present (and non-empty) */
};

#define FLD(m)	offsetof(struct envelope, m), sizeof(((struct envelope *)0)->m)

static const struct field fields[] = {
	{ "id",		 F_ID,	 FLD(id),		1 },
	{ "created",	 F_TIME, FLD(created),		1 },
	{ "from",	 F_FROM, FLD(from),		1 },
	{ "helo",	 F_TEXT, FLD(helo),		0 },
	{ "client-addr", F_TEXT, FLD(client_addr),	0 },
	{ "client-name", F_TEXT, FLD(client_name),	0 },
	{ "proto",	 F_TEXT, FLD(proto),		1 },
	{ "tls",	 F_TEXT, FLD(tls),		0 },
	{ "auth",	 F_TEXT, FLD(auth),		0 },
	{ "flags",	 F_UINT, FLD(flags),		0 },
	{ "size",	 F_ULL,	 FLD(size),		0 },
	{ "hops",	 F_UINT, FLD(hops),		0 },
};
#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))

static const char *const state_words[] = {
	[RCPT_PENDING] = "pending",
	[RCPT_DEFERRED] = "deferred",
	[RCPT_DELIVERED] = "delivered",
	[RCPT_BOUNCED] = "bounced",
	[RCPT_WAITING] = "waiting",
	[RCPT_EXPANDED] = "expanded",
};

static const char *const via_words[] = {
	[VIA_NONE] = "none",
	[VIA_MAILBOX] = "mailbox",
	[VIA_REMOTE] = "remote",
	[VIA_PIPE] = "pipe",
	[VIA_FILE] = "file",
};
#define NVIAS	(sizeof(via_words) / sizeof(via_words[0]))
#define NSTATES	(sizeof(state_words) / sizeof(state_words[0]))

/* Parser position: which part of the file the next record may belong to. */
enum phase { PH_HEAD, PH_RCPT, PH_HDR, PH_END };

struct pstate {
	struct envelope	*e;
	enum phase	 phase;
	int		 lastfield;	/* index in fields[] of the last single */
	int		 seen[NFIELDS];
	int		 rcptsub;	/* 0 rcpt, then 1 orig, 2 via, 3 target,
					   4 error seen */
	size_t		 lineno;
	char		*err;
	size_t		 errlen;
};

static void	seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	/* truncation of a diagnostic is harmless */
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->rcpts = NULL;
	buf_init(&e->hdrs, ENV_HDRS_MAX);
}

void
envelope_free(struct envelope *e)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		free(e->rcpts[i].target);
	free(e->rcpts);
	buf_free(&e->hdrs);
	envelope_init(e);
}

/* Copy s[0..n) into a field of size sz, NUL-terminated; -1 if it won't fit. */
static int
copy_field(char *dst, size_t sz, const char *s, size_t n)
{
	if (n >= sz)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* Make room for one more recipient; -1 past ENV_RCPT_MAX or on ENOMEM. */
static int
rcpt_grow(struct envelope *e)
{
	struct env_rcpt	*r;
	size_t		 ncap;

	if (e->nrcpts >= ENV_RCPT_MAX)
		return -1;
	if (e->nrcpts < e->rcptcap)
		return 0;
	ncap = e->rcptcap ? e->rcptcap * 2 : 8;
	if (ncap > ENV_RCPT_MAX)
		ncap = ENV_RCPT_MAX;
	if ((r = reallocarray(e->rcpts, ncap, sizeof(*r))) == NULL)
		return -1;
	e->rcpts = r;
	e->rcptcap = ncap;
	return 0;
}

int
envelope_add_rcpt(struct envelope *e, const char *addr, const char *orig)
{
	struct env_rcpt	*r;
	size_t		 alen, olen;

	if (orig == NULL || *orig == '\0')
		orig = addr;
	alen = strlen(addr);
	olen = strlen(orig);
	if (alen == 0 || alen > ADDR_STR_MAX || olen > ADDR_STR_MAX)
		return -1;
	if (rcpt_grow(e) == -1)
		return -1;
	r = &e->rcpts[e->nrcpts];
	memset(r, 0, sizeof(*r));
	memcpy(r->addr, addr, alen + 1);
	memcpy(r->orig, orig, olen + 1);
	r->state = RCPT_PENDING;
	e->nrcpts++;
	return 0;
}

int
envelope_add_target(struct envelope *e, const char *addr, const char *orig,
    enum rcpt_via via, unsigned owner, const char *ext, const char *target)
{
	struct env_rcpt	*r;
	size_t		 tl = target ? strlen(target) : 0;

	if ((unsigned)via >= NVIAS || strlen(ext) > ADDR_LOCAL_MAX ||
	    tl > ENV_TARGET_MAX || ((via == VIA_PIPE || via == VIA_FILE) !=
	    (tl > 0)))
		return -1;
	if (envelope_add_rcpt(e, addr, orig) == -1)
		return -1;
	r = &e->rcpts[e->nrcpts - 1];
	if (tl && (r->target = strdup(target)) == NULL) {
		e->nrcpts--;
		return -1;
	}
	r->via = via;
	r->owner = owner;
	snprintf(r->ext, sizeof(r->ext), "%s", ext);
	return 0;
}

int
envelope_add_hdr(struct envelope *e, const char *line, size_t len)
{
	struct buf	*b = &e->hdrs;

	if (len == 0 || memchr(line, '\r', len) || memchr(line, '\n', len) ||
	    memchr(line, '\0', len))
		return -1;
	/* check the cap here so that a refused line does not poison b */
	if (b->err || len >= b->max || b->len > b->max - len - 1)
		return -1;
	if (buf_reserve(b, len + 1) == -1)
		return -1;
	buf_add(b, line, len);
	buf_addc(b, '\n');
	return 0;
}

size_t
envelope_pending(const struct envelope *e)
{
	size_t	 i, n = 0;

	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == RCPT_PENDING ||
		    e->rcpts[i].state == RCPT_DEFERRED ||
		    e->rcpts[i].state == RCPT_WAITING)
			n++;
	return n;
}

/*
 * Writer.
 */

/* Is the string in a field of size sz terminated and free of CR and LF? */
static int
check_text(const char *s, size_t sz, const char *name, char *err,
    size_t errlen)
{
	size_t	 n = strnlen(s, sz);

	if (n == sz) {
		seterr(err, errlen, "%s: not NUL-terminated", name);
		return -1;
	}
	if (memchr(s, '\r', n) || memchr(s, '\n', n)) {
		seterr(err, errlen, "%s: contains CR or LF", name);
		return -1;
	}
	return 0;
}

/* Check one single record before anything is written. */
static int
check_field(const struct envelope *e, const struct field *f, char *err,
    size_t errlen)
{
	const char	*p = (const char *)e + f->off;

	switch (f->type) {
	case F_ID:
		if (check_text(p, f->size, f->name, err, errlen) == -1)
			return -1;
		if (!queue_id_valid(p)) {
			seterr(err, errlen, "id: not a valid queue id");
			return -1;
		}
		return 0;
	case F_TIME:
		if (e->created < 0) {
			seterr(err, errlen, "%s: negative", f->name);
			return -1;
		}
		return 0;
	case F_FROM:
		if (check_text(p, f->size, f->name, err, errlen) == -1)
			return -1;
		if (strcmp(p, "<>") == 0) {
			seterr(err, errlen, "from: \"<>\" is written for \"\"");
			return -1;
		}
		return 0;
	case F_TEXT:
		if (check_text(p, f->size, f->name, err, errlen) == -1)
			return -1;
		if (f->required && *p == '\0') {
			seterr(err, errlen, "%s: empty", f->name);
			return -1;
		}
		return 0;
	case F_UINT:
	case F_ULL:
		return 0;
	}
	return -1;
}

static int
check_rcpt(const struct env_rcpt *r, size_t i, char *err, size_t errlen)
{
	char	 name[48];

	snprintf(name, sizeof(name), "rcpt %zu addr", i + 1);
	if (check_text(r->addr, sizeof(r->addr), name, err, errlen) == -1)
		return -1;
	if (r->addr[0] == '\0') {
		seterr(err, errlen, "%s: empty", name);
		return -1;
	}
	snprintf(name, sizeof(name), "rcpt %zu orig", i + 1);
	if (check_text(r->orig, sizeof(r->orig), name, err, errlen) == -1)
		return -1;
	snprintf(name, sizeof(name), "rcpt %zu error", i + 1);
	if (check_text(r->error, sizeof(r->error), name, err, errlen) == -1)
		return -1;
	snprintf(name, sizeof(name), "rcpt %zu ext", i + 1);
	if (check_text(r->ext, sizeof(r->ext), name, err, errlen) == -1 ||
	    strchr(r->ext, ' ') != NULL) {
		seterr(err, errlen, "rcpt %zu: bad extension", i + 1);
		return -1;
	}
	if ((unsigned)r->via >= NVIAS || ((r->via == VIA_PIPE ||
	    r->via == VIA_FILE) != (r->target != NULL && r->target[0])) ||
	    (r->target && (strlen(r->target) > ENV_TARGET_MAX ||
	    strpbrk(r->target, "\r\n") != NULL))) {
		seterr(err, errlen, "rcpt %zu: bad via or target", i + 1);
		return -1;
	}
	if ((unsigned)r->state >= NSTATES || r->next_try < 0) {
		seterr(err, errlen, "rcpt %zu: bad state or next try", i + 1);
		return -1;
	}
	return 0;
}

/* hdrs must be non-empty lines, each ending in LF, without CR or NUL. */
static int
check_hdrs(const struct buf *h, char *err, size_t errlen)
{
	const char	*p, *nl, *end;

	if (h->err) {
		seterr(err, errlen, "hdr: buffer overflowed");
		return -1;
	}
	if (h->len == 0)
		return 0;
	if (memchr(h->data, '\r', h->len) || memchr(h->data, '\0', h->len)) {
		seterr(err, errlen, "hdr: contains CR or NUL");
		return -1;
	}
	end = h->data + h->len;
	if (end[-1] != '\n') {
		seterr(err, errlen, "hdr: last line without LF");
		return -1;
	}
	for (p = h->data; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == p) {
			seterr(err, errlen, "hdr: empty line");
			return -1;
		}
	}
	return 0;
}

static int
check_all(const struct envelope *e, char *err, size_t errlen)
{
	size_t	 i;

	for (i = 0; i < NFIELDS; i++)
		if (check_field(e, &fields[i], err, errlen) == -1)
			return -1;
	if (e->nrcpts > ENV_RCPT_MAX || (e->nrcpts > 0 && e->rcpts == NULL)) {
		seterr(err, errlen, "rcpt: too many recipients or no array");
		return -1;
	}
	for (i = 0; i < e->nrcpts; i++)
		if (check_rcpt(&e->rcpts[i], i, err, errlen) == -1)
			return -1;
	return check_hdrs(&e->hdrs, err, errlen);
}

static void
emit_field(const struct envelope *e, const struct field *f, struct buf *out)
{
	const char	*p = (const char *)e + f->off;

	switch (f->type) {
	case F_ID:
		buf_addf(out, "%s %s\n", f->name, p);
		break;
	case F_TIME:
		buf_addf(out, "%s %lld\n", f->name, (long long)e->created);
		break;
	case F_FROM:
		buf_addf(out, "%s %s\n", f->name, *p ? p : "<>");
		break;
	case F_TEXT:
		if (*p != '\0')
			buf_addf(out, "%s %s\n", f->name, p);
		break;
	case F_UINT:
		buf_addf(out, "%s %u\n", f->name, *(const unsigned *)(const void *)p);
		break;
	case F_ULL:
		buf_addf(out, "%s %llu\n", f->name,
		    *(const unsigned long long *)(const void *)p);
		break;
	}
}

static void
emit_rcpt(const struct env_rcpt *r, struct buf *out)
{
	buf_addf(out, "rcpt %s %u %lld %s\n", state_words[r->state],
	    r->attempts, (long long)r->next_try, r->addr);
	if (r->orig[0] != '\0' && strcmp(r->orig, r->addr) != 0)
		buf_addf(out, "rcpt-orig %s\n", r->orig);
	if (r->via != VIA_NONE)
		buf_addf(out, "rcpt-via %s %u%s%s\n", via_words[r->via],
		    r->owner, r->ext[0] ? " " : "", r->ext);
	if (r->target != NULL)
		buf_addf(out, "rcpt-target %s\n", r->target);
	if (r->error[0] != '\0')
		buf_addf(out, "rcpt-error %s\n", r->error);
}

int
envelope_write(const struct envelope *e, struct buf *out, char *err,
    size_t errlen)
{
	const char	*p, *nl, *end;
	size_t		 i, oldlen = out->len;

	if (out->err) {
		seterr(err, errlen, "output buffer already failed");
		return -1;
	}
	if (check_all(e, err, errlen) == -1)
		return -1;
	buf_addf(out, "%s %d\n", ENV_MAGIC, ENVELOPE_VERSION);
	for (i = 0; i < NFIELDS; i++)
		emit_field(e, &fields[i], out);
	for (i = 0; i < e->nrcpts; i++)
		emit_rcpt(&e->rcpts[i], out);
	end = e->hdrs.data + e->hdrs.len;
	for (p = e->hdrs.data; p != NULL && p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		buf_adds(out, "hdr ");
		buf_add(out, p, (size_t)(nl - p) + 1);
	}
	buf_adds(out, "end\n");
	if (out->err) {
		seterr(err, errlen, "%s", out->err == BUF_ENOMEM ?
		    "out of memory" : "envelope too big for the buffer");
		out->len = oldlen;
		if (out->data)
			out->data[oldlen] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Parser.
 */

/* Canonical decimal s[0..n) <= max: digits only, no sign, no leading zero. */
static int
parse_num(const char *s, size_t n, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long	 v = 0;
	size_t			 i;

	if (n == 0 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (unsigned)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Put a record name from the file into an error message, made printable. */
static const char *
showname(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t	 i, max = dstlen - 4;	/* room for "..." and NUL */

	for (i = 0; i < n && i < max; i++)
		dst[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > max) {
		memcpy(dst + i, "...", 3);
		i += 3;
	}
	dst[i] = '\0';
	return dst;
}

static int
perr(struct pstate *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a parse error at the current line; always returns -1. */
static int
perr(struct pstate *ps, const char *fmt, ...)
{
	char	 msg[256];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	seterr(ps->err, ps->errlen, "line %zu: %s", ps->lineno, msg);
	return -1;
}

/* A single record: order, duplicates, then the value by type. */
static int
parse_field(struct pstate *ps, int idx, const char *v, size_t n)
{
	const struct field	*f = &fields[idx];
	char			*p = (char *)ps->e + f->off;
	unsigned long long	 num;

	if (ps->seen[idx])
		return perr(ps, "duplicate record \"%s\"", f->name);
	if (ps->phase != PH_HEAD || idx <= ps->lastfield)
		return perr(ps, "record \"%s\" out of order", f->name);
	ps->seen[idx] = 1;
	ps->lastfield = idx;
	switch (f->type) {
	case F_ID:
		if (n != QUEUE_ID_LEN || copy_field(p, f->size, v, n) == -1 ||
		    !queue_id_valid(p))
			return perr(ps, "bad queue id");
		return 0;
	case F_FROM:
		if (n == 2 && memcmp(v, "<>", 2) == 0)
			n = 0;
		else if (n == 0)
			return perr(ps, "empty from (the null path is <>)");
		break;
	case F_TEXT:
		if (n == 0 && f->required)
			return perr(ps, "empty \"%s\"", f->name);
		break;
	case F_TIME:
		if (parse_num(v, n, ENV_TIME_MAX, &num) == -1)
			return perr(ps, "bad number in \"%s\"", f->name);
		ps->e->created = (time_t)num;
		return 0;
	case F_UINT:
		if (parse_num(v, n, UINT_MAX, &num) == -1)
			return perr(ps, "bad number in \"%s\"", f->name);
		*(unsigned *)(void *)p = (unsigned)num;
		return 0;
	case F_ULL:
		if (parse_num(v, n, ULLONG_MAX, &num) == -1)
			return perr(ps, "bad number in \"%s\"", f->name);
		*(unsigned long long *)(void *)p = num;
		return 0;
	}
	if (copy_field(p, f->size, v, n) == -1)
		return perr(ps, "\"%s\" too long", f->name);
	return 0;
}

/* Split off the next SP-terminated token of v[0..*n). */
static int
token(const char **v, size_t *n, const char **tok, size_t *toklen)
{
	const char	*sp = memchr(*v, ' ', *n);

	if (sp == NULL)
		return -1;
	*tok = *v;
	*toklen = (size_t)(sp - *v);
	*n -= *toklen + 1;
	*v = sp + 1;
	return 0;
}

/* "rcpt STATE ATTEMPTS NEXT_TRY ADDR"; ADDR is the rest of the line. */
static int
parse_rcpt(struct pstate *ps, const char *v, size_t n)
{
	struct env_rcpt		*r;
	const char		*st, *at, *nt;
	size_t			 stl, atl, ntl, i;
	unsigned long long	 attempts, next;

	if (ps->phase != PH_HEAD && ps->phase != PH_RCPT)
		return perr(ps, "record \"rcpt\" out of order");
	if (token(&v, &n, &st, &stl) == -1 || token(&v, &n, &at, &atl) == -1 ||
	    token(&v, &n, &nt, &ntl) == -1)
		return perr(ps, "rcpt: too few fields");
	for (i = 0; i < NSTATES; i++)
		if (strlen(state_words[i]) == stl &&
		    memcmp(state_words[i], st, stl) == 0)
			break;
	if (i == NSTATES)
		return perr(ps, "rcpt: unknown state");
	if (parse_num(at, atl, UINT_MAX, &attempts) == -1 ||
	    parse_num(nt, ntl, ENV_TIME_MAX, &next) == -1)
		return perr(ps, "rcpt: bad number");
	if (n == 0 || n > ADDR_STR_MAX)
		return perr(ps, "rcpt: empty or too long address");
	if (ps->e->nrcpts >= ENV_RCPT_MAX)
		return perr(ps, "too many recipients");
	if (rcpt_grow(ps->e) == -1)
		return perr(ps, "out of memory");
	r = &ps->e->rcpts[ps->e->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->state = (enum rcpt_state)i;
	r->attempts = (unsigned)attempts;
	r->next_try = (time_t)next;
	copy_field(r->addr, sizeof(r->addr), v, n);
	copy_field(r->orig, sizeof(r->orig), v, n);
	ps->phase = PH_RCPT;
	ps->rcptsub = 0;
	return 0;
}

/* "rcpt-via KIND OWNER [EXT]" */
static int
parse_rcpt_via(struct pstate *ps, struct env_rcpt *r, const char *v,
    size_t n)
{
	const char		*k, *o, *e = "";
	size_t			 kl, ol, el = 0, i;
	unsigned long long	 owner;

	if (token(&v, &n, &k, &kl) == -1)
		return perr(ps, "rcpt-via: too few fields");
	if (token(&v, &n, &o, &ol) == -1) {
		o = v;			/* no extension */
		ol = n;
	} else {
		e = v;
		el = n;
		if (el == 0 || memchr(e, ' ', el) != NULL)
			return perr(ps, "rcpt-via: bad extension");
	}
	for (i = 1; i < NVIAS; i++)
		if (strlen(via_words[i]) == kl && memcmp(via_words[i], k, kl) ==
		    0)
			break;
	if (i == NVIAS)
		return perr(ps, "rcpt-via: unknown kind");
	if (parse_num(o, ol, UINT_MAX, &owner) == -1)
		return perr(ps, "rcpt-via: bad owner");
	if (copy_field(r->ext, sizeof(r->ext), e, el) == -1)
		return perr(ps, "rcpt-via: extension too long");
	r->via = (enum rcpt_via)i;
	r->owner = (unsigned)owner;
	return 0;
}

/* rcpt-orig (1), rcpt-via (2), rcpt-target (3) and rcpt-error (4) amend
   the last rcpt, in that order. */
static int
parse_rcpt_extra(struct pstate *ps, int sub, const char *v, size_t n)
{
	static const char *const names[] = { "", "rcpt-orig", "rcpt-via",
	    "rcpt-target", "rcpt-error" };
	struct env_rcpt	*r;
	const char	*name = names[sub];

	if (ps->phase != PH_RCPT || ps->rcptsub >= sub)
		return perr(ps, "record \"%s\" out of order", name);
	ps->rcptsub = sub;
	r = &ps->e->rcpts[ps->e->nrcpts - 1];
	switch (sub) {
	case 1:
		if (n == 0 || copy_field(r->orig, sizeof(r->orig), v, n) == -1)
			return perr(ps, "rcpt-orig: empty or too long");
		return 0;
	case 2:
		return parse_rcpt_via(ps, r, v, n);
	case 3:
		if (n == 0 || n > ENV_TARGET_MAX || memchr(v, '\0', n))
			return perr(ps, "rcpt-target: empty or too long");
		if ((r->target = strndup(v, n)) == NULL)
			return perr(ps, "out of memory");
		if (r->via != VIA_PIPE && r->via != VIA_FILE)
			return perr(ps, "rcpt-target without a pipe or file "
			    "rcpt-via");
		return 0;
	default:
		if (copy_field(r->error, sizeof(r->error), v, n) == -1)
			return perr(ps, "rcpt-error: too long");
		return 0;
	}
}

/* The first line: magic and version. */
static int
parse_magic(struct pstate *ps, const char *line, size_t n)
{
	size_t	 ml = sizeof(ENV_MAGIC) - 1;

	if (n < ml + 1 || memcmp(line, ENV_MAGIC " ", ml + 1) != 0)
		return perr(ps, "not an envelope file");
	if (n != ml + 2 || line[ml + 1] != '0' + ENVELOPE_VERSION)
		return perr(ps, "unsupported envelope version");
	return 0;
}

/* One line (without its LF), after the first. */
static int
parse_record(struct pstate *ps, const char *line, size_t n)
{
	const char	*sp, *v;
	char		 show[40];
	size_t		 nl, vl, i;

	if ((sp = memchr(line, ' ', n)) == NULL) {
		if (n == 3 && memcmp(line, "end", 3) == 0) {
			ps->phase = PH_END;
			return 0;
		}
		return perr(ps, "record \"%s\" without a value",
		    showname(show, sizeof(show), line, n));
	}
	nl = (size_t)(sp - line);
	v = sp + 1;
	vl = n - nl - 1;
	for (i = 0; i < NFIELDS; i++)
		if (strlen(fields[i].name) == nl &&
		    memcmp(fields[i].name, line, nl) == 0)
			return parse_field(ps, (int)i, v, vl);
	if (nl == 4 && memcmp(line, "rcpt", 4) == 0)
		return parse_rcpt(ps, v, vl);
	if (nl == 9 && memcmp(line, "rcpt-orig", 9) == 0)
		return parse_rcpt_extra(ps, 1, v, vl);
	if (nl == 8 && memcmp(line, "rcpt-via", 8) == 0)
		return parse_rcpt_extra(ps, 2, v, vl);
	if (nl == 11 && memcmp(line, "rcpt-target", 11) == 0)
		return parse_rcpt_extra(ps, 3, v, vl);
	if (nl == 10 && memcmp(line, "rcpt-error", 10) == 0)
		return parse_rcpt_extra(ps, 4, v, vl);
	if (nl == 3 && memcmp(line, "hdr", 3) == 0) {
		ps->phase = PH_HDR;
		if (envelope_add_hdr(ps->e, v, vl) == -1)
			return perr(ps, "hdr: empty, or headers too big");
		return 0;
	}
	return perr(ps, "unknown record \"%s\"",
	    showname(show, sizeof(show), line, nl));
}

/* After "end": every required record must have been seen. */
static int
parse_finish(struct pstate *ps)
{
	size_t	 i;

	for (i = 0; i < NFIELDS; i++)
		if (fields[i].required && !ps->seen[i])
			return perr(ps, "missing record \"%s\"",
			    fields[i].name);
	return 0;
}

static int
parse_lines(struct pstate *ps, const char *data, size_t len)
{
	const char	*line, *nl;
	size_t		 pos = 0, n;

	while (pos < len) {
		ps->lineno++;
		if (ps->phase == PH_END)
			return perr(ps, "data after the end record");
		line = data + pos;
		if ((nl = memchr(line, '\n', len - pos)) == NULL)
			return perr(ps, "no newline (truncated file)");
		n = (size_t)(nl - line);
		pos += n + 1;
		if (memchr(line, '\0', n) || memchr(line, '\r', n))
			return perr(ps, "NUL or CR in a record");
		if (ps->lineno == 1) {
			if (parse_magic(ps, line, n) == -1)
				return -1;
		} else if (parse_record(ps, line, n) == -1)
			return -1;
	}
	if (ps->lineno == 0) {
		ps->lineno = 1;
		return perr(ps, "empty file");
	}
	if (ps->phase != PH_END)
		return perr(ps, "no end record (truncated file)");
	return parse_finish(ps);
}

int
envelope_parse(struct envelope *e, const char *data, size_t len, char *err,
    size_t errlen)
{
	struct pstate	 ps;

	envelope_init(e);
	memset(&ps, 0, sizeof(ps));
	ps.e = e;
	ps.phase = PH_HEAD;
	ps.lastfield = -1;
	ps.err = err;
	ps.errlen = errlen;
	if (parse_lines(&ps, data, len) == -1) {
		envelope_free(e);
		return -1;
	}
	return 0;
}

/* Field by field, so that padding and bytes after a NUL do not count. */
int
envelope_equal(const struct envelope *a, const struct envelope *b)
{
	const struct env_rcpt	*x, *y;
	size_t			 i;

	if (strcmp(a->id, b->id) || a->created != b->created ||
	    strcmp(a->from, b->from) || strcmp(a->helo, b->helo) ||
	    strcmp(a->client_addr, b->client_addr) ||
	    strcmp(a->client_name, b->client_name) ||
	    strcmp(a->proto, b->proto) || strcmp(a->tls, b->tls) ||
	    strcmp(a->auth, b->auth) || a->flags != b->flags ||
	    a->size != b->size || a->hops != b->hops ||
	    a->nrcpts != b->nrcpts || a->hdrs.len != b->hdrs.len ||
	    (a->hdrs.len && memcmp(a->hdrs.data, b->hdrs.data, a->hdrs.len)))
		return 0;
	for (i = 0; i < a->nrcpts; i++) {
		x = &a->rcpts[i];
		y = &b->rcpts[i];
		if (strcmp(x->addr, y->addr) || strcmp(x->orig, y->orig) ||
		    x->state != y->state || x->attempts != y->attempts ||
		    x->next_try != y->next_try || strcmp(x->error, y->error) ||
		    x->via != y->via || x->owner != y->owner ||
		    strcmp(x->ext, y->ext) || (x->target == NULL) !=
		    (y->target == NULL) || (x->target &&
		    strcmp(x->target, y->target)))
			return 0;
	}
	return 1;
}

/*
 * Queue ids: 13 hex digits of microseconds since the epoch (good until
 * 2112), then 7 hex digits holding (pid & 0x3fffff) << 6 | seq. One process
 * hands out a strictly increasing value v = usec << 6 | seq: at most 64 ids
 * per microsecond, after which it borrows from the next microsecond, and it
 * never goes back when the clock does. Ids from different processes differ
 * in the pid bits, so ids are unique across processes as long as pids fit
 * 22 bits (Linux PID_MAX_LIMIT) and one spool is not shared between pid
 * namespaces; they sort by time, then pid, then sequence.
 */
void
queue_id_new(char *dst, size_t dstlen)
{
	static _Atomic uint64_t	 last;
	static const char	 hex[] = "0123456789ABCDEF";
	struct timespec		 ts;
	uint64_t		 now, old, v, tail;
	int			 i;

	if (dstlen < QUEUE_ID_LEN + 1) {
		if (dstlen > 0)
			dst[0] = '\0';
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000) << 6;
	old = atomic_load(&last);
	do {
		v = now > old ? now : old + 1;
	} while (!atomic_compare_exchange_weak(&last, &old, v));
	tail = ((uint64_t)getpid() & 0x3fffff) << 6 | (v & 0x3f);
	v >>= 6;
	for (i = 12; i >= 0; i--, v >>= 4)
		dst[i] = hex[v & 0xf];
	for (i = 19; i >= 13; i--, tail >>= 4)
		dst[i] = hex[tail & 0xf];
	dst[QUEUE_ID_LEN] = '\0';
}

int
queue_id_valid(const char *s)
{
	size_t	 i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return s[QUEUE_ID_LEN] == '\0';
}

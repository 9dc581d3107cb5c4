/*
 * authres - reading the authserv-id of an Authentication-Results field
 * and writing our own field (authres.h), from RFC 8601 section 2.2's
 * grammar. Both sides treat message text as hostile: the reader gives up
 * (not ours) on anything it does not recognise, the writer quotes or
 * drops whatever could change the structure of the field.
 */
#include <string.h>
#include <strings.h>

#include "authres.h"

#define AR_COLS		78	/* no line longer than this */
#define AR_TAB		8	/* a folded line starts with one TAB */
#define AR_ID_MAX	255
#define AUTHRES_VALUE_MAX	256	/* octets of a value written */
#define AUTHRES_WORD_MAX	64	/* a comment is folded inside longer
					   words */

#define AR_SPACE(c)	((c) == ' ' || (c) == '\t' || (c) == '\r' || \
			    (c) == '\n')

/* ---- reading ---- */

/* RFC 2045 token octets: CHAR but SPACE, CTLs and tspecials */
static int
is_tokenc(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* skip CFWS (nested comments, quoted-pairs); -1 inside an open comment */
static int
skip_cfws(const char *v, size_t len, size_t *i)
{
	size_t	 depth = 0;

	while (*i < len) {
		char c = v[*i];

		if (depth == 0 && AR_SPACE(c))
			(*i)++;
		else if (depth == 0 && c != '(')
			return 0;
		else if (c == '\\') {
			if (*i + 1 >= len)
				return -1;
			*i += 2;
		} else {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			(*i)++;
		}
	}
	return depth == 0 ? 0 : -1;
}

/* the authserv-id at v[*i] (a token or a quoted string) into id */
static int
read_id(const char *v, size_t len, size_t *i, char *id, size_t idlen)
{
	size_t	 n = 0;

	if (*i >= len)
		return -1;
	if (v[*i] != '"') {
		while (*i < len && is_tokenc((unsigned char)v[*i])) {
			if (n + 1 >= idlen)
				return -1;
			id[n++] = v[(*i)++];
		}
		id[n] = '\0';
		return n > 0 ? 0 : -1;
	}
	for ((*i)++; *i < len && v[*i] != '"'; (*i)++) {
		if (v[*i] == '\\' && ++(*i) == len)
			return -1;
		if (v[*i] == '\r' || v[*i] == '\n')
			continue;	/* folding */
		if (((unsigned char)v[*i] < ' ' && v[*i] != '\t') ||
		    (unsigned char)v[*i] == 0x7f)
			return -1;	/* not qtext or a quoted-pair */
		if (n + 1 >= idlen)
			return -1;
		id[n++] = v[*i];
	}
	if (*i == len)
		return -1;
	(*i)++;
	id[n] = '\0';
	return 0;
}

/* the same host name: no case, one trailing dot on either side ignored */
static int
id_equal(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);

	if (strcasecmp(a, b) == 0)
		return 1;
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

int
authres_is_ours(const char *value, size_t len, const char *authserv_id)
{
	char	 id[AR_ID_MAX + 1];
	size_t	 i = 0;

	if (value == NULL || authserv_id == NULL || *authserv_id == '\0')
		return 0;
	if (skip_cfws(value, len, &i) == -1 ||
	    read_id(value, len, &i, id, sizeof(id)) == -1 ||
	    skip_cfws(value, len, &i) == -1)
		return 0;
	if (i < len && value[i] >= '0' && value[i] <= '9') {
		while (i < len && value[i] >= '0' && value[i] <= '9')
			i++;
		if (skip_cfws(value, len, &i) == -1)
			return 0;
	}
	if (i == len || value[i] != ';')
		return 0;
	return id_equal(id, authserv_id);
}

/* ---- writing ---- */

struct arw {
	struct buf	*out;
	struct buf	 item;	/* the item being built */
	struct buf	 text;	/* a cleaned comment */
	size_t		 col;
	int		 err;	/* an item or comment overflowed */
};

static int
keyword_ok(const char *s, int dots)
{
	size_t	 n = 0;

	if (s == NULL || *s == '\0' || *s == '.')
		return 0;
	for (; *s != '\0'; s++, n++) {
		unsigned char c = (unsigned char)*s;
		if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    (dots && c == '.')))
			return 0;
	}
	return s[-1] != '.';
}

/* a dot-atom of letters, digits, '-' (and "_+" in a local part) */
static int
dotatom_ok(const char *s, size_t len, int local)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && s[i + 1] == '.')
			return 0;
		if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    (local && (c == '_' || c == '+'))))
			return 0;
	}
	return 1;
}

/* letters, digits and -._+ (the octets written bare) */
static int
bare_char(unsigned char c)
{
	return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '+';
}

/* 1 if v can be written bare: a token of bare_char octets, or (with at)
   [dot-atom] "@" dot-atom, RFC 8601's [ [ local-part ] "@" ] domain-name */
static int
bare_ok(const char *v, int at)
{
	const char	*a = strchr(v, '@');

	if (a == NULL) {
		for (const char *p = v; *p != '\0'; p++)
			if (!bare_char((unsigned char)*p))
				return 0;
		return *v != '\0';
	}
	if (!at || strchr(a + 1, '@') != NULL)
		return 0;
	return (a == v || dotatom_ok(v, (size_t)(a - v), 1)) &&
	    dotatom_ok(a + 1, strlen(a + 1), 0);
}

/*
 * v as a token or a quoted string into the item. XXX: a value longer
 * than AUTHRES_VALUE_MAX is cut there and ends in "..." inside quotes:
 * with comment words cut at AUTHRES_WORD_MAX, no line of the field can
 * pass RFC 5322's 998 octets, whatever the message holds.
 */
static void
put_value(struct buf *b, const char *v, int at)
{
	size_t	 len = strnlen(v, AUTHRES_VALUE_MAX + 1);

	if (len <= AUTHRES_VALUE_MAX && bare_ok(v, at)) {
		buf_adds(b, v);
		return;
	}
	buf_addc(b, '"');
	for (size_t i = 0; i < len && i < AUTHRES_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < ' ' || c >= 0x7f)
			continue;
		if (c == '\\' || c == '"')
			buf_addc(b, '\\');
		buf_addc(b, c);
	}
	if (len > AUTHRES_VALUE_MAX)
		buf_adds(b, "...");
	buf_addc(b, '"');
}

/* the item after a space, or on a new line when it would not fit
   (one column is kept for a ';' after it) */
static void
emit(struct arw *w, int newline)
{
	if (newline || (w->col > AR_TAB &&
	    w->col + 1 + w->item.len > AR_COLS - 1)) {
		buf_add(w->out, "\n\t", 2);
		w->col = AR_TAB;
	} else {
		buf_addc(w->out, ' ');
		w->col++;
	}
	if (w->item.err)
		w->err = 1;
	buf_add(w->out, w->item.data, w->item.len);
	w->col += w->item.len;
	buf_reset(&w->item);
}

/* the comment, one item per word (split at spaces, TAB, CR, LF, and
   every AUTHRES_WORD_MAX octets of a longer one), without
   ( ) \\, other controls and non-ASCII */
static void
put_comment(struct arw *w, const char *c)
{
	struct buf	*t = &w->text;
	size_t		 i, j;

	buf_reset(t);
	for (; *c != '\0'; c++) {
		unsigned char ch = (unsigned char)*c;
		if (AR_SPACE(ch)) {
			if (t->len > 0 && t->data[t->len - 1] != ' ')
				buf_addc(t, ' ');
		} else if (ch > ' ' && ch < 0x7f && ch != '(' && ch != ')' &&
		    ch != '\\')
			buf_addc(t, ch);
	}
	if (t->err)
		w->err = 1;
	if (t->len > 0 && t->data[t->len - 1] == ' ')
		t->len--;
	for (i = 0; i < t->len; i = j) {
		for (j = i; j < t->len && t->data[j] != ' ' &&
		    j - i < AUTHRES_WORD_MAX; j++)
			;
		if (i == 0)
			buf_addc(&w->item, '(');
		buf_add(&w->item, t->data + i, j - i);
		if (j == t->len)
			buf_addc(&w->item, ')');
		emit(w, 0);
		if (j < t->len && t->data[j] == ' ')
			j++;
	}
}

static int
entry_ok(const struct authres_entry *e)
{
	if (!keyword_ok(e->method, 0) || !keyword_ok(e->result, 0) ||
	    e->nprops > AUTHRES_PROPS_MAX)
		return 0;
	for (size_t i = 0; i < e->nprops; i++)
		if (!keyword_ok(e->props[i].name, 1) ||
		    strchr(e->props[i].name, '.') == NULL ||
		    e->props[i].value == NULL)
			return 0;
	return 1;
}

/* one resinfo: method=result (comment) ptype.prop=value ... */
static void
put_entry(struct arw *w, const struct authres_entry *e, int last)
{
	buf_addf(&w->item, "%s=%s", e->method, e->result);
	if (e->comment == NULL && e->nprops == 0 && !last)
		buf_addc(&w->item, ';');
	emit(w, 1);
	if (e->comment != NULL)
		put_comment(w, e->comment);
	for (size_t i = 0; i < e->nprops; i++) {
		buf_addf(&w->item, "%s=", e->props[i].name);
		put_value(&w->item, e->props[i].value, 1);
		emit(w, 0);
	}
	if (!last && (e->comment != NULL || e->nprops > 0)) {
		buf_addc(w->out, ';');
		w->col++;
	}
}

int
authres_format(struct buf *out, const char *authserv_id,
    const struct authres_entry *e, size_t n)
{
	struct arw	 w;
	size_t		 start = out->len;
	int		 rc = 0;

	if (authserv_id == NULL || *authserv_id == '\0')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!entry_ok(&e[i]))
			return -1;
	memset(&w, 0, sizeof(w));
	w.out = out;
	buf_init(&w.item, out->max);
	buf_init(&w.text, out->max);
	buf_adds(out, "Authentication-Results: ");
	put_value(out, authserv_id, 0);
	buf_addc(out, ';');
	w.col = out->len - start;
	if (n == 0) {
		buf_adds(&w.item, "none");
		emit(&w, 0);
	}
	for (size_t i = 0; i < n; i++)
		put_entry(&w, &e[i], i + 1 == n);
	buf_addc(out, '\n');
	if (w.err || out->err)
		rc = -1;
	buf_free(&w.item);
	buf_free(&w.text);
	return rc;
}

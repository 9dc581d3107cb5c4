/*
 * aliases - load the aliases file into a hash table (aliases.h).
 *
 * The loader reads a whole file (under one budget for the file and its
 * includes), cuts it into physical lines (length, NUL, quotes and comments
 * checked there, so errors carry the exact line), joins continuation lines
 * into a logical line with a map from offsets back to line numbers, and
 * splits the part after "name:" at commas outside quotes. Targets of all
 * entries go into one array (an entry's targets are contiguous, includes
 * being read in place); the pointers are set once loading is done. Strings
 * live in an arena freed in one go.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"

#define ARENA_CHUNK	65536
#define KEY_MAX		(ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)
#define SHOW_MAX	80	/* bytes of a bad target quoted in a message */

struct chunk {
	struct chunk	*next;
	size_t		 used, size;
	char		 data[];
};

struct stamp {
	char		*path;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
};

struct aliases {
	char			*name;
	struct alias_entry	*ent;
	size_t			 nent, capent;
	size_t			*first;		/* first target of each entry */
	size_t			 capfirst;
	struct alias_target	*tgt;
	size_t			 ntgt, captgt;
	size_t			*slots;		/* entry index + 1; 0: empty */
	size_t			 nslots;	/* a power of 2 */
	size_t			 wildmax;	/* longest wildcard prefix */
	struct chunk		*arena;
	struct stamp		*stamps;	/* [0]: the file, if main_stamped */
	size_t			 nstamps, capstamps;
	int			 main_stamped;
};

/* a physical line's place in the logical line being assembled */
struct seg {
	size_t		 off;
	unsigned	 line;
};

struct file {
	const char	*name;
	const char	*data;
	size_t		 len, pos;
	unsigned	 line;
	uid_t		 owner;
	int		 depth;		/* 0: the aliases file */
};

struct loader {
	struct aliases	*a;
	aliases_reader	 reader;
	void		*arg;
	size_t		 total;		/* bytes of all files read */
	char		*err;
	size_t		 errlen;
	char		*text;		/* the logical line */
	size_t		 len, cap;
	struct seg	*map;
	size_t		 nmap, capmap;
};

static int	parse_lines(struct loader *, struct file *);

static int	fail(struct loader *, const char *, unsigned, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

/* "file:line: message" (line 0: "file: message"); always -1 */
static int
fail(struct loader *L, const char *file, unsigned line, const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(L->err, L->errlen, "%s:%u: %s", file, line, msg);
	else
		snprintf(L->err, L->errlen, "%s: %s", file, msg);
	return -1;
}

/* Grow an array to hold one more element; 0 or -1 (out of memory). */
static int
grow(void **p, size_t *cap, size_t n, size_t elem)
{
	size_t	 ncap;
	void	*np;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap <= n) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -1;
		ncap *= 2;
	}
	if ((np = realloc(*p, ncap * elem)) == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

static char *
arena_dup(struct aliases *a, const char *s, size_t n)
{
	struct chunk	*c = a->arena;
	char		*p;

	if (n == SIZE_MAX)
		return NULL;
	if (c == NULL || c->size - c->used < n + 1) {
		size_t sz = n + 1 > ARENA_CHUNK ? n + 1 : ARENA_CHUNK;
		if (sz > SIZE_MAX - sizeof(*c) ||
		    (c = malloc(sizeof(*c) + sz)) == NULL)
			return NULL;
		c->size = sz;
		c->used = 0;
		c->next = a->arena;
		a->arena = c;
	}
	p = c->data + c->used;
	memcpy(p, s, n);
	p[n] = '\0';
	c->used += n + 1;
	return p;
}

/* FNV-1a */
static uint64_t
hash(const char *s, size_t n)
{
	uint64_t	 h = 14695981039346656037ULL;

	while (n--) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* the slot of key: its entry's, or the empty one where it would go */
static size_t
slot_of(const struct aliases *a, const char *key, size_t n)
{
	size_t	 mask = a->nslots - 1, i = (size_t)hash(key, n) & mask, e;

	while ((e = a->slots[i]) != 0) {
		const char *k = a->ent[e - 1].key;
		if (strncmp(k, key, n) == 0 && k[n] == '\0')
			break;
		i = (i + 1) & mask;
	}
	return i;
}

static int
rehash(struct aliases *a)
{
	size_t	 n = a->nslots ? a->nslots * 2 : 1024, i, *old = a->slots;
	size_t	 oldn = a->nslots;

	if (n > SIZE_MAX / sizeof(*a->slots) ||
	    (a->slots = calloc(n, sizeof(*a->slots))) == NULL) {
		a->slots = old;
		return -1;
	}
	a->nslots = n;
	for (i = 0; i < oldn; i++)
		if (old[i]) {
			const char *k = a->ent[old[i] - 1].key;
			a->slots[slot_of(a, k, strlen(k))] = old[i];
		}
	free(old);
	return 0;
}

static int
is_ws(int c)
{
	return c == ' ' || c == '\t';
}

static void
trim(const char **s, size_t *n)
{
	while (*n && is_ws((*s)[0])) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_ws((*s)[*n - 1]))
		(*n)--;
}

/* a control character (a tab is allowed where tab_ok) */
static int
has_ctl(const char *s, size_t n, int tab_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && !(c == '\t' && tab_ok)) || c == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * The next physical line of f, without its line end and comment:
 * 1 with *s, *n set, 0 at the end, -1 on an error.
 */
static int
next_line(struct loader *L, struct file *f, const char **s, size_t *n)
{
	const char	*p, *nl;
	size_t		 len, i;
	int		 q = 0;

	if (f->pos >= f->len)
		return 0;
	p = f->data + f->pos;
	nl = memchr(p, '\n', f->len - f->pos);
	len = nl ? (size_t)(nl - p) : f->len - f->pos;
	f->pos += len + (nl != NULL);
	f->line++;
	if (len > ALIASES_LINE_MAX)
		return fail(L, f->name, f->line, "line longer than %d bytes",
		    ALIASES_LINE_MAX);
	if (memchr(p, '\0', len) != NULL)
		return fail(L, f->name, f->line, "NUL byte");
	if (len && p[len - 1] == '\r')
		len--;
	for (i = 0; i < len; i++) {
		if (q) {
			if (p[i] == '\\' && i + 1 < len)
				i++;
			else if (p[i] == '"')
				q = 0;
		} else if (p[i] == '"')
			q = 1;
		else if (p[i] == '#' && (i == 0 || is_ws(p[i - 1]))) {
			len = i;
			break;
		}
	}
	if (q)
		return fail(L, f->name, f->line, "unterminated quote");
	*s = p;
	*n = len;
	return 1;
}

/* Read a regular file of at most max bytes: 0, -1 (errno), -2 (not a
   regular file) or -3 (too large). */
static int
read_file(const char *path, size_t max, char **data, size_t *len,
    struct stat *st)
{
	char	*buf = NULL, *nb;
	size_t	 cap, n = 0;
	ssize_t	 r;
	int	 fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
	    -1)
		return -1;
	if (fstat(fd, st) == -1)
		goto err;
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -2;
	}
	if (st->st_size < 0 || (uintmax_t)st->st_size > max) {
		close(fd);
		return -3;
	}
	cap = (size_t)st->st_size + 1;
	if ((buf = malloc(cap)) == NULL)
		goto err;
	for (;;) {
		if (n == cap) {
			if (cap > max || (nb = realloc(buf, cap * 2)) == NULL) {
				if (cap > max) {
					free(buf);
					close(fd);
					return -3;
				}
				goto err;
			}
			buf = nb;
			cap *= 2;
		}
		if ((r = read(fd, buf + n, cap - n)) == -1) {
			if (errno == EINTR)
				continue;
			goto err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		return -3;
	}
	*data = buf;
	*len = n;
	return 0;
err:
	e = errno;
	free(buf);
	close(fd);
	errno = e;
	return -1;
}

static int
add_stamp(struct aliases *a, const char *path, const struct stat *st)
{
	struct stamp	*s;

	if (grow((void **)&a->stamps, &a->capstamps, a->nstamps,
	    sizeof(*a->stamps)) == -1)
		return -1;
	s = &a->stamps[a->nstamps];
	if ((s->path = arena_dup(a, path, strlen(path))) == NULL)
		return -1;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
	a->nstamps++;
	return 0;
}

static int
stamp_differs(const struct stamp *s, const struct stat *st)
{
	return s->dev != st->st_dev || s->ino != st->st_ino ||
	    s->size != st->st_size || s->mtime.tv_sec != st->st_mtim.tv_sec ||
	    s->mtime.tv_nsec != st->st_mtim.tv_nsec;
}

static const char *
read_error(int r)
{
	if (r == -2)
		return "not a regular file";
	if (r == -3)
		return "over the limit for alias files (64 MB in all)";
	return strerror(errno);
}

/* :include:path, written at f:line */
static int
include(struct loader *L, struct file *f, const char *path, unsigned line)
{
	struct file	 inc;
	struct stat	 st;
	char		*data = NULL;
	size_t		 len = 0, room = ALIASES_FILES_MAX - L->total;
	uid_t		 owner = 0;
	int		 r;

	if (f->depth >= ALIASES_INCLUDE_DEPTH)
		return fail(L, f->name, line, ":include:%s: nested more than "
		    "%d deep", path, ALIASES_INCLUDE_DEPTH);
	if (L->reader) {
		if ((r = L->reader(L->arg, path, &data, &len, &owner)) == 0 &&
		    len > room) {
			free(data);
			r = -3;
		}
	} else if ((r = read_file(path, room, &data, &len, &st)) == 0) {
		owner = st.st_uid;
		if (add_stamp(L->a, path, &st) == -1) {
			free(data);
			return fail(L, f->name, line, "out of memory");
		}
	}
	if (r != 0)
		return fail(L, f->name, line, ":include:%s: %s", path,
		    read_error(r));
	L->total += len;
	memset(&inc, 0, sizeof(inc));
	inc.name = path;
	inc.data = data ? data : "";
	inc.len = len;
	inc.owner = owner;
	inc.depth = f->depth + 1;
	r = parse_lines(L, &inc);
	free(data);
	return r;
}

static int
add_target(struct loader *L, struct file *f, unsigned line,
    enum alias_kind kind, const char *s, size_t n)
{
	struct aliases		*a = L->a;
	struct alias_target	*t;

	if (a->ntgt - a->first[a->nent - 1] >= ALIASES_TARGETS_MAX)
		return fail(L, f->name, line, "more than %d targets for \"%s\"",
		    ALIASES_TARGETS_MAX, a->ent[a->nent - 1].key);
	if (grow((void **)&a->tgt, &a->captgt, a->ntgt, sizeof(*a->tgt)) == -1)
		return fail(L, f->name, line, "out of memory");
	t = &a->tgt[a->ntgt];
	t->kind = kind;
	t->owner = f->owner;
	if ((t->text = arena_dup(a, s, n)) == NULL)
		return fail(L, f->name, line, "out of memory");
	a->ntgt++;
	return 0;
}

/* An address target: "user", "user@domain" (brackets already gone). */
static int
check_addr(struct loader *L, struct file *f, unsigned line, const char *s,
    size_t n)
{
	char		 buf[ADDR_STR_MAX + 16];
	struct mailaddr	 m;
	enum addr_err	 e;
	int		 q = 0, at = 0;

	for (size_t i = 0; i < n; i++) {
		if (q && s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '"')
			q = !q;
		else if (!q && s[i] == '@')
			at = 1;
	}
	if (s[0] != '"' && (s[0] == '.' || s[0] == '~' ||
	    memchr(s, '/', n) != NULL))
		return fail(L, f->name, line, "relative path \"%.*s\" (a file "
		    "needs an absolute path)", (int)(n > SHOW_MAX ? SHOW_MAX : n),
		    s);
	if (n > ADDR_STR_MAX)
		e = ADDR_ETOOLONG;
	else if (at)
		e = addr_parse(s, n, ADDR_F_UTF8, &m);
	else {
		/* unqualified: the domain is the recipient's, any will do */
		snprintf(buf, sizeof(buf), "%.*s@x.invalid", (int)n, s);
		e = addr_parse(buf, strlen(buf), ADDR_F_UTF8, &m);
	}
	if (e != ADDR_OK)
		return fail(L, f->name, line, "bad address \"%.*s\"%s%s",
		    (int)(n > SHOW_MAX ? SHOW_MAX : n), s,
		    e == ADDR_ESYNTAX ? "" : ": ",
		    e == ADDR_ESYNTAX ? "" : addr_strerror(e));
	return 0;
}

/* A pipe command or a path: bounded, no control characters. */
static int
add_text(struct loader *L, struct file *f, unsigned line,
    enum alias_kind kind, const char *s, size_t n)
{
	const char	*what = kind == ALIAS_PIPE ? "command" : "path";

	if (n > ALIASES_TEXT_MAX)
		return fail(L, f->name, line, "%s longer than %d bytes", what,
		    ALIASES_TEXT_MAX);
	if (has_ctl(s, n, kind == ALIAS_PIPE))
		return fail(L, f->name, line, "control character in %s", what);
	return add_target(L, f, line, kind, s, n);
}

/* "|command", "/path", ":include:/path" or an address, unquoted */
static int
classify(struct loader *L, struct file *f, unsigned line, const char *s,
    size_t n)
{
	char	 path[ALIASES_TEXT_MAX + 1];

	trim(&s, &n);
	if (n == 0)
		return fail(L, f->name, line, "empty target");
	if (s[0] == '|') {
		s++;
		n--;
		trim(&s, &n);
		if (n == 0)
			return fail(L, f->name, line, "empty command");
		return add_text(L, f, line, ALIAS_PIPE, s, n);
	}
	if (n >= 9 && strncasecmp(s, ":include:", 9) == 0) {
		s += 9;
		n -= 9;
		trim(&s, &n);
		if (n == 0 || s[0] != '/')
			return fail(L, f->name, line, ":include: needs an "
			    "absolute path");
		if (n > ALIASES_TEXT_MAX || has_ctl(s, n, 0))
			return fail(L, f->name, line, ":include: path too long "
			    "or with a control character");
		memcpy(path, s, n);
		path[n] = '\0';
		return include(L, f, path, line);
	}
	if (s[0] == '/') {
		if (s[n - 1] == '/')
			return fail(L, f->name, line, "path \"%.*s\" ends in '/' "
			    "(a file, not a directory)",
			    (int)(n > SHOW_MAX ? SHOW_MAX : n), s);
		return add_text(L, f, line, ALIAS_FILE, s, n);
	}
	if (s[0] == '<') {
		if (n < 2 || s[n - 1] != '>')
			return fail(L, f->name, line, "bad address \"%.*s\"",
			    (int)(n > SHOW_MAX ? SHOW_MAX : n), s);
		s++;
		n -= 2;
		trim(&s, &n);
		if (n == 0)
			return fail(L, f->name, line, "empty target");
	}
	if (check_addr(L, f, line, s, n) == -1)
		return -1;
	return add_target(L, f, line, ALIAS_ADDR, s, n);
}

/* One target as written: a quoted one is unquoted first. */
static int
parse_target(struct loader *L, struct file *f, unsigned line, const char *s,
    size_t n)
{
	char	*u;
	size_t	 i, k = 0;
	int	 r;

	if (n == 0)
		return fail(L, f->name, line, "empty target");
	if (s[0] != '"')
		return classify(L, f, line, s, n);
	for (i = 1; i < n && s[i] != '"'; i++)
		if (s[i] == '\\' && i + 1 < n)
			i++;
	if (i != n - 1)		/* "local part"@domain: an address */
		return classify(L, f, line, s, n);
	if ((u = malloc(n)) == NULL)
		return fail(L, f->name, line, "out of memory");
	for (i = 1; i < n - 1; i++) {
		if (s[i] == '\\' && i + 2 < n && (s[i + 1] == '"' ||
		    s[i + 1] == '\\'))
			i++;
		u[k++] = s[i];
	}
	r = classify(L, f, line, u, k);
	free(u);
	return r;
}

static unsigned
line_at(const struct seg *map, size_t nmap, size_t off)
{
	size_t	 lo = 0, hi = nmap;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (map[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return map[lo].line;
}

/* "target, target, ..." at s[i..n); map gives the line of an offset */
static int
parse_list(struct loader *L, struct file *f, const char *s, size_t i,
    size_t n, const struct seg *map, size_t nmap)
{
	size_t	 start;
	int	 q;

	for (;;) {
		const char *t;
		size_t tn;

		for (start = i, q = 0; i < n; i++) {
			if (q && s[i] == '\\' && i + 1 < n)
				i++;
			else if (s[i] == '"')
				q = !q;
			else if (!q && s[i] == ',')
				break;
		}
		t = s + start;
		tn = i - start;
		trim(&t, &tn);
		if (parse_target(L, f, line_at(map, nmap, (size_t)(t - s)), t,
		    tn) == -1)
			return -1;
		if (i >= n)
			return 0;
		i++;
	}
}

/* Why key (lower-cased) is not a valid name, or NULL. */
static const char *
key_error(const char *k, size_t n, char *why, size_t whylen)
{
	const char	*at = memchr(k, '@', n), *star;
	size_t		 ll = at ? (size_t)(at - k) : n, i;
	char		 buf[KEY_MAX + 16];
	struct mailaddr	 m;

	if (n == 0)
		return "empty name";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr("._-+=*@", c) != NULL))
			continue;
		if (c >= 0x20 && c < 0x7f)
			snprintf(why, whylen, "bad character '%c' in name", c);
		else
			snprintf(why, whylen, "bad character \\x%02x in name",
			    c);
		return why;
	}
	if (at && memchr(at + 1, '@', n - ll - 1) != NULL)
		return "more than one '@' in name";
	if (at && ll + 1 == n)
		return "no domain after '@' in name";
	if (at && strpbrk(at + 1, "*+=") != NULL)
		return "bad character in the domain of name";
	if (ll > ADDR_LOCAL_MAX || n - ll > ADDR_DOMAIN_MAX + 1)
		return "name too long";
	if ((star = memchr(k, '*', ll)) != NULL) {
		if (star != k + ll - 1)
			return "'*' only at the end of the local part";
		if (ll == 1)
			return "'*' needs a prefix (\"@domain\" is the "
			    "catch-all)";
	}
	/* as an address: a prefix or nothing stands for "prefix" "x" */
	snprintf(buf, sizeof(buf), "%.*s%s@%s", (int)(star ? ll - 1 : ll), k,
	    star || ll == 0 ? "x" : "", at ? at + 1 : "x.invalid");
	if (addr_parse(buf, strlen(buf), ADDR_F_UTF8, &m) != ADDR_OK)
		return "bad name (not an address)";
	return NULL;
}

static int
new_entry(struct loader *L, struct file *f, const char *name, size_t n,
    unsigned line)
{
	struct aliases		*a = L->a;
	struct alias_entry	*e;
	char			 key[KEY_MAX + 2], why[64];
	const char		*msg;
	size_t			 i, s;

	if (n > KEY_MAX)
		return fail(L, f->name, line, "name too long");
	for (i = 0; i < n; i++)
		key[i] = (name[i] >= 'A' && name[i] <= 'Z') ?
		    (char)(name[i] - 'A' + 'a') : name[i];
	key[n] = '\0';
	if ((msg = key_error(key, n, why, sizeof(why))) != NULL)
		return fail(L, f->name, line, "%s", msg);
	if ((a->nent + 1) * 2 > a->nslots && rehash(a) == -1)
		return fail(L, f->name, line, "out of memory");
	s = slot_of(a, key, n);
	if (a->slots[s])
		return fail(L, f->name, line, "duplicate alias \"%s\" (first at "
		    "line %u)", key, a->ent[a->slots[s] - 1].line);
	if (grow((void **)&a->ent, &a->capent, a->nent, sizeof(*a->ent)) == -1 ||
	    grow((void **)&a->first, &a->capfirst, a->nent,
	    sizeof(*a->first)) == -1)
		return fail(L, f->name, line, "out of memory");
	e = &a->ent[a->nent];
	memset(e, 0, sizeof(*e));
	if ((e->key = arena_dup(a, key, n)) == NULL)
		return fail(L, f->name, line, "out of memory");
	e->line = line;
	a->first[a->nent] = a->ntgt;
	a->slots[s] = ++a->nent;
	if (aliases_key_wildcard(key) && strcspn(key, "*") > a->wildmax)
		a->wildmax = strcspn(key, "*");
	return 0;
}

/* Add one physical line to the logical line. */
static int
append(struct loader *L, struct file *f, const char *s, size_t n)
{
	if (L->nmap == 0)
		L->len = 0;
	if (grow((void **)&L->map, &L->capmap, L->nmap, sizeof(*L->map)) == -1)
		return fail(L, f->name, f->line, "out of memory");
	if (L->len + n + 1 > L->cap) {
		size_t ncap = L->cap ? L->cap : 256;
		char *nt;
		while (ncap < L->len + n + 1)
			ncap *= 2;
		if ((nt = realloc(L->text, ncap)) == NULL)
			return fail(L, f->name, f->line, "out of memory");
		L->text = nt;
		L->cap = ncap;
	}
	L->map[L->nmap].off = L->len;
	L->map[L->nmap++].line = f->line;
	memcpy(L->text + L->len, s, n);
	L->len += n;
	return 0;
}

/* The logical line gathered so far: "name: targets". */
static int
flush(struct loader *L, struct file *f)
{
	const char	*colon, *name = L->text;
	size_t		 n;
	unsigned	 line;
	int		 r;

	if (L->nmap == 0)
		return 0;
	line = L->map[0].line;
	if ((colon = memchr(L->text, ':', L->len)) == NULL)
		return fail(L, f->name, line, "missing ':' after the name");
	n = (size_t)(colon - L->text);
	trim(&name, &n);
	if (n == 0)
		return fail(L, f->name, line, "empty name");
	if (new_entry(L, f, name, n, line) == -1)
		return -1;
	r = parse_list(L, f, L->text, (size_t)(colon + 1 - L->text), L->len,
	    L->map, L->nmap);
	L->nmap = 0;
	return r;
}

/* The lines of f: entries (the aliases file) or targets (an include). */
static int
parse_lines(struct loader *L, struct file *f)
{
	const char	*s = NULL, *t;
	size_t		 n = 0, tn;
	int		 r;

	while ((r = next_line(L, f, &s, &n)) == 1) {
		t = s;
		tn = n;
		trim(&t, &tn);
		if (tn == 0)
			continue;
		if (f->depth > 0) {
			struct seg one = { 0, f->line };
			if (parse_list(L, f, t, 0, tn, &one, 1) == -1)
				return -1;
			continue;
		}
		if (is_ws(s[0])) {
			if (L->nmap == 0)
				return fail(L, f->name, f->line, "continuation "
				    "line without an entry before it");
		} else if (flush(L, f) == -1)
			return -1;
		if (append(L, f, s, n) == -1)
			return -1;
	}
	if (r == -1)
		return -1;
	return f->depth == 0 ? flush(L, f) : 0;
}

static struct aliases *
load(struct aliases *a, const char *name, const char *data, size_t len,
    uid_t owner, aliases_reader reader, void *arg, char *err, size_t errlen)
{
	struct loader	 L;
	struct file	 f;
	int		 r;

	memset(&L, 0, sizeof(L));
	L.a = a;
	L.reader = reader;
	L.arg = arg;
	L.total = len;
	L.err = err;
	L.errlen = errlen;
	memset(&f, 0, sizeof(f));
	f.name = name;
	f.data = data;
	f.len = len;
	f.owner = owner;
	if ((a->name = arena_dup(a, name, strlen(name))) == NULL)
		r = fail(&L, name, 0, "out of memory");
	else
		r = parse_lines(&L, &f);
	free(L.text);
	free(L.map);
	if (r == -1) {
		aliases_free(a);
		return NULL;
	}
	for (size_t i = 0; i < a->nent; i++) {
		size_t end = i + 1 < a->nent ? a->first[i + 1] : a->ntgt;
		a->ent[i].ntargets = end - a->first[i];
		a->ent[i].targets = a->ent[i].ntargets ? a->tgt + a->first[i] :
		    NULL;
	}
	free(a->first);
	a->first = NULL;
	return a;
}

struct aliases *
aliases_load(const char *path, char *err, size_t errlen)
{
	struct aliases	*a;
	struct stat	 st;
	struct aliases	*r;
	char		*data = NULL;
	size_t		 len = 0;
	int		 rr;

	if ((rr = read_file(path, ALIASES_FILES_MAX, &data, &len, &st)) != 0) {
		snprintf(err, errlen, "%s: %s", path, read_error(rr));
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL || add_stamp(a, path, &st) ==
	    -1) {
		snprintf(err, errlen, "%s: out of memory", path);
		aliases_free(a);
		free(data);
		return NULL;
	}
	a->main_stamped = 1;
	r = load(a, path, data, len, st.st_uid, NULL, NULL, err, errlen);
	free(data);
	return r;
}

struct aliases *
aliases_load_mem(const char *name, const char *data, size_t len, uid_t owner,
    aliases_reader reader, void *arg, char *err, size_t errlen)
{
	struct aliases	*a;

	if (name == NULL)
		name = "(aliases)";
	if (len > ALIASES_FILES_MAX) {
		snprintf(err, errlen, "%s: %s", name, read_error(-3));
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	return load(a, name, data ? data : "", len, owner, reader, arg, err,
	    errlen);
}

void
aliases_free(struct aliases *a)
{
	struct chunk	*c, *next;

	if (a == NULL)
		return;
	for (c = a->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(a->ent);
	free(a->first);
	free(a->tgt);
	free(a->slots);
	free(a->stamps);
	free(a);
}

const struct alias_entry *
aliases_get(const struct aliases *a, const char *key)
{
	size_t	 s;

	if (a == NULL || key == NULL || a->nslots == 0)
		return NULL;
	s = slot_of(a, key, strlen(key));
	return a->slots[s] ? &a->ent[a->slots[s] - 1] : NULL;
}

/* the entry of lower(local[0..n)) "*" ["@" lower(domain)], if any */
static const struct alias_entry *
wild_get(const struct aliases *a, const char *local, size_t n,
    const char *domain, size_t dl)
{
	char	 key[KEY_MAX + 2];
	size_t	 i, k = 0;

	for (i = 0; i < n; i++)
		key[k++] = (local[i] >= 'A' && local[i] <= 'Z') ?
		    (char)(local[i] - 'A' + 'a') : local[i];
	key[k++] = '*';
	if (domain) {
		key[k++] = '@';
		for (i = 0; i < dl; i++)
			key[k++] = (domain[i] >= 'A' && domain[i] <= 'Z') ?
			    (char)(domain[i] - 'A' + 'a') : domain[i];
	}
	key[k] = '\0';
	return aliases_get(a, key);
}

const struct alias_entry *
aliases_wildcard(const struct aliases *a, const char *local,
    const char *domain, const char **rest)
{
	const struct alias_entry	*e;
	size_t				 ll, dl, n, max;
	int				 pass;

	if (a == NULL || local == NULL || a->wildmax == 0)
		return NULL;
	ll = strlen(local);
	dl = domain ? strlen(domain) : 0;
	max = ll < a->wildmax ? ll : a->wildmax;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 0 && (dl == 0 || dl > ADDR_DOMAIN_MAX))
			continue;
		for (n = max; n > 0; n--) {
			e = wild_get(a, local, n, pass == 0 ? domain : NULL, dl);
			if (e != NULL) {
				if (rest)
					*rest = local + n;
				return e;
			}
		}
	}
	return NULL;
}

int
aliases_changed(const struct aliases *a, const char *path)
{
	struct stat	 st;
	size_t		 i = 0;

	if (a == NULL)
		return -1;
	if (a->main_stamped) {
		if (path == NULL || stat(path, &st) == -1)
			return -1;
		if (stamp_differs(&a->stamps[0], &st))
			return 1;
		i = 1;
	}
	for (; i < a->nstamps; i++)
		if (stat(a->stamps[i].path, &st) == -1 ||
		    stamp_differs(&a->stamps[i], &st))
			return 1;
	return 0;
}

size_t
aliases_count(const struct aliases *a)
{
	return a ? a->nent : 0;
}

const struct alias_entry *
aliases_entry(const struct aliases *a, size_t i)
{
	return a && i < a->nent ? &a->ent[i] : NULL;
}

const char *
aliases_path(const struct aliases *a)
{
	return a ? a->name : NULL;
}

int
aliases_key_wildcard(const char *key)
{
	size_t	 ll = strcspn(key, "@");

	return ll > 0 && key[ll - 1] == '*';
}

/*
 * fuzz_aliases - libFuzzer target for src/lookup/aliases.c and expand.c
 * (the aliases file: written by an administrator, or by whoever can write
 * an :include: file).
 *
 * Input: an aliases file, then include files, separated by lines "%%";
 * the n-th one after the file is ":include:/inc/n" (owner 1000 + n).
 * Invariants:
 *  - a loaded table: every key non-empty, lower-case, of the allowed
 *    characters, found by aliases_get; every target non-empty, a path
 *    absolute, a pipe or path at most 1023 bytes, its owner that of a file;
 *  - aliases_check_loops: 0, or -1 with "f:LINE: ...";
 *  - expand() of a few addresses made from the keys: EXPAND_OK with 1 to
 *    max_targets unique, well-formed targets, or a failure with a status
 *    code; never anything else.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "expand.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define PARTS_MAX	8
#define MAIN_OWNER	42

struct input {
	const char	*part[PARTS_MAX + 1];
	size_t		 len[PARTS_MAX + 1];
	size_t		 n;
};

static int
reader(void *arg, const char *path, char **data, size_t *len, uid_t *owner)
{
	struct input	*in = arg;
	unsigned	 i;

	if (strncmp(path, "/inc/", 5) != 0 || path[5] < '0' || path[5] > '9' ||
	    path[6] != '\0' || (i = (unsigned)(path[5] - '0')) + 1 >= in->n) {
		errno = ENOENT;
		return -1;
	}
	if ((*data = malloc(in->len[i + 1] + 1)) == NULL)
		return -1;
	memcpy(*data, in->part[i + 1], in->len[i + 1]);
	*len = in->len[i + 1];
	*owner = 1000 + i;
	return 0;
}

static int
src_domain(void *arg, const char *domain)
{
	size_t	 l = strlen(domain);

	(void)arg;
	return strcmp(domain, "a.test") == 0 || (l > 5 &&
	    strcmp(domain + l - 5, ".test") == 0 && l % 2 == 0);
}

static int
src_account(void *arg, const char *local, const char *domain)
{
	(void)arg;
	(void)domain;
	for (const char *p = local; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();	/* the local part is lower-cased */
	return local[0] == 'a' || strcmp(local, "root") == 0;
}

static int
src_alias(void *arg, const char *key, const struct alias_entry **out)
{
	return (*out = aliases_get(arg, key)) != NULL;
}

static int
src_wildcard(void *arg, const char *local, const char *domain,
    const struct alias_entry **out, const char **rest)
{
	return (*out = aliases_wildcard(arg, local, domain, rest)) != NULL;
}

static void
check_table(const struct aliases *a, const struct input *in)
{
	for (size_t i = 0; i < aliases_count(a); i++) {
		const struct alias_entry *e = aliases_entry(a, i);
		if (e == NULL || e->key[0] == '\0' ||
		    aliases_get(a, e->key) != e ||
		    e->ntargets > ALIASES_TARGETS_MAX || e->line == 0)
			abort();
		for (const char *p = e->key; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') ||
			    strchr("._-+=*@", *p) != NULL))
				abort();
		for (size_t j = 0; j < e->ntargets; j++) {
			const struct alias_target *t = &e->targets[j];
			size_t l = strlen(t->text);
			if (l == 0 || (t->kind == ALIAS_FILE &&
			    t->text[0] != '/') || (t->kind != ALIAS_ADDR &&
			    l > ALIASES_TEXT_MAX))
				abort();
			if (t->owner != MAIN_OWNER && (t->owner < 1000 ||
			    t->owner >= 1000 + in->n))
				abort();
		}
	}
}

static void
check_targets(const struct xtarget *t, size_t n, size_t max)
{
	if (n == 0 || n > max)
		abort();
	for (size_t i = 0; i < n; i++) {
		switch (t[i].kind) {
		case XT_MAILBOX:
		case XT_REMOTE:
			if (strchr(t[i].addr, '@') == NULL || t[i].text[0])
				abort();
			for (const char *p = t[i].addr; *p != '@' &&
			    t[i].kind == XT_MAILBOX; p++)
				if (*p >= 'A' && *p <= 'Z')
					abort();
			break;
		case XT_PIPE:
		case XT_FILE:
			if (t[i].text[0] == '\0' || t[i].addr[0])
				abort();
			break;
		default:
			abort();
		}
		/* small n: a plain check that nothing is there twice */
		for (size_t j = 0; j < i && n <= 64; j++)
			if (t[j].kind == t[i].kind &&
			    strcmp(t[j].addr, t[i].addr) == 0 &&
			    strcmp(t[j].text, t[i].text) == 0 &&
			    t[j].owner == t[i].owner)
				abort();
	}
}

static void
try_expand(const struct expand_src *src, const char *addr)
{
	struct xtarget	*out;
	char		 err[512];
	size_t		 n;
	enum expand_res	 r;

	r = expand(src, addr, &out, &n, err, sizeof(err));
	if (r == EXPAND_OK) {
		check_targets(out, n, src->max_targets);
		free(out);
		return;
	}
	if (out != NULL || n != 0 || (err[0] != '4' && err[0] != '5') ||
	    err[1] != '.')
		abort();
}

/* an address for the key: "name@a.test", "prefixzz@a.test", "zz@dom" */
static void
key_addr(const char *key, char *buf, size_t len)
{
	const char	*at = strchr(key, '@');
	size_t		 ll = at ? (size_t)(at - key) : strlen(key);

	if (ll > 0 && key[ll - 1] == '*')
		snprintf(buf, len, "%.*szz@%s", (int)(ll - 1), key,
		    at ? at + 1 : "a.test");
	else
		snprintf(buf, len, "%.*s%s@%s", (int)ll, key, ll ? "" : "zz",
		    at ? at + 1 : "a.test");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input		 in;
	struct aliases		*a;
	struct expand_src	 src;
	const char		*p = (const char *)data, *end = p + size, *sep;
	char			 err[512], addr[400];

	memset(&in, 0, sizeof(in));
	for (;;) {
		sep = in.n < PARTS_MAX ? memmem(p, (size_t)(end - p), "\n%%\n",
		    4) : NULL;
		in.part[in.n] = p;
		in.len[in.n++] = sep ? (size_t)(sep - p) + 1 : (size_t)(end - p);
		if (sep == NULL)
			break;
		p = sep + 4;
	}
	a = aliases_load_mem("f", in.part[0], in.len[0], MAIN_OWNER, reader,
	    &in, err, sizeof(err));
	if (a == NULL) {
		if (strncmp(err, "f:", 2) != 0 && strncmp(err, "/inc/", 5) != 0)
			abort();
		return 0;
	}
	check_table(a, &in);
	if (aliases_check_loops(a, err, sizeof(err)) != 0 &&
	    strncmp(err, "f:", 2) != 0)
		abort();

	memset(&src, 0, sizeof(src));
	src.local_domain = src_domain;
	src.account = src_account;
	src.alias = src_alias;
	src.wildcard = src_wildcard;
	src.arg = a;
	src.delim = '+';
	src.max_targets = 1000;
	src.max_depth = 8;
	for (size_t i = 0; i < aliases_count(a) && i < 8; i++) {
		key_addr(aliases_entry(a, i)->key, addr, sizeof(addr));
		try_expand(&src, addr);
	}
	try_expand(&src, "postmaster@a.test");
	try_expand(&src, "Abc+Ext@a.test");
	src.delim = '-';
	src.max_targets = 3;
	src.max_depth = 2;
	if (aliases_count(a) > 0) {
		key_addr(aliases_entry(a, 0)->key, addr, sizeof(addr));
		try_expand(&src, addr);
	}
	aliases_free(a);
	return 0;
}

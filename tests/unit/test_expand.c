/*
 * test_expand - expansion of one recipient (expand.h) with a fake source:
 * in-memory domains and accounts, an aliases file written to a temporary
 * file. The fake alias callback hands out a copy it overwrites (and
 * moves) on every call, so ASan catches a use after the next call.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aliases.h"
#include "expand.h"

struct fake {
	struct aliases		*al;
	const char		*domains;	/* " a.test b.test " */
	const char		*accounts;	/* " bob@a.test ... " */
	const char		*any_prefix;	/* accounts: any local with it */
	int			 fail_domain, fail_account, fail_alias;
	int			 fail_wild;
	/* the copy handed out by alias() */
	struct alias_entry	 e;
	struct alias_target	*t;
	char			*key;
};

static char	 tmpdir[64];
static char	 path[PATH_MAX];

static int
in_list(const char *list, const char *a, const char *b)
{
	char	 w[600];

	snprintf(w, sizeof(w), " %s%s%s ", a, b ? "@" : "", b ? b : "");
	return strstr(list, w) != NULL;
}

static int
f_domain(void *arg, const char *domain)
{
	struct fake	*f = arg;

	if (f->fail_domain)
		return -1;
	return in_list(f->domains, domain, NULL);
}

static int
f_account(void *arg, const char *local, const char *domain)
{
	struct fake	*f = arg;

	if (f->fail_account)
		return -1;
	if (f->any_prefix && strncmp(local, f->any_prefix,
	    strlen(f->any_prefix)) == 0)
		return 1;
	return in_list(f->accounts, local, domain);
}

static void
drop_copy(struct fake *f)
{
	if (f->t)
		for (size_t i = 0; i < f->e.ntargets; i++)
			free(f->t[i].text);
	free(f->t);
	free(f->key);
	f->t = NULL;
	f->key = NULL;
}

/* a deep copy, replaced on the next call */
static int
give(struct fake *f, const struct alias_entry *src,
    const struct alias_entry **out)
{
	drop_copy(f);
	f->e = *src;
	f->key = strdup(src->key);
	f->t = calloc(src->ntargets + 1, sizeof(*f->t));
	assert_non_null(f->key);
	assert_non_null(f->t);
	for (size_t i = 0; i < src->ntargets; i++) {
		f->t[i] = src->targets[i];
		f->t[i].text = strdup(src->targets[i].text);
		assert_non_null(f->t[i].text);
	}
	f->e.key = f->key;
	f->e.targets = f->t;
	*out = &f->e;
	return 1;
}

static int
f_alias(void *arg, const char *key, const struct alias_entry **out)
{
	struct fake			*f = arg;
	const struct alias_entry	*e;

	drop_copy(f);
	if (f->fail_alias)
		return -1;
	if ((e = aliases_get(f->al, key)) == NULL)
		return 0;
	return give(f, e, out);
}

static int
f_wildcard(void *arg, const char *local, const char *domain,
    const struct alias_entry **out, const char **rest)
{
	struct fake			*f = arg;
	const struct alias_entry	*e;

	drop_copy(f);
	if (f->fail_wild)
		return -1;
	if ((e = aliases_wildcard(f->al, local, domain, rest)) == NULL)
		return 0;
	return give(f, e, out);
}

static void	src_init(struct expand_src *, struct fake *);
static size_t	run_ok(struct fake *, const struct expand_src *, const char *,
		    struct xtarget **);
static void	run_fail(const struct expand_src *, const char *,
		    enum expand_res, const char *);
static void	is(const struct xtarget *, enum xtarget_kind, const char *,
		    const char *, const char *, const char *);

/* SRS addresses: a fixed table instead of the hash (srs.c has its own
   tests); 0 for the rest */
static int
f_srs(void *arg, const char *local, const char *domain, char *out,
    size_t outlen, char *why, size_t whylen)
{
	static const struct { const char *l, *to; int r; } t[] = {
		{ "SRS0=good", "Dan@Elsewhere.test", 1 },
		{ "SRS0=home", "ann@x.test", 1 },
		{ "SRS0=loop", "srs0=loop@x.test", 1 },
		{ "SRS0=junk", "not an address", 1 },
		{ "SRS0=bad", "", -2 },
		{ "SRS0=temp", "", -1 },
	};

	(void)arg;
	(void)domain;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcasecmp(local, t[i].l) == 0) {
			snprintf(out, outlen, "%s", t[i].to);
			snprintf(why, whylen, "SRS hash does not verify");
			return t[i].r;
		}
	return 0;
}

static void
test_srs(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;
	size_t			 n;

	src_init(&s, f);
	s.srs = f_srs;
	n = run_ok(f, &s, "SRS0=good@x.test", &out);
	assert_int_equal(n, 1);
	is(&out[0], XT_REMOTE, "Dan@elsewhere.test", "", "", "srs0=good@x.test");
	free(out);
	/* any local domain, any case */
	n = run_ok(f, &s, "srs0=GOOD@y.test", &out);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].kind, XT_REMOTE);
	free(out);
	/* back to a local address: its own rules */
	n = run_ok(f, &s, "SRS0=home@x.test", &out);
	assert_int_equal(n, 1);
	is(&out[0], XT_MAILBOX, "ann@x.test", "", "", "srs0=home@x.test");
	free(out);
	run_fail(&s, "SRS0=bad@x.test", EXPAND_NOUSER, "5.1.1 <SRS0=bad@x.test>: "
	    "no such user (SRS hash does not verify)");
	run_fail(&s, "SRS0=temp@x.test", EXPAND_TEMPFAIL, "4.3.0 "
	    "<SRS0=temp@x.test>: temporary failure checking the SRS address");
	run_fail(&s, "SRS0=junk@x.test", EXPAND_NOUSER, "5.1.1 "
	    "<SRS0=junk@x.test>: no such user (SRS hash does not verify)");
	run_fail(&s, "SRS0=loop@x.test", EXPAND_LOOP, "5.4.6 alias loop: "
	    "srs0=loop@x.test -> srs0=loop@x.test");
	/* not SRS by the callback's word: the ordinary rules (catch-all) */
	n = run_ok(f, &s, "SRS0=other@x.test", &out);
	assert_int_equal(n, 1);
	is(&out[0], XT_MAILBOX, "catchall@x.test", "", "", "@x.test");
	free(out);
	/* without the callback an SRS address is just a local part */
	s.srs = NULL;
	n = run_ok(f, &s, "SRS0=good@x.test", &out);
	is(&out[0], XT_MAILBOX, "catchall@x.test", "", "", "@x.test");
	free(out);
}

static void
src_init(struct expand_src *s, struct fake *f)
{
	memset(s, 0, sizeof(*s));
	s->local_domain = f_domain;
	s->account = f_account;
	s->alias = f_alias;
	s->wildcard = f_wildcard;
	s->arg = f;
	s->delim = '+';
	s->max_targets = 100000;
	s->max_depth = 20;
}

static const char *ALIASES =
    "bob@x.test: \"|/bin/x-bob\"\n"
    "bob: \"|/bin/bare-bob\"\n"
    "alice: /var/alice-file\n"		/* beats the account alice */
    "robot: \"|/bin/robot\", /var/robot.log\n"
    "carl+special: \"|/bin/special\"\n"
    "team: ann, carl, Dan@Elsewhere.test\n"
    "self: self, self@elsewhere.test\n"
    "ghost: ghost, /var/ghost\n"
    "tagged: tagged, \"|/bin/tagged\"\n"
    "hook-*: \"|/bin/hook\"\n"
    "hook-*@y.test: \"|/bin/y-hook\"\n"
    "@x.test: catchall\n"
    "fwd: Someone@Elsewhere.TEST, someone@elsewhere.test, "
    "Someone@elsewhere.test\n"
    "dup: ann, ANN, ann@x.test, <ann@X.TEST>, \"|/bin/d\", \"|/bin/d\", "
    "/var/d, /var/d, team\n"
    "loop-a: loop-b\n"
    "loop-b: loop-a\n"
    "hop@x.test: hop@y.test\n"
    "hop@y.test: hop@x.test\n"
    "case: CASE\n"
    "diamond: d1, d2\n"
    "d1: d3\n"
    "d2: d3\n"
    "d3: ann\n"
    "chain0: chain1\nchain1: chain2\nchain2: chain3\nchain3: ann\n"
    "six: t1, t2, t3, t4, t5, t6\n"
    "five: t1, t2, t3, t4, t5, t1, T1\n"
    "deadend: nobody-here\n"
    "empty: :include:%s/empty\n";

static int
setup(void **state)
{
	struct fake	*f;
	FILE		*fp;
	char		 err[512], inc[PATH_MAX];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-expand-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(inc, sizeof(inc), "%s/empty", tmpdir);
	if ((fp = fopen(inc, "w")) == NULL)
		return -1;
	fclose(fp);
	snprintf(path, sizeof(path), "%s/aliases", tmpdir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fprintf(fp, ALIASES, tmpdir);
	fclose(fp);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	if ((f->al = aliases_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		free(f);
		return -1;
	}
	f->domains = " x.test y.test z.test ";
	f->accounts = " alice@x.test ann@x.test carl@x.test catchall@x.test "
	    "self@x.test tagged@x.test ann@y.test carl@y.test case@x.test "
	    "t1@x.test t2@x.test t3@x.test t4@x.test t5@x.test t6@x.test "
	    "hook-acct@x.test bob+tag@x.test ";
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake	*f = *state;
	char		 p[PATH_MAX];

	drop_copy(f);
	aliases_free(f->al);
	free(f);
	snprintf(p, sizeof(p), "%s/empty", tmpdir);
	unlink(p);
	unlink(path);
	return rmdir(tmpdir);
}

/* reset the fake's switches before each test */
static int
reset(void **state)
{
	struct fake	*f = *state;

	f->fail_domain = f->fail_account = f->fail_alias = f->fail_wild = 0;
	f->any_prefix = NULL;
	return 0;
}

static size_t
run_ok(struct fake *f, const struct expand_src *s, const char *addr,
    struct xtarget **out)
{
	char		 err[512];
	size_t		 n;
	enum expand_res	 r;

	(void)f;
	r = expand(s, addr, out, &n, err, sizeof(err));
	if (r != EXPAND_OK)
		fail_msg("%s: %s (%s)", addr, expand_strres(r), err);
	return n;
}

static void
run_fail(const struct expand_src *s, const char *addr, enum expand_res want,
    const char *want_err)
{
	struct xtarget	*out;
	char		 err[512];
	size_t		 n;
	enum expand_res	 r;

	r = expand(s, addr, &out, &n, err, sizeof(err));
	if (r != want)
		fail_msg("%s: got %s (%s), want %s", addr, expand_strres(r),
		    err, expand_strres(want));
	assert_null(out);
	assert_int_equal(n, 0);
	if (strcmp(err, want_err) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", addr, err, want_err);
}

static void
is(const struct xtarget *t, enum xtarget_kind kind, const char *addr,
    const char *text, const char *ext, const char *via)
{
	if (t->kind != kind || strcmp(t->addr, addr) || strcmp(t->text, text) ||
	    strcmp(t->ext, ext) || strcmp(t->via, via))
		fail_msg("got {%d, %s, %s, ext %s, via %s}, want {%d, %s, %s, "
		    "ext %s, via %s}", t->kind, t->addr, t->text, t->ext, t->via,
		    kind, addr, text, ext, via);
}

/* one target, of this form */
static void
one(struct fake *f, const struct expand_src *s, const char *addr,
    enum xtarget_kind kind, const char *a, const char *text, const char *ext,
    const char *via)
{
	struct xtarget	*out;

	if (run_ok(f, s, addr, &out) != 1)
		fail_msg("%s: not one target", addr);
	is(&out[0], kind, a, text, ext, via);
	free(out);
}

/* a and b: aliases before accounts, the domain key before the bare one */
static void
test_rules_ab(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;

	src_init(&s, f);
	one(f, &s, "bob@x.test", XT_PIPE, "", "/bin/x-bob", "", "bob@x.test");
	one(f, &s, "BOB@X.Test", XT_PIPE, "", "/bin/x-bob", "", "bob@x.test");
	one(f, &s, "bob@y.test", XT_PIPE, "", "/bin/bare-bob", "", "bob");
	one(f, &s, "alice@x.test", XT_FILE, "", "/var/alice-file", "", "alice");
	one(f, &s, "Ann@X.test", XT_MAILBOX, "ann@x.test", "", "", "");
	one(f, &s, "ann@y.test", XT_MAILBOX, "ann@y.test", "", "", "");
	/* the account bob+tag beats the extension */
	one(f, &s, "bob+tag@x.test", XT_MAILBOX, "bob+tag@x.test", "", "", "");
	/* and an alias "carl+special" beats the account carl */
	one(f, &s, "carl+special@x.test", XT_PIPE, "", "/bin/special", "",
	    "carl+special");
	/* owner: the aliases file's */
	{
		struct xtarget *out;
		run_ok(f, &s, "bob@x.test", &out);
		assert_int_equal(out[0].owner, getuid());
		free(out);
	}
}

/* c: extensions */
static void
test_rule_c(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;

	src_init(&s, f);
	one(f, &s, "ann+news@x.test", XT_MAILBOX, "ann@x.test", "", "news", "");
	one(f, &s, "Ann+News@x.test", XT_MAILBOX, "ann@x.test", "", "News", "");
	one(f, &s, "ann+a+b@x.test", XT_MAILBOX, "ann@x.test", "", "a+b", "");
	one(f, &s, "ann+@x.test", XT_MAILBOX, "ann@x.test", "", "", "");
	/* an alias of the base: its pipes and files get the extension */
	assert_int_equal(run_ok(f, &s, "robot+Job42@x.test", &out), 2);
	is(&out[0], XT_PIPE, "", "/bin/robot", "Job42", "robot");
	is(&out[1], XT_FILE, "", "/var/robot.log", "Job42", "robot");
	free(out);
	one(f, &s, "bob+z@x.test", XT_PIPE, "", "/bin/x-bob", "z", "bob@x.test");
	/* "+x" has no base */
	run_fail(&s, "+x@y.test", EXPAND_NOUSER,
	    "5.1.1 <+x@y.test>: no such user");
	/* another delimiter, or none */
	s.delim = '-';
	one(f, &s, "ann-news@x.test", XT_MAILBOX, "ann@x.test", "", "news", "");
	run_fail(&s, "ann+news@y.test", EXPAND_NOUSER,
	    "5.1.1 <ann+news@y.test>: no such user");
	s.delim = 0;
	run_fail(&s, "ann-news@y.test", EXPAND_NOUSER,
	    "5.1.1 <ann-news@y.test>: no such user");
}

/* d, e, f: wildcards, the catch-all, nobody */
static void
test_rules_def(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;

	src_init(&s, f);
	one(f, &s, "hook-Build@x.test", XT_PIPE, "", "/bin/hook", "Build",
	    "hook-*");
	one(f, &s, "hook-build@y.test", XT_PIPE, "", "/bin/y-hook", "build",
	    "hook-*@y.test");
	one(f, &s, "hook-@z.test", XT_PIPE, "", "/bin/hook", "", "hook-*");
	/* the account beats the wildcard */
	one(f, &s, "hook-acct@x.test", XT_MAILBOX, "hook-acct@x.test", "", "",
	    "");
	/* c before d: "hook-x+y" has no base account: the wildcard */
	one(f, &s, "hook-x+y@z.test", XT_PIPE, "", "/bin/hook", "x+y",
	    "hook-*");
	/* the wildcard beats the catch-all */
	one(f, &s, "hook-1@x.test", XT_PIPE, "", "/bin/hook", "1", "hook-*");
	one(f, &s, "whoever@x.test", XT_MAILBOX, "catchall@x.test", "", "",
	    "@x.test");
	run_fail(&s, "whoever@y.test", EXPAND_NOUSER,
	    "5.1.1 <whoever@y.test>: no such user");
	run_fail(&s, "a@elsewhere.test", EXPAND_REMOTE,
	    "5.1.2 <a@elsewhere.test>: elsewhere.test is not a local domain");
	run_fail(&s, "not an address", EXPAND_NOUSER,
	    "5.1.3 <not an address>: bad address syntax");
	/* no wildcard source: straight to the catch-all */
	s.wildcard = NULL;
	one(f, &s, "hook-1@x.test", XT_MAILBOX, "catchall@x.test", "", "",
	    "@x.test");
}

/* unqualified targets, remote targets, the "bob: bob" idiom */
static void
test_targets(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;

	src_init(&s, f);
	/* "team: ann, carl, Dan@Elsewhere.test", per domain */
	assert_int_equal(run_ok(f, &s, "team@y.test", &out), 3);
	is(&out[0], XT_MAILBOX, "ann@y.test", "", "", "team");
	is(&out[1], XT_MAILBOX, "carl@y.test", "", "", "team");
	is(&out[2], XT_REMOTE, "Dan@elsewhere.test", "", "", "team");
	free(out);
	assert_int_equal(run_ok(f, &s, "team@x.test", &out), 3);
	is(&out[0], XT_MAILBOX, "ann@x.test", "", "", "team");
	free(out);
	run_fail(&s, "team@z.test", EXPAND_NOUSER,
	    "5.1.1 <ann@z.test>: no such user (alias team)");

	/* "self: self, self@elsewhere.test" */
	assert_int_equal(run_ok(f, &s, "Self@x.test", &out), 2);
	is(&out[0], XT_MAILBOX, "self@x.test", "", "", "self");
	is(&out[1], XT_REMOTE, "self@elsewhere.test", "", "", "self");
	free(out);
	/* ... and the account is the mailbox, even for the extension */
	assert_int_equal(run_ok(f, &s, "tagged+t1@x.test", &out), 2);
	is(&out[0], XT_MAILBOX, "tagged@x.test", "", "t1", "tagged");
	is(&out[1], XT_PIPE, "", "/bin/tagged", "t1", "tagged");
	free(out);
	/* without the account: no such user, no alias of itself used */
	run_fail(&s, "ghost@x.test", EXPAND_NOUSER,
	    "5.1.1 <ghost@x.test>: no such user (alias ghost)");
	one(f, &s, "case@x.test", XT_MAILBOX, "case@x.test", "", "", "case");
	run_fail(&s, "deadend@y.test", EXPAND_NOUSER,
	    "5.1.1 <nobody-here@y.test>: no such user (alias deadend)");
	/* in x.test the catch-all takes it */
	one(f, &s, "deadend@x.test", XT_MAILBOX, "catchall@x.test", "", "",
	    "@x.test");
	/* an alias with nothing in it */
	run_fail(&s, "empty@x.test", EXPAND_NOUSER,
	    "5.1.1 <empty@x.test>: aliased to nothing");
}

static void
test_dedupe(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;

	src_init(&s, f);
	/* remote: the local part exactly, the domain in any case */
	assert_int_equal(run_ok(f, &s, "fwd@x.test", &out), 2);
	is(&out[0], XT_REMOTE, "Someone@elsewhere.test", "", "", "fwd");
	is(&out[1], XT_REMOTE, "someone@elsewhere.test", "", "", "fwd");
	free(out);
	/* "dup: ann, ANN, ann@x.test, <ann@X.TEST>, |/bin/d x2, /var/d x2,
	   team (ann again, carl, Dan@Elsewhere.test)" */
	assert_int_equal(run_ok(f, &s, "dup@x.test", &out), 5);
	is(&out[0], XT_MAILBOX, "ann@x.test", "", "", "dup");
	is(&out[1], XT_PIPE, "", "/bin/d", "", "dup");
	is(&out[2], XT_FILE, "", "/var/d", "", "dup");
	is(&out[3], XT_MAILBOX, "carl@x.test", "", "", "team");
	is(&out[4], XT_REMOTE, "Dan@elsewhere.test", "", "", "team");
	free(out);
	/* a diamond is no loop */
	one(f, &s, "diamond@x.test", XT_MAILBOX, "ann@x.test", "", "", "d3");
}

/* pipes: text and owner; the same command of another owner is kept */
static int
owner_reader(void *arg, const char *p, char **data, size_t *len,
    uid_t *owner)
{
	(void)arg;
	(void)p;
	if ((*data = strdup("\"|/bin/d\", /var/d\n")) == NULL)
		return -1;
	*len = strlen(*data);
	*owner = 777;
	return 0;
}

static void
test_dedupe_owner(void **state)
{
	struct fake		*f = *state;
	struct aliases		*keep = f->al;
	struct expand_src	 s;
	struct xtarget		*out;
	const char		*t = "l: \"|/bin/d\", :include:/x, /var/d, "
	    ":include:/y\n";
	char			 err[256];

	src_init(&s, f);
	f->al = aliases_load_mem("t", t, strlen(t), 5, owner_reader, NULL, err,
	    sizeof(err));
	assert_non_null(f->al);
	assert_int_equal(run_ok(f, &s, "l@x.test", &out), 4);
	is(&out[0], XT_PIPE, "", "/bin/d", "", "l");
	assert_int_equal(out[0].owner, 5);
	is(&out[1], XT_PIPE, "", "/bin/d", "", "l");
	assert_int_equal(out[1].owner, 777);
	is(&out[2], XT_FILE, "", "/var/d", "", "l");
	assert_int_equal(out[2].owner, 777);
	is(&out[3], XT_FILE, "", "/var/d", "", "l");
	assert_int_equal(out[3].owner, 5);
	free(out);
	aliases_free(f->al);
	f->al = keep;
}

static void
test_loops(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;

	src_init(&s, f);
	run_fail(&s, "loop-a@x.test", EXPAND_LOOP, "5.4.6 alias loop: "
	    "loop-a@x.test -> loop-b@x.test -> loop-a@x.test");
	/* hop@x -> hop@y -> hop@x: itself, but not directly */
	run_fail(&s, "HOP@x.test", EXPAND_LOOP, "5.4.6 alias loop: "
	    "hop@x.test -> hop@y.test -> hop@x.test");
	/* the loop as seen from an extension: the base's alias */
	run_fail(&s, "loop-b+x@x.test", EXPAND_LOOP, "5.4.6 alias loop: "
	    "loop-a@x.test -> loop-b@x.test -> loop-a@x.test");
}

static void
test_limits(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;

	src_init(&s, f);
	s.max_depth = 4;
	one(f, &s, "chain0@x.test", XT_MAILBOX, "ann@x.test", "", "", "chain3");
	s.max_depth = 3;
	run_fail(&s, "chain0@x.test", EXPAND_TOODEEP, "5.4.6 alias expansion "
	    "deeper than 3 levels: chain0@x.test -> chain1@x.test -> "
	    "chain2@x.test -> chain3@x.test");
	one(f, &s, "chain1@x.test", XT_MAILBOX, "ann@x.test", "", "", "chain3");

	s.max_depth = 20;
	s.max_targets = 5;
	run_fail(&s, "six@x.test", EXPAND_TOOMANY,
	    "5.5.3 <six@x.test>: alias expansion over 5 targets");
	/* duplicates do not count */
	assert_int_equal(run_ok(f, &s, "five@x.test", &out), 5);
	free(out);
	s.max_targets = 0;	/* the default */
	assert_int_equal(run_ok(f, &s, "six@x.test", &out), 6);
	free(out);
}

static void
test_tempfail(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	struct xtarget		*out;

	src_init(&s, f);
	f->fail_domain = 1;
	run_fail(&s, "ann@x.test", EXPAND_TEMPFAIL, "4.3.0 <ann@x.test>: "
	    "temporary failure looking up the domain x.test");
	f->fail_domain = 0;
	f->fail_account = 1;
	run_fail(&s, "ann@x.test", EXPAND_TEMPFAIL, "4.3.0 <ann@x.test>: "
	    "temporary failure looking up the account ann@x.test");
	/* nested: the whole recipient waits */
	run_fail(&s, "team@y.test", EXPAND_TEMPFAIL, "4.3.0 <team@y.test>: "
	    "temporary failure looking up the account ann@y.test");
	f->fail_account = 0;
	f->fail_alias = 1;
	run_fail(&s, "ann@x.test", EXPAND_TEMPFAIL, "4.3.0 <ann@x.test>: "
	    "temporary failure looking up the alias ann@x.test");
	f->fail_alias = 0;
	f->fail_wild = 1;
	run_fail(&s, "hook-1@x.test", EXPAND_TEMPFAIL, "4.3.0 <hook-1@x.test>: "
	    "temporary failure looking up wildcard aliases");
	/* not asked when an earlier rule answers */
	assert_int_equal(run_ok(f, &s, "ann@x.test", &out), 1);
	free(out);
	f->fail_wild = 0;
}

/* a database may hold what the file refuses: refused at expansion */
static struct alias_target	 raw_t[1];
static struct alias_entry	 raw_e = { "raw", raw_t, 1, 0 };

static int
raw_alias(void *arg, const char *key, const struct alias_entry **out)
{
	(void)arg;
	if (strcmp(key, "raw") != 0)
		return 0;
	*out = &raw_e;
	return 1;
}

static void
test_bad_targets(void **state)
{
	struct fake		*f = *state;
	struct expand_src	 s;
	char			 longcmd[1100];

	src_init(&s, f);
	s.alias = raw_alias;
	s.wildcard = NULL;
	raw_t[0].kind = ALIAS_ADDR;
	raw_t[0].text = "not an address";
	run_fail(&s, "raw@x.test", EXPAND_TEMPFAIL, "4.3.5 <raw@x.test>: "
	    "alias raw: bad address \"not an address\"");
	raw_t[0].kind = ALIAS_FILE;
	raw_t[0].text = "relative/file";
	run_fail(&s, "raw@x.test", EXPAND_TEMPFAIL, "4.3.5 <raw@x.test>: "
	    "alias raw: path empty, too long or relative");
	memset(longcmd, 'x', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = '\0';
	raw_t[0].kind = ALIAS_PIPE;
	raw_t[0].text = longcmd;
	run_fail(&s, "raw@x.test", EXPAND_TEMPFAIL, "4.3.5 <raw@x.test>: "
	    "alias raw: command empty, too long or relative");
	/* brackets are fine, and an unqualified name takes the domain */
	raw_t[0].kind = ALIAS_ADDR;
	raw_t[0].text = "<ann>";
	one(f, &s, "raw@x.test", XT_MAILBOX, "ann@x.test", "", "", "raw");
}

/* 10,000 targets, each an account, through aliases of aliases */
static void
test_big(void **state)
{
	struct fake		*f = *state;
	struct aliases		*keep = f->al;
	struct expand_src	 s;
	struct xtarget		*out;
	char			*t, err[256], want[64];
	size_t			 k = 0, cap = 10000 * 12 + 256, n, i;
	clock_t			 c0;

	t = malloc(cap);
	assert_non_null(t);
	k += (size_t)snprintf(t + k, cap - k, "big: u0");
	for (i = 1; i < 10000; i++)
		k += (size_t)snprintf(t + k, cap - k, ",%s u%zu",
		    i % 50 ? "" : "\n", i);
	/* again through a second list, and 10,000 duplicates */
	k += (size_t)snprintf(t + k, cap - k, "\nall: big, again\n"
	    "again: big, u5\n");
	src_init(&s, f);
	f->al = aliases_load_mem("t", t, k, 0, NULL, NULL, err, sizeof(err));
	if (f->al == NULL)
		fail_msg("%s", err);
	f->any_prefix = "u";
	c0 = clock();
	n = run_ok(f, &s, "all@x.test", &out);
	assert_true((double)(clock() - c0) / CLOCKS_PER_SEC < 5.0);
	assert_int_equal(n, 10000);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "u%zu@x.test", i);
		is(&out[i], XT_MAILBOX, want, "", "", "big");
	}
	free(out);
	aliases_free(f->al);
	f->al = keep;
	free(t);
}

/* aliases_check_loops: the first loop at its FILE:LINE */
static void
test_check_loops(void **state)
{
	struct aliases	*a;
	char		 err[512], want[512];
	const char	*t;

	(void)state;
	t = "ok: a, b, |/bin/x\nl1: l2\nl2: l3, x@d.test\nl3: ok, l1\n";
	a = aliases_load_mem("/etc/aliases", t, strlen(t), 0, NULL, NULL, err,
	    sizeof(err));
	assert_non_null(a);
	assert_int_equal(aliases_check_loops(a, err, sizeof(err)), -1);
	assert_string_equal(err, "/etc/aliases:2: alias loop: l1 -> l2 -> l3 "
	    "-> l1");
	aliases_free(a);

	t = "a@d.test: b@d.test\nb@d.test: x, a\n";
	a = aliases_load_mem("t", t, strlen(t), 0, NULL, NULL, err,
	    sizeof(err));
	assert_non_null(a);
	assert_int_equal(aliases_check_loops(a, err, sizeof(err)), -1);
	assert_string_equal(err, "t:1: alias loop: a@d.test -> b@d.test -> "
	    "a@d.test");
	aliases_free(a);

	/* self idioms, diamonds, wildcards and catch-alls are fine */
	t = "bob: bob, bob@elsewhere.test\nd: d1, d2\nd1: x\nd2: x\n"
	    "r-*: r\n@d.test: r\nr: |/bin/r\n";
	a = aliases_load_mem("t", t, strlen(t), 0, NULL, NULL, err,
	    sizeof(err));
	assert_non_null(a);
	assert_int_equal(aliases_check_loops(a, err, sizeof(err)), 0);
	aliases_free(a);

	/* too deep is reported too, with the path */
	{
		char chain[1024];
		size_t k = 0;
		for (int i = 0; i < 21; i++)
			k += (size_t)snprintf(chain + k, sizeof(chain) - k,
			    "c%d: c%d\n", i, i + 1);
		a = aliases_load_mem("t", chain, k, 0, NULL, NULL, err,
		    sizeof(err));
		assert_non_null(a);
		assert_int_equal(aliases_check_loops(a, err, sizeof(err)), -1);
		assert_string_equal(err, "t:1: alias expansion deeper than 20 "
		    "levels: c0 -> c1 -> c2 -> c3 -> c4 -> c5 -> c6 -> c7 -> "
		    "c8 -> c9 -> c10 -> c11 -> c12 -> c13 -> c14 -> c15 -> c16 "
		    "-> c17 -> c18 -> c19 -> c20");
		aliases_free(a);
	}

	/* the whole test file has its loops */
	a = aliases_load(path, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(aliases_check_loops(a, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:15: alias loop: loop-a -> loop-b "
	    "-> loop-a", path);
	assert_string_equal(err, want);
	aliases_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rules_ab, reset),
		cmocka_unit_test_setup(test_rule_c, reset),
		cmocka_unit_test_setup(test_rules_def, reset),
		cmocka_unit_test_setup(test_targets, reset),
		cmocka_unit_test_setup(test_dedupe, reset),
		cmocka_unit_test_setup(test_dedupe_owner, reset),
		cmocka_unit_test_setup(test_loops, reset),
		cmocka_unit_test_setup(test_limits, reset),
		cmocka_unit_test_setup(test_tempfail, reset),
		cmocka_unit_test_setup(test_bad_targets, reset),
		cmocka_unit_test_setup(test_big, reset),
		cmocka_unit_test_setup(test_check_loops, reset),
		cmocka_unit_test_setup(test_srs, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * expand - what one recipient becomes: mailboxes, remote addresses, pipes
 * and files, through aliases (the file and/or the database), extensions,
 * wildcards and catch-alls.
 *
 * For local@domain in a local domain, the first rule that applies:
 *  a. an alias "local@domain", else a bare alias "local" (any local domain);
 *  b. the account local@domain: a mailbox;
 *  c. local = base<delim>ext: the alias "base@domain" / "base" (its pipes
 *     and files get EXTENSION ext), else the account base@domain (a
 *     mailbox with ext);
 *  d. a wildcard "prefix*" (EXTENSION: the rest after the prefix);
 *  e. the catch-all "@domain";
 *  f. no such user.
 * Before them, an SRS address (SRS0=.../SRS1=..., srs.h) that the srs
 * callback verifies stands for the address it was made from (a bounce
 * finds the original sender); one that does not verify is no such user.
 * An address target of an alias is expanded by the same rules (one without
 * a domain takes the domain of the address being expanded), except the
 * address itself ("bob: bob, bob@elsewhere"): that is the account's mailbox
 * or no such user. Pipes and files are final, as are addresses in other
 * domains. Duplicate final targets are dropped (the first is kept).
 *
 * The address itself keeps the extension of rule c; an extension keeps
 * the case it was written in (the mailbox address is lower-cased).
 *
 * Failures are for the whole recipient: a loop, too deep (more than
 * max_depth aliases on one path), too many targets, a target that is no
 * user (named in err), a target the source should not have held (a bad
 * address, a relative path: 4.3.5, so the mail waits for a fix) or any
 * temporary failure of a source. Every address is expanded once per call,
 * so diamonds of aliases cost what their edges cost. The callbacks get
 * the local part lower-cased; a NULL callback answers "no".
 *
 * Pure: the sources are callbacks (the lookup process wires the aliases
 * file and the database; the tests, the fuzzer and aliases_check_loops
 * wire fakes).
 */
#ifndef SLUICE_EXPAND_H
#define SLUICE_EXPAND_H

#include <sys/types.h>

#include <stddef.h>

#include "addr.h"
#include "aliases.h"

#define EXPAND_TARGETS_DEFAULT	100000	/* when max_targets is 0 */
#define EXPAND_DEPTH_DEFAULT	20	/* when max_depth is 0 */
#define EXPAND_DEPTH_LIMIT	100	/* max_depth is clamped to it (stack) */

enum xtarget_kind { XT_MAILBOX, XT_REMOTE, XT_PIPE, XT_FILE };

struct xtarget {
	enum xtarget_kind kind;
	char		 addr[ADDR_STR_MAX + 1];	/* MAILBOX: local@domain of the account (local
						   part lower-cased); REMOTE: the address;
						   PIPE/FILE: "" */
	char		 text[1024];		/* PIPE: command line; FILE: path; else "" */
	uid_t		 owner;			/* PIPE/FILE: from the alias_target */
	char		 ext[ADDR_LOCAL_MAX + 1];	/* EXTENSION for this target ("" if none) */
	char		 via[ADDR_STR_MAX + 1];	/* the alias key that produced it ("" if none) */
};

enum expand_res { EXPAND_OK, EXPAND_NOUSER, EXPAND_TEMPFAIL, EXPAND_LOOP, EXPAND_TOOMANY,
	EXPAND_TOODEEP, EXPAND_REMOTE /* the domain is not local */ };

struct expand_src {
	/* 1 yes, 0 no, -1 temporary failure (database down) */
	int	(*local_domain)(void *arg, const char *domain);
	int	(*account)(void *arg, const char *local, const char *domain);
	/* alias targets for an exact key (file and/or database), or wildcard; return 1 and
	   fill *out (owned by the callee, valid until the next call) / 0 none / -1 tempfail */
	int	(*alias)(void *arg, const char *key, const struct alias_entry **out);
	int	(*wildcard)(void *arg, const char *local, const char *domain,
		    const struct alias_entry **out, const char **rest);
	/* an SRS address of ours (local part SRS0=/SRS1=, srs.h): 1 with the
	   address it stands for in out, 0 not one (the rules apply), -1
	   temporary failure, -2 refused (why: bad hash, expired...) */
	int	(*srs)(void *arg, const char *local, const char *domain,
		    char *out, size_t outlen, char *why, size_t whylen);
	void	*arg;
	char	 delim;		/* recipient delimiter, '+' by default; 0: none */
	size_t	 max_targets;	/* e.g. 100000 */
	unsigned max_depth;	/* e.g. 20 */
};

/* Expand addr (a valid address, any case); on EXPAND_OK *out is a malloc'ed
   array of *n unique targets (free with free()). On failure err says why in a
   form fit for a bounce or log, with an enhanced status code first
   ("5.4.6 alias loop: a@x.test -> b@x.test -> a@x.test"). */
enum expand_res expand(const struct expand_src *, const char *addr,
	    struct xtarget **out, size_t *n, char *err, size_t errlen);

/* "ok", "no such user", ... for logs */
const char	*expand_strres(enum expand_res);

#endif

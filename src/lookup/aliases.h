/*
 * aliases - the aliases file (/etc/aliases format), loaded into a table.
 *
 *   # a comment line ('#' at the start of a line)
 *   postmaster:  root                       # '#' after white space, too
 *   root:        admin@example.test, "|/usr/bin/robot --flag x"
 *   list@example.test: :include:/etc/sluice/list.members,
 *                /var/log/list.archive      (continuation: leading space)
 *   robot-*:     "|/usr/local/bin/robot"    (wildcard: EXTENSION is the rest)
 *   @example.test: catchall                 (catch-all of a domain)
 *
 * An entry is "name: target, target, ..." on one logical line (a line that
 * starts with white space continues it; blank and comment lines in between
 * are skipped). A name is "local", "local@domain", "prefix*",
 * "prefix*@domain" or "@domain", of letters, digits and ._-+=*@, compared
 * without case (stored lower-cased). A target is "|command" (pipe),
 * "/absolute/path" (append to a file), ":include:/absolute/path" (that
 * file's lines are more targets; includes nest 5 deep) or an address
 * ("user", "user@domain", "<user@domain>"). A target may be double-quoted
 * (commas, spaces and '#' inside; \" and \\ are escapes there); a quote
 * closes on its own line. Every target records the owner of the file it
 * was written in (the aliases file or the :include: file).
 *
 * Limits: a line 64 KB, all files of one load 64 MB, 100,000 targets in an
 * entry, a pipe or path 1023 bytes. aliases_load stops at the first error
 * with "FILE:LINE: message" ("FILE: message" when the file itself cannot
 * be read). The table is immutable once loaded: a hash of the keys, so a
 * lookup costs O(1) and a wildcard lookup O(length of the local part).
 *
 * Pure but for reading the files; the fuzzer and the tests use
 * aliases_load_mem with a reader for :include: files.
 */
#ifndef SLUICE_ALIASES_H
#define SLUICE_ALIASES_H

#include <sys/types.h>

#include <stddef.h>

#define ALIASES_LINE_MAX	65536		/* bytes in one line */
#define ALIASES_FILES_MAX	(64UL << 20)	/* all files of one load */
#define ALIASES_TARGETS_MAX	100000		/* targets in one entry */
#define ALIASES_INCLUDE_DEPTH	5
#define ALIASES_TEXT_MAX	1023		/* a pipe command or a path */

enum alias_kind { ALIAS_ADDR, ALIAS_PIPE, ALIAS_FILE };

struct alias_target {
	enum alias_kind	 kind;
	char		*text;	/* ADDR: the address (as written, trimmed, <> removed);
				   PIPE: the command line after '|' (unquoted);
				   FILE: the absolute path */
	uid_t		 owner;	/* owner (st_uid) of the file the target was written in:
				   the aliases file or the :include: file */
};

struct alias_entry {
	char			*key;	/* lower-cased: "name", "name@domain", "prefix*",
					   "prefix*@domain", or "@domain" (catch-all) */
	struct alias_target	*targets;
	size_t			 ntargets;
	unsigned		 line;	/* where it was defined */
};

struct aliases;

/* Load a file; NULL with "FILE:LINE: message" in err on the first error. */
struct aliases	*aliases_load(const char *path, char *err, size_t errlen);
void		 aliases_free(struct aliases *);
/* exact key lookup (key already lower-cased by the caller); NULL if none */
const struct alias_entry *aliases_get(const struct aliases *, const char *key);
/* wildcard lookup: the entry whose "prefix*" key (for this domain: "prefix*@domain"
   first, then the bare "prefix*") has the longest prefix of local; *rest gets the
   part of local after the prefix; NULL if none */
const struct alias_entry *aliases_wildcard(const struct aliases *, const char *local,
	    const char *domain, const char **rest);
/* the file's mtime/inode/size when loaded, to notice changes */
int		 aliases_changed(const struct aliases *, const char *path);	/* 1 changed, 0 not, -1 error */
size_t		 aliases_count(const struct aliases *);

/*
 * --- additions ---
 * Reads an :include: file for aliases_load_mem: 0 with *data (malloc'ed,
 * freed by the loader), *len and *owner set, or -1 with errno set.
 */
typedef int (*aliases_reader)(void *arg, const char *path, char **data,
    size_t *len, uid_t *owner);

/* Parse data[0..len) as the aliases file called name (for messages),
   written by owner. :include: files are read by reader (with arg), or
   from disk when it is NULL. aliases_changed() of such a table compares
   the :include: files only. */
struct aliases	*aliases_load_mem(const char *name, const char *data,
		    size_t len, uid_t owner, aliases_reader reader, void *arg,
		    char *err, size_t errlen);
/* the i-th entry in the order of the file (i < aliases_count) */
const struct alias_entry *aliases_entry(const struct aliases *, size_t i);
/* the name the table was loaded from */
const char	*aliases_path(const struct aliases *);
/* whether a key is a wildcard ("prefix*", "prefix*@domain") */
int		 aliases_key_wildcard(const char *key);

/*
 * For `sluice check` (implemented in expand.c): expand every entry (but
 * wildcards and catch-alls, which only lead to exact ones) as if every
 * domain were local and every address an account. 0 if no loop, else -1
 * with "FILE:LINE: alias loop: a -> b -> a" (or an expansion too deep, or
 * out of memory) in err. Unqualified names are shown without a domain.
 */
int		 aliases_check_loops(const struct aliases *, char *err,
		    size_t errlen);

#endif

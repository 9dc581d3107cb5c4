/*
 * dissect_names - safe file names and shell quoting for `sluice dissect`.
 *
 * Pure functions over strings (no I/O, no GMime), unit-tested in
 * tests/unit/test_dissect_names.c and fuzzed by tests/fuzz/fuzz_dissect.c.
 *
 * A safe name is made from an untrusted, already decoded (RFC 2231/2047)
 * file name: the last non-empty path component ('/' and '\' both
 * separate); control characters (C0, DEL, C1 and the bidirectional
 * formatting marks) dropped; bytes that are not UTF-8 replaced by '_';
 * leading dots dropped; at most DISSECT_NAME_MAX octets, cut on a UTF-8
 * boundary, keeping an extension of at most DISSECT_EXT_MAX octets.
 * Nothing usable left ("", ".", "..", "///") gives length 0: the caller
 * names the file after the part instead.
 */
#ifndef SLUICE_DISSECT_NAMES_H
#define SLUICE_DISSECT_NAMES_H

#include <stddef.h>

#define DISSECT_NAME_MAX	200	/* octets in a written file name */
#define DISSECT_EXT_MAX		16	/* ".extension" kept when cutting */

/*
 * The safe name of in[0..inlen) into out (outsz > DISSECT_NAME_MAX);
 * returns its length, 0 if nothing usable is left (out is then "").
 */
size_t	dissect_name_safe(const char *in, size_t inlen, char *out,
	    size_t outsz);
/*
 * "base (n).ext" from a safe name, still at most DISSECT_NAME_MAX octets
 * (the base is cut on a UTF-8 boundary); returns its length, 0 if outsz
 * is not above DISSECT_NAME_MAX.
 */
size_t	dissect_name_numbered(const char *name, unsigned n, char *out,
	    size_t outsz);
/*
 * The length of the valid UTF-8 sequence at s[0..len) (1..4), 0 if the
 * bytes there are not valid UTF-8 (overlong, surrogate, beyond U+10FFFF,
 * cut short); *cp receives the code point.
 */
size_t	dissect_utf8_seq(const unsigned char *s, size_t len, unsigned *cp);
/* s in single quotes for a POSIX shell ('\'' for '); malloc'd, NULL: ENOMEM */
char	*dissect_shell_quote(const char *s);
/*
 * The template with every "{}" replaced by the quoted path (appended
 * after a space when there is none); malloc'd, NULL: ENOMEM.
 */
char	*dissect_command(const char *tmpl, const char *path);
/* a file name extension (no dot) for a media type: "txt", "pdf", "bin" */
const char *dissect_type_ext(const char *type, const char *subtype);

#endif

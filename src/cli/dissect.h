/*
 * dissect - the MIME walker and extractor of `sluice dissect`, on GMime 3.
 *
 *	dissect_init()			once, before anything else
 *	dissect_parse(stream)		a GMimeMessage, NULL: not a message
 *	dissect_walk(msg, &tree)	the parts, in order, with IMAP paths
 *	dissect_extract(part, ...)	one part into a directory
 *	dissect_tree_free(&tree)
 *
 * Paths are IMAP's: the body of a single-part message is "1", the children
 * of a multipart are "1", "2", ..., nested "1.2"; a message/rfc822 part P
 * has its body's children at P.1, P.2 (or its single body at P.1). The
 * top-level multipart itself has the empty path. Containers nested deeper
 * than DISSECT_DEPTH_MAX are reported as opaque and not entered; at most
 * DISSECT_PARTS_MAX parts are listed (tree.truncated says more were left).
 * The strings of a part are borrowed from the message: free the tree,
 * then unref the message. No function here exits or prints to stdout;
 * warnings go to stderr unless quiet.
 */
#ifndef SLUICE_DISSECT_H
#define SLUICE_DISSECT_H

#include <stddef.h>
#include <stdint.h>

#include <gmime/gmime.h>

#define DISSECT_DEPTH_MAX	32
#define DISSECT_PARTS_MAX	10000
#define DISSECT_PATH_MAX	(DISSECT_DEPTH_MAX * 11 + 16)
#define DISSECT_TYPE_MAX	127	/* RFC 6838 4.2; longer ones are cut */
#define DISSECT_COLLIDE_MAX	1000	/* "name (N).ext" tried up to N */

struct dissect_part {
	char		 path[DISSECT_PATH_MAX];
	GMimeObject	*obj;			/* borrowed */
	char		 type[DISSECT_TYPE_MAX + 1];	/* lower case */
	char		 subtype[DISSECT_TYPE_MAX + 1];
	const char	*filename;		/* decoded, as sent; or NULL */
	const char	*charset, *disposition, *encoding;	/* or NULL */
	int64_t		 size;			/* decoded octets, -1 unknown */
	char		 sha256[65];		/* of the decoded octets, leaves */
	int		 depth;
	int		 leaf;			/* a GMimePart */
	int		 message;		/* message/rfc822 (entered) */
	int		 opaque;		/* too deep: not entered */
};

struct dissect_tree {
	struct dissect_part	*parts;
	size_t			 n, cap;
	int			 truncated;
};

/* outcome of dissect_extract() */
enum dissect_ext {
	DISSECT_SKIPPED,	/* not a part to extract */
	DISSECT_WRITTEN,	/* name holds the file name in the directory */
	DISSECT_ECREATE,	/* could not create a file (errno) */
	DISSECT_EWRITE,		/* could not write it (removed again) */
};

void		 dissect_init(void);
GMimeMessage	*dissect_parse(GMimeStream *);
/* 0, or -1 when out of memory */
int		 dissect_walk(GMimeMessage *, struct dissect_tree *, int quiet);
void		 dissect_tree_free(struct dissect_tree *);
/*
 * Write part p into the directory dirfd if it is an attachment or has a
 * file name (any leaf with all): decoded, text parts converted to UTF-8.
 * name (> DISSECT_NAME_MAX octets) receives the file name used.
 */
enum dissect_ext dissect_extract(const struct dissect_part *p, int dirfd,
		    int all, int quiet, char *name, size_t namesz);

#endif

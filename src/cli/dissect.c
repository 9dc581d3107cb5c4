/*
 * dissect - the MIME walker and extractor of `sluice dissect` (dissect.h).
 *
 * GMime parses from a seekable stream without copying part contents (they
 * stay substreams of the input), and every decode here streams: a part's
 * size and SHA-256 come from one decoding pass into a null stream, its
 * extraction from a second pass straight into the file. A 50 MB
 * attachment is never held in memory twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dissect.h"
#include "dissect_names.h"

void
dissect_init(void)
{
	static int	 done;

	if (!done) {
		g_mime_init();
		done = 1;
	}
}

GMimeMessage *
dissect_parse(GMimeStream *in)
{
	GMimeParser	*parser;
	GMimeMessage	*msg;

	parser = g_mime_parser_new_with_stream(in);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (msg == NULL)
		return NULL;
	/* text without a single header field is not a message */
	if (g_mime_header_list_get_count(
	    g_mime_object_get_header_list(GMIME_OBJECT(msg))) == 0) {
		g_object_unref(msg);
		return NULL;
	}
	return msg;
}

/* size and SHA-256 of the decoded content of a leaf */
static void
dissect_measure(GMimePart *part, struct dissect_part *p)
{
	GMimeDataWrapper	*content = g_mime_part_get_content(part);
	GMimeStream		*null, *fs;
	GMimeFilter		*sum;
	gchar			*hex;

	p->size = 0;
	p->sha256[0] = '\0';
	null = g_mime_stream_null_new();
	fs = g_mime_stream_filter_new(null);
	sum = g_mime_filter_checksum_new(G_CHECKSUM_SHA256);
	g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), sum);
	if (content == NULL ||
	    (g_mime_data_wrapper_write_to_stream(content, fs) != -1 &&
	    g_mime_stream_flush(fs) != -1))
		p->size = (int64_t)GMIME_STREAM_NULL(null)->written;
	else
		p->size = -1;
	if ((hex = g_mime_filter_checksum_get_string(
	    GMIME_FILTER_CHECKSUM(sum))) != NULL) {
		snprintf(p->sha256, sizeof(p->sha256), "%s", hex);
		g_free(hex);
	}
	g_object_unref(sum);
	g_object_unref(fs);
	g_object_unref(null);
}

/* s lower-cased into dst, cut to fit */
static void
dissect_lower(char *dst, size_t dstsz, const char *s)
{
	size_t	 i;

	for (i = 0; i + 1 < dstsz && s[i] != '\0'; i++)
		dst[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' :
		    s[i]);
	dst[i] = '\0';
}

/* append one part; NULL when out of memory or past DISSECT_PARTS_MAX */
static struct dissect_part *
dissect_add(struct dissect_tree *t, GMimeObject *obj, const char *path,
    int depth)
{
	struct dissect_part		*p;
	GMimeContentType		*ct;
	GMimeContentDisposition	*cd;
	const char			*type, *subtype;

	if (t->n >= DISSECT_PARTS_MAX) {
		t->truncated = 1;
		return NULL;
	}
	if (t->n == t->cap) {
		size_t	 cap = t->cap ? t->cap * 2 : 16;
		if ((p = reallocarray(t->parts, cap, sizeof(*p))) == NULL)
			return NULL;
		t->parts = p;
		t->cap = cap;
	}
	p = &t->parts[t->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->obj = obj;
	p->depth = depth;
	p->size = -1;
	ct = g_mime_object_get_content_type(obj);
	type = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	subtype = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
	if (type == NULL || subtype == NULL || *type == '\0' ||
	    *subtype == '\0') {
		type = "application";
		subtype = "octet-stream";
	}
	dissect_lower(p->type, sizeof(p->type), type);
	dissect_lower(p->subtype, sizeof(p->subtype), subtype);
	p->charset = ct ? g_mime_content_type_get_parameter(ct, "charset") :
	    NULL;
	if ((cd = g_mime_object_get_content_disposition(obj)) != NULL)
		p->disposition = g_mime_content_disposition_get_disposition(cd);
	if (GMIME_IS_PART(obj)) {
		GMimePart *part = GMIME_PART(obj);
		p->leaf = 1;
		p->filename = g_mime_part_get_filename(part);
		p->encoding = g_mime_content_encoding_to_string(
		    g_mime_part_get_content_encoding(part));
		dissect_measure(part, p);
	} else if (cd != NULL)
		p->filename = g_mime_content_disposition_get_parameter(cd,
		    "filename");
	if (p->filename == NULL && !p->leaf && ct != NULL)
		p->filename = g_mime_content_type_get_parameter(ct, "name");
	return p;
}

static int dissect_node(GMimeObject *, const char *, int,
    struct dissect_tree *, int);

/* the children of a multipart at prefix ("" at the top) */
static int
dissect_children(GMimeMultipart *mp, const char *prefix, int depth,
    struct dissect_tree *t, int quiet)
{
	char	 path[DISSECT_PATH_MAX];
	int	 i, n = g_mime_multipart_get_count(mp);

	for (i = 0; i < n && !t->truncated; i++) {
		snprintf(path, sizeof(path), "%s%s%d", prefix,
		    *prefix ? "." : "", i + 1);
		if (dissect_node(g_mime_multipart_get_part(mp, i), path,
		    depth, t, quiet) == -1)
			return -1;
	}
	return 0;
}

/* one object at path and what is inside it */
static int
dissect_node(GMimeObject *obj, const char *path, int depth,
    struct dissect_tree *t, int quiet)
{
	struct dissect_part	*p;
	GMimeMessage		*inner;
	GMimeObject		*body;
	char			 sub[DISSECT_PATH_MAX];

	if (obj == NULL)
		return 0;
	if ((p = dissect_add(t, obj, path, depth)) == NULL)
		return t->truncated ? 0 : -1;
	if (p->leaf)
		return 0;
	if (depth >= DISSECT_DEPTH_MAX) {
		p->opaque = 1;
		if (!quiet)
			fprintf(stderr, "sluice: part %s: nested deeper than "
			    "%d, not entered\n", *path ? path : "(top)",
			    DISSECT_DEPTH_MAX);
		return 0;
	}
	if (GMIME_IS_MULTIPART(obj))
		return dissect_children(GMIME_MULTIPART(obj), path, depth + 1,
		    t, quiet);
	if (!GMIME_IS_MESSAGE_PART(obj))
		return 0;
	p->message = 1;
	inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
	if (inner == NULL ||
	    (body = g_mime_message_get_mime_part(inner)) == NULL)
		return 0;
	if (GMIME_IS_MULTIPART(body))
		return dissect_children(GMIME_MULTIPART(body), path, depth + 1,
		    t, quiet);
	snprintf(sub, sizeof(sub), "%s.1", path);
	return dissect_node(body, sub, depth + 1, t, quiet);
}

int
dissect_walk(GMimeMessage *msg, struct dissect_tree *t, int quiet)
{
	GMimeObject	*body = g_mime_message_get_mime_part(msg);
	int		 r;

	memset(t, 0, sizeof(*t));
	if (body == NULL)
		return 0;
	if (GMIME_IS_MULTIPART(body))
		r = dissect_node(body, "", 0, t, quiet);
	else
		r = dissect_node(body, "1", 0, t, quiet);
	if (t->truncated && !quiet)
		fprintf(stderr, "sluice: more than %d parts, the rest not "
		    "listed\n", DISSECT_PARTS_MAX);
	return r;
}

void
dissect_tree_free(struct dissect_tree *t)
{
	free(t->parts);
	memset(t, 0, sizeof(*t));
}

/* should p be written into the directory? */
static int
dissect_wanted(const struct dissect_part *p, int all)
{
	if (p->opaque)
		return 0;
	if (p->leaf && all)
		return 1;
	if (!p->leaf && !p->message)
		return 0;
	return p->filename != NULL || (p->disposition != NULL &&
	    strcasecmp(p->disposition, "attachment") == 0);
}

/* create a new file in dirfd named after p, numbered on collisions */
static int
dissect_create(const struct dissect_part *p, int dirfd, char *name,
    size_t namesz)
{
	char		 base[DISSECT_NAME_MAX + 1];
	const char	*ext;
	unsigned	 n;
	int		 fd;

	if (p->filename == NULL || dissect_name_safe(p->filename,
	    strlen(p->filename), base, sizeof(base)) == 0) {
		ext = dissect_type_ext(p->type, p->subtype);
		if ((size_t)snprintf(base, sizeof(base), "part-%s.%s", p->path,
		    ext) >= sizeof(base))
			snprintf(base, sizeof(base), "part.%s", ext);
	}
	for (n = 1; n <= DISSECT_COLLIDE_MAX; n++) {
		if (n == 1)
			snprintf(name, namesz, "%s", base);
		else if (dissect_name_numbered(base, n, name, namesz) == 0)
			return -1;
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* is charset one whose bytes are written as they are? */
static int
dissect_utf8_compatible(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	    strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/* the content of p onto out: decoded, text converted to UTF-8 */
static int
dissect_write(const struct dissect_part *p, GMimeStream *out, int quiet)
{
	GMimeStream	*fs = NULL;
	GMimeFilter	*conv;
	int		 r;

	if (p->message) {
		GMimeMessage *m = g_mime_message_part_get_message(
		    GMIME_MESSAGE_PART(p->obj));
		if (m == NULL)
			return 0;
		r = g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, out) ==
		    -1 ? -1 : 0;
		return r == -1 || g_mime_stream_flush(out) == -1 ? -1 : 0;
	}
	if (g_mime_part_get_content(GMIME_PART(p->obj)) == NULL)
		return 0;
	if (strcasecmp(p->type, "text") == 0 && p->charset != NULL &&
	    !dissect_utf8_compatible(p->charset)) {
		if ((conv = g_mime_filter_charset_new(p->charset, "UTF-8")) ==
		    NULL) {
			if (!quiet)
				fprintf(stderr, "sluice: part %s: unknown "
				    "charset \"%s\", written as is\n", p->path,
				    p->charset);
		} else {
			fs = g_mime_stream_filter_new(out);
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), conv);
			g_object_unref(conv);
		}
	}
	r = g_mime_data_wrapper_write_to_stream(
	    g_mime_part_get_content(GMIME_PART(p->obj)), fs ? fs : out) == -1 ||
	    (fs != NULL && g_mime_stream_flush(fs) == -1) ||
	    g_mime_stream_flush(out) == -1 ? -1 : 0;
	if (fs != NULL)
		g_object_unref(fs);
	return r;
}

enum dissect_ext
dissect_extract(const struct dissect_part *p, int dirfd, int all, int quiet,
    char *name, size_t namesz)
{
	GMimeStream	*out;
	int		 fd, r, serr;

	if (!dissect_wanted(p, all))
		return DISSECT_SKIPPED;
	if (namesz <= DISSECT_NAME_MAX)
		return DISSECT_ECREATE;
	if ((fd = dissect_create(p, dirfd, name, namesz)) == -1)
		return DISSECT_ECREATE;
	out = g_mime_stream_fs_new(fd);	/* owns fd */
	r = dissect_write(p, out, quiet);
	serr = errno;
	if (g_mime_stream_close(out) == -1)
		r = -1;
	g_object_unref(out);
	if (r == -1) {
		(void)unlinkat(dirfd, name, 0);
		errno = serr;
		return DISSECT_EWRITE;
	}
	return DISSECT_WRITTEN;
}

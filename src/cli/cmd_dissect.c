/*
 * cmd_dissect - `sluice dissect`: take a message apart.
 *
 *	dissect [--json] [--extract DIR [--all] [--print-command CMD]] [FILE|-]
 *	dissect [...] --maildir DIR [--move-to-cur]
 *
 * Prints the MIME tree (dissect.c walks it: IMAP part paths, media type,
 * decoded size, charset, file name), or writes the attachments and named
 * inline parts (every leaf with --all) into DIR under safe names
 * (dissect_names.c) and prints their paths, or with --print-command the
 * command line for each, shell-quoted; nothing is ever run. --maildir
 * takes each message of DIR/new in name order; --move-to-cur renames each
 * one handled into DIR/cur with the Seen flag (":2,S").
 * Exit: 0 ok; 64 usage; 65 an input is not a message; 66 an input cannot
 * be opened; 73 a file cannot be created in DIR; 74 a write or a rename
 * failed; 71 out of memory. With --maildir the other messages are still
 * handled and the first failure's status is returned.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "dissect.h"
#include "dissect_names.h"

#define DISSECT_MAILDIR_MAX	100000	/* messages taken from new/ per run */

static const char usage_dissect[] =
    "usage: sluice dissect [--json] [--extract DIR [--all]] "
    "[--print-command CMD] [FILE|-]\n"
    "       sluice dissect [OPTIONS] --maildir DIR [--move-to-cur]\n"
    "\n"
    "Prints the MIME tree of a message (FILE, or stdin when FILE is - or\n"
    "missing): one line per part with its path (1, 1.2, ... as in IMAP),\n"
    "type, decoded size, charset and file name; --json gives an array of\n"
    "objects instead.\n"
    "  --extract DIR   write every attachment and every inline part with a\n"
    "                  file name into DIR (which must exist), decoded, text\n"
    "                  converted to UTF-8, under safe names; print the paths\n"
    "  --all           with --extract: every leaf part (part-PATH.ext when\n"
    "                  it has no name)\n"
    "  --print-command CMD  for each file written, print CMD with {} replaced\n"
    "                  by its path, shell-quoted (printed, never run)\n"
    "  --maildir DIR   each message in DIR/new, in name order\n"
    "  --move-to-cur   then rename each one handled into DIR/cur, seen\n"
    "exit: 0 ok, 64 usage, 65 not a message, 66 input not opened,\n"
    "      73 file not created in DIR, 74 write or rename failed\n";

struct dissect_opts {
	int		 json, all, move;
	const char	*extract, *maildir, *command, *file;
	int		 dirfd;		/* of extract, or -1 */
	int		 first;		/* no JSON element printed yet */
};

/* s as a JSON string; bytes that are not UTF-8 become U+FFFD */
static void
dissect_json_str(FILE *fp, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = strlen(s), i, n;
	unsigned		 cp;

	fputc('"', fp);
	for (i = 0; i < len; i += n) {
		if ((n = dissect_utf8_seq(p + i, len - i, &cp)) == 0) {
			fputs("\\ufffd", fp);
			n = 1;
		} else if (cp == '"' || cp == '\\')
			fprintf(fp, "\\%c", (int)cp);
		else if (cp < 0x20 || cp == 0x7f)
			fprintf(fp, "\\u%04x", cp);
		else
			fwrite(p + i, 1, n, fp);
	}
	fputc('"', fp);
}

static void
dissect_json_field(FILE *fp, const char *key, const char *val)
{
	fprintf(fp, ", \"%s\": ", key);
	if (val == NULL)
		fputs("null", fp);
	else
		dissect_json_str(fp, val);
}

/* a name for a terminal: control characters shown as '?' */
static void
dissect_text_str(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, fp);
}

/* one line of the tree */
static void
dissect_text_part(const struct dissect_part *p)
{
	printf("%s %s/%s ", *p->path ? p->path : "-", p->type, p->subtype);
	if (p->size >= 0)
		printf("%lld", (long long)p->size);
	else
		fputs("-", stdout);
	printf(" %s ", p->charset ? p->charset : "-");
	if (p->filename != NULL)
		dissect_text_str(stdout, p->filename);
	else
		fputs("-", stdout);
	if (p->opaque)
		fputs(" (nested too deep, not entered)", stdout);
	fputc('\n', stdout);
}

static void
dissect_json_part(const struct dissect_part *p, const char *written,
    const char *command, int first)
{
	printf("%s{\"path\": ", first ? "" : ", ");
	dissect_json_str(stdout, p->path);
	dissect_json_field(stdout, "type", p->type);
	dissect_json_field(stdout, "subtype", p->subtype);
	if (p->size >= 0)
		printf(", \"size\": %lld", (long long)p->size);
	else
		fputs(", \"size\": null", stdout);
	dissect_json_field(stdout, "filename", p->filename);
	dissect_json_field(stdout, "charset", p->charset);
	dissect_json_field(stdout, "disposition", p->disposition);
	dissect_json_field(stdout, "encoding", p->encoding);
	if (p->leaf)
		dissect_json_field(stdout, "sha256", p->sha256);
	if (p->opaque)
		fputs(", \"opaque\": true", stdout);
	if (written != NULL)
		dissect_json_field(stdout, "extracted", written);
	if (command != NULL)
		dissect_json_field(stdout, "command", command);
	fputs("}", stdout);
}

/* extract p if wanted; *written and *command malloc'd (or NULL) */
static int
dissect_one_part(struct dissect_opts *o, const struct dissect_part *p,
    char **written, char **command)
{
	char		 name[DISSECT_NAME_MAX + 1];
	const char	*sep;
	size_t		 len;

	*written = *command = NULL;
	switch (dissect_extract(p, o->dirfd, o->all, 0, name, sizeof(name))) {
	case DISSECT_SKIPPED:
		return EX_OK;
	case DISSECT_ECREATE:
		cli_err("%s: cannot create a file for part %s: %s", o->extract,
		    p->path, strerror(errno));
		return EX_CANTCREAT;
	case DISSECT_EWRITE:
		cli_err("%s: cannot write part %s: %s", o->extract, p->path,
		    strerror(errno));
		return EX_IOERR;
	case DISSECT_WRITTEN:
		break;
	}
	len = strlen(o->extract);
	sep = len > 0 && o->extract[len - 1] == '/' ? "" : "/";
	if (asprintf(written, "%s%s%s", o->extract, sep, name) == -1) {
		*written = NULL;
		return EX_OSERR;
	}
	if (o->command != NULL &&
	    (*command = dissect_command(o->command, *written)) == NULL)
		return EX_OSERR;
	return EX_OK;
}

/* the tree (or the files) of a parsed message */
static int
dissect_output(struct dissect_opts *o, struct dissect_tree *t)
{
	char	*written, *command;
	size_t	 i;
	int	 r, status = EX_OK;

	for (i = 0; i < t->n; i++) {
		written = command = NULL;
		r = o->dirfd == -1 ? EX_OK :
		    dissect_one_part(o, &t->parts[i], &written, &command);
		if (status == EX_OK)
			status = r;
		if (o->json)
			dissect_json_part(&t->parts[i], written, command,
			    i == 0);
		else if (o->dirfd == -1)
			dissect_text_part(&t->parts[i]);
		else if (written != NULL)
			printf("%s\n", command ? command : written);
		free(written);
		free(command);
		if (r == EX_OSERR)
			break;
	}
	return status;
}

/*
 * Dissect the message on fd (taken); file is its Maildir name or NULL.
 * The JSON of a Maildir message is an object around its parts.
 */
static int
dissect_fd(struct dissect_opts *o, int fd, const char *label,
    const char *file)
{
	struct dissect_tree	 t;
	struct stat		 st;
	GMimeStream		*in;
	GMimeMessage		*msg;
	int			 status;

	/* a pipe cannot seek: GMime then keeps the parts in memory */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		in = g_mime_stream_fs_new(fd);
	else
		in = g_mime_stream_pipe_new(fd);
	msg = dissect_parse(in);
	g_object_unref(in);
	if (o->json && file != NULL) {
		printf("%s{\"file\": ", o->first ? "" : ",\n");
		dissect_json_str(stdout, file);
		o->first = 0;
	} else if (file != NULL && o->dirfd == -1)
		printf("# %s\n", file);
	if (msg == NULL) {
		cli_err("%s: not a message", label);
		if (o->json && file != NULL)
			fputs(", \"error\": \"not a message\"}", stdout);
		return EX_DATAERR;
	}
	if (dissect_walk(msg, &t, 0) == -1) {
		cli_err("%s: out of memory", label);
		status = EX_OSERR;
	} else {
		if (o->json)
			fputs(file != NULL ? ", \"parts\": [" : "[", stdout);
		status = dissect_output(o, &t);
		if (o->json)
			fputs(file != NULL ? "]}" : "]\n", stdout);
	}
	dissect_tree_free(&t);
	g_object_unref(msg);
	return status;
}

/* the Maildir name of a message in cur/ with the Seen flag */
static int
dissect_cur_name(const char *name, char *dst, size_t dstsz)
{
	const char	*info = strstr(name, ":2,");
	size_t		 n;

	if (info == NULL)
		n = (size_t)snprintf(dst, dstsz, "%s:2,S", name);
	else if (strchr(info + 3, 'S') != NULL)
		n = (size_t)snprintf(dst, dstsz, "%s", name);
	else {
		/* flags stay in ASCII order: S goes before T */
		const char *f = info + 3;
		size_t k = 0;
		while (f[k] != '\0' && f[k] < 'S')
			k++;
		n = (size_t)snprintf(dst, dstsz, "%.*sS%s",
		    (int)(f - name + k), name, f + k);
	}
	return n < dstsz ? 0 : -1;
}

/* rename new/name to cur/ (never over an existing file) */
static int
dissect_move(int newfd, int curfd, const char *name, const char *dir)
{
	char	 dst[NAME_MAX + 1];

	if (dissect_cur_name(name, dst, sizeof(dst)) == -1) {
		cli_err("%s/new/%s: name too long for its flags", dir, name);
		return EX_IOERR;
	}
	if (renameat2(newfd, name, curfd, dst, RENAME_NOREPLACE) == 0)
		return EX_OK;
	/* XXX: filesystems without RENAME_NOREPLACE: link, then unlink */
	if ((errno == EINVAL || errno == ENOSYS) &&
	    linkat(newfd, name, curfd, dst, 0) == 0 &&
	    unlinkat(newfd, name, 0) == 0)
		return EX_OK;
	cli_err("%s/new/%s: not moved to cur/: %s", dir, name,
	    strerror(errno));
	return EX_IOERR;
}

static int
dissect_maildir(struct dissect_opts *o)
{
	struct stat	 st;
	char		**names = NULL, label[4096];
	size_t		 n = 0, i;
	int		 newfd, curfd = -1, fd, r, status = EX_OK;

	if ((newfd = open(o->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1 || (fd = openat(newfd, "new", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		cli_err("%s/new: %s", o->maildir, strerror(errno));
		if (newfd != -1)
			close(newfd);
		return EX_NOINPUT;
	}
	if (o->move && (curfd = openat(newfd, "cur", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		cli_err("%s/cur: %s", o->maildir, strerror(errno));
		close(newfd);
		close(fd);
		return EX_NOINPUT;
	}
	close(newfd);
	newfd = fd;
	if ((names = cli_dir_names(newfd, 1, DISSECT_MAILDIR_MAX,
	    &n)) == NULL) {
		cli_err("%s/new: %s", o->maildir, strerror(errno));
		status = EX_NOINPUT;
		goto done;
	}
	if (o->json)
		fputs("[", stdout);
	for (i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "%s/new/%s", o->maildir,
		    names[i]);
		fd = openat(newfd, names[i], O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			cli_err("%s: %s", label, fd == -1 ? strerror(errno) :
			    "not a regular file");
			if (fd != -1)
				close(fd);
			if (status == EX_OK)
				status = EX_NOINPUT;
			continue;
		}
		r = dissect_fd(o, fd, label, names[i]);
		/* handled (even as not a message): moved; failed: kept */
		if (o->move && (r == EX_OK || r == EX_DATAERR)) {
			int m = dissect_move(newfd, curfd, names[i],
			    o->maildir);
			if (r == EX_OK)
				r = m;
		}
		if (status == EX_OK)
			status = r;
		fflush(stdout);
	}
	if (o->json)
		fputs("]\n", stdout);
done:
	if (names != NULL)
		cli_names_free(names, n);
	close(newfd);
	if (curfd != -1)
		close(curfd);
	return status;
}

static int
dissect_args(struct dissect_opts *o, int argc, char **argv)
{
	int	 i, ends = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!ends && strcmp(a, "--") == 0)
			ends = 1;
		else if (!ends && strcmp(a, "--json") == 0)
			o->json = 1;
		else if (!ends && strcmp(a, "--all") == 0)
			o->all = 1;
		else if (!ends && strcmp(a, "--move-to-cur") == 0)
			o->move = 1;
		else if (!ends && (strcmp(a, "--extract") == 0 ||
		    strcmp(a, "--maildir") == 0 ||
		    strcmp(a, "--print-command") == 0)) {
			if (i + 1 == argc) {
				cli_err("option %s needs an argument", a);
				return -1;
			}
			if (a[2] == 'e')
				o->extract = argv[++i];
			else if (a[2] == 'm')
				o->maildir = argv[++i];
			else
				o->command = argv[++i];
		} else if (!ends && a[0] == '-' && a[1] != '\0') {
			cli_err("unknown option %s", a);
			return -1;
		} else if (o->file != NULL) {
			cli_err("one message at a time (or --maildir DIR)");
			return -1;
		} else
			o->file = a;
	}
	if ((o->all || o->command) && o->extract == NULL) {
		cli_err("--all and --print-command go with --extract DIR");
		return -1;
	}
	if (o->move && o->maildir == NULL) {
		cli_err("--move-to-cur goes with --maildir DIR");
		return -1;
	}
	if (o->maildir != NULL && o->file != NULL) {
		cli_err("a FILE or --maildir DIR, not both");
		return -1;
	}
	return 0;
}

int
cmd_dissect(struct cli *cli, int argc, char **argv)
{
	struct dissect_opts	 o;
	int			 fd, status;

	(void)cli;
	if (cli_wants_help(argc, argv))
		return cli_usage(usage_dissect, 1);
	memset(&o, 0, sizeof(o));
	o.dirfd = -1;
	o.first = 1;
	if (dissect_args(&o, argc, argv) == -1)
		return cli_usage(usage_dissect, 0);
	if (o.extract != NULL && (o.dirfd = open(o.extract, O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) == -1) {
		cli_err("%s: %s", o.extract, strerror(errno));
		return EX_CANTCREAT;
	}
	dissect_init();
	if (o.maildir != NULL)
		status = dissect_maildir(&o);
	else if (o.file == NULL || strcmp(o.file, "-") == 0) {
		if ((fd = dup(STDIN_FILENO)) == -1) {
			cli_err("stdin: %s", strerror(errno));
			status = EX_NOINPUT;
		} else
			status = dissect_fd(&o, fd, "stdin", NULL);
	} else if ((fd = open(o.file, O_RDONLY | O_CLOEXEC)) == -1) {
		cli_err("%s: %s", o.file, strerror(errno));
		status = EX_NOINPUT;
	} else {
		struct stat st;
		if (fstat(fd, &st) == -1 || S_ISDIR(st.st_mode)) {
			cli_err("%s: is a directory", o.file);
			close(fd);
			status = EX_NOINPUT;
		} else
			status = dissect_fd(&o, fd, o.file, NULL);
	}
	if (o.dirfd != -1)
		close(o.dirfd);
	if (fflush(stdout) == EOF && status == EX_OK)
		status = EX_IOERR;
	return status;
}

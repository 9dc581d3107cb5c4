/*
 * pipe_run - run a mail robot ("|command" alias target) or append to an
 * mbox file ("/path" target), asynchronously on libevent (DESIGN.md "Pipe
 * delivery (robots)", P4).
 *
 * pipe_run() forks one child per request and returns; the callback comes
 * later from the event loop, exactly once (never inside pipe_run()). It
 * returns -1 with errno set, and no callback, when it could not start:
 * EPERM for uid 0 or gid 0 (or, when not root, ids other than ours),
 * EINVAL for a malformed request or a second event base while requests
 * run there, and whatever pipe(), fork() or malloc() said (the caller
 * defers the recipient). Everything the request points to is copied (the
 * data fd is dup'ed): the caller may free it when pipe_run() returns.
 *
 * A robot runs from an argument vector (pipe_split(), never a shell) with
 * exactly req->env, in its own session and process group, as uid/gid with
 * no supplementary groups, in its home directory (else "/"), umask 077,
 * with no descriptor but stdin (the prefix, then the data file), stdout
 * and stderr (pipes the parent reads: the first line of stdout and the
 * first 4 KB of stderr are kept, the rest is drained and dropped). Its
 * result follows pipe_classify(); a timeout kills its process group and is
 * temporary. When it has exited, its outputs are drained (or given a 1 s
 * grace when something it left behind still holds them) and whatever is
 * left of its process group is killed: nothing outlives a delivery except
 * what moved to a session of its own.
 *
 * An mbox append runs in the same kind of child (session, ids, timeout)
 * without exec: the file is opened O_NOFOLLOW as the user, must be a
 * regular file with one link, is locked with fcntl (waiting at most 3/4
 * of the timeout), gets "From SENDER DATE", the prefix and the message
 * with ">From " quoting (mboxrd) and an empty line, and is fsync'ed; on a
 * write error it is truncated back to its old size.
 *
 * Permanent for an mbox: not a regular file (or a symlink, or several
 * links), EACCES/EPERM, a bad path; everything else (lock timeout, ENOSPC,
 * EIO, a missing directory) is temporary. A command that cannot be split
 * or is not absolute is permanent without running anything.
 *
 * exit_code in the result is the robot's exit status, -signal when a
 * signal ended it, -1 after a timeout, 127 when it was not run; status and
 * text are what count.
 *
 * Process-wide effects: SIGPIPE is set to SIG_IGN if it was SIG_DFL;
 * while requests run, SIGCHLD is a libevent signal event on their base
 * (one base at a time), and only our own children are waited for.
 */
#ifndef SLUICE_PIPE_RUN_H
#define SLUICE_PIPE_RUN_H

#include <sys/types.h>

#include <stddef.h>

struct event_base;

#define PIPE_TIMEOUT_DEFAULT	300000	/* ms */
#define PIPE_GRACE_MS		1000	/* after the exit, for its outputs */
#define PIPE_ERR_MAX		4096	/* stderr bytes kept */
#define PIPE_TEXT_MAX		512
#define PIPE_ARGS_MAX		256	/* words of a command, with the NULL */
#define PIPE_CMD_MAX		8192	/* bytes of a command line */

enum pipe_status { PIPE_OK, PIPE_OK_STOP, PIPE_TEMP, PIPE_PERM };

/*
 * command: the "|cmd" target without the '|', split by pipe_split(); or
 * mbox: an absolute path to append to. env: the complete environment
 * (NAME=VALUE, NULL-terminated; NULL: empty). fd: the message data file,
 * LF line ends, read with pread() from 0. prefix: lines written before it
 * (Return-Path:, Delivered-To:). sender: the envelope sender ("" for <>)
 * for the mbox "From " line.
 */
struct pipe_req {
	const char		*command;
	const char		*mbox;
	uid_t			 uid;		/* run as; 0 refused (EPERM) */
	gid_t			 gid;
	const char *const	*env;
	int			 fd;
	const char		*prefix;
	size_t			 prefixlen;
	const char		*sender;
	unsigned		 timeout_ms;	/* 0: PIPE_TIMEOUT_DEFAULT */
	const char		*log_id;
};

/*
 * text: for the bounce or the log, printable ASCII, an enhanced status
 * code first: the robot's own "4.x.x ..."/"5.x.x ..." line when it printed
 * one, else e.g. "5.3.0 robot exited 2: <first stderr line>". err: the
 * first 4 KB of its stderr, raw, NUL-terminated.
 */
struct pipe_result {
	enum pipe_status	 status;
	int			 exit_code;	/* or -signal, or -1 */
	char			 text[PIPE_TEXT_MAX];
	char			 err[PIPE_ERR_MAX + 1];
	size_t			 errlen;
};

typedef void (*pipe_cb)(void *arg, const struct pipe_result *);

/* start; the callback comes later from the event loop, exactly once; -1
   (errno set) if it could not start (then no callback; the caller defers) */
int	pipe_run(struct event_base *, const struct pipe_req *, pipe_cb,
	    void *arg);
/* cancel everything in flight (kill the process groups), callbacks not
   called */
void	pipe_shutdown(void);

/*
 * Split a command line into words: whitespace separates, "double" and
 * 'single' quotes group, a backslash escapes the next byte outside single
 * quotes; nothing is expanded ($, `, *, ~ are plain bytes). argv has room
 * for maxargs pointers including the terminating NULL; the words are
 * stored NUL-terminated in buf (strlen(cmdline) + 1 bytes always suffice).
 * Returns the number of words, or -1 with errno EINVAL (unbalanced quotes,
 * trailing backslash) or E2BIG (too many words, buf too small).
 */
int	pipe_split(const char *cmdline, char **argv, size_t maxargs,
	    char *buf, size_t buflen);
/*
 * The contract of a robot's exit (DESIGN.md): 0 OK, 99 OK_STOP, 75 and 111
 * TEMP, any other exit PERM, a signal TEMP. A first line of stdout (else
 * of stderr) that starts with an enhanced status code 4.x.x or 5.x.x
 * chooses TEMP or PERM itself whatever the exit code (not after a signal)
 * and becomes the text. Lines may be NULL; only up to their first LF is
 * used. Returns 0, or -1 (EINVAL) without text room.
 */
int	pipe_classify(int exit_code_or_neg_signal, const char *out_first_line,
	    const char *err_first_line, enum pipe_status *st, char *text,
	    size_t textlen);

#endif

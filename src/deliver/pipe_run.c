/*
 * pipe_run - robots and mbox appends; contract in pipe_run.h.
 *
 * One job per request, on a list. Each child reports a failure before
 * exec (or the mbox append's failure) through a CLOEXEC pipe as a
 * {stage, errno} pair; the parent formats the text, so the child never
 * formats anything. The parent side never blocks: stdin is fed from the
 * prefix and pread() chunks, stdout/stderr are read into small fixed
 * buffers and a shared sink, and the exit is seen by a SIGCHLD signal
 * event that calls waitid(WNOWAIT) on each job's own pid (other children
 * of the process are left alone). WNOWAIT keeps the exited leader a
 * zombie until finish(), so its pid -- the process group id -- cannot be
 * reused while we may still kill(-pgid).
 *
 * The user callback runs from finish() after the job is freed, as the
 * last thing its event handler does: it may start requests or call
 * pipe_shutdown().
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "pipe_run.h"

#define CHUNK		(64 * 1024)	/* stdin feed, mbox copy */
#define IO_PER_CB	16		/* reads/writes per event callback */
#define NAME_KEPT	256		/* of a path or program, in texts */
#define EX_PERM_MBOX	73		/* EX_CANTCREAT */
#define EX_TEMP		75		/* EX_TEMPFAIL */
#define EX_NOEXEC	127

enum job_kind { JOB_CMD, JOB_MBOX, JOB_NOW };

/* where a child failed; sent to the parent with errno */
enum rep_stage {
	REP_NONE, REP_SETSID, REP_FDS, REP_IDS, REP_EXEC, REP_OPEN,
	REP_NOTREG, REP_LINKS, REP_LOCK, REP_LOCK_TIMEOUT, REP_READ,
	REP_WRITE, REP_FSYNC,
};

struct report {
	int	 stage;
	int	 err;
};

struct job {
	struct job		*next, *prev;
	enum job_kind		 kind;
	struct event_base	*base;
	pipe_cb			 cb;
	void			*arg;
	pid_t			 pid;
	unsigned		 timeout_ms;
	char			*log_id;
	char			*name;		/* program or mbox, sanitised */
	int			 in_fd, out_fd, err_fd, rep_fd, data_fd;
	struct event		*ev_in, *ev_out, *ev_err, *ev_timer;
	/* stdin: the prefix, then the data file in chunks */
	char			*prefix;
	size_t			 prefixlen;
	int			 prefix_done;
	off_t			 data_off;
	char			*chunk;
	const char		*feed;
	size_t			 feedlen, feedoff;
	/* the first line of stdout */
	char			 out_line[PIPE_TEXT_MAX];
	size_t			 out_len;
	int			 out_eol;
	/* how it ended */
	int			 exited, lost, timed_out, grace, data_err;
	int			 code;		/* exit status, -signal */
	struct pipe_result	 res;		/* err; all for JOB_NOW */
};

/* what the child needs, filled before fork */
struct spawn {
	char *const		*argv;
	char *const		*env;
	const char		*mbox, *sender, *prefix;
	size_t			 prefixlen;
	uid_t			 uid;
	gid_t			 gid;
	int			 in_r, out_w, err_w, rep_w, data_fd;
	unsigned		 lock_ms;
};

static struct job	*jobs;
static struct event	*sig_ev;
static struct event_base *sig_base;
static int		 in_sigchld;
static char		 sink[CHUNK];	/* output beyond what is kept */

static void	finish(struct job *);
static void	job_progress(struct job *);

/* ---- texts ---- */

/* The first line of src (up to LF or NUL), trailing blanks and CR cut,
   as printable ASCII ('?' for anything else). */
static void
first_line(char *dst, size_t dstlen, const char *src)
{
	size_t	 n = 0, i;

	if (dstlen == 0)
		return;
	if (src != NULL)
		while (src[n] != '\0' && src[n] != '\n')
			n++;
	while (n > 0 && (src[n - 1] == '\r' || src[n - 1] == ' ' ||
	    src[n - 1] == '\t'))
		n--;
	if (n > dstlen - 1)
		n = dstlen - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[n] = '\0';
}

/* '4' or '5' when the line starts with an enhanced status code
   ^[45]\.[0-9]{1,3}\.[0-9]{1,3}( |$), else 0 */
static int
enh_class(const char *s)
{
	int	 part, n, c;

	if (s == NULL || (s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	c = s[0];
	s += 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; n < 3 && *s >= '0' && *s <= '9'; n++)
			s++;
		if (n == 0 || (part == 0 && *s++ != '.'))
			return 0;
	}
	if (*s == ' ' || *s == '\0' || *s == '\n' ||
	    (*s == '\r' && (s[1] == '\n' || s[1] == '\0')))
		return c;
	return 0;
}

static const char *
sig_name(int sig)
{
	const char	*s = sigabbrev_np(sig);

	return s != NULL ? s : "?";
}

/* an mbox lock waits 3/4 of the timeout: room left to write */
static unsigned
lock_ms(unsigned timeout_ms)
{
	unsigned	 ms = timeout_ms - timeout_ms / 4;

	return ms > 0 ? ms : 1;
}

static void
fmt_duration(char *dst, size_t len, unsigned ms)
{
	if (ms % 1000 == 0)
		snprintf(dst, len, "%us", ms / 1000);
	else
		snprintf(dst, len, "%ums", ms);
}

int
pipe_classify(int code, const char *out1, const char *err1,
    enum pipe_status *st, char *text, size_t textlen)
{
	char		 line[PIPE_TEXT_MAX], why[PIPE_TEXT_MAX + 2];
	const char	*own;

	if (st == NULL || text == NULL || textlen == 0) {
		errno = EINVAL;
		return -1;
	}
	own = enh_class(out1) ? out1 : enh_class(err1) ? err1 : NULL;
	if (code >= 0 && own != NULL) {
		*st = own[0] == '4' ? PIPE_TEMP : PIPE_PERM;
		first_line(text, textlen, own);
		return 0;
	}
	first_line(line, sizeof(line), err1);
	if (line[0] == '\0')
		first_line(line, sizeof(line), out1);
	snprintf(why, sizeof(why), "%s%s", line[0] ? ": " : "", line);
	if (code < 0) {
		*st = PIPE_TEMP;
		snprintf(text, textlen, "4.3.0 robot killed by signal %d "
		    "(SIG%s)%s", -code, sig_name(-code), why);
	} else if (code == 0 || code == 99) {
		*st = code == 0 ? PIPE_OK : PIPE_OK_STOP;
		snprintf(text, textlen, "2.0.0 robot exited %d%s", code,
		    code == 99 ? ", stop" : "");
	} else if (code == 75 || code == 111) {
		*st = PIPE_TEMP;
		snprintf(text, textlen, "4.3.0 robot exited %d%s", code, why);
	} else {
		*st = PIPE_PERM;
		snprintf(text, textlen, "5.3.0 robot exited %d%s", code, why);
	}
	return 0;
}

/* ---- splitting a command line ---- */

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

int
pipe_split(const char *s, char **argv, size_t maxargs, char *buf,
    size_t buflen)
{
	size_t	 argc = 0, o = 0;
	char	 q, c;

	if (maxargs == 0 || maxargs > INT_MAX) {
		errno = E2BIG;
		return -1;
	}
	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		if (argc + 1 >= maxargs)
			goto too_big;
		argv[argc++] = buf + o;
		for (q = 0; *s != '\0' && (q || !is_blank(*s)); s++) {
			c = *s;
			if (q != '\'' && c == '\\') {
				if (*++s == '\0')
					goto unbalanced;
				c = *s;
			} else if (q == 0 && (c == '"' || c == '\'')) {
				q = c;
				continue;
			} else if (q != 0 && c == q) {
				q = 0;
				continue;
			}
			if (o + 1 >= buflen)
				goto too_big;
			buf[o++] = c;
		}
		if (q != 0)
			goto unbalanced;
		if (o >= buflen)
			goto too_big;
		buf[o++] = '\0';
	}
	argv[argc] = NULL;
	return (int)argc;
unbalanced:
	errno = EINVAL;
	return -1;
too_big:
	errno = E2BIG;
	return -1;
}

/* ---- the child ---- */

static void __attribute__((noreturn))
child_fail(int repfd, int stage, int err, int code)
{
	struct report	 rep = { stage, err };
	ssize_t		 n;

	n = write(repfd, &rep, sizeof(rep));
	(void)n;
	_exit(code);
}

/* Default dispositions (ignored ones would survive exec), nothing
   blocked (the parent blocked everything around fork). */
static void
child_signals(void)
{
	struct sigaction	 sa;
	sigset_t		 none;
	int			 sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);	/* KILL, STOP: EINVAL */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* the user's home directory, looked up while still root */
static int
child_home(uid_t uid, char *dst, size_t len)
{
	struct passwd	 pw, *res = NULL;
	char		 buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 ||
	    res == NULL || pw.pw_dir == NULL || pw.pw_dir[0] != '/')
		return -1;
	return snprintf(dst, len, "%s", pw.pw_dir) < (int)len ? 0 : -1;
}

/* fd moved to 3 or above (so dup2 onto 0-2 cannot clobber it) */
static int
move_up(int fd)
{
	return fd >= 3 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* Every descriptor from 3 up is closed (cloexec: at exec). */
static void
close_from_3(int cloexec)
{
	struct rlimit	 rl;
	rlim_t		 fd, max = 65536;

	if (close_range(3, ~0U, cloexec ? CLOSE_RANGE_CLOEXEC : 0) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = rl.rlim_cur;
	for (fd = 3; fd < max && fd <= INT_MAX; fd++)
		if (cloexec)
			(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		else
			(void)close((int)fd);
}

/* No supplementary groups, gid, uid; verified, and no way back to root.
   Not root: only our own ids, nothing to change. */
static int
child_ids(uid_t uid, gid_t gid)
{
	uid_t	 r, e, s;
	gid_t	 rg, eg, sg;

	if (uid == 0 || gid == 0) {
		errno = EPERM;
		return -1;
	}
	if (geteuid() != 0) {
		if (uid == geteuid() && gid == getegid())
			return 0;
		errno = EPERM;
		return -1;
	}
	if (setgroups(0, NULL) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		return -1;
	if (getresuid(&r, &e, &s) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    r != uid || e != uid || s != uid || rg != gid || eg != gid ||
	    sg != gid || getgroups(0, NULL) != 0 || setuid(0) != -1) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* Common start of both children: session, signals, home. */
static void
child_start(const struct spawn *s, char *home, size_t homelen)
{
	if (setsid() == -1)
		child_fail(s->rep_w, REP_SETSID, errno, EX_TEMP);
	child_signals();
	if (child_home(s->uid, home, homelen) == -1)
		home[0] = '\0';
}

static void
child_finish_setup(const struct spawn *s, int repfd, const char *home)
{
	if (child_ids(s->uid, s->gid) == -1)
		child_fail(repfd, REP_IDS, errno, EX_TEMP);
	if (home[0] == '\0' || chdir(home) == -1)
		if (chdir("/") == -1)
			child_fail(repfd, REP_FDS, errno, EX_TEMP);
	umask(077);
}

static void __attribute__((noreturn))
child_cmd(const struct spawn *s)
{
	char	 home[PATH_MAX];
	int	 fds[4] = { s->in_r, s->out_w, s->err_w, s->rep_w }, i;

	child_start(s, home, sizeof(home));
	for (i = 0; i < 4; i++)
		if ((fds[i] = move_up(fds[i])) == -1)
			child_fail(s->rep_w, REP_FDS, errno, EX_TEMP);
	for (i = 0; i < 3; i++)
		if (dup2(fds[i], i) == -1)
			child_fail(fds[3], REP_FDS, errno, EX_TEMP);
	close_from_3(1);
	child_finish_setup(s, fds[3], home);
	execve(s->argv[0], s->argv, s->env);
	child_fail(fds[3], REP_EXEC, errno, EX_NOEXEC);
}

/* ---- the mbox append (in the child) ---- */

enum { Q_BOL, Q_MID, Q_FROM };

struct mbox_w {
	int	 fd;
	int	 err;		/* sticky errno */
	int	 q;		/* quoting state */
	size_t	 pend;		/* bytes of "From " matched */
	int	 last;		/* last byte put */
	size_t	 len;
	char	 buf[CHUNK];
};

static volatile sig_atomic_t	 lock_timed_out;

static void
on_alarm(int sig)
{
	(void)sig;
	lock_timed_out = 1;
}

static void
mbox_flush(struct mbox_w *w)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (w->err == 0 && off < w->len) {
		if ((n = write(w->fd, w->buf + off, w->len - off)) == -1) {
			if (errno != EINTR)
				w->err = errno;
			continue;
		}
		if (n == 0)
			w->err = EIO;
		off += (size_t)n;
	}
	w->len = 0;
}

static void
mbox_put(struct mbox_w *w, const char *p, size_t n)
{
	size_t	 k;

	if (n > 0)
		w->last = (unsigned char)p[n - 1];
	while (n > 0 && w->err == 0) {
		if (w->len == sizeof(w->buf))
			mbox_flush(w);
		k = sizeof(w->buf) - w->len;
		if (k > n)
			k = n;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
	}
}

/* Copy with mboxrd quoting: a line matching ^>*From  gets one more '>'
   (put before "From ", which is the same thing), across chunks. */
static void
mbox_quote(struct mbox_w *w, const char *p, size_t n)
{
	static const char	 from[] = "From ";
	const char		*nl;
	size_t			 k;

	while (n > 0) {
		switch (w->q) {
		case Q_MID:
			nl = memchr(p, '\n', n);
			k = nl != NULL ? (size_t)(nl - p) + 1 : n;
			mbox_put(w, p, k);
			p += k;
			n -= k;
			if (nl != NULL)
				w->q = Q_BOL;
			break;
		case Q_BOL:
			if (*p == '>') {
				mbox_put(w, p, 1);
				p++;
				n--;
			} else if (*p == 'F') {
				w->pend = 1;
				w->q = Q_FROM;
				p++;
				n--;
			} else
				w->q = Q_MID;
			break;
		default:	/* Q_FROM */
			if (*p == from[w->pend]) {
				p++;
				n--;
				if (++w->pend == sizeof(from) - 1) {
					mbox_put(w, ">From ", 6);
					w->q = Q_MID;
				}
			} else {
				mbox_put(w, from, w->pend);
				w->q = Q_MID;
			}
			break;
		}
	}
}

/* "From SENDER DATE" (asctime style), sender blanks as '_' */
static void
mbox_from_line(struct mbox_w *w, const char *sender)
{
	char		 date[64], c;
	struct tm	 tm;
	time_t		 now = time(NULL);

	if (sender == NULL || sender[0] == '\0')
		sender = "MAILER-DAEMON";
	mbox_put(w, "From ", 5);
	for (; *sender != '\0'; sender++) {
		c = *sender;
		if ((unsigned char)c <= 0x20 || c == 0x7f)
			c = '_';
		mbox_put(w, &c, 1);
	}
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		snprintf(date, sizeof(date), "Thu Jan  1 00:00:00 1970");
	mbox_put(w, " ", 1);
	mbox_put(w, date, strlen(date));
	mbox_put(w, "\n", 1);
	w->q = Q_BOL;
}

/* temporary (75) or permanent, for the exit code and the parent's text */
static int
report_temp(int stage, int err)
{
	switch (stage) {
	case REP_EXEC:
		return !(err == ENOENT || err == EACCES || err == ENOEXEC ||
		    err == ENOTDIR || err == ELOOP || err == EISDIR ||
		    err == ENAMETOOLONG || err == EPERM);
	case REP_OPEN:
		return !(err == EACCES || err == EPERM || err == ELOOP ||
		    err == EISDIR || err == ENXIO || err == ENOTDIR ||
		    err == ENAMETOOLONG);
	case REP_NOTREG:
	case REP_LINKS:
		return 0;
	default:
		return 1;
	}
}

static int
mbox_fail(int repfd, int stage, int err)
{
	struct report	 rep = { stage, err };
	ssize_t		 n;

	n = write(repfd, &rep, sizeof(rep));
	(void)n;
	return report_temp(stage, err) ? EX_TEMP : EX_PERM_MBOX;
}

/* fcntl lock of the whole file, interrupted after ms */
static int
mbox_lock(int fd, unsigned ms)
{
	struct sigaction	 sa;
	struct itimerval	 it, off;
	struct flock		 fl;
	int			 r, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: EINTR */
	sigemptyset(&sa.sa_mask);
	memset(&it, 0, sizeof(it));
	memset(&off, 0, sizeof(off));
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (sigaction(SIGALRM, &sa, NULL) == -1 ||
	    setitimer(ITIMER_REAL, &it, NULL) == -1)
		return -1;
	while ((r = fcntl(fd, F_SETLKW, &fl)) == -1 && errno == EINTR &&
	    !lock_timed_out)
		;
	saved = errno;
	setitimer(ITIMER_REAL, &off, NULL);
	errno = saved;
	if (r == -1 && lock_timed_out)
		errno = ETIMEDOUT;
	return r;
}

/* the prefix and the data file, quoted, then the ending */
static int
mbox_copy(struct mbox_w *w, const struct spawn *s, int datafd)
{
	char	 chunk[CHUNK];
	off_t	 off = 0;
	ssize_t	 n;

	mbox_quote(w, s->prefix, s->prefixlen);
	while ((n = pread(datafd, chunk, sizeof(chunk), off)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += n;
		mbox_quote(w, chunk, (size_t)n);
	}
	if (w->q == Q_FROM)
		mbox_put(w, "From ", w->pend);
	if (w->last != '\n')
		mbox_put(w, "\n", 1);
	mbox_put(w, "\n", 1);
	mbox_flush(w);
	return 0;
}

/* Append the message; the exit code (0, 75, 73), a report on failure. */
static int
mbox_append(const struct spawn *s, int datafd, int repfd)
{
	static struct mbox_w	 w;
	struct stat		 st;
	off_t			 size;
	int			 fd, stage = 0, err = 0;

	fd = open(s->mbox, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd == -1 || fstat(fd, &st) == -1)
		return mbox_fail(repfd, REP_OPEN, errno);
	if (!S_ISREG(st.st_mode))
		return mbox_fail(repfd, REP_NOTREG, 0);
	if (st.st_nlink != 1)
		return mbox_fail(repfd, REP_LINKS, 0);
	if (fcntl(fd, F_SETFL, O_APPEND) == -1)
		return mbox_fail(repfd, REP_OPEN, errno);
	if (mbox_lock(fd, s->lock_ms) == -1)
		return mbox_fail(repfd, errno == ETIMEDOUT ? REP_LOCK_TIMEOUT :
		    REP_LOCK, errno);
	if (fstat(fd, &st) == -1)
		return mbox_fail(repfd, REP_LOCK, errno);
	size = st.st_size;
	memset(&w, 0, sizeof(w));
	w.fd = fd;
	mbox_from_line(&w, s->sender);
	if (mbox_copy(&w, s, datafd) == -1) {
		stage = REP_READ;
		err = errno;
	} else if (w.err != 0) {
		stage = REP_WRITE;
		err = w.err;
	} else if (fsync(fd) == -1) {
		stage = REP_FSYNC;
		err = errno;
	}
	if (stage != 0) {
		/* never leave half a message behind */
		if (ftruncate(fd, size) == 0)
			(void)fsync(fd);
		return mbox_fail(repfd, stage, err);
	}
	close(fd);		/* and the lock */
	return 0;
}

static void __attribute__((noreturn))
child_mbox(const struct spawn *s)
{
	char	 home[PATH_MAX];
	int	 data, rep, nul;

	child_start(s, home, sizeof(home));
	if ((data = move_up(s->data_fd)) == -1 ||
	    (rep = move_up(s->rep_w)) == -1)
		child_fail(s->rep_w, REP_FDS, errno, EX_TEMP);
	/* 0: the data, 1: the report, 2: /dev/null; nothing else */
	if (dup2(data, 0) == -1 || dup2(rep, 1) == -1)
		child_fail(rep, REP_FDS, errno, EX_TEMP);
	if ((nul = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1 &&
	    nul != 2) {
		(void)dup2(nul, 2);
		close(nul);
	}
	close_from_3(0);
	child_finish_setup(s, 1, home);
	signal(SIGXFSZ, SIG_IGN);	/* a size limit: a write error */
	_exit(mbox_append(s, 0, 1));
}

/* ---- the parent ---- */

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

static void
drop_event(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void
job_free(struct job *j)
{
	drop_event(&j->ev_in);
	drop_event(&j->ev_out);
	drop_event(&j->ev_err);
	drop_event(&j->ev_timer);
	close_fd(&j->in_fd);
	close_fd(&j->out_fd);
	close_fd(&j->err_fd);
	close_fd(&j->rep_fd);
	close_fd(&j->data_fd);
	free(j->log_id);
	free(j->name);
	free(j->prefix);
	free(j->chunk);
	free(j);
}

static void
job_link(struct job *j)
{
	j->prev = NULL;
	j->next = jobs;
	if (jobs != NULL)
		jobs->prev = j;
	jobs = j;
}

static void
job_unlink(struct job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	j->next = j->prev = NULL;
	if (jobs == NULL && sig_ev != NULL)
		event_del(sig_ev);	/* an idle loop may end */
}

static void
kill_group(struct job *j)
{
	if (j->pid > 0) {
		(void)kill(-j->pid, SIGKILL);
		(void)kill(j->pid, SIGKILL);	/* before its setsid() */
	}
}

static const char *
jid(const struct job *j)
{
	return j->log_id != NULL ? j->log_id : "-";
}

/* Has the leader exited? Looked at without reaping it (see the top). */
static int
poll_exit(struct job *j)
{
	siginfo_t	 si;
	int		 r;

	if (j->exited)
		return 1;
	memset(&si, 0, sizeof(si));
	while ((r = waitid(P_PID, (id_t)j->pid, &si,
	    WEXITED | WNOHANG | WNOWAIT)) == -1 && errno == EINTR)
		;
	if (r == -1) {		/* ECHILD: someone else reaped it */
		log_warn("%s pipe: waitid %ld", jid(j), (long)j->pid);
		j->exited = j->lost = 1;
		return 1;
	}
	if (si.si_pid != j->pid)
		return 0;
	j->exited = 1;
	j->code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
	return 1;
}

static void
stdin_close(struct job *j)
{
	drop_event(&j->ev_in);
	close_fd(&j->in_fd);
}

/* Next piece for stdin: 1, or 0 at the end (stdin closed), -1 on a read
   error (the robot is killed: it must not act on half a message). */
static int
feed_refill(struct job *j)
{
	ssize_t	 n;

	j->feedoff = 0;
	if (!j->prefix_done) {
		j->prefix_done = 1;
		if (j->prefixlen > 0) {
			j->feed = j->prefix;
			j->feedlen = j->prefixlen;
			return 1;
		}
	}
	while ((n = pread(j->data_fd, j->chunk, CHUNK, j->data_off)) == -1 &&
	    errno == EINTR)
		;
	if (n > 0) {
		j->data_off += n;
		j->feed = j->chunk;
		j->feedlen = (size_t)n;
		return 1;
	}
	j->feedlen = 0;
	if (n == -1) {
		j->data_err = errno;
		log_warn("%s pipe: reading the message", jid(j));
		kill_group(j);
	}
	stdin_close(j);
	return n == 0 ? 0 : -1;
}

static void
on_stdin(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j = arg;
	ssize_t		 n;
	int		 i;

	(void)ev;
	for (i = 0; i < IO_PER_CB; i++) {
		if (j->feedoff == j->feedlen && feed_refill(j) != 1)
			return;
		n = write(fd, j->feed + j->feedoff, j->feedlen - j->feedoff);
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				stdin_close(j);	/* EPIPE: not reading */
			return;
		}
		j->feedoff += (size_t)n;
	}
}

/* An output is at its end: close it and see whether the job is done. */
static void
output_done(struct job *j, int *fd, struct event **ev)
{
	drop_event(ev);
	close_fd(fd);
	job_progress(j);
}

static void
on_stdout(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j = arg;
	size_t		 room = sizeof(j->out_line) - 1 - j->out_len;
	char		*nl;
	ssize_t		 n;
	int		 i;

	(void)ev;
	for (i = 0; i < IO_PER_CB; i++) {
		if (!j->out_eol && room > 0) {
			n = read(fd, j->out_line + j->out_len, room);
			if (n > 0) {
				nl = memchr(j->out_line + j->out_len, '\n',
				    (size_t)n);
				j->out_len = nl != NULL ? (size_t)(nl -
				    j->out_line) : j->out_len + (size_t)n;
				j->out_eol = nl != NULL;
				j->out_line[j->out_len] = '\0';
				room = sizeof(j->out_line) - 1 - j->out_len;
			}
		} else
			n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			output_done(j, &j->out_fd, &j->ev_out);
			return;
		}
		if (n == -1)
			return;
	}
}

static void
on_stderr(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j = arg;
	ssize_t		 n;
	int		 i;

	(void)ev;
	for (i = 0; i < IO_PER_CB; i++) {
		if (j->res.errlen < PIPE_ERR_MAX) {
			n = read(fd, j->res.err + j->res.errlen,
			    PIPE_ERR_MAX - j->res.errlen);
			if (n > 0) {
				j->res.errlen += (size_t)n;
				j->res.err[j->res.errlen] = '\0';
			}
		} else
			n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			output_done(j, &j->err_fd, &j->ev_err);
			return;
		}
		if (n == -1)
			return;
	}
}

/* After any change: finish when the leader exited and its outputs are
   drained (or the grace is over, or nothing else matters), else wait. */
static void
job_progress(struct job *j)
{
	struct timeval	 tv = { PIPE_GRACE_MS / 1000,
			    (PIPE_GRACE_MS % 1000) * 1000 };

	if (!poll_exit(j))
		return;
	stdin_close(j);
	if (j->timed_out || j->data_err || j->lost ||
	    (j->out_fd == -1 && j->err_fd == -1)) {
		finish(j);
		return;
	}
	if (!j->grace) {	/* something it left holds its outputs */
		j->grace = 1;
		if (evtimer_add(j->ev_timer, &tv) == -1)
			finish(j);
	}
}

static void
on_sigchld(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j;

	(void)fd;
	(void)ev;
	(void)arg;
	in_sigchld = 1;
again:
	for (j = jobs; j != NULL; j = j->next)
		if (j->kind != JOB_NOW && !j->exited && poll_exit(j)) {
			job_progress(j);	/* may change the list */
			goto again;
		}
	in_sigchld = 0;
}

static void
on_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j = arg;
	struct timeval	 tv = { 1, 0 };
	char		 d[32];

	(void)fd;
	(void)ev;
	if (j->kind == JOB_NOW || j->grace) {
		finish(j);
		return;
	}
	if (!j->timed_out) {
		j->timed_out = 1;
		fmt_duration(d, sizeof(d), j->timeout_ms);
		log_info("%s pipe: %s timed out after %s, killing process "
		    "group %ld", jid(j), j->name, d, (long)j->pid);
	}
	kill_group(j);
	if (poll_exit(j)) {
		job_progress(j);
		return;
	}
	if (evtimer_add(j->ev_timer, &tv) == -1)	/* look again */
		log_warn("%s pipe: evtimer_add", jid(j));
}

/* the child's report, if it sent one */
static int
read_report(struct job *j, struct report *rep)
{
	ssize_t	 n;

	if (j->rep_fd == -1)
		return 0;
	while ((n = read(j->rep_fd, rep, sizeof(*rep))) == -1 &&
	    errno == EINTR)
		;
	return n == (ssize_t)sizeof(*rep);
}

static void
report_text(const struct job *j, const struct report *rep,
    struct pipe_result *r)
{
	static const char *const stages[] = { "", "setsid", "descriptors",
	    "user ids", "exec", "open", "", "", "lock", "lock", "read",
	    "write", "fsync" };
	const char	*what = j->kind == JOB_CMD ? "robot" :
			    "mbox delivery";
	const char	*err = strerror(rep->err);
	int		 t = report_temp(rep->stage, rep->err);
	char		 c = t ? '4' : '5';
	char		 d[32];

	r->status = t ? PIPE_TEMP : PIPE_PERM;
	fmt_duration(d, sizeof(d), lock_ms(j->timeout_ms));
	switch (rep->stage) {
	case REP_EXEC:
		snprintf(r->text, sizeof(r->text), "%c.3.0 cannot run robot "
		    "%s: %s", c, j->name, err);
		break;
	case REP_OPEN:
		if (rep->err == ELOOP)
			err = "is a symbolic link";
		else if (rep->err == EISDIR || rep->err == ENXIO)
			err = "not a regular file";
		snprintf(r->text, sizeof(r->text), "%c.2.0 mbox %s: %s", c,
		    j->name, err);
		break;
	case REP_NOTREG:
	case REP_LINKS:
		snprintf(r->text, sizeof(r->text), "5.2.0 mbox %s: %s", j->name,
		    rep->stage == REP_NOTREG ? "not a regular file" :
		    "has more than one hard link");
		break;
	case REP_LOCK:
		snprintf(r->text, sizeof(r->text), "4.2.0 mbox %s: cannot "
		    "lock: %s", j->name, err);
		break;
	case REP_READ:
		snprintf(r->text, sizeof(r->text), "4.3.0 mbox %s: cannot read "
		    "the message: %s", j->name, err);
		break;
	case REP_LOCK_TIMEOUT:
		snprintf(r->text, sizeof(r->text), "4.2.0 mbox %s: locked by "
		    "another process, gave up after %s", j->name, d);
		break;
	case REP_WRITE:
	case REP_FSYNC:
		snprintf(r->text, sizeof(r->text), "%s mbox %s: %s: %s",
		    rep->err == EDQUOT ? "4.2.2" : rep->err == ENOSPC ?
		    "4.3.1" : "4.3.0", j->name, stages[rep->stage], err);
		break;
	default:
		snprintf(r->text, sizeof(r->text), "4.3.0 cannot start %s "
		    "(%s): %s", what, rep->stage > 0 && rep->stage < (int)(
		    sizeof(stages) / sizeof(stages[0])) ? stages[rep->stage] :
		    "?", err);
		break;
	}
}

static void
build_result(struct job *j, struct pipe_result *r)
{
	struct report	 rep;
	char		 d[32];
	const char	*what = j->kind == JOB_CMD ? "robot" : "mbox delivery";

	*r = j->res;
	if (j->kind == JOB_NOW)
		return;
	r->exit_code = j->exited && !j->lost ? j->code : -1;
	r->status = PIPE_TEMP;
	fmt_duration(d, sizeof(d), j->timeout_ms);
	if (j->data_err)
		snprintf(r->text, sizeof(r->text), "4.3.0 cannot read the "
		    "message: %s", strerror(j->data_err));
	else if (j->timed_out) {
		r->exit_code = -1;
		snprintf(r->text, sizeof(r->text), "4.3.0 %s timed out after "
		    "%s, killed", what, d);
	} else if (j->lost)
		snprintf(r->text, sizeof(r->text), "4.3.0 %s: exit status "
		    "lost", what);
	else if (read_report(j, &rep))
		report_text(j, &rep, r);
	else if (j->kind == JOB_CMD)
		pipe_classify(j->code, j->out_line, r->err, &r->status,
		    r->text, sizeof(r->text));
	else if (j->code == 0) {
		r->status = PIPE_OK;
		snprintf(r->text, sizeof(r->text), "2.0.0 appended to mbox %s",
		    j->name);
	} else		/* no report: it crashed; never bounce for that */
		snprintf(r->text, sizeof(r->text), "4.3.0 mbox delivery %s %d",
		    j->code < 0 ? "killed by signal" : "exited",
		    j->code < 0 ? -j->code : j->code);
}

/* Done: kill what is left of its group, reap it, report, forget it. */
static void
finish(struct job *j)
{
	struct pipe_result	 r;
	pipe_cb			 cb = j->cb;
	void			*arg = j->arg;

	job_unlink(j);
	if (j->pid > 0) {
		if (j->grace)
			log_debug("%s pipe: %s left processes holding its "
			    "output, killed", jid(j), j->name);
		kill_group(j);
		if (!j->lost)
			while (waitpid(j->pid, NULL, 0) == -1 && errno == EINTR)
				;
	}
	build_result(j, &r);
	j->pid = -1;
	job_free(j);
	cb(arg, &r);
}

/* a job with its copies of what the parent needs after pipe_run() */
static struct job *
job_new(struct event_base *base, const struct pipe_req *req, pipe_cb cb,
    void *arg)
{
	struct job	*j;
	char		 name[NAME_KEPT];
	int		 saved;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	j->base = base;
	j->cb = cb;
	j->arg = arg;
	j->pid = -1;
	j->in_fd = j->out_fd = j->err_fd = j->rep_fd = j->data_fd = -1;
	j->kind = req->command != NULL ? JOB_CMD : JOB_MBOX;
	j->timeout_ms = req->timeout_ms ? req->timeout_ms :
	    PIPE_TIMEOUT_DEFAULT;
	first_line(name, sizeof(name), j->kind == JOB_CMD ? req->command :
	    req->mbox);
	if ((j->data_fd = fcntl(req->fd, F_DUPFD_CLOEXEC, 3)) == -1) {
		saved = errno;		/* EBADF, EMFILE */
		job_free(j);
		errno = saved;
		return NULL;
	}
	if ((j->name = strdup(name)) == NULL ||
	    (req->log_id != NULL && (j->log_id = strdup(req->log_id)) ==
	    NULL) ||
	    (j->ev_timer = evtimer_new(base, on_timer, j)) == NULL ||
	    (j->kind == JOB_CMD && ((j->chunk = malloc(CHUNK)) == NULL ||
	    (req->prefixlen > 0 && (j->prefix = malloc(req->prefixlen)) ==
	    NULL)))) {
		job_free(j);
		errno = ENOMEM;
		return NULL;
	}
	if (j->prefix != NULL)
		memcpy(j->prefix, req->prefix, req->prefixlen);
	j->prefixlen = j->kind == JOB_CMD ? req->prefixlen : 0;
	return j;
}

/* the program, for texts and logs */
static int
set_name(struct job *j, const char *prog)
{
	char	 name[NAME_KEPT];

	first_line(name, sizeof(name), prog);
	free(j->name);
	return (j->name = strdup(name)) == NULL ? -1 : 0;
}

/* Not run at all: a permanent result, delivered from the loop. */
static int
job_now(struct job *j, const char *text)
{
	struct timeval	 tv = { 0, 0 };
	size_t		 n = strlen(j->name) > NAME_KEPT / 2 ? NAME_KEPT / 2 :
			    strlen(j->name);

	j->kind = JOB_NOW;
	j->res.status = PIPE_PERM;
	j->res.exit_code = EX_NOEXEC;
	snprintf(j->res.text, sizeof(j->res.text), "%s: %.*s", text, (int)n,
	    j->name);
	if (evtimer_add(j->ev_timer, &tv) == -1)
		return -1;
	job_link(j);
	return 0;
}

/* One SIGCHLD event for the base; SIGPIPE ignored (EPIPE instead). */
static int
sig_setup(struct event_base *base)
{
	struct sigaction	 sa;

	if (sig_ev != NULL && sig_base != base) {
		if (jobs != NULL || in_sigchld) {
			errno = EINVAL;
			return -1;
		}
		event_free(sig_ev);
		sig_ev = NULL;
	}
	if (sig_ev == NULL) {
		if ((sig_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL)) ==
		    NULL) {
			errno = ENOMEM;
			return -1;
		}
		sig_base = base;
	}
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
nonblock(int fd)
{
	int	 fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Pipes and events for the job (parent ends in j, child ends in s). */
static int
job_pipes(struct job *j, struct spawn *s)
{
	int	 p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	j->rep_fd = p[0];
	s->rep_w = p[1];
	if (j->kind != JOB_CMD)
		return nonblock(j->rep_fd);
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	s->in_r = p[0];
	j->in_fd = p[1];
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	j->out_fd = p[0];
	s->out_w = p[1];
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	j->err_fd = p[0];
	s->err_w = p[1];
	if (nonblock(j->rep_fd) == -1 || nonblock(j->in_fd) == -1 ||
	    nonblock(j->out_fd) == -1 || nonblock(j->err_fd) == -1)
		return -1;
	if ((j->ev_in = event_new(j->base, j->in_fd, EV_WRITE | EV_PERSIST,
	    on_stdin, j)) == NULL ||
	    (j->ev_out = event_new(j->base, j->out_fd, EV_READ | EV_PERSIST,
	    on_stdout, j)) == NULL ||
	    (j->ev_err = event_new(j->base, j->err_fd, EV_READ | EV_PERSIST,
	    on_stderr, j)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static void
close_child_ends(struct spawn *s)
{
	close_fd(&s->rep_w);
	close_fd(&s->in_r);
	close_fd(&s->out_w);
	close_fd(&s->err_w);
}

/* Fork the child; the parent's events armed. */
static int
job_spawn(struct job *j, struct spawn *s)
{
	struct timeval	 tv = { j->timeout_ms / 1000,
			    (suseconds_t)(j->timeout_ms % 1000) * 1000 };
	sigset_t	 all, old;
	int		 saved;

	s->in_r = s->out_w = s->err_w = s->rep_w = -1;
	s->data_fd = j->data_fd;
	s->lock_ms = lock_ms(j->timeout_ms);
	if (job_pipes(j, s) == -1 ||
	    (!event_pending(sig_ev, EV_SIGNAL, NULL) &&
	    event_add(sig_ev, NULL) == -1))
		goto fail;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	if ((j->pid = fork()) == 0) {
		if (j->kind == JOB_CMD)
			child_cmd(s);
		child_mbox(s);
	}
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	if (j->pid == -1)
		goto fail;
	close_child_ends(s);
	if ((j->ev_in != NULL && (event_add(j->ev_in, NULL) == -1 ||
	    event_add(j->ev_out, NULL) == -1 ||
	    event_add(j->ev_err, NULL) == -1)) ||
	    evtimer_add(j->ev_timer, &tv) == -1) {
		kill_group(j);
		while (waitpid(j->pid, NULL, 0) == -1 && errno == EINTR)
			;
		errno = ENOMEM;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	close_child_ends(s);
	errno = saved;
	return -1;
}

/* uid 0 never; not root: only ourselves */
static int
ids_refused(uid_t uid, gid_t gid)
{
	if (uid == 0 || gid == 0)
		return 1;
	return geteuid() != 0 && (uid != geteuid() || gid != getegid());
}

/* Split and check the command; 0, or -1 with why it cannot run. */
static int
command_argv(const char *cmd, char **argv, char *words, const char **why)
{
	if (strlen(cmd) >= PIPE_CMD_MAX) {
		*why = "5.3.0 robot command too long";
		return -1;
	}
	switch (pipe_split(cmd, argv, PIPE_ARGS_MAX, words, PIPE_CMD_MAX)) {
	case -1:
		*why = errno == EINVAL ? "5.3.0 robot command has unbalanced "
		    "quotes" : "5.3.0 robot command has too many words";
		return -1;
	case 0:
		*why = "5.3.0 robot command is empty";
		return -1;
	}
	if (argv[0][0] != '/') {
		*why = "5.3.0 robot command must be an absolute path";
		return -1;
	}
	return 0;
}

int
pipe_run(struct event_base *base, const struct pipe_req *req, pipe_cb cb,
    void *arg)
{
	static char *const	 noenv[] = { NULL };
	struct spawn		 s;
	struct job		*j;
	char			*argv[PIPE_ARGS_MAX], *words = NULL;
	const char		*why = NULL;
	int			 saved, rc;

	if (base == NULL || req == NULL || cb == NULL || req->fd < 0 ||
	    (req->command == NULL) == (req->mbox == NULL) ||
	    (req->prefixlen > 0 && req->prefix == NULL)) {
		errno = EINVAL;
		return -1;
	}
	if (ids_refused(req->uid, req->gid)) {
		errno = EPERM;
		return -1;
	}
	if (sig_setup(base) == -1 || (j = job_new(base, req, cb, arg)) == NULL)
		return -1;
	memset(&s, 0, sizeof(s));
	if (j->kind == JOB_CMD) {
		if ((words = malloc(PIPE_CMD_MAX)) == NULL) {
			job_free(j);
			errno = ENOMEM;
			return -1;
		}
		if (command_argv(req->command, argv, words, &why) == 0 &&
		    (rc = set_name(j, argv[0])) == -1) {
			free(words);
			job_free(j);
			errno = ENOMEM;
			return -1;
		}
		s.argv = argv;
	} else if (req->mbox[0] != '/')
		why = "5.3.0 mbox path must be absolute";
	if (why != NULL) {
		free(words);
		if ((rc = job_now(j, why)) == -1)
			job_free(j);
		return rc;
	}
	s.env = req->env != NULL ? (char *const *)(uintptr_t)req->env : noenv;
	s.mbox = req->mbox;
	s.sender = req->sender;
	s.prefix = req->prefix;
	s.prefixlen = req->prefixlen;
	s.uid = req->uid;
	s.gid = req->gid;
	rc = job_spawn(j, &s);
	saved = errno;
	free(words);
	if (rc == -1) {
		job_free(j);
		errno = saved;
		return -1;
	}
	job_link(j);
	return 0;
}

void
pipe_shutdown(void)
{
	struct job	*j;

	while ((j = jobs) != NULL) {
		jobs = j->next;
		if (j->pid > 0) {
			kill_group(j);
			while (waitpid(j->pid, NULL, 0) == -1 && errno == EINTR)
				;
		}
		job_free(j);
	}
	if (sig_ev != NULL) {
		event_del(sig_ev);
		if (!in_sigchld) {	/* else it is running: freed later */
			event_free(sig_ev);
			sig_ev = NULL;
			sig_base = NULL;
		}
	}
}

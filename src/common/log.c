/*
 * log - event lines to stderr, syslog or a file. See log.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

int			 log_verbose;
static enum log_dest	 log_dest = LOGDEST_STDERR;
static int		 log_fd = STDERR_FILENO;
static int		 log_json;
static char		 log_tag[32] = "sluice";
static long		 log_pid;	/* set with the tag: once per process */

int
log_init(const char *tag, const char *dest, int json)
{
	log_settag(tag);
	log_json = json;
	if (dest == NULL || dest[0] == '\0' || strcmp(dest, "stderr") == 0) {
		log_dest = LOGDEST_STDERR;
		log_fd = STDERR_FILENO;
	} else if (strcmp(dest, "syslog") == 0) {
		log_dest = LOGDEST_SYSLOG;
		openlog("sluice", LOG_PID | LOG_NDELAY, LOG_MAIL);
	} else {
		int fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd == -1)
			return -1;
		log_dest = LOGDEST_FILE;
		log_fd = fd;
	}
	return 0;
}

void
log_settag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
	log_pid = (long)getpid();
}

/* Copy src to dst replacing control characters, so remote text is data. */
void
log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	 i, o = 0;

	if (dstlen == 0)
		return;
	for (i = 0; i < srclen && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
}

static void
json_str(struct buf *b, const char *s, size_t n)
{
	size_t	 i;

	buf_addc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_addf(b, "\\%c", c);
		else if (c < 0x20)
			buf_addf(b, "\\u%04x", c);
		else
			buf_addc(b, c);
	}
	buf_addc(b, '"');
}

/* Is p[0..n) a key (letters, digits, '_', '-')? */
static int
json_is_key(const char *p, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' &&
		    p[i] <= '9') || p[i] == '_' || p[i] == '-'))
			return 0;
	return 1;
}

/* The end of a value: <...> and (...) may hold spaces; "sent (why)" too. */
static const char *
json_value_end(const char *v)
{
	const char	*p = v, *e;

	if ((*v == '<' && (e = strchr(v, '>')) != NULL) ||
	    (*v == '(' && (e = strchr(v, ')')) != NULL))
		p = e + 1;
	while (*p && *p != ' ')
		p++;
	if (p[0] == ' ' && p[1] == '(' && (e = strchr(p, ')')) != NULL)
		p = e + 1;
	return p;
}

/*
 * Turn "ID: words key=value key=<a b> status=sent (text)" into a JSON
 * object: the leading "ID:" is "id", key=value pairs are fields, and the
 * other words, joined, are "text".
 */
static void
json_line(struct buf *b, const char *ts, const char *msg)
{
	const char	*p = msg, *w, *eq, *e;
	struct buf	 text;

	buf_init(&text, 8192);
	buf_adds(b, "{\"time\":");
	json_str(b, ts, strlen(ts));
	buf_addf(b, ",\"proc\":\"%s\",\"pid\":%ld", log_tag, log_pid);
	e = strchr(p, ' ');
	if (e && e > p && e[-1] == ':') {
		buf_adds(b, ",\"id\":");
		json_str(b, p, (size_t)(e - p - 1));
		p = e + 1;
	}
	while (*p) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (w = p; *p && *p != ' ' && *p != '='; p++)
			;
		eq = p;
		if (*eq == '=' && json_is_key(w, (size_t)(eq - w))) {
			e = json_value_end(eq + 1);
			buf_addc(b, ',');
			json_str(b, w, (size_t)(eq - w));
			buf_addc(b, ':');
			json_str(b, eq + 1, (size_t)(e - eq - 1));
			p = e;
			continue;
		}
		while (*p && *p != ' ')
			p++;
		if (text.len)
			buf_addc(&text, ' ');
		buf_add(&text, w, (size_t)(p - w));
	}
	if (text.len) {
		buf_adds(b, ",\"text\":");
		json_str(b, text.data, text.len);
	}
	buf_free(&text);
	buf_adds(b, "}\n");
}

static void
vlog(int prio, const char *fmt, va_list ap, int with_errno)
{
	struct buf	 msg, line;
	char		 ts[64];
	struct timespec	 now;
	struct tm	 tm;
	int		 saved = errno;

	if (log_pid == 0)
		log_pid = (long)getpid();
	buf_init(&msg, 8192);
	buf_vaddf(&msg, fmt, ap);
	if (with_errno)
		buf_addf(&msg, ": %s", strerror(saved));
	if (msg.data == NULL)
		buf_add(&msg, "", 0);
	if (log_dest == LOGDEST_SYSLOG) {
		syslog(prio, "%s: %s", log_tag, msg.data ? msg.data : "");
		buf_free(&msg);
		errno = saved;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ",
	    now.tv_nsec / 1000000);
	buf_init(&line, 16384);
	if (log_json)
		json_line(&line, ts, msg.data ? msg.data : "");
	else
		buf_addf(&line, "%s %s[%ld]: %s\n", ts, log_tag,
		    log_pid, msg.data ? msg.data : "");
	if (line.data) {
		ssize_t r = write(log_fd, line.data, line.len);
		(void)r;
	}
	buf_free(&line);
	buf_free(&msg);
	errno = saved;
}

#define LOGFN(name, prio, err)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	vlog(prio, fmt, ap, err);			\
	va_end(ap);					\
}
LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_warnx, LOG_WARNING, 0)

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, 0);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
log_fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, 0);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, 0);
	va_end(ap);
	abort();
}

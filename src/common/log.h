/*
 * log - one line per event: "<tag>[pid]: <queue-id> key=value ...".
 *
 * log_warn appends strerror(errno); log_warnx does not. log_fatal is for a
 * broken environment (exits 1), log_panic for a bug (aborts). Output goes to
 * stderr, syslog or a file (config `log`); `log-format json` turns the
 * key=value fields into a JSON object per line.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#define PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))

enum log_dest { LOGDEST_STDERR, LOGDEST_SYSLOG, LOGDEST_FILE };

int	log_init(const char *tag, const char *dest, int json);
void	log_settag(const char *tag);
void	log_info(const char *, ...) PRINTFLIKE(1, 2);
void	log_warn(const char *, ...) PRINTFLIKE(1, 2);
void	log_warnx(const char *, ...) PRINTFLIKE(1, 2);
void	log_debug(const char *, ...) PRINTFLIKE(1, 2);
void	log_fatal(const char *, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));
void	log_fatalx(const char *, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));
void	log_panic(const char *, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));
void	log_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

extern int log_verbose;

#endif

/*
 * buf - a binary-safe byte buffer with a size cap fixed at creation.
 *
 * Growth is overflow-checked and never exceeds `max`. Errors are sticky:
 * after the first failed append (cap reached or out of memory) `err` stays
 * set and further appends do nothing, so a copy loop can stay simple and
 * check once at the end. The data is always NUL-terminated for convenience
 * (the NUL is not counted in `len`).
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

enum buf_err { BUF_OK = 0, BUF_ENOMEM, BUF_ETOOBIG };

struct buf {
	char		*data;
	size_t		 len;
	size_t		 cap;
	size_t		 max;
	enum buf_err	 err;
};

void	buf_init(struct buf *, size_t max);
void	buf_free(struct buf *);
void	buf_reset(struct buf *);
int	buf_reserve(struct buf *, size_t extra);
int	buf_add(struct buf *, const void *, size_t);
int	buf_addc(struct buf *, int);
int	buf_adds(struct buf *, const char *);
int	buf_addf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vaddf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
void	buf_consume(struct buf *, size_t);
/* write all of p[0..n) to fd (short writes and EINTR retried); 0 or -1 */
int	write_all(int fd, const void *p, size_t n);

#endif

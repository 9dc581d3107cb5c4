/*
 * authpool - password hashes computed off the lookup process's event loop.
 *
 * A yescrypt check costs tens of milliseconds by design; done inline it
 * would hold up every recipient lookup behind a burst of logins (a cheap
 * denial of service). Checks go to AUTHPOOL_THREADS worker threads; the
 * loop learns of finished ones through a pipe. At most AUTHPOOL_QUEUE_MAX
 * wait: more are refused at once (the client gets 454, try later: P5).
 * The threads only ever see the password and the hash, never the tables.
 */
#ifndef SLUICE_AUTHPOOL_H
#define SLUICE_AUTHPOOL_H

#include <stdint.h>

#define AUTHPOOL_THREADS	2
#define AUTHPOOL_QUEUE_MAX	256

struct event_base;

/* called in the event loop when a check is done: ok 1 match, 0 not */
typedef void (*authpool_done_cb)(uint32_t id, uint64_t gen, int ok,
	    const char *user, void *arg);

int	authpool_init(struct event_base *, authpool_done_cb, void *arg);
/*
 * Queue a check of pass against hash (an empty hash: a dummy check that
 * never matches, costing the same); user is handed back as it is. 0, or
 * -1 when the queue is full or memory is short.
 */
int	authpool_submit(uint32_t id, uint64_t gen, const char *user,
	    const char *hash, const char *pass);
/* crypt(3) check (any scheme libxcrypt knows), constant-time compare */
int	authpool_verify(const char *pass, const char *hash);

#endif

/*
 * authpool - password checks in worker threads. See authpool.h.
 */
#include <sys/queue.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "authpool.h"
#include "log.h"

struct job {
	STAILQ_ENTRY(job) entry;
	uint32_t	 id;
	uint64_t	 gen;
	int		 ok;
	char		 user[256];
	char		 hash[512];
	char		 pass[1025];
};
STAILQ_HEAD(jobq, job);

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 more;
	struct jobq	 todo, done;
	unsigned	 queued;	/* in todo or being worked on */
	int		 pipe[2];
	struct event	*ev;
	authpool_done_cb cb;
	void		*arg;
	char		 dummy[CRYPT_OUTPUT_SIZE];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER,
	   .more = PTHREAD_COND_INITIALIZER };

int
authpool_verify(const char *pass, const char *hash)
{
	struct crypt_data	*cd;
	int			 ok = 0;
	size_t			 hl = strlen(hash);

	if (hl == 0 || (cd = calloc(1, sizeof(*cd))) == NULL)
		return 0;
	if (crypt_rn(pass, hash, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*' && strlen(cd->output) == hl)
		ok = CRYPTO_memcmp(cd->output, hash, hl) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* a hash of a random password: what "no such user" is checked against */
static void
dummy_init(void)
{
	char		 setting[CRYPT_GENSALT_OUTPUT_SIZE], pw[33];
	unsigned char	 rnd[16];
	struct crypt_data *cd;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) ==
	    NULL || (cd = calloc(1, sizeof(*cd))) == NULL)
		return;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	if (crypt_rn(pw, setting, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*')
		snprintf(pool.dummy, sizeof(pool.dummy), "%s", cd->output);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

static void *
worker(void *arg)
{
	struct job	*j;
	char		 one = 1;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&pool.lock);
		while ((j = STAILQ_FIRST(&pool.todo)) == NULL)
			pthread_cond_wait(&pool.more, &pool.lock);
		STAILQ_REMOVE_HEAD(&pool.todo, entry);
		pthread_mutex_unlock(&pool.lock);

		if (j->hash[0])
			j->ok = authpool_verify(j->pass, j->hash);
		else {
			authpool_verify(j->pass, pool.dummy);
			j->ok = 0;
		}
		explicit_bzero(j->pass, sizeof(j->pass));
		explicit_bzero(j->hash, sizeof(j->hash));

		pthread_mutex_lock(&pool.lock);
		STAILQ_INSERT_TAIL(&pool.done, j, entry);
		pthread_mutex_unlock(&pool.lock);
		while (write(pool.pipe[1], &one, 1) == -1 && errno == EINTR)
			;
	}
	return NULL;
}

/* the loop's side: hand finished checks to the callback */
static void
on_done(int fd, short ev, void *arg)
{
	struct jobq	 done = STAILQ_HEAD_INITIALIZER(done);
	struct job	*j;
	char		 buf[256];

	(void)ev;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&pool.lock);
	STAILQ_CONCAT(&done, &pool.done);
	pthread_mutex_unlock(&pool.lock);
	while ((j = STAILQ_FIRST(&done)) != NULL) {
		STAILQ_REMOVE_HEAD(&done, entry);
		pool.queued--;
		pool.cb(j->id, j->gen, j->ok, j->user, pool.arg);
		free(j);
	}
}

int
authpool_init(struct event_base *base, authpool_done_cb cb, void *arg)
{
	pthread_t	 t;
	sigset_t	 all, old;

	STAILQ_INIT(&pool.todo);
	STAILQ_INIT(&pool.done);
	pool.cb = cb;
	pool.arg = arg;
	dummy_init();
	if (pipe2(pool.pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	if ((pool.ev = event_new(base, pool.pipe[0], EV_READ | EV_PERSIST,
	    on_done, NULL)) == NULL || event_add(pool.ev, NULL) == -1)
		return -1;
	/* signals stay with the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < AUTHPOOL_THREADS; i++)
		if (pthread_create(&t, NULL, worker, NULL) != 0 ||
		    pthread_detach(t) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

int
authpool_submit(uint32_t id, uint64_t gen, const char *user,
    const char *hash, const char *pass)
{
	struct job	*j;

	if (pool.queued >= AUTHPOOL_QUEUE_MAX ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->id = id;
	j->gen = gen;
	if ((size_t)snprintf(j->user, sizeof(j->user), "%s", user) >=
	    sizeof(j->user) || (size_t)snprintf(j->hash, sizeof(j->hash), "%s",
	    hash) >= sizeof(j->hash) || (size_t)snprintf(j->pass,
	    sizeof(j->pass), "%s", pass) >= sizeof(j->pass)) {
		explicit_bzero(j, sizeof(*j));
		free(j);
		return -1;
	}
	pool.queued++;
	pthread_mutex_lock(&pool.lock);
	STAILQ_INSERT_TAIL(&pool.todo, j, entry);
	pthread_cond_signal(&pool.more);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

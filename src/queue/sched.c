/*
 * sched - the retry schedule: a binary min-heap of waiting messages keyed
 * by the time their first recipient is due, so a pass costs O(log n) per
 * message that is due and nothing for the thousands that are not.
 *
 * A message is in the heap while it waits and something in it will become
 * due by itself (a pending recipient, or a deferred one with a next try);
 * held messages and those only waiting for a route are not: an operator
 * request or a change of the online state puts them back (sched_update).
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "queue.h"

static struct qmsg	**heap;
static size_t		  nheap, capheap;

/* When m is next due, or SCHED_NEVER. */
time_t
sched_due(const struct qmsg *m)
{
	time_t	 due = SCHED_NEVER;

	if (m->env.flags & ENV_F_HELD)
		return SCHED_NEVER;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		const struct env_rcpt *r = &m->env.rcpts[i];
		if (r->state == RCPT_PENDING)
			return 0;
		if (r->state == RCPT_DEFERRED && r->next_try < due)
			due = r->next_try;
	}
	return due;
}

static void
put(size_t i, struct qmsg *m)
{
	heap[i] = m;
	m->hidx = i + 1;
}

static void
up(size_t i)
{
	struct qmsg	*m = heap[i];

	while (i > 0 && heap[(i - 1) / 2]->due > m->due) {
		put(i, heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	put(i, m);
}

static void
down(size_t i)
{
	struct qmsg	*m = heap[i];
	size_t		 c;

	while ((c = 2 * i + 1) < nheap) {
		if (c + 1 < nheap && heap[c + 1]->due < heap[c]->due)
			c++;
		if (heap[c]->due >= m->due)
			break;
		put(i, heap[c]);
		i = c;
	}
	put(i, m);
}

void
sched_del(struct qmsg *m)
{
	size_t	 i;

	if (m->hidx == 0)
		return;
	i = m->hidx - 1;
	m->hidx = 0;
	if (--nheap == i)
		return;
	put(i, heap[nheap]);
	if (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due)
		up(i);
	else
		down(i);
}

/* (Re)insert m by its due time; -1 only without memory (m then waits
   for a flush or the next restart, and the caller logs it). */
int
sched_update(struct qmsg *m)
{
	struct qmsg	**n;

	sched_del(m);
	if ((m->due = sched_due(m)) == SCHED_NEVER)
		return 0;
	if (nheap == capheap) {
		size_t cap = capheap ? capheap * 2 : 64;
		if ((n = reallocarray(heap, cap, sizeof(*n))) == NULL)
			return -1;
		heap = n;
		capheap = cap;
	}
	put(nheap, m);
	up(nheap++);
	return 0;
}

struct qmsg *
sched_top(void)
{
	return nheap ? heap[0] : NULL;
}

/* sched: the retry heap against a brute-force model (sched.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue.h"

#define N	300

static struct qmsg	 msgs[N];
static struct env_rcpt	 rcpts[N][2];
static int		 in[N];

/* the model: the smallest due among messages in the heap */
static time_t
model_min(void)
{
	time_t	 min = SCHED_NEVER;

	for (size_t i = 0; i < N; i++)
		if (in[i] && msgs[i].due < min)
			min = msgs[i].due;
	return min;
}

static void
set_due(size_t i, unsigned r)
{
	struct qmsg	*m = &msgs[i];

	m->env.flags = 0;
	rcpts[i][0].state = RCPT_DEFERRED;
	rcpts[i][0].next_try = 1000 + (time_t)(r % 5000);
	rcpts[i][1].state = RCPT_DELIVERED;
	switch (r % 7) {
	case 0:
		rcpts[i][1].state = RCPT_PENDING;	/* due now */
		break;
	case 1:
		m->env.flags = ENV_F_HELD;		/* never */
		break;
	case 2:
		rcpts[i][0].state = RCPT_WAITING;	/* never by itself */
		break;
	}
}

static void
test_due(void **state)
{
	struct qmsg	*m = &msgs[0];

	(void)state;
	m->env.rcpts = rcpts[0];
	m->env.nrcpts = 2;
	set_due(0, 7 * 3 + 3);
	rcpts[0][1].state = RCPT_DEFERRED;
	rcpts[0][1].next_try = 500;
	assert_int_equal(sched_due(m), 500);
	rcpts[0][1].state = RCPT_PENDING;
	assert_int_equal(sched_due(m), 0);
	m->env.flags = ENV_F_HELD;
	assert_true(sched_due(m) == SCHED_NEVER);
	m->env.flags = 0;
	rcpts[0][0].state = RCPT_WAITING;
	rcpts[0][1].state = RCPT_BOUNCED;
	assert_true(sched_due(m) == SCHED_NEVER);
}

static void
test_against_model(void **state)
{
	unsigned	 seed = 12345;
	struct qmsg	*top;

	(void)state;
	memset(msgs, 0, sizeof(msgs));
	memset(in, 0, sizeof(in));
	for (size_t i = 0; i < N; i++) {
		msgs[i].env.rcpts = rcpts[i];
		msgs[i].env.nrcpts = 2;
	}
	for (int step = 0; step < 20000; step++) {
		size_t i;

		seed = seed * 1103515245 + 12345;
		i = (seed >> 8) % N;
		seed = seed * 1103515245 + 12345;
		switch ((seed >> 8) % 3) {
		case 0:
		case 1:		/* (re)schedule with a new due time */
			set_due(i, seed >> 4);
			assert_int_equal(sched_update(&msgs[i]), 0);
			in[i] = sched_due(&msgs[i]) != SCHED_NEVER;
			break;
		default:	/* taken out (started, deleted) */
			sched_del(&msgs[i]);
			in[i] = 0;
			break;
		}
		assert_int_equal(msgs[i].hidx != 0, in[i]);
		top = sched_top();
		if (model_min() == SCHED_NEVER)
			assert_null(top);
		else {
			assert_non_null(top);
			assert_true(top->due == model_min());
		}
	}
	/* popping gives non-decreasing due times */
	time_t last = 0;
	while ((top = sched_top()) != NULL) {
		assert_true(top->due >= last);
		last = top->due;
		sched_del(top);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

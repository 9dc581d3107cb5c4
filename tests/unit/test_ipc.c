/*
 * test_ipc - frames between processes: the checking reader, and a real
 * SOCK_SEQPACKET pair with a descriptor passed along (P10).
 */
#include <sys/socket.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ipc.h"

static struct ipc_msg
msg_of(const struct buf *b)
{
	struct ipc_msg	 m;

	memset(&m, 0, sizeof(m));
	m.data = (const unsigned char *)b->data;
	m.len = b->len;
	m.fd = -1;
	return m;
}

static void
test_round_trip(void **state)
{
	struct buf	 b;
	struct ipc_msg	 m;
	struct ipc_rd	 rd;
	char		 s[16];
	size_t		 n;
	const char	*p;

	(void)state;
	buf_init(&b, 1024);
	ipc_put_u32(&b, 7);
	ipc_put_u64(&b, 1ULL << 40);
	ipc_put_str(&b, "hello");
	ipc_put_mem(&b, "a\0b", 3);
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	assert_int_equal(ipc_get_u32(&rd), 7);
	assert_true(ipc_get_u64(&rd) == 1ULL << 40);
	ipc_get_str(&rd, s, sizeof(s));
	assert_string_equal(s, "hello");
	p = ipc_get_mem(&rd, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "a\0b", 3);
	assert_int_equal(ipc_get_end(&rd), 0);
	buf_free(&b);
}

static void
test_reader_refuses_defects(void **state)
{
	struct buf	 b;
	struct ipc_msg	 m;
	struct ipc_rd	 rd;
	char		 s[4];

	(void)state;
	buf_init(&b, 1024);
	/* a string longer than the destination */
	ipc_put_str(&b, "toolong");
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	ipc_get_str(&rd, s, sizeof(s));
	assert_string_equal(s, "");
	assert_int_equal(ipc_get_end(&rd), -1);
	/* a string holding a NUL */
	buf_reset(&b);
	ipc_put_mem(&b, "a\0", 2);
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	ipc_get_str(&rd, s, sizeof(s));
	assert_int_equal(ipc_get_end(&rd), -1);
	/* a length pointing past the end */
	buf_reset(&b);
	ipc_put_u32(&b, 1000);
	buf_add(&b, "abc", 3);
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	ipc_get_str(&rd, s, sizeof(s));
	assert_int_equal(ipc_get_end(&rd), -1);
	/* a short frame */
	buf_reset(&b);
	buf_add(&b, "ab", 2);
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	assert_int_equal(ipc_get_u32(&rd), 0);
	assert_int_equal(ipc_get_end(&rd), -1);
	/* bytes left over */
	buf_reset(&b);
	ipc_put_u32(&b, 1);
	ipc_put_u32(&b, 2);
	m = msg_of(&b);
	ipc_rd_init(&rd, &m);
	assert_int_equal(ipc_get_u32(&rd), 1);
	assert_int_equal(ipc_get_end(&rd), -1);
	buf_free(&b);
}

struct got {
	int		 n;
	uint32_t	 id;
	char		 text[32];
	int		 fd;
	int		 closed;
	struct event_base *base;
};

static void
on_ping(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct got	*g = arg;
	struct ipc_rd	 rd;

	(void)c;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, g->text, sizeof(g->text));
	if (ipc_get_end(&rd) == 0) {
		g->n++;
		g->id = m->id;
		g->fd = m->fd;
	} else if (m->fd != -1)
		close(m->fd);
	event_base_loopbreak(g->base);
}

static void
on_closed(struct ipc *c, void *arg)
{
	struct got	*g = arg;

	(void)c;
	g->closed = 1;
	event_base_loopbreak(g->base);
}

static const struct ipc_handler handlers[] = {
	{ LOOKUP_RCPT_CHECK, on_ping },
	{ 0, NULL }
};

static void
test_socketpair_with_fd(void **state)
{
	struct event_base	*base = event_base_new();
	struct ipc		*a, *b;
	struct got		 g;
	struct buf		 pl;
	int			 sv[2], pfd[2];
	char			 x;

	(void)state;
	memset(&g, 0, sizeof(g));
	g.fd = -1;
	g.base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(pipe(pfd), 0);
	a = ipc_new(base, sv[0], "a", handlers, &g, on_closed, &g);
	b = ipc_new(base, sv[1], "b", handlers, &g, on_closed, &g);
	assert_non_null(a);
	assert_non_null(b);
	buf_init(&pl, 256);
	ipc_put_str(&pl, "ping");
	/* an unknown type is dropped, the next frame still arrives */
	assert_int_equal(ipc_send_buf(a, QUEUE_MSG_OPEN, 1, -1, &pl), 0);
	assert_int_equal(ipc_send_buf(a, LOOKUP_RCPT_CHECK, 42, pfd[1], &pl),
	    0);
	event_base_dispatch(base);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id, 42);
	assert_string_equal(g.text, "ping");
	assert_true(g.fd >= 0);
	/* the passed descriptor is the pipe's write end */
	assert_int_equal(write(g.fd, "z", 1), 1);
	assert_int_equal(read(pfd[0], &x, 1), 1);
	assert_int_equal(x, 'z');
	close(g.fd);
	/* the peer going away is noticed */
	ipc_free(a);
	event_base_dispatch(base);
	assert_int_equal(g.closed, 1);
	ipc_free(b);
	close(pfd[0]);
	buf_free(&pl);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_reader_refuses_defects),
		cmocka_unit_test(test_socketpair_with_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_io_epoll.c: the epoll backend's persistent registrations
 * (runtime/io_epoll.c): a stream socket that weft_accept or weft_connect
 * connected is registered edge-triggered once per worker, and a recv that drained it waits for the
 * next edge with no system call.  An edge is reported once, so every path
 * where data can be there without an edge to come must make the next op
 * try first; these tests walk those paths one by one.  They set
 * WEFT_EPOLL_CHECK_MS to ten minutes, so a wait that misses its edge is not
 * rescued by the periodic check and hangs until Criterion's timeout: the
 * test fails.  The last tests are the other way round: a number closed and
 * reused behind weft's back is rescued by the check, and checks off
 * (WEFT_EPOLL_CHECK_MS=0, one-shot registrations only) passes the stress
 * test too.  io_uring has no registrations, but it has the same question
 * in smaller form: after a short read a RECV waits for data before it
 * tries (IORING_RECVSEND_POLL_FIRST), so partial_reads and
 * data_before_recv run on it too.
 *
 *   partial_reads        a full read leaves data (try next), a short one
 *                        drains (wait), MSG_PEEK drains nothing
 *   data_before_recv     data whose edge came while no recv waited
 *   send_waits_for_room  a send that fills the socket waits for room, three
 *                        times over
 *   reused_number        close() and dup2() behind weft's back: the check
 *                        re-registers the number within WEFT_EPOLL_CHECK_MS
 *   stress               two workers (fibers migrate, so a socket is
 *                        registered in both sets), many connections, random
 *                        message and buffer sizes, every byte checked
 */
#include "test_io_util.h"

#include <fcntl.h>
#include <stdatomic.h>

/* Long enough that a missed edge hangs the test (minutes). */
#define NO_CHECK_MS "600000"

static weft_runtime_t *ep_rt(unsigned workers, const char *check_ms)
{
	cr_assert_eq(setenv("WEFT_EPOLL_CHECK_MS", check_ms, 1), 0);
	return io_rt(WEFT_IO_EPOLL, workers);
}

/* ---- a connection that weft made, both ends --------------------------- */

struct acc {
	int lfd, cli, srv, conn_rc;
	struct sockaddr_in addr;
	struct t_latch done;
};

static void acc_fiber(void *p)
{
	struct acc *a = p;

	a->conn_rc = weft_connect(a->cli, (struct sockaddr *)&a->addr, sizeof a->addr);
	a->srv = weft_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
	t_latch_done(&a->done);
}

/* *cli: a socket that weft_connect connected; *srv: its peer, accepted by
 * weft_accept; both on rt, so both registered persistently. */
static void ep_pair(weft_runtime_t *rt, int *cli, int *srv)
{
	struct acc a = { .srv = -1, .conn_rc = -1 };

	a.lfd = io_listener(&a.addr);
	a.cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(a.cli, 0);
	t_latch_init(&a.done, 1);
	IO_GO(rt, acc_fiber, &a);
	t_latch_wait(&a.done);
	t_latch_fini(&a.done);
	cr_assert_eq(a.conn_rc, 0, "weft_connect = %d", a.conn_rc);
	cr_assert_geq(a.srv, 0, "weft_accept = %d", a.srv);
	close(a.lfd);
	/* The epoll CONNECT left it non-blocking; the test thread reads and
	 * writes it with plain blocking calls (weft's own ops do not care). */
	cr_assert_eq(fcntl(a.cli, F_SETFL, fcntl(a.cli, F_GETFL) & ~O_NONBLOCK), 0);
	*cli = a.cli;
	*srv = a.srv;
}

/* The test thread and one fiber take turns.  The fiber announces step n
 * and goes on (announce: typically into a recv that waits) or waits there
 * until the test thread lets it go (fiber_reached); the test thread waits
 * for the announcement (test_reached), then acts. */
struct turns {
	atomic_int at;   /* the step the fiber has reached */
	atomic_int go;   /* the step the test thread has finished */
};

static void announce(struct turns *t, int step)
{
	atomic_store(&t->at, step);
}

static void fiber_reached(struct turns *t, int step)
{
	announce(t, step);
	while (atomic_load(&t->go) < step)
		weft_sleep(200000); /* 0.2 ms: the worker polls meanwhile */
}

static void test_reached(struct turns *t, int step)
{
	double until = t_now() + 30.0;

	while (atomic_load(&t->at) < step && t_now() < until)
		t_sleep_ms(1);
	cr_assert_geq(atomic_load(&t->at), step, "the fiber never reached step %d", step);
}

static void put(int fd, const char *s)
{
	size_t n = strlen(s);
	cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

/* After step n, once the fiber's recv has had time to wait, send s. */
static void put_when_waiting(struct turns *t, int step, int fd, const char *s)
{
	test_reached(t, step);
	t_sleep_ms(20);
	put(fd, s);
}

/* One fiber's recvs on fd, in turns with the test thread: result i of
 * recv i in r[i], its bytes in got[i]. */
struct rx {
	int fd;
	struct turns t;
	ssize_t r[8];
	char got[8][80];
	struct t_latch done;
};

/* One worker on backend (epoll: checks off), a connection that weft made,
 * and fn(c) on a fiber that receives on c->fd in turns with the test
 * thread; *cli: the other end. */
static weft_runtime_t *rx_start(int backend, struct rx *c, int *cli, weft_task_fn fn)
{
	weft_runtime_t *rt = backend == WEFT_IO_EPOLL ? ep_rt(1, NO_CHECK_MS) : io_rt(backend, 1);

	c->fd = -1;
	ep_pair(rt, cli, &c->fd);
	t_latch_init(&c->done, 1);
	IO_GO(rt, fn, c);
	return rt;
}

/* Once the fiber is done: close both ends, destroy the runtime. */
static void rx_end(weft_runtime_t *rt, struct rx *c, int cli)
{
	t_latch_fini(&c->done);
	weft_close(c->fd);
	close(cli);
	t_destroy(rt);
}

/* ---- partial_reads --------------------------------------------------- */

static void pr_fiber(void *p)
{
	struct rx *c = p;

	/* Waits, so the socket gets registered; one byte drains it. */
	announce(&c->t, 1);
	c->r[0] = weft_recv(c->fd, c->got[0], 64, 0);
	/* Drained: waits for the edge of 100 bytes, reads 64 of them (a
	 * full read may leave some), so the next recv must try: 36. */
	announce(&c->t, 2);
	c->r[1] = weft_recv(c->fd, c->got[1], 64, 0);
	c->r[2] = weft_recv(c->fd, c->got[2], 64, 0);
	/* Drained again: waits. */
	announce(&c->t, 3);
	c->r[3] = weft_recv(c->fd, c->got[3], 64, 0);
	/* A peek that the edge woke takes nothing away: the recv after it
	 * must find the data (no new edge will come for it). */
	announce(&c->t, 4);
	c->r[4] = weft_recv(c->fd, c->got[4], 64, MSG_PEEK);
	c->r[5] = weft_recv(c->fd, c->got[5], 64, 0);
	announce(&c->t, 5);
	c->r[6] = weft_recv(c->fd, c->got[6], 64, 0);
	t_latch_done(&c->done);
}

static void partial_reads(int backend)
{
	struct rx c = { .fd = -1 };
	char hundred[101];
	int cli;
	weft_runtime_t *rt = rx_start(backend, &c, &cli, pr_fiber);

	memset(hundred, 'a', 100);
	hundred[100] = 0;
	put_when_waiting(&c.t, 1, cli, "x");
	put_when_waiting(&c.t, 2, cli, hundred);
	put_when_waiting(&c.t, 3, cli, "0123456789");
	put_when_waiting(&c.t, 4, cli, "peek me");
	put_when_waiting(&c.t, 5, cli, "!");
	t_latch_wait(&c.done);
	cr_assert_eq(c.r[0], 1);
	cr_assert_eq(c.r[1], 64);
	cr_assert_eq(c.r[2], 36);
	cr_assert_eq(c.r[3], 10);
	cr_assert_eq(memcmp(c.got[3], "0123456789", 10), 0);
	cr_assert_eq(c.r[4], 7);
	cr_assert_eq(c.r[5], 7);
	cr_assert_eq(memcmp(c.got[5], "peek me", 7), 0);
	cr_assert_eq(c.r[6], 1);
	cr_assert_eq(c.got[6][0], '!');
	rx_end(rt, &c, cli);
}

Test(io_epoll, partial_reads, .timeout = IO_TIMEOUT) { partial_reads(WEFT_IO_EPOLL); }
Test(io_uring, partial_reads, .timeout = IO_TIMEOUT) { partial_reads(WEFT_IO_URING); }

/* ---- data_before_recv ------------------------------------------------- */

static void db_fiber(void *p)
{
	struct rx *c = p;

	announce(&c->t, 1);
	c->r[0] = weft_recv(c->fd, c->got[0], sizeof c->got[0], 0); /* waits, drains */
	fiber_reached(&c->t, 2);
	/* The data came while this fiber slept in fiber_reached: its edge
	 * went by with no recv waiting.  This recv must try first. */
	c->r[1] = weft_recv(c->fd, c->got[1], sizeof c->got[1], 0);
	t_latch_done(&c->done);
}

static void data_before_recv(int backend)
{
	struct rx c = { .fd = -1 };
	int cli;
	weft_runtime_t *rt = rx_start(backend, &c, &cli, db_fiber);

	put_when_waiting(&c.t, 1, cli, "first");
	test_reached(&c.t, 2);
	put(cli, "early");
	t_sleep_ms(20); /* the worker reaps the edge, nobody waits */
	atomic_store(&c.t.go, 2);
	t_latch_wait(&c.done);
	cr_assert_eq(c.r[0], 5);
	cr_assert_eq(c.r[1], 5);
	cr_assert_eq(memcmp(c.got[1], "early", 5), 0);
	rx_end(rt, &c, cli);
}

Test(io_epoll, data_before_recv, .timeout = IO_TIMEOUT) { data_before_recv(WEFT_IO_EPOLL); }
Test(io_uring, data_before_recv, .timeout = IO_TIMEOUT) { data_before_recv(WEFT_IO_URING); }

/* weft_send until all of buf is gone (weft_write_all sends WRITE ops; the
 * epoll backend tries a SEND before it takes the worker's lock, which is
 * another path). */
static ssize_t send_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = weft_send(fd, (const char *)buf + done, len - done, 0);
		if (r <= 0)
			return r < 0 ? r : (ssize_t)done;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* ---- send_waits_for_room ---------------------------------------------- */

#define SW_ROUNDS 3
#define SW_BYTES (1 << 20)

struct sw {
	int fd;
	ssize_t r[SW_ROUNDS];
	unsigned char *buf;
	struct t_latch done;
};

static void sw_fiber(void *p)
{
	struct sw *c = p;

	/* Each round fills the socket (the reader is not reading yet), so
	 * the send waits for room, more than once. */
	for (int i = 0; i < SW_ROUNDS; i++)
		c->r[i] = send_all(c->fd, c->buf + (size_t)i * SW_BYTES, SW_BYTES);
	t_latch_done(&c->done);
}

Test(io_epoll, send_waits_for_room, .timeout = IO_TIMEOUT)
{
	weft_runtime_t *rt = ep_rt(1, NO_CHECK_MS);
	struct sw c = { .fd = -1 };
	size_t total = (size_t)SW_ROUNDS * SW_BYTES, got = 0;
	unsigned char *in = malloc(65536);
	int cli, small = 16384;

	cr_assert_not_null(in);
	c.buf = malloc(total);
	cr_assert_not_null(c.buf);
	io_fill(c.buf, total, 7, 0);
	ep_pair(rt, &cli, &c.fd);
	cr_assert_eq(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
	t_latch_init(&c.done, 1);
	IO_GO(rt, sw_fiber, &c);
	while (got < total) {
		t_sleep_ms(got % SW_BYTES < 65536 ? 10 : 0); /* let it fill up */
		ssize_t r = read(cli, in, 65536);
		cr_assert_gt(r, 0, "read: %zd (%s)", r, strerror(errno));
		cr_assert_eq(io_mismatch(in, (size_t)r, 7, got), (size_t)r, "byte %zu differs", got);
		got += (size_t)r;
	}
	t_latch_wait(&c.done);
	for (int i = 0; i < SW_ROUNDS; i++)
		cr_assert_eq(c.r[i], (ssize_t)SW_BYTES, "round %d: %zd", i, c.r[i]);
	t_latch_fini(&c.done);
	weft_close(c.fd);
	close(cli);
	free(c.buf);
	free(in);
	t_destroy(rt);
}

/* ---- reused_number ---------------------------------------------------- */

struct ru {
	int fd;
	struct turns t;
	ssize_t r;
	char got[16];
	struct t_latch done;
};

static void ru_recv_fiber(void *p)
{
	struct ru *c = p;

	announce(&c->t, atomic_load(&c->t.at) + 1);
	c->r = weft_recv(c->fd, c->got, sizeof c->got, 0);
	t_latch_done(&c->done);
}

Test(io_epoll, reused_number, .timeout = IO_TIMEOUT)
{
	weft_runtime_t *rt = ep_rt(1, "50");
	struct ru c = { .fd = -1 };
	int cli, sv[2];
	double t0, took;

	/* A drained recv on a socket weft accepted: the number's
	 * registration is trusted, and the next recv will not ask the
	 * kernel. */
	ep_pair(rt, &cli, &c.fd);
	t_latch_init(&c.done, 1);
	IO_GO(rt, ru_recv_fiber, &c);
	put_when_waiting(&c.t, 1, cli, "one"); /* it waits: registered */
	t_latch_wait(&c.done);
	cr_assert_eq(c.r, 3);
	/* Behind weft's back: close the number and give it to another
	 * socket, which the worker's set has never seen. */
	cr_assert_eq(close(c.fd), 0);
	close(cli);
	io_socketpair(sv);
	cr_assert_eq(dup2(sv[0], c.fd), c.fd);
	close(sv[0]);
	t_latch_init(&c.done, 1);
	t0 = t_now();
	IO_GO(rt, ru_recv_fiber, &c);
	put_when_waiting(&c.t, 2, sv[1], "two");
	t_latch_wait(&c.done);
	took = t_now() - t0;
	cr_assert_eq(c.r, 3, "recv = %zd", c.r);
	cr_assert_eq(memcmp(c.got, "two", 3), 0);
	/* Rescued by the check (50 ms), not by luck: bounded well below
	 * Criterion's timeout. */
	cr_assert_lt(took, 10.0, "took %.3f s", took);
	t_latch_fini(&c.done);
	weft_close(c.fd);
	close(sv[1]);
	t_destroy(rt);
}

/* ---- stress ----------------------------------------------------------- */

struct st_conn {
	int srv, cli;
	uint64_t bytes;
	uint64_t seed;
	atomic_ullong echoed;   /* bytes the server fiber sent back */
	atomic_ullong verified; /* bytes the client fiber got back, checked */
	atomic_int bad;
};

static uint64_t st_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Echo what comes, in reads of random size, until end of file. */
static void st_server(void *p)
{
	struct st_conn *c = p;
	unsigned char buf[97];
	uint64_t x = c->seed | 1;
	ssize_t r;

	while ((r = weft_recv(c->srv, buf, 1 + st_rand(&x) % sizeof buf, 0)) > 0) {
		if (send_all(c->srv, buf, (size_t)r) != r) {
			atomic_store(&c->bad, 1);
			break;
		}
		atomic_fetch_add(&c->echoed, (unsigned long long)r);
		if (st_rand(&x) % 8 == 0)
			weft_yield(); /* a chance to move to the other worker */
	}
	weft_close(c->srv);
}

/* Send the stream in random chunks and read the echo back, checking it. */
static void st_client(void *p)
{
	struct st_conn *c = p;
	unsigned char out[211], in[256];
	uint64_t x = c->seed * 3 + 1, sent = 0, back = 0;

	while (back < c->bytes) {
		if (sent < c->bytes && sent - back < 4096) {
			size_t n = 1 + st_rand(&x) % sizeof out;
			if (n > c->bytes - sent)
				n = (size_t)(c->bytes - sent);
			io_fill(out, n, c->seed, sent);
			if (weft_write_all(c->cli, out, n, -1) != (ssize_t)n)
				break;
			sent += n;
			continue;
		}
		ssize_t r = weft_recv(c->cli, in, 1 + st_rand(&x) % sizeof in, 0);
		if (r <= 0)
			break;
		if (io_mismatch(in, (size_t)r, c->seed, back) != (size_t)r)
			atomic_store(&c->bad, 1);
		back += (uint64_t)r;
		atomic_store(&c->verified, (unsigned long long)back);
	}
	shutdown(c->cli, SHUT_WR);
}

static void stress(const char *check_ms)
{
	unsigned nconn = t_quick() ? 8 : 32;
	uint64_t bytes = t_quick() ? 20000 : 200000;
	weft_runtime_t *rt = ep_rt(2, check_ms);
	struct st_conn *c = calloc(nconn, sizeof *c);
	struct io_wg wg;

	cr_assert_not_null(c);
	io_wg_init(&wg);
	for (unsigned i = 0; i < nconn; i++) {
		ep_pair(rt, &c[i].cli, &c[i].srv);
		c[i].bytes = bytes;
		c[i].seed = 1000 + i;
	}
	for (unsigned i = 0; i < nconn; i++) {
		cr_assert_eq(io_wg_go_rt(rt, &wg, st_server, &c[i]), 0);
		cr_assert_eq(io_wg_go_rt(rt, &wg, st_client, &c[i]), 0);
	}
	io_finish(rt, &wg);
	for (unsigned i = 0; i < nconn; i++) {
		cr_assert_eq(atomic_load(&c[i].bad), 0, "connection %u: wrong bytes", i);
		cr_assert_eq(atomic_load(&c[i].verified), bytes, "connection %u: %llu of %llu bytes back", i,
		             (unsigned long long)atomic_load(&c[i].verified), (unsigned long long)bytes);
		cr_assert_eq(atomic_load(&c[i].echoed), bytes);
		close(c[i].cli);
	}
	free(c);
}

Test(io_epoll, stress, .timeout = IO_TIMEOUT)
{
	stress(NO_CHECK_MS);
}

Test(io_epoll, stress_one_shot_only, .timeout = IO_TIMEOUT)
{
	stress("0");
}

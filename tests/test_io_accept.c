/*
 * test_io_accept.c: WEFT_OP_ACCEPT_MULTI, one submission that accepts
 * connections until it is stopped (weft.h).  Every test runs on both
 * backends.  (Its end by EMFILE is checked in test_io_errors.c, which has
 * the descriptor-limit setup.)
 *
 * What is checked: every connection is handed to exactly one callback; the
 * callbacks of the op never overlap (each spins a little, so that two
 * running at once on the two workers would be seen); exactly one last
 * callback with a negative result, and none after it; that result says
 * what stopped the op (cancel, close, timeout, destroy).
 */
#include "test_io_util.h"

#include <stdatomic.h>
#include <time.h>

/* Client threads connecting at once in the stress test. */
#define AM_CLIENTS 4

struct am {
	int lfd;
	struct sockaddr_in addr;
	int nconn;
	weft_op_t op;
	_Atomic uint8_t *seen;   /* [nconn]: times connection i was read */
	atomic_int in_cb;        /* callbacks of op running now */
	atomic_int overlaps;     /* a callback found another one running */
	atomic_int finals;       /* callbacks with a negative result */
	atomic_int after_final;  /* callbacks that came after the last one */
	ssize_t final;
	struct t_latch all_read; /* nconn connections read */
	struct t_latch ended;    /* the last callback ran */
	struct io_wg wg;         /* the per-connection fibers */
};

struct am_conn {
	struct am *m;
	int fd;
};

static void am_spin_us(long us)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

/* A connection's fiber: read the client's id, mark it, close. */
static void am_conn_fiber(void *p)
{
	struct am_conn c = *(struct am_conn *)p;
	uint32_t id = UINT32_MAX;

	free(p);
	ssize_t r = weft_read_full(c.fd, &id, sizeof id, -1);
	T_CHECK_EQ(r, (ssize_t)sizeof id);
	if (r == (ssize_t)sizeof id && id < (uint32_t)c.m->nconn)
		atomic_fetch_add(&c.m->seen[id], 1);
	else
		t_fail_at(__FILE__, __LINE__, "connection id %u (read %zd)", id, r);
	T_CHECK_EQ(weft_close(c.fd), 0);
	t_latch_done(&c.m->all_read);
}

static void am_cb(weft_op_t *op)
{
	struct am *m = op->data;

	if (atomic_fetch_add(&m->in_cb, 1) != 0)
		atomic_fetch_add(&m->overlaps, 1);
	if (atomic_load(&m->finals))
		atomic_fetch_add(&m->after_final, 1);
	if (op->result >= 0) {
		struct am_conn *c = malloc(sizeof *c);
		if (!c) {
			t_fail_at(__FILE__, __LINE__, "malloc");
			close((int)op->result);
		} else {
			c->m = m;
			c->fd = (int)op->result;
			io_wg_go_here(&m->wg, am_conn_fiber, c);
		}
		am_spin_us(20);
		atomic_fetch_sub(&m->in_cb, 1);
		return;
	}
	m->final = op->result;
	atomic_fetch_sub(&m->in_cb, 1);
	atomic_fetch_add(&m->finals, 1);
	t_latch_done(&m->ended); /* last: the test may go on from here */
}

static void am_init(struct am *m, int nconn)
{
	memset(m, 0, sizeof *m);
	m->lfd = io_listener(&m->addr);
	m->nconn = nconn;
	m->seen = calloc((size_t)(nconn ? nconn : 1), 1);
	cr_assert_not_null(m->seen);
	t_latch_init(&m->all_read, nconn);
	t_latch_init(&m->ended, 1);
	io_wg_init(&m->wg);
	m->op.opcode = WEFT_OP_ACCEPT_MULTI;
	m->op.fd = m->lfd;
	m->op.flags = SOCK_CLOEXEC;
	m->op.cb = am_cb;
	m->op.data = m;
}

/* Connect and send ids lo..hi-1, one connection at a time. */
static void am_connect_range(const struct am *m, int lo, int hi)
{
	for (int i = lo; i < hi; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		T_CHECK(c >= 0);
		if (c < 0)
			return;
		int rc = connect(c, (const struct sockaddr *)&m->addr, sizeof m->addr);
		T_CHECK_EQ(rc, 0);
		uint32_t id = (uint32_t)i;
		if (rc == 0)
			T_CHECK_EQ(send(c, &id, sizeof id, MSG_NOSIGNAL), (ssize_t)sizeof id);
		close(c);
	}
}

struct am_client {
	const struct am *m;
	int lo, hi;
};

static void *am_client_main(void *p)
{
	struct am_client *c = p;
	am_connect_range(c->m, c->lo, c->hi);
	return NULL;
}

/* Once rt is destroyed: what every test checks, then clean up. */
static void am_check(struct am *m, ssize_t want_final)
{
	T_ASSERT_CLEAN();
	for (int i = 0; i < m->nconn; i++)
		cr_assert_eq(m->seen[i], 1, "connection %d handed over %d times", i, m->seen[i]);
	cr_assert_eq(atomic_load(&m->overlaps), 0, "callbacks of one op overlapped %d times",
	             atomic_load(&m->overlaps));
	cr_assert_eq(atomic_load(&m->finals), 1, "last callbacks: %d", atomic_load(&m->finals));
	cr_assert_eq(atomic_load(&m->after_final), 0, "callbacks after the last one: %d",
	             atomic_load(&m->after_final));
	cr_assert_eq(m->final, want_final, "last result %zd (%s), expected %zd", m->final,
	             weft_strerror((int)m->final), want_final);
	io_wg_fini(&m->wg);
	t_latch_fini(&m->all_read);
	t_latch_fini(&m->ended);
	if (m->lfd >= 0)
		close(m->lfd);
	free(m->seen);
}

/* Wait for the last callback and the connections' fibers, destroy rt,
 * check. */
static void am_finish(weft_runtime_t *rt, struct am *m, ssize_t want_final)
{
	t_latch_wait(&m->ended);
	io_wg_wait(&m->wg);
	t_destroy(rt);
	am_check(m, want_final);
}

/* Many clients at once; the op submitted from outside, cancelled from
 * outside once every connection was read. */
IO_TEST(accept_multi, every_connection_once)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct am m;
	am_init(&m, (int)t_size(2000, 200));
	cr_assert_eq(weft_op_submit(rt, &m.op), 0);

	pthread_t th[AM_CLIENTS];
	struct am_client cl[AM_CLIENTS];
	for (int i = 0; i < AM_CLIENTS; i++) {
		cl[i] = (struct am_client){ &m, m.nconn * i / AM_CLIENTS, m.nconn * (i + 1) / AM_CLIENTS };
		cr_assert_eq(pthread_create(&th[i], NULL, am_client_main, &cl[i]), 0);
	}
	for (int i = 0; i < AM_CLIENTS; i++)
		pthread_join(th[i], NULL);
	t_latch_wait(&m.all_read);
	cr_assert_eq(atomic_load(&m.finals), 0, "the op ended by itself: %zd", m.final);
	cr_assert_eq(weft_op_cancel(&m.op), 0);
	am_finish(rt, &m, -ECANCELED);
}

/* Submitted from a fiber; weft_close of the listener ends it. */
static void am_close_fiber(void *p)
{
	struct am *m = p;

	T_CHECK_EQ(weft_op_submit(weft_runtime_current(), &m->op), 0);
	T_CHECK_EQ(weft_sleep(2000000), 0); /* let it wait in the kernel */
	T_CHECK_EQ(weft_close(m->lfd), 0);
	m->lfd = -1;
}

IO_TEST(accept_multi, close_ends_it)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct am m;
	am_init(&m, 0);
	IO_GO_WG(rt, &m.wg, am_close_fiber, &m);
	am_finish(rt, &m, -ECANCELED);
}

/* timeout_ns bounds the whole submission: connections before it are
 * handed over, then the op ends with -ETIMEDOUT. */
IO_TEST(accept_multi, timeout_ends_it)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct am m;
	am_init(&m, 3);
	m.op.timeout_ns = 300 * 1000000ULL;
	cr_assert_eq(weft_op_submit(rt, &m.op), 0);
	am_connect_range(&m, 0, m.nconn);
	am_finish(rt, &m, -ETIMEDOUT);
}

/* Left running: destroy ends it with -ECANCELED, and its last callback
 * runs before destroy returns. */
IO_TEST(accept_multi, destroy_ends_it)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct am m;
	am_init(&m, 5);
	cr_assert_eq(weft_op_submit(rt, &m.op), 0);
	am_connect_range(&m, 0, m.nconn);
	t_latch_wait(&m.all_read);
	io_wg_wait(&m.wg);
	t_destroy(rt);
	cr_assert_eq(atomic_load(&m.finals), 1, "last callback before destroy returned: %d",
	             atomic_load(&m.finals));
	am_check(&m, -ECANCELED);
}

/* The last callback may submit the op again: it is free then.  The first
 * run ends by timeout; the second runs until cancelled. */
static void am_again_cb(weft_op_t *op)
{
	if (op->result == -ETIMEDOUT) {
		op->timeout_ns = 0;
		op->cb = am_cb;
		T_CHECK_EQ(weft_op_submit(weft_runtime_current(), op), 0);
		return;
	}
	am_cb(op); /* a connection that came before the timeout fired */
}

IO_TEST(accept_multi, resubmit_from_last_callback)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct am m;
	am_init(&m, 4);
	m.op.timeout_ns = 20 * 1000000ULL;
	m.op.cb = am_again_cb;
	cr_assert_eq(weft_op_submit(rt, &m.op), 0);
	usleep(60000); /* past the first run's timeout */
	am_connect_range(&m, 0, m.nconn);
	t_latch_wait(&m.all_read);
	/* Between the first run's end and its resubmission (if a slow
	 * machine put them this late) the op is not pending: ask again. */
	int rc;
	while ((rc = weft_op_cancel(&m.op)) == -EALREADY)
		usleep(1000);
	cr_assert_eq(rc, 0);
	am_finish(rt, &m, -ECANCELED);
}

static void am_run_fiber(void *p)
{
	weft_op_t *op = p;
	T_CHECK_EQ(weft_op_run(op), -EINVAL);
}

IO_TEST(accept_multi, bad_arguments)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct am m;
	struct sockaddr_in peer;
	am_init(&m, 0);
	m.op.addr = (struct sockaddr *)&peer;
	m.op.addrlen = sizeof peer;
	cr_assert_eq(weft_op_submit(rt, &m.op), -EINVAL, "ACCEPT_MULTI with an address");
	m.op.addr = NULL;
	m.op.addrlen = 0;
	cr_assert_eq(weft_op_run(&m.op), -EINVAL, "weft_op_run(ACCEPT_MULTI) off the workers");
	IO_GO_WG(rt, &m.wg, am_run_fiber, &m.op);
	io_wg_wait(&m.wg);
	cr_assert_eq(weft_op_cancel(&m.op), -EALREADY, "never started");
	/* Still usable afterwards. */
	cr_assert_eq(weft_op_submit(rt, &m.op), 0);
	cr_assert_eq(weft_op_cancel(&m.op), 0);
	am_finish(rt, &m, -ECANCELED);
}

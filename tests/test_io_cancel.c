/*
 * test_io_cancel.c: operations that end early.  Timeouts (-ETIMEDOUT),
 * weft_op_cancel from another fiber and from another thread (-ECANCELED;
 * -EALREADY when the op is not pending), cancel racing completion with no
 * data lost, weft_close of an fd another fiber waits on, and runtime
 * destroy with fibers and callback ops still suspended.  Both backends.
 */
#define _GNU_SOURCE
#include "test_io_util.h"

static void op_recv(weft_op_t *op, int fd, void *buf, size_t len, uint64_t timeout_ns)
{
	memset(op, 0, sizeof *op);
	op->opcode = WEFT_OP_RECV;
	op->fd = fd;
	op->buf = buf;
	op->len = len;
	op->timeout_ns = timeout_ns;
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                             */

struct to_fiber {
	int fd;
	uint64_t timeout;
	ssize_t res;
	uint64_t took;
	struct t_latch *latch;
};

static void to_recv_fiber(void *p)
{
	struct to_fiber *t = p;
	char buf[8];
	weft_op_t op;
	op_recv(&op, t->fd, buf, sizeof buf, t->timeout);
	uint64_t t0 = io_now_ns();
	t->res = weft_op_run(&op);
	t->took = io_now_ns() - t0;
	T_CHECK_EQ(op.result, t->res);
	t_latch_done(t->latch);
}

IO_TEST(cancel, recv_timeout)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	enum { N = 40 };
	int sv[2];
	io_socketpair(sv);
	struct to_fiber t[N];
	struct t_latch l;
	t_latch_init(&l, N);
	for (int i = 0; i < N; i++) {
		/* All on the same silent socket, timeouts 1..40 ms. */
		t[i] = (struct to_fiber){.fd = sv[0], .timeout = (uint64_t)(i + 1) * 1000000ULL, .res = 1, .latch = &l};
		IO_GO(rt, to_recv_fiber, &t[i]);
	}
	t_latch_wait(&l);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(t[i].res, -ETIMEDOUT, "fiber %d: recv with timeout = %zd", i, t[i].res);
		cr_assert_geq(t[i].took, t[i].timeout, "fiber %d: timed out early (%llu of %llu ns)", i,
		              (unsigned long long)t[i].took, (unsigned long long)t[i].timeout);
	}
	/* Nothing was consumed: data sent now is all there. */
	cr_assert_eq(send(sv[1], "after", 5, 0), 5);
	char buf[8];
	cr_assert_eq(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), 5);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	t_latch_fini(&l);
	close(sv[0]);
	close(sv[1]);
}

/* Data before the deadline: the result is the data, promptly. */
struct to_beaten {
	int sv[2];
	ssize_t res;
	uint64_t took;
	char buf[8];
};

static void to_beaten_recv(void *p)
{
	struct to_beaten *t = p;
	weft_op_t op;
	op_recv(&op, t->sv[0], t->buf, sizeof t->buf, 30ULL * 1000000000ULL);
	uint64_t t0 = io_now_ns();
	t->res = weft_op_run(&op);
	t->took = io_now_ns() - t0;
}

static void to_beaten_send(void *p)
{
	struct to_beaten *t = p;
	T_CHECK_EQ(weft_sleep(3000000), 0);
	T_CHECK_EQ(weft_send(t->sv[1], "data", 4, 0), 4);
}

IO_TEST(cancel, data_before_timeout)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct to_beaten t;
	memset(&t, 0, sizeof t);
	io_socketpair(t.sv);
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, to_beaten_recv, &t);
	IO_GO_WG(rt, &wg, to_beaten_send, &t);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(t.res, 4, "recv = %zd", t.res);
	cr_assert_eq(memcmp(t.buf, "data", 4), 0);
	cr_assert_lt(t.took, 10ULL * 1000000000ULL, "recv waited for its timeout although data came");
	close(t.sv[0]);
	close(t.sv[1]);
}

/* Other opcodes with a timeout: accept, poll, send on a full socket. */
struct to_ops {
	int lfd;
	int sv[2];
	ssize_t accept_res, poll_res, send_res, sleep_res;
	size_t filled;
};

static void to_ops_fiber(void *p)
{
	struct to_ops *t = p;
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_ACCEPT;
	op.fd = t->lfd;
	op.timeout_ns = 5000000;
	t->accept_res = weft_op_run(&op);

	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = t->sv[0];
	op.flags = POLLIN;
	op.timeout_ns = 5000000;
	t->poll_res = weft_op_run(&op);

	/* Fill the send buffer without waiting, then a send must wait. */
	static char junk[65536];
	for (;;) {
		ssize_t r = send(t->sv[0], junk, sizeof junk, MSG_DONTWAIT);
		if (r <= 0)
			break;
		t->filled += (size_t)r;
	}
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_SEND;
	op.fd = t->sv[0];
	op.buf = junk;
	op.len = sizeof junk;
	op.timeout_ns = 5000000;
	t->send_res = weft_op_run(&op);

	/* A sleep longer than its timeout is just a sleep (SLEEP uses
	 * timeout_ns as its duration): 0. */
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_SLEEP;
	op.timeout_ns = 1000000;
	t->sleep_res = weft_op_run(&op);
}

IO_TEST(cancel, other_ops_timeout)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct to_ops t;
	memset(&t, 0, sizeof t);
	t.lfd = io_listener(NULL);
	io_socketpair(t.sv);
	t.accept_res = t.poll_res = t.send_res = t.sleep_res = 1;
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, to_ops_fiber, &t);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(t.accept_res, -ETIMEDOUT, "accept = %zd", t.accept_res);
	cr_assert_eq(t.poll_res, -ETIMEDOUT, "poll = %zd", t.poll_res);
	cr_assert_gt(t.filled, 0);
	cr_assert_eq(t.send_res, -ETIMEDOUT, "send on a full socket = %zd", t.send_res);
	cr_assert_eq(t.sleep_res, 0);
	close(t.lfd);
	close(t.sv[0]);
	close(t.sv[1]);
}

/* Timeouts in a plain task and in a callback. */
struct to_task {
	int fd;
	ssize_t res;
};

static void to_task_fn(void *p)
{
	struct to_task *t = p;
	char b[4];
	weft_op_t op;
	op_recv(&op, t->fd, b, sizeof b, 10000000);
	t->res = weft_op_run(&op);
}

struct to_cb {
	weft_op_t op;
	char buf[4];
	ssize_t res;
	atomic_int calls;
	struct t_latch latch;
};

static void to_cb_fn(weft_op_t *op)
{
	struct to_cb *c = op->data;
	c->res = op->result;
	atomic_fetch_add(&c->calls, 1);
	t_latch_done(&c->latch);
}

IO_TEST(cancel, timeout_in_task_and_callback)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int sv[2];
	io_socketpair(sv);
	struct to_task t = {.fd = sv[0], .res = 1};
	t_run(rt, to_task_fn, &t);
	cr_assert_eq(t.res, -ETIMEDOUT, "task recv = %zd", t.res);

	struct to_cb c;
	memset(&c, 0, sizeof c);
	t_latch_init(&c.latch, 1);
	op_recv(&c.op, sv[0], c.buf, sizeof c.buf, 10000000);
	c.op.cb = to_cb_fn;
	c.op.data = &c;
	uint64_t t0 = io_now_ns();
	cr_assert_eq(weft_op_submit(rt, &c.op), 0);
	t_latch_wait(&c.latch);
	cr_assert_geq(io_now_ns() - t0, 10000000ULL);
	cr_assert_eq(c.res, -ETIMEDOUT, "callback recv = %zd", c.res);
	cr_assert_eq(atomic_load(&c.calls), 1);
	t_destroy(rt);
	t_latch_fini(&c.latch);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* weft_op_cancel                                                       */

struct cx {
	int sv[2];
	weft_op_t op;
	char buf[8];
	atomic_int waiting;
	ssize_t res;
	int cancel_rc, cancel_again_rc, cancel_unstarted_rc;
	uint64_t took;
	int use_sleep;
};

static void cx_waiter(void *p)
{
	struct cx *c = p;
	if (c->use_sleep) {
		memset(&c->op, 0, sizeof c->op);
		c->op.opcode = WEFT_OP_SLEEP;
		c->op.timeout_ns = 3600ULL * 1000000000ULL;
	} else {
		op_recv(&c->op, c->sv[0], c->buf, sizeof c->buf, 0);
	}
	uint64_t t0 = io_now_ns();
	atomic_store(&c->waiting, 1);
	c->res = weft_op_run(&c->op);
	c->took = io_now_ns() - t0;
	/* Finished: cancelling it now is too late. */
	c->cancel_again_rc = weft_op_cancel(&c->op);
}

static void cx_canceller(void *p)
{
	struct cx *c = p;
	weft_op_t never;
	memset(&never, 0, sizeof never);
	never.opcode = WEFT_OP_RECV;
	c->cancel_unstarted_rc = weft_op_cancel(&never);
	/* One worker: once `waiting` is seen, the waiter is suspended in
	 * weft_op_run (see test_io_util.h). */
	T_CHECK(io_yield_until(&c->waiting, 1000000));
	c->cancel_rc = weft_op_cancel(&c->op);
}

static void cx_case(int backend, int use_sleep)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct cx c;
	memset(&c, 0, sizeof c);
	io_socketpair(c.sv);
	c.use_sleep = use_sleep;
	c.res = 1;
	c.cancel_rc = c.cancel_again_rc = c.cancel_unstarted_rc = 1;
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, cx_waiter, &c);
	IO_GO_WG(rt, &wg, cx_canceller, &c);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.cancel_unstarted_rc, -EALREADY, "cancel of an op never started = %d", c.cancel_unstarted_rc);
	cr_assert_eq(c.cancel_rc, 0, "weft_op_cancel of a waiting op = %d", c.cancel_rc);
	cr_assert_eq(c.res, -ECANCELED, "cancelled op's result = %zd", c.res);
	cr_assert_eq(c.op.result, -ECANCELED);
	cr_assert_eq(c.cancel_again_rc, -EALREADY, "cancel of a finished op = %d", c.cancel_again_rc);
	cr_assert_lt(c.took, 30ULL * 1000000000ULL);
	if (!use_sleep) {
		/* The socket is intact and nothing was consumed. */
		cr_assert_eq(send(c.sv[1], "z", 1, 0), 1);
		char b;
		cr_assert_eq(recv(c.sv[0], &b, 1, 0), 1);
		cr_assert_eq(b, 'z');
	}
	close(c.sv[0]);
	close(c.sv[1]);
}

IO_TEST(cancel, recv_from_fiber) { cx_case(backend, 0); }
IO_TEST(cancel, sleep_from_fiber) { cx_case(backend, 1); }

/* From another thread (the test thread), 2 workers: retry while the op
 * has not started yet (-EALREADY), then it must end with -ECANCELED. */
IO_TEST(cancel, recv_from_thread)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct cx c;
	memset(&c, 0, sizeof c);
	io_socketpair(c.sv);
	c.res = 1;
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, cx_waiter, &c);
	while (!atomic_load(&c.waiting))
		sched_yield();
	int rc;
	long tries = 0;
	while ((rc = weft_op_cancel(&c.op)) == -EALREADY && tries++ < 50000000)
		sched_yield();
	cr_assert_eq(rc, 0, "weft_op_cancel from a thread = %d", rc);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.res, -ECANCELED, "result %zd", c.res);
	cr_assert_eq(c.cancel_again_rc, -EALREADY);
	close(c.sv[0]);
	close(c.sv[1]);
}

/* A callback op cancelled right after weft_op_submit. */
struct cbx {
	weft_op_t op;
	char buf[8];
	ssize_t res;
	atomic_int calls;
	int cancel_in_cb;
	struct t_latch *latch;
	struct t_gate *hold; /* non-NULL: return only once it opens */
};

static void cbx_fn(weft_op_t *op)
{
	struct cbx *c = op->data;
	c->res = op->result;
	c->cancel_in_cb = weft_op_cancel(op);
	atomic_fetch_add(&c->calls, 1);
	/* weft_op_cancel may be called until the callback returns. */
	if (c->hold)
		t_gate_wait(c->hold);
	t_latch_done(c->latch); /* last: the test may reuse *c after it */
}

IO_TEST(cancel, submitted_op_from_outside)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int sv[2];
	io_socketpair(sv);
	struct t_latch l;
	t_latch_init(&l, 2);
	struct cbx r, s;
	memset(&r, 0, sizeof r);
	memset(&s, 0, sizeof s);
	op_recv(&r.op, sv[0], r.buf, sizeof r.buf, 0);
	r.op.cb = cbx_fn;
	r.op.data = &r;
	r.latch = &l;
	s.op.opcode = WEFT_OP_SLEEP;
	s.op.timeout_ns = 3600ULL * 1000000000ULL;
	s.op.cb = cbx_fn;
	s.op.data = &s;
	s.latch = &l;
	uint64_t t0 = io_now_ns();
	cr_assert_eq(weft_op_submit(rt, &r.op), 0);
	cr_assert_eq(weft_op_submit(rt, &s.op), 0);
	/* Submitted, so pending: the request is made.  (If it is refused,
	 * retry until it is taken so that nothing is left pending on this
	 * stack, and fail afterwards.) */
	int rc1 = weft_op_cancel(&r.op), rc2 = weft_op_cancel(&s.op);
	for (long i = 0; i < 100000000 && rc1 == -EALREADY && weft_op_cancel(&r.op) == -EALREADY; i++)
		sched_yield();
	for (long i = 0; i < 100000000 && rc2 == -EALREADY && weft_op_cancel(&s.op) == -EALREADY; i++)
		sched_yield();
	t_latch_wait(&l);
	cr_assert_eq(rc1, 0, "cancel right after weft_op_submit (recv) = %d", rc1);
	cr_assert_eq(rc2, 0, "cancel right after weft_op_submit (timer) = %d", rc2);
	cr_assert_lt(io_now_ns() - t0, 30ULL * 1000000000ULL);
	cr_assert_eq(r.res, -ECANCELED, "recv callback result %zd", r.res);
	cr_assert_eq(s.res, -ECANCELED, "timer callback result %zd", s.res);
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert_eq(atomic_load(&s.calls), 1);
	cr_assert_eq(r.cancel_in_cb, -EALREADY);
	cr_assert_eq(s.cancel_in_cb, -EALREADY);
	t_destroy(rt);
	t_latch_fini(&l);
	close(sv[0]);
	close(sv[1]);
}

/* Cancel racing completion: each op ends once, either with the byte or
 * with -ECANCELED, and a cancelled recv consumed nothing.  A fiber starts
 * the recv on its worker (so it is pending at once) and sends the byte;
 * the test thread cancels at a varying moment meanwhile.  The callback
 * holds until the cancel call has returned (weft_op_cancel needs a live
 * op), blocking its worker a moment; there are two. */
struct race {
	struct cbx c;
	int fd_recv, fd_send;
	char byte;
	unsigned spin; /* before the send */
	int after_cancel; /* send only once the test thread has cancelled */
	atomic_int published;
	atomic_int cancel_called;
};

static void race_spin(uint64_t k)
{
	for (; k > 0; k--)
		__asm__ volatile("" ::: "memory");
}

static void race_fiber(void *p)
{
	struct race *r = p;
	T_CHECK_EQ(weft_op_submit(weft_runtime_current(), &r->c.op), 0);
	atomic_store(&r->published, 1);
	if (r->after_cancel)
		T_CHECK(io_yield_until(&r->cancel_called, 100000000));
	race_spin(r->spin);
	T_CHECK_EQ(send(r->fd_send, &r->byte, 1, 0), 1);
}

IO_TEST(cancel, cancel_races_completion)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int sv[2];
	io_socketpair(sv);
	struct io_wg wg;
	io_wg_init(&wg);
	long n = (long)t_size(2000, 300), got = 0, cancelled = 0, already = 0;
	uint64_t seed = 77;
	for (long i = 0; i < n; i++) {
		struct t_latch l;
		t_latch_init(&l, 1);
		struct t_gate hold;
		t_gate_init(&hold);
		/* On the heap and freed as soon as the callback ran: a
		 * cancel request that outlived its op would touch freed memory
		 * (ASan) rather than the next iteration's op (io.c, I7). */
		struct race *rp = calloc(1, sizeof *rp);
		cr_assert_not_null(rp);
		rp->c.latch = &l;
		rp->c.hold = &hold;
		rp->fd_recv = sv[0];
		rp->fd_send = sv[1];
		rp->byte = (char)('a' + i % 26);
		rp->spin = (unsigned)(t_rand(&seed) % 20000);
		rp->after_cancel = i % 2 == 0;
		op_recv(&rp->c.op, sv[0], rp->c.buf, 1, 0);
		rp->c.op.cb = cbx_fn;
		rp->c.op.data = &rp->c;
		IO_GO_WG(rt, &wg, race_fiber, rp);
		while (!atomic_load(&rp->published))
			sched_yield();
		race_spin(t_rand(&seed) % 20000);
		int rc = weft_op_cancel(&rp->c.op);
		atomic_store(&rp->cancel_called, 1);
		cr_assert(rc == 0 || rc == -EALREADY, "cancel = %d", rc);
		if (rp->after_cancel)
			cr_assert_eq(rc, 0, "iteration %ld: cancel of a recv that has no data yet = %d", i, rc);
		already += rc == -EALREADY;
		t_gate_open(&hold);
		t_latch_wait(&l);
		io_wg_wait(&wg);
		t_latch_fini(&l);
		t_gate_fini(&hold);
		cr_assert_eq(atomic_load(&rp->c.calls), 1);
		if (rp->c.res == 1) {
			cr_assert_eq(rp->c.buf[0], rp->byte);
			got++;
		} else {
			cr_assert_eq(rp->c.res, -ECANCELED, "iteration %ld: result %zd", i, rp->c.res);
			cr_assert_eq(rc, 0, "-ECANCELED without a cancel request");
			char x;
			ssize_t rr = recv(sv[0], &x, 1, MSG_DONTWAIT);
			cr_assert_eq(rr, 1, "iteration %ld: a cancelled recv lost the byte", i);
			cr_assert_eq(x, rp->byte);
			cancelled++;
		}
		free(rp);
		/* The socket is empty again. */
		char x;
		cr_assert_eq(recv(sv[0], &x, 1, MSG_DONTWAIT), -1);
	}
	T_ASSERT_CLEAN();
	cr_log_info("%s: %ld completed, %ld cancelled, %ld cancel calls too late", io_name(backend), got,
	            cancelled, already);
	cr_assert_eq(got + cancelled, n);
	io_finish(rt, &wg);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* weft_close of an fd others wait on                                   */

struct cw {
	int sv[2];      /* fiber A (recv) and C (poll) wait on sv[0] */
	int other[2];   /* fiber D waits on other[0]: not affected */
	int lfd;        /* fiber E waits in weft_accept on it */
	ssize_t e_res;
	int close_l_rc;
	atomic_int waiting;
	ssize_t a_res, c_res, d_res;
	int close_rc;
	int fd_closed;
	weft_op_t cb_op;
	char cb_buf[4];
	ssize_t cb_res;
	atomic_int cb_calls;
	char dbuf[4];
};

static void cw_a(void *p)
{
	struct cw *c = p;
	char b[4];
	atomic_fetch_add(&c->waiting, 1);
	c->a_res = weft_recv(c->sv[0], b, sizeof b, 0);
}

static void cw_c(void *p)
{
	struct cw *c = p;
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = c->sv[0];
	op.flags = POLLIN;
	atomic_fetch_add(&c->waiting, 1);
	c->c_res = weft_op_run(&op);
}

static void cw_d(void *p)
{
	struct cw *c = p;
	atomic_fetch_add(&c->waiting, 1);
	c->d_res = weft_recv(c->other[0], c->dbuf, sizeof c->dbuf, 0);
}

static void cw_e(void *p)
{
	struct cw *c = p;
	atomic_fetch_add(&c->waiting, 1);
	c->e_res = weft_accept(c->lfd, NULL, NULL, 0);
}

static void cw_cb(weft_op_t *op)
{
	struct cw *c = op->data;
	c->cb_res = op->result;
	atomic_fetch_add(&c->cb_calls, 1);
}

static void cw_closer(void *p)
{
	struct cw *c = p;
	/* A callback op on the same fd, started here (this worker). */
	memset(&c->cb_op, 0, sizeof c->cb_op);
	op_recv(&c->cb_op, c->sv[0], c->cb_buf, sizeof c->cb_buf, 0);
	c->cb_op.cb = cw_cb;
	c->cb_op.data = c;
	T_CHECK_EQ(weft_op_submit(weft_runtime_current(), &c->cb_op), 0);
	for (long i = 0; i < 1000000 && atomic_load(&c->waiting) < 4; i++)
		weft_yield();
	T_CHECK_EQ(atomic_load(&c->waiting), 4);
	/* One worker: A, C, D and E are suspended in their calls now. */
	c->close_rc = weft_close(c->sv[0]);
	c->close_l_rc = weft_close(c->lfd);
	c->fd_closed = fcntl(c->sv[0], F_GETFD) == -1 && errno == EBADF;
	/* D was not disturbed: it gets the data sent now. */
	T_CHECK_EQ(weft_send(c->other[1], "ok", 2, 0), 2);
}

IO_TEST(cancel, close_while_waiting)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct cw c;
	memset(&c, 0, sizeof c);
	io_socketpair(c.sv);
	io_socketpair(c.other);
	c.a_res = c.c_res = c.d_res = c.cb_res = c.e_res = 1;
	c.close_rc = c.close_l_rc = 1;
	c.lfd = io_listener(NULL);
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, cw_a, &c);
	IO_GO_WG(rt, &wg, cw_c, &c);
	IO_GO_WG(rt, &wg, cw_d, &c);
	IO_GO_WG(rt, &wg, cw_e, &c);
	IO_GO_WG(rt, &wg, cw_closer, &c);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.close_rc, 0, "weft_close = %d", c.close_rc);
	cr_assert(c.fd_closed, "the fd is still open after weft_close");
	cr_assert_eq(c.a_res, -ECANCELED, "recv waiting on the closed fd = %zd", c.a_res);
	cr_assert_eq(c.c_res, -ECANCELED, "poll waiting on the closed fd = %zd", c.c_res);
	cr_assert_eq(atomic_load(&c.cb_calls), 1);
	cr_assert_eq(c.cb_res, -ECANCELED, "callback recv on the closed fd = %zd", c.cb_res);
	cr_assert_eq(c.d_res, 2, "recv on another fd = %zd", c.d_res);
	cr_assert_eq(c.close_l_rc, 0);
	cr_assert_eq(c.e_res, -ECANCELED, "accept waiting on the closed listener = %zd", c.e_res);
	cr_assert_eq(memcmp(c.dbuf, "ok", 2), 0);
	close(c.sv[1]);
	close(c.other[0]);
	close(c.other[1]);
}

/* ------------------------------------------------------------------ */
/* Destroy with work still suspended                                    */

#define SD_RECV 16
#define SD_SLEEP 4

struct sd {
	int sv[SD_RECV][2];
	int lfd;
	ssize_t recv_res[SD_RECV];
	int sleep_res[SD_SLEEP];
	int accept_res;
	int after_res;   /* an op started after the cancellation */
	int child_go_rc; /* weft_go from inside during destroy */
	ssize_t child_res;
	atomic_int child_ran;
	atomic_int blocked;
	atomic_int returned;
	struct cbx cb[2];
	struct t_latch cb_latch;
};

struct sd_arg {
	struct sd *s;
	int i;
};

static void sd_child(void *p)
{
	struct sd *s = p;
	char b[4];
	/* Started during destroy: its operations complete with -ECANCELED. */
	s->child_res = weft_recv(s->sv[0][0], b, sizeof b, 0);
	atomic_store(&s->child_ran, 1);
}

static void sd_recv(void *p)
{
	struct sd_arg *a = p;
	struct sd *s = a->s;
	char b[4];
	atomic_fetch_add(&s->blocked, 1);
	s->recv_res[a->i] = weft_recv(s->sv[a->i][0], b, sizeof b, 0);
	if (a->i == 0) {
		/* After the cancellation: more operations fail at once. */
		s->after_res = weft_sleep(3600ULL * 1000000000ULL);
		s->child_go_rc = weft_go(weft_runtime_current(), sd_child, s);
	}
	atomic_fetch_add(&s->returned, 1);
}

static void sd_sleep(void *p)
{
	struct sd_arg *a = p;
	atomic_fetch_add(&a->s->blocked, 1);
	a->s->sleep_res[a->i] = weft_sleep(3600ULL * 1000000000ULL);
	atomic_fetch_add(&a->s->returned, 1);
}

static void sd_accept(void *p)
{
	struct sd *s = p;
	atomic_fetch_add(&s->blocked, 1);
	s->accept_res = weft_accept(s->lfd, NULL, NULL, 0);
	atomic_fetch_add(&s->returned, 1);
}

static void sd_warm_fiber(void *p)
{
	(void)p;
	T_CHECK_EQ(weft_sleep(1000), 0);
}

IO_TEST(cancel, destroy_with_suspended_fibers)
{
	/* A first runtime of the same shape warms up what the process keeps
	 * (malloc arenas of the worker threads); the second must give back
	 * every fd and every mapping (fiber stacks) it took. */
	weft_runtime_t *rt = io_rt(backend, 2);
	struct io_wg wg;
	io_wg_init(&wg);
	for (int i = 0; i < SD_RECV + SD_SLEEP + 2; i++)
		IO_GO_WG(rt, &wg, sd_warm_fiber, NULL);
	io_finish(rt, &wg);
	int fds_before = io_count_fds(), maps_before = io_count_maps();

	rt = io_rt(backend, 2);
	struct sd *s = calloc(1, sizeof *s);
	cr_assert_not_null(s);
	struct sd_arg ra[SD_RECV], sa[SD_SLEEP];
	for (int i = 0; i < SD_RECV; i++) {
		io_socketpair(s->sv[i]);
		s->recv_res[i] = 1;
		ra[i] = (struct sd_arg){s, i};
		IO_GO(rt, sd_recv, &ra[i]);
	}
	for (int i = 0; i < SD_SLEEP; i++) {
		s->sleep_res[i] = 1;
		sa[i] = (struct sd_arg){s, i};
		IO_GO(rt, sd_sleep, &sa[i]);
	}
	s->lfd = io_listener(NULL);
	s->accept_res = 1;
	s->after_res = 1;
	s->child_go_rc = 1;
	s->child_res = 1;
	IO_GO(rt, sd_accept, s);
	/* Two callback ops that nothing will complete. */
	t_latch_init(&s->cb_latch, 2);
	for (int i = 0; i < 2; i++) {
		op_recv(&s->cb[i].op, s->sv[i][0], s->cb[i].buf, sizeof s->cb[i].buf, 0);
		s->cb[i].op.cb = cbx_fn;
		s->cb[i].op.data = &s->cb[i];
		s->cb[i].latch = &s->cb_latch;
		s->cb[i].res = 1;
		cr_assert_eq(weft_op_submit(rt, &s->cb[i].op), 0);
	}
	int nf = SD_RECV + SD_SLEEP + 1;
	while (atomic_load(&s->blocked) < nf)
		sched_yield();
	uint64_t t0 = io_now_ns();
	t_destroy(rt);
	uint64_t took = io_now_ns() - t0;
	T_ASSERT_CLEAN();
	cr_assert_lt(took, 20ULL * 1000000000ULL, "destroy took %llu ns", (unsigned long long)took);
	cr_assert_eq(atomic_load(&s->returned), nf, "fibers returned: %d of %d", atomic_load(&s->returned), nf);
	for (int i = 0; i < SD_RECV; i++)
		cr_assert_eq(s->recv_res[i], -ECANCELED, "recv fiber %d: %zd", i, s->recv_res[i]);
	for (int i = 0; i < SD_SLEEP; i++)
		cr_assert_eq(s->sleep_res[i], -ECANCELED, "sleep fiber %d: %d", i, s->sleep_res[i]);
	cr_assert_eq(s->accept_res, -ECANCELED, "accept fiber: %d", s->accept_res);
	cr_assert_eq(s->after_res, -ECANCELED, "sleep started during destroy: %d", s->after_res);
	cr_assert_eq(s->child_go_rc, 0, "weft_go from inside during destroy = %d", s->child_go_rc);
	cr_assert_eq(atomic_load(&s->child_ran), 1, "destroy did not wait for the fiber started during it");
	cr_assert_eq(s->child_res, -ECANCELED, "child fiber's recv: %zd", s->child_res);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(atomic_load(&s->cb[i].calls), 1, "callback %d ran %d times", i, atomic_load(&s->cb[i].calls));
		cr_assert_eq(s->cb[i].res, -ECANCELED, "callback %d: %zd", i, s->cb[i].res);
	}
	/* The runtime closed none of our fds. */
	for (int i = 0; i < SD_RECV; i++) {
		cr_assert_neq(fcntl(s->sv[i][0], F_GETFD), -1);
		close(s->sv[i][0]);
		close(s->sv[i][1]);
	}
	cr_assert_neq(fcntl(s->lfd, F_GETFD), -1);
	close(s->lfd);
	t_latch_fini(&s->cb_latch);
	free(s);
	/* Nothing of the runtime is left. */
	int fds_after = io_count_fds(), maps_after = io_count_maps();
	cr_log_info("%s: fds %d -> %d, mappings %d -> %d", io_name(backend), fds_before, fds_after, maps_before,
	            maps_after);
	cr_assert_eq(fds_after, fds_before, "open fds: %d before create, %d after destroy", fds_before, fds_after);
#if !defined(WEFT_TSAN) && !defined(__SANITIZE_THREAD__)
	/* (ThreadSanitizer maps shadow memory as fiber stacks are used.) */
	cr_assert_leq(maps_after, maps_before + 12, "mappings: %d before create, %d after destroy (fiber stacks left?)",
	              maps_before, maps_after);
#endif
}

/* While destroy runs, calls from outside are refused with -ESHUTDOWN. */
struct sdx {
	int sv[2];
	ssize_t res;
	struct t_gate cancelled, proceed;
	weft_runtime_t *rt;
	int destroy_rc;
	pthread_t th;
};

static void sdx_fiber(void *p)
{
	struct sdx *x = p;
	char b;
	x->res = weft_recv(x->sv[0], &b, 1, 0);
	/* Hold destroy here (blocking this worker a moment) while the test
	 * thread calls in from outside. */
	t_gate_open(&x->cancelled);
	t_gate_wait(&x->proceed);
}

static void *sdx_destroy(void *p)
{
	struct sdx *x = p;
	x->destroy_rc = weft_runtime_destroy(x->rt);
	return NULL;
}

static void sdx_nop(void *p) { (void)p; }
static void sdx_cb(weft_op_t *op) { (void)op; }

IO_TEST(cancel, calls_during_destroy)
{
	struct sdx x;
	memset(&x, 0, sizeof x);
	x.res = 1;
	x.destroy_rc = 1;
	io_socketpair(x.sv);
	t_gate_init(&x.cancelled);
	t_gate_init(&x.proceed);
	x.rt = io_rt(backend, 2);
	IO_GO(x.rt, sdx_fiber, &x);
	cr_assert_eq(pthread_create(&x.th, NULL, sdx_destroy, &x), 0);
	t_gate_wait(&x.cancelled);
	/* destroy has started (the recv was cancelled) and waits for us. */
	int go_rc = weft_go(x.rt, sdx_nop, NULL);
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_SLEEP;
	op.timeout_ns = 1000;
	op.cb = sdx_cb;
	int sub_rc = weft_op_submit(x.rt, &op);
	int run_rc = weft_run(x.rt, sdx_nop, NULL);
	t_gate_open(&x.proceed);
	pthread_join(x.th, NULL);
	cr_assert_eq(x.res, -ECANCELED);
	cr_assert_eq(go_rc, -ESHUTDOWN, "weft_go during destroy = %d", go_rc);
	cr_assert_eq(sub_rc, -ESHUTDOWN, "weft_op_submit during destroy = %d", sub_rc);
	cr_assert_eq(run_rc, -ESHUTDOWN, "weft_run during destroy = %d", run_rc);
	cr_assert_eq(x.destroy_rc, 0);
	t_gate_fini(&x.cancelled);
	t_gate_fini(&x.proceed);
	close(x.sv[0]);
	close(x.sv[1]);
}

/* destroy from inside one of its fibers: -EDEADLK, nothing freed. */
static void deadlk_fiber(void *p)
{
	int *rc = p;
	*rc = weft_runtime_destroy(weft_runtime_current());
}

IO_TEST(cancel, destroy_from_fiber)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	int rc = 1;
	IO_GO(rt, deadlk_fiber, &rc);
	t_destroy(rt);
	cr_assert_eq(rc, -EDEADLK, "weft_runtime_destroy from a fiber = %d", rc);
}

/*
 * test_io_help.c: an epoll worker's event state is reaped by its peers
 * when it goes unreaped (runtime/io.h, "Shared event state").
 *
 *   busy_peer_reaps     worker A spins in a task with a recv pending in its
 *                       own epoll set, and data there; worker B, running a
 *                       chain of short tasks, reaps A's set: the callback
 *                       runs on B while A still spins.
 *   parked_peer_reaps   the same with B idle: B parks while A runs with a
 *                       recv pending, so it sleeps only briefly; the data
 *                       arrives once B is parked, and B wakes and reaps.
 *   echo_under_stalls   stress: fibers echo numbered messages over socket
 *                       pairs while spinning tasks keep taking workers away
 *                       for a millisecond; every message comes back exactly
 *                       once and in order, and the workers did reap each
 *                       other's sets (the count, where stats are built in).
 *
 *   busy_worker_polls   one worker runs a stream of 1 ms tasks; a fiber's
 *                       data arrives meanwhile and the fiber runs within a
 *                       few tasks, not at the injector's round (epoll says
 *                       nothing without a system call: the busy worker
 *                       looks every WEFT_IO_FAIR_NS).
 *   recv_waits_its_turn one worker: a fiber that ran long finds its next
 *                       request already there, but another connection's
 *                       request arrived first; that one is served first
 *                       (an epoll worker that is behind queues a RECV
 *                       through its set instead of trying it at once).
 *
 *   busy_peer_yields    io_uring: worker A spins with a completion owed to
 *                       it; worker B, running a chain of short tasks, sees
 *                       it and yields its core (counted in io_yields), but
 *                       at most once per 200 us; the callback then runs.
 *
 *   blocked_owner_pulled io_uring: A owes a completion while its thread is
 *                       off every CPU (a fiber blocks it in a plain
 *                       nanosleep, as a worker waiting for a CPU is): its
 *                       CPU clock stands still, so B pulls it onto B's CPU
 *                       (io_pulls); A runs there with a one-CPU mask, then
 *                       puts its own mask back when it looks for work.
 *
 * The others are epoll only: io_uring completes an operation only in the
 * thread that submitted it, so an io_uring worker's state is never shared,
 * and it queues every completion.  Without the sharing, the first two tests
 * hang in their spin until the deadline and fail; without the yield, the
 * last one does.
 */
#include "test_io_util.h"

#include <stdatomic.h>

/* Longest a spinning task waits for what the test expects (seconds). */
#define SPIN_LIMIT_S 20.0

#ifndef WEFT_NO_STATS
static uint64_t io_helps(weft_runtime_t *rt)
{
	weft_stats_t st;

	cr_assert_geq(weft_stats_get(rt, &st, NULL, 0), 1);
	return st.io_helps;
}
#endif

/* A RECV with a callback on sv[0], submitted by the worker that calls
 * pend_submit (its owner), and a chain of short top-level tasks that other
 * workers run until stop_chain is set. */
struct pend {
	weft_runtime_t *rt;
	int sv[2];
	weft_op_t op;
	char buf[4];
	atomic_int cb_done;
	int cb_worker;       /* worker the callback ran on */
	ssize_t cb_res;
	int owner;           /* worker that submitted the recv */
	atomic_int stop_chain;
	atomic_long chain;   /* chain tasks run */
};

static void pend_cb(weft_op_t *op)
{
	struct pend *p = op->data;

	p->cb_res = op->result;
	p->cb_worker = weft_worker_index();
	atomic_store(&p->cb_done, 1);
}

static void pend_submit(struct pend *p)
{
	p->owner = weft_worker_index();
	atomic_store(&p->cb_done, 0);
	memset(&p->op, 0, sizeof p->op);
	p->op.opcode = WEFT_OP_RECV;
	p->op.fd = p->sv[0];
	p->op.buf = p->buf;
	p->op.len = sizeof p->buf;
	p->op.cb = pend_cb;
	p->op.data = p;
	T_CHECK_EQ(weft_op_submit(p->rt, &p->op), 0);
}

/* Resubmits itself until stop_chain: a stream of top-level tasks. */
static void chain_task(void *arg)
{
	struct pend *p = arg;

	atomic_fetch_add(&p->chain, 1);
	if (!atomic_load(&p->stop_chain))
		T_CHECK_EQ(weft_submit(p->rt, chain_task, p, NULL), 0);
}

struct stall {
	struct pend p;
	bool busy_peer;      /* keep the other worker busy with a task chain */
	int seen;            /* the callback ran while the owner spun */
};

static void noop_task(void *arg)
{
	(void)arg;
}

static void stall_task(void *arg)
{
	struct stall *s = arg;
	struct pend *p = &s->p;
	double deadline;

	pend_submit(p); /* owned by this worker */
	/* Other work now, which the other worker takes (this one spins):
	 * the chain keeps it busy; a no-op makes an idle one wake, run it
	 * and park again, now with this worker's recv pending.  For that
	 * one the data comes only once it had time to park: only its
	 * parking, short because of what it saw pending here, can find
	 * it then. */
	T_CHECK_EQ(weft_submit(p->rt, s->busy_peer ? chain_task : noop_task, p, NULL), 0);
	if (!s->busy_peer) {
		deadline = t_now() + 0.05;
		while (t_now() < deadline)
			;
	}
	T_CHECK_EQ(write(p->sv[1], "x", 1), 1);
	deadline = t_now() + SPIN_LIMIT_S;
	while (!atomic_load(&p->cb_done) && t_now() < deadline)
		;
	s->seen = atomic_load(&p->cb_done);
	atomic_store(&p->stop_chain, 1);
}

static void stall_case(bool busy_peer)
{
	struct stall s;
	struct pend *p = &s.p;
	weft_runtime_t *rt = io_rt(WEFT_IO_EPOLL, 2);

	memset(&s, 0, sizeof s);
	p->rt = rt;
	s.busy_peer = busy_peer;
	io_socketpair(p->sv);
	t_run(rt, stall_task, &s);
	cr_assert(s.seen, "the recv's callback did not run while its worker (%d) spun for %.0f s", p->owner,
	          SPIN_LIMIT_S);
	cr_assert_eq(p->cb_res, 1, "recv result %zd", p->cb_res);
	cr_assert_eq(p->buf[0], 'x');
	cr_assert_neq(p->cb_worker, p->owner, "callback ran on the spinning worker %d", p->owner);
	if (busy_peer)
		cr_assert_gt(atomic_load(&p->chain), 0);
#ifndef WEFT_NO_STATS
	cr_assert_geq(io_helps(rt), 1, "no reap of another worker's set was counted");
#endif
	T_ASSERT_CLEAN();
	t_destroy(rt);
	close(p->sv[0]);
	close(p->sv[1]);
}

Test(io_help, busy_peer_reaps, .timeout = IO_TIMEOUT)
{
	stall_case(true);
}

Test(io_help, parked_peer_reaps, .timeout = IO_TIMEOUT)
{
	stall_case(false);
}

/* ---- echo_under_stalls --------------------------------------------------- */

struct echo_pair {
	int sv[2];
	unsigned index;
	unsigned msgs;
	unsigned got;        /* replies that matched, in order */
};

struct echo_run {
	weft_runtime_t *rt;
	struct echo_pair *pairs;
	unsigned npairs;
	atomic_uint clients_left;
	atomic_long spins;
};

static void echo_server(void *arg)
{
	struct echo_pair *p = arg;
	uint64_t v;

	for (unsigned i = 0; i < p->msgs; i++) {
		if (weft_read_full(p->sv[1], &v, sizeof v, -1) != (ssize_t)sizeof v) {
			T_CHECK(0);
			return;
		}
		T_CHECK_EQ(weft_write_all(p->sv[1], &v, sizeof v, -1), (ssize_t)sizeof v);
	}
}

static void echo_client(void *arg)
{
	struct echo_pair *p = arg;
	uint64_t v;

	for (unsigned i = 0; i < p->msgs; i++) {
		uint64_t want = (uint64_t)p->index << 32 | i;
		T_CHECK_EQ(weft_write_all(p->sv[0], &want, sizeof want, -1), (ssize_t)sizeof want);
		if (weft_read_full(p->sv[0], &v, sizeof v, -1) != (ssize_t)sizeof v || v != want) {
			T_CHECK(0);
			return;
		}
		p->got++;
	}
}

/* Spins about a millisecond, then starts the next one while clients run:
 * whichever worker runs it goes unreaped meanwhile. */
static void spin_task(void *arg)
{
	struct echo_run *r = arg;
	double end = t_now() + 0.001;

	while (t_now() < end)
		;
	atomic_fetch_add(&r->spins, 1);
	if (atomic_load(&r->clients_left))
		T_CHECK_EQ(weft_submit(r->rt, spin_task, r, NULL), 0);
}

struct client_arg {
	struct echo_run *r;
	struct echo_pair *p;
};

static void client_main(void *arg)
{
	struct client_arg *c = arg;

	echo_client(c->p);
	atomic_fetch_sub(&c->r->clients_left, 1);
}

Test(io_help, echo_under_stalls, .timeout = 120)
{
	unsigned npairs = (unsigned)t_size(64, 16), msgs = (unsigned)t_size(2000, 300);
	struct echo_run r;
	struct io_wg wg;
	struct client_arg *cargs;
	weft_runtime_t *rt = io_rt(WEFT_IO_EPOLL, 4);

	memset(&r, 0, sizeof r);
	r.rt = rt;
	r.npairs = npairs;
	r.pairs = calloc(npairs, sizeof *r.pairs);
	cargs = calloc(npairs, sizeof *cargs);
	cr_assert(r.pairs && cargs);
	atomic_store(&r.clients_left, npairs);
	io_wg_init(&wg);
	for (unsigned i = 0; i < npairs; i++) {
		io_socketpair(r.pairs[i].sv);
		r.pairs[i].index = i;
		r.pairs[i].msgs = msgs;
		cargs[i].r = &r;
		cargs[i].p = &r.pairs[i];
		IO_GO_WG(rt, &wg, echo_server, &r.pairs[i]);
		IO_GO_WG(rt, &wg, client_main, &cargs[i]);
	}
	/* Two spinners: two of the four workers are away at any time. */
	cr_assert_eq(weft_submit(rt, spin_task, &r, NULL), 0);
	cr_assert_eq(weft_submit(rt, spin_task, &r, NULL), 0);
	io_wg_wait(&wg);
	for (unsigned i = 0; i < npairs; i++)
		cr_assert_eq(r.pairs[i].got, msgs, "pair %u: %u of %u replies", i, r.pairs[i].got, msgs);
	cr_assert_gt(atomic_load(&r.spins), 0);
#ifndef WEFT_NO_STATS
	cr_assert_geq(io_helps(rt), 1, "no reap of another worker's set was counted (%ld spins)",
	              atomic_load(&r.spins));
#endif
	T_ASSERT_CLEAN();
	io_wg_fini(&wg);
	t_destroy(rt); /* waits for the last spinner */
	for (unsigned i = 0; i < npairs; i++) {
		close(r.pairs[i].sv[0]);
		close(r.pairs[i].sv[1]);
	}
	free(cargs);
	free(r.pairs);
}

/* ---- recv_waits_its_turn ------------------------------------------------- */

struct turn {
	int a[2], b[2];
	atomic_int spinning;  /* fa spins on its first request */
	atomic_int b_sent;    /* the test thread wrote b's request */
	char order[4];        /* requests in the order served */
	atomic_int n;
};

static void turn_record(struct turn *t, char c)
{
	int i = atomic_fetch_add(&t->n, 1);

	if (i < (int)sizeof t->order)
		t->order[i] = c;
}

static void turn_fb(void *arg)
{
	struct turn *t = arg;
	char c;

	T_CHECK_EQ(weft_recv(t->b[0], &c, 1, 0), 1);
	turn_record(t, c);
}

static void turn_fa(void *arg)
{
	struct turn *t = arg;
	char c;
	double until;

	T_CHECK_EQ(weft_recv(t->a[0], &c, 1, 0), 1);
	/* "Process" it for over WEFT_IO_FAIR_NS, while b's request arrives. */
	atomic_store(&t->spinning, 1);
	until = t_now() + 0.002;
	while (!atomic_load(&t->b_sent) || t_now() < until)
		;
	turn_record(t, c);
	/* a's next request has been there all along. */
	T_CHECK_EQ(weft_recv(t->a[0], &c, 1, 0), 1);
	turn_record(t, c);
}

Test(io_help, recv_waits_its_turn, .timeout = IO_TIMEOUT)
{
	struct turn t;
	struct io_wg wg;
	weft_runtime_t *rt = io_rt(WEFT_IO_EPOLL, 1);

	memset(&t, 0, sizeof t);
	io_socketpair(t.a);
	io_socketpair(t.b);
	io_wg_init(&wg);
	/* In this order through the injector, on one worker: fb runs until
	 * it waits on b (nothing has arrived there), then fa. */
	cr_assert_eq(write(t.a[1], "12", 2), 2);
	IO_GO_WG(rt, &wg, turn_fb, &t);
	IO_GO_WG(rt, &wg, turn_fa, &t);
	while (!atomic_load(&t.spinning))
		t_sleep_us(100);
	cr_assert_eq(write(t.b[1], "b", 1), 1);
	atomic_store(&t.b_sent, 1);
	io_wg_wait(&wg);
	cr_assert_eq(atomic_load(&t.n), 3);
	cr_assert(memcmp(t.order, "1b2", 3) == 0, "served in the order %.3s, not 1b2", t.order);
	T_ASSERT_CLEAN();
	io_finish(rt, &wg);
	close(t.a[0]);
	close(t.a[1]);
	close(t.b[0]);
	close(t.b[1]);
}

/* ---- busy_worker_polls --------------------------------------------------- */

/* One worker runs a stream of 1 ms tasks (each submits the next); a fiber's
 * recv becomes ready meanwhile.  epoll cannot say that without a system
 * call, so without a look between tasks the fiber would wait for the
 * injector's round (every 61 tasks); with it, for a few tasks. */
struct stream {
	weft_runtime_t *rt;
	int sv[2];
	atomic_int armed;     /* the fiber waits in its recv */
	atomic_long tasks;    /* stream tasks run */
	atomic_long at_write; /* ... when the data was written */
	atomic_long at_resume; /* ... when the fiber had it */
	atomic_int done;
};

static void stream_task(void *arg)
{
	struct stream *s = arg;
	double end = t_now() + 0.001;

	while (t_now() < end)
		;
	atomic_fetch_add(&s->tasks, 1);
	if (!atomic_load(&s->done))
		T_CHECK_EQ(weft_submit(s->rt, stream_task, s, NULL), 0);
}

static void stream_reader(void *arg)
{
	struct stream *s = arg;
	char c;

	atomic_store(&s->armed, 1);
	T_CHECK_EQ(weft_recv(s->sv[0], &c, 1, 0), 1);
	atomic_store(&s->at_resume, atomic_load(&s->tasks));
	atomic_store(&s->done, 1);
}

Test(io_help, busy_worker_polls, .timeout = IO_TIMEOUT)
{
	struct stream s;
	struct io_wg wg;
	weft_runtime_t *rt = io_rt(WEFT_IO_EPOLL, 1);
	long waited;

	memset(&s, 0, sizeof s);
	s.rt = rt;
	io_socketpair(s.sv);
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, stream_reader, &s);
	while (!atomic_load(&s.armed))
		t_sleep_us(100);
	cr_assert_eq(weft_submit(rt, stream_task, &s, NULL), 0);
	while (atomic_load(&s.tasks) < 70) /* past an injector round */
		t_sleep_ms(1);
	atomic_store(&s.at_write, atomic_load(&s.tasks));
	cr_assert_eq(write(s.sv[1], "x", 1), 1);
	io_wg_wait(&wg);
	waited = atomic_load(&s.at_resume) - atomic_load(&s.at_write);
	cr_assert_lt(waited, 30, "the ready fiber waited %ld tasks of 1 ms", waited);
	T_ASSERT_CLEAN();
	io_finish(rt, &wg);
	close(s.sv[0]);
	close(s.sv[1]);
}

/* ---- busy_peer_yields (io_uring) ----------------------------------------- */

/* The owner (A) spins in a fiber with a recv's completion owed to it (the
 * data arrived; only A's thread can collect it); the other worker (B) runs
 * a chain of short tasks and, finding A's completion owed and A's ring
 * unreaped for WEFT_IO_STALE_NS, gives up its core (sched_yield), counted
 * in io_yields.  On a machine where A waits for B's core this lets A run;
 * here both may have a core, so the test checks that B noticed, that it
 * does not yield at every look, and that the callback still runs once with
 * the data (its task may be stolen: only the completion is bound to A). */
/* How long the owner spins after the first yield (seconds); in a window of
 * w seconds at most one yield per WEFT_IO_STALE_NS (200 us) may come, and
 * one more for the edges. */
#define OWED_MORE_S 0.02
#define OWED_MORE_MAX(w) (uint64_t)((w) / 200e-6 + 2)

struct owed {
	struct pend p;
	int tries;        /* rounds until the fiber was on the owner after its sleep */
	uint64_t yields;  /* io_yields once the first was seen */
	uint64_t more_yields; /* io_yields in the window that followed */
	double window_s;      /* that window (about OWED_MORE_S) */
};

/* Make a recv's completion owed to the worker the calling fiber runs on:
 * submit it, sleep (the owner submits it to its ring), send its byte; again
 * while the fiber resumes on another worker.  Returns the rounds it took
 * (over 100: it never stayed).  On the fiber. */
static int owe_here(struct pend *p)
{
	int tries;

	for (tries = 1; tries <= 100; tries++) {
		pend_submit(p);
		/* The sleep makes the owner submit the recv to its ring. */
		T_CHECK_EQ(weft_sleep(1000000), 0);
		T_CHECK_EQ(write(p->sv[1], "x", 1), 1);
		if (weft_worker_index() == p->owner)
			break;
		/* Resumed elsewhere: the owner reaps it by itself.  Again. */
		while (!atomic_load(&p->cb_done))
			T_CHECK_EQ(weft_sleep(100000), 0);
	}
	return tries;
}

/* On 2 io_uring workers, with a chain of short tasks running, run fn(arg)
 * as a fiber (which calls owe_here) until it returns and p's callback has
 * run. */
static weft_runtime_t *owed_run(struct pend *p, struct io_wg *wg, weft_task_fn fn, void *arg)
{
	weft_runtime_t *rt = io_rt(WEFT_IO_URING, 2);

	p->rt = rt;
	io_socketpair(p->sv);
	io_wg_init(wg);
	cr_assert_eq(weft_submit(rt, chain_task, p, NULL), 0);
	IO_GO_WG(rt, wg, fn, arg);
	io_wg_wait(wg);
	atomic_store(&p->stop_chain, 1);
	while (!atomic_load(&p->cb_done))
		t_sleep_ms(1);
	return rt;
}

/* The callback got the byte once; tear down. */
static void owed_finish(struct pend *p, weft_runtime_t *rt, struct io_wg *wg)
{
	cr_assert_eq(p->cb_res, 1, "recv result %zd", p->cb_res);
	cr_assert_eq(p->buf[0], 'x');
	T_ASSERT_CLEAN();
	io_finish(rt, wg);
	close(p->sv[0]);
	close(p->sv[1]);
}

static void owed_fiber(void *arg)
{
	struct owed *s = arg;
	struct pend *p = &s->p;
	weft_stats_t st;
	double deadline, start;

	s->tries = owe_here(p);
	deadline = t_now() + SPIN_LIMIT_S;
	do {
		start = t_now();
		T_CHECK(weft_stats_get(p->rt, &st, NULL, 0) >= 1);
	} while (!st.io_yields && start < deadline);
	s->yields = st.io_yields;
	/* Go on spinning: B may yield again, but at most once per
	 * WEFT_IO_STALE_NS (200 us), not at every look.  The window counts
	 * from before the first count to after the second, so that this
	 * thread's own time off its core widens it. */
	while (t_now() < start + OWED_MORE_S)
		;
	T_CHECK(weft_stats_get(p->rt, &st, NULL, 0) >= 1);
	s->window_s = t_now() - start;
	s->more_yields = st.io_yields - s->yields;
}

Test(io_help, busy_peer_yields, .timeout = IO_TIMEOUT)
{
	struct owed s;
	struct pend *p = &s.p;
	struct io_wg wg;
	weft_runtime_t *rt;

#ifdef WEFT_NO_STATS
	cr_skip_test("built without stats: the yield is seen only through io_yields");
#endif
	memset(&s, 0, sizeof s);
	rt = owed_run(p, &wg, owed_fiber, &s);
	cr_assert_leq(s.tries, 100, "the fiber never resumed on the worker that owns its recv");
	cr_assert_geq(s.yields, 1, "the busy worker (%ld chain tasks) never yielded to the owner %d spinning "
	              "with a completion owed", atomic_load(&p->chain), p->owner);
	cr_assert_leq(s.more_yields, OWED_MORE_MAX(s.window_s),
	              "%llu yields in %.1f ms of the owner's spin (%ld chain tasks): more than one per 200 us",
	              (unsigned long long)s.more_yields, s.window_s * 1e3, atomic_load(&p->chain));
	owed_finish(p, rt, &wg);
}

/* ---- blocked_owner_pulled (io_uring) --------------------------------------- */

/* As busy_peer_yields, but the owner's thread sleeps in nanosleep (off
 * every CPU, its CPU clock still) instead of spinning on its core: B must
 * then pull it (io_pulls), and A must find its mask narrowed to one CPU
 * when it wakes, and later have its own mask back. */
struct pulled {
	struct pend p;
	int tries;
	uint64_t pulls;       /* io_pulls seen while the owner slept */
	int cpus_after_pull;  /* CPUs in the owner's mask when it woke */
	pid_t tid;            /* the owner's thread */
};

static void pulled_fiber(void *arg)
{
	struct pulled *s = arg;
	struct pend *p = &s->p;
	weft_stats_t st;
	cpu_set_t set;
	double deadline;

	s->tries = owe_here(p);
	s->tid = gettid();
	deadline = t_now() + SPIN_LIMIT_S;
	do {
		t_sleep_ms(1); /* blocks the worker's thread: no weft call */
		T_CHECK(weft_stats_get(p->rt, &st, NULL, 0) >= 1);
	} while (!st.io_pulls && t_now() < deadline);
	s->pulls = st.io_pulls;
	T_CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
	s->cpus_after_pull = CPU_COUNT(&set);
}

Test(io_help, blocked_owner_pulled, .timeout = IO_TIMEOUT)
{
	struct pulled s;
	struct pend *p = &s.p;
	struct io_wg wg;
	weft_runtime_t *rt;
	cpu_set_t mine, theirs;
	double deadline;

#ifdef WEFT_NO_STATS
	cr_skip_test("built without stats: the pull is seen only through io_pulls");
#endif
	cr_assert_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
	if (CPU_COUNT(&mine) < 2)
		cr_skip_test("one CPU: a pull cannot narrow a mask");
	memset(&s, 0, sizeof s);
	rt = owed_run(p, &wg, pulled_fiber, &s);
	cr_assert_leq(s.tries, 100, "the fiber never resumed on the worker that owns its recv");
	cr_assert_geq(s.pulls, 1, "the busy worker (%ld chain tasks) never pulled the owner %d, asleep "
	              "with a completion owed", atomic_load(&p->chain), p->owner);
	cr_assert_eq(s.cpus_after_pull, 1, "the pulled owner woke with %d CPUs in its mask", s.cpus_after_pull);
	/* Back to its own mask once it looks for work (the chain stopped,
	 * so it goes idle: that is a look). */
	deadline = t_now() + SPIN_LIMIT_S;
	do {
		t_sleep_ms(1);
		cr_assert_eq(sched_getaffinity(s.tid, sizeof theirs, &theirs), 0);
	} while (!CPU_EQUAL(&theirs, &mine) && t_now() < deadline);
	cr_assert(CPU_EQUAL(&theirs, &mine), "the pulled worker kept %d CPUs, not its own %d",
	          CPU_COUNT(&theirs), CPU_COUNT(&mine));
	owed_finish(p, rt, &wg);
}

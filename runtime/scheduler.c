/*
 * scheduler.c: what a worker does, and in which order.
 *
 * Vocabulary
 *   worker    one pthread of a runtime, with its own deque (deque.h).
 *   task      a record {fn, arg, group}; spawned onto the spawning worker's
 *             deque, or submitted from outside through the injector.
 *   group     a weft_group_t counting its tasks (group.c).
 *   helping   running other tasks while waiting for a group or a future,
 *             instead of blocking the worker.
 *
 * Finding work, in order (find_work):
 *   0. the own event state, when it has something at hand without waiting
 *      (io.c: weft__io_ready_hint) and WEFT_IO_POLL_NS passed since the
 *      last such poll (WEFT_IO_POLL_BUSY_NS while no other worker is
 *      idle), and every WEFT_INJECT_INTERVAL tasks;
 *   1. every WEFT_INJECT_INTERVAL tasks, the injector first (fairness: a
 *      deep local tree cannot starve outside submissions);
 *   2. the own deque: oldest first at the top level (I4), newest first
 *      while helping (work-first: the child just spawned is hot in cache,
 *      and its parent stays stealable);
 *   3. the injector;
 *   4. one steal round: every other worker once, starting at a random one,
 *      its deque first, then the public part of its typed-task deque
 *      (tdq.c), where an empty one asks its owner to publish more.
 * With nothing found the worker searches (steal rounds with ck_backoff
 * between them, each also reaping the own event state when it has
 * completions at hand, since only this worker can), then parks (park.c).
 * A worker with I/O or timers pending searches only a few rounds: it parks
 * inside its event state, where its own completions wake it at once, and a
 * long search between the requests of a moderately loaded server burns CPU
 * the server and its clients need.  Spawns wake parked workers through
 * weft__notify.
 *
 * Invariants
 *   I1  a task record is run exactly once: it leaves a deque through exactly
 *       one successful take or steal (deque.h, I3), or the injector through
 *       exactly one dequeue (injector.h, I1).  A typed task runs at its sync
 *       or through exactly one claim of its slot (tdq.c, T2).
 *   I2  a worker runs nested tasks only on its own stack, from inside
 *       weft_wait/weft_future_wait; it takes foreign (stolen or injected)
 *       work there only while the stack pointer is above stack_limit, so
 *       helping never eats the last WEFT_STACK_RESERVE of the stack.
 *   I3  a worker exits only when rt->stop is set, which happens after
 *       weft_runtime_destroy saw outstanding == 0: every submission and
 *       everything it spawned (it waits for its groups) has completed.
 *   I4  at the top level (no task on the worker's stack) the own deque
 *       holds no fork-join children (every group was waited for before its
 *       task returned), only independent work: fibers to resume, I/O
 *       callbacks, submissions made from tasks.  The worker takes those
 *       oldest first, as a thief would, so a burst of completions is served
 *       in arrival order and the first one does not wait behind the last.
 *   I5  also at the top level, a worker that has work of its own first
 *       looks at one random victim and takes from it if its deque is at
 *       least 2 longer.  A fiber's I/O completes on the worker that issued
 *       it, so fibers stay where they last ran and migrate only when
 *       stolen; without this, two busy workers (neither ever empty, so
 *       neither steals) would keep whatever split of the connections they
 *       started with, and the longer queue's requests would wait longer.
 *       The margin of 2 keeps two equal queues from trading tasks.
 *
 * Shutdown, in steps (runtime.c): closing = 1, so outside submissions are
 * refused; wait for outstanding == 0; stop = 1; wake every parked worker;
 * join; free.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include <ck_backoff.h>

#include "worker.h"

WEFT_HIDDEN __thread struct weft__worker *weft__tls_self __attribute__((tls_model("initial-exec")));

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static bool inject_take(struct weft__worker *w, struct weft__task *t)
{
	struct weft_future *f = weft__injector_pop(&w->rt->inj);

	if (!f)
		return false;
	WEFT_STAT_INC(w, injected);
	t->fn = weft__submission_run;
	t->arg = f;
	t->group = NULL;
	return true;
}

/* The function a trace names for task t: the submitted one, not the
 * runtime's wrapper around it. */
static inline uintptr_t task_fn_addr(const struct weft__task *t)
{
	if (t->fn == weft__submission_run)
		return (uintptr_t)((const struct weft_future *)t->arg)->fn;
	if (t->fn == weft__tslot_run)
		return (uintptr_t)((const weft_tslot_t *)t->arg)->run_;
	return (uintptr_t)t->fn;
}

/* Steal from victim v: its deque, then its typed tasks. */
static bool steal_from(struct weft__worker *w, unsigned v, struct weft__task *t)
{
	struct weft__worker *victim = &w->rt->workers[v];
	enum weft__steal r;

	/* ABORT: lost a race on a non-empty deque; try it again. */
	while ((r = weft__deque_steal(&victim->dq, t)) == WEFT_STEAL_ABORT)
		WEFT_STAT_INC(w, steal_attempts);
	WEFT_STAT_INC(w, steal_attempts);
	if (r != WEFT_STEAL_OK)
		while ((r = weft__tdq_steal(&victim->tdq, t, true)) == WEFT_STEAL_ABORT)
			WEFT_STAT_INC(w, steal_attempts);
	if (r != WEFT_STEAL_OK)
		return false;
	WEFT_STAT_INC(w, steals);
	w->victim = v;
	/* A typed task was never counted as spawned, so its victim must not
	 * count it as taken away (stats.h: tasks_run is derived). */
	if (t->fn != weft__tslot_run)
		WEFT_STAT_STOLEN(victim);
	WEFT_TRACE(w, WEFT_EV_STEAL, v, task_fn_addr(t));
	return true;
}

/* One pass over the other workers from a random start. */
static bool steal_round(struct weft__worker *w, struct weft__task *t)
{
	unsigned n = w->rt->nworkers, i, v;

	if (n < 2)
		return false;
	v = (unsigned)(rng_next(&w->rng) % n);
	for (i = 0; i < n; i++, v = (v + 1 == n) ? 0 : v + 1)
		if (v != w->index && steal_from(w, v, t))
			return true;
	return false;
}

bool weft__work_visible(struct weft_runtime *rt)
{
	unsigned i;

	if (weft__injector_nonempty(&rt->inj))
		return true;
	for (i = 0; i < rt->nworkers; i++)
		if (weft__deque_size_hint(&rt->workers[i].dq) > 0 || weft__tdq_visible(&rt->workers[i].tdq))
			return true;
	return false;
}

/* Oldest first, a queue of resumed fibers runs each on a record and a stack
 * that the ones before it have pushed out of the caches (and, with a
 * thousand fibers, out of the TLB).  So start loading the records of the
 * next two queued fibers, and the saved frames of the one just taken
 * (its record came with an earlier call), all at once rather than one miss
 * after another as the switch pops them.  Only the taken fiber is read:
 * a queued one may be stolen, finish and have its stack unmapped meanwhile
 * (a prefetch never faults; a load may).  Echo with 1000 connections on
 * one worker: 1.34 -> 0.83 us of user time per message (bench/echo_server,
 * 10 interleaved runs). */
static inline void prefetch_next(struct weft__worker *w, const struct weft__task *t)
{
	struct weft__task n;

	if (t->fn == weft__fiber_resume_task)
		weft__fiber_prefetch_stack(t->arg);
	if (weft__deque_peek_oldest(&w->dq, 0, &n) && n.fn == weft__fiber_resume_task)
		weft__fiber_prefetch_record(n.arg);
	if (weft__deque_peek_oldest(&w->dq, 1, &n) && n.fn == weft__fiber_resume_task)
		weft__fiber_prefetch_record(n.arg);
}

/* The oldest task of the own deque, as a thief takes it. */
static bool take_oldest(struct weft__worker *w, struct weft__task *t)
{
	enum weft__steal r;

	while ((r = weft__deque_steal(&w->dq, t)) == WEFT_STEAL_ABORT)
		;
	if (r != WEFT_STEAL_OK)
		return false;
	prefetch_next(w, t);
	return true;
}

static inline bool take_own(struct weft__worker *w, struct weft__task *t, bool fifo)
{
	/* Only this thread pushes, so a size of 1 or less is exact enough:
	 * then oldest and newest are the same, and take is cheaper than a
	 * steal (no fence on the common, empty path). */
	if (fifo && weft__deque_size_hint(&w->dq) > 1)
		return take_oldest(w, t);
	return weft__deque_take(&w->dq, t);
}

/* Work of this worker's own: its deque, then the fibers that yielded, then
 * the continuations its event state has ready.  fifo: oldest first (I4).
 * blind: poll the event state whenever I/O is pending; otherwise only when
 * it says it has something at hand (weft__io_ready_hint, no system call).
 * The search looks only on a hint: on epoll, where nothing hints without a
 * system call, a blind non-blocking poll in every round made 3 of the 4
 * epoll_wait calls per request of a moderately loaded server, and the
 * park that follows waits there anyway.  submit: also enter the kernel
 * just to submit what is queued; without it (a worker that will park
 * unless it finds work elsewhere) the park's wait submits it. */
static bool take_local(struct weft__worker *w, struct weft__task *t, bool fifo, bool blind, bool submit)
{
	struct weft__fiber *f;

	if (take_own(w, t, fifo))
		return true;
	if ((f = weft__fiber_yielded(w)) != NULL) {
		t->fn = weft__fiber_resume_task;
		t->arg = f;
		t->group = NULL;
		return true;
	}
	if (blind ? !weft__io_active(w) : !weft__io_ready_hint(w, submit))
		return false;
	return (submit ? weft__io_run(w, 0) : weft__io_reap(w)) > 0 && take_own(w, t, fifo);
}

/* After the idle search found work elsewhere: what this worker's fibers
 * queued for the kernel before it went looking goes in now, not after the
 * task it found (a file read starts; its completion still waits for this
 * worker). */
static void submit_queued(struct weft__worker *w)
{
	if (weft__io_ready_hint(w, true))
		weft__io_run(w, 0);
}

/* I5: take from a random victim whose deque is at least 2 longer than
 * this worker's (non-empty) one. */
static bool take_balancing(struct weft__worker *w, struct weft__task *t)
{
	struct weft_runtime *rt = w->rt;
	int64_t mine = weft__deque_size_hint(&w->dq);
	unsigned n = rt->nworkers, v;

	if (mine < 1 || n < 2)
		return false;
	v = (unsigned)(rng_next(&w->rng) % (n - 1));
	if (v >= w->index)
		v++;
	if (weft__deque_size_hint(&rt->workers[v].dq) < mine + 2)
		return false;
	WEFT_STAT_INC(w, steal_attempts);
	if (weft__deque_steal(&rt->workers[v].dq, t) != WEFT_STEAL_OK)
		return false;
	WEFT_STAT_INC(w, steals);
	WEFT_STAT_STOLEN(&rt->workers[v]);
	WEFT_TRACE(w, WEFT_EV_STEAL, v, task_fn_addr(t));
	return true;
}

/* Reap a random peer's epoll set if it has gone unreaped too long (io.h,
 * shared event state): its continuations land on w's deque.  Whether any
 * did. */
static bool help_peer(struct weft__worker *w)
{
	struct weft_runtime *rt = w->rt;
	unsigned n = rt->nworkers, v;

	/* Every worker's event state is published once io_init_left is 0. */
	if (n < 2 || !w->io || atom_load_32(&rt->io_init_left))
		return false;
	v = (unsigned)(rng_next(&w->rng) % (n - 1));
	if (v >= w->index)
		v++;
	return weft__io_help_peer(w, &rt->workers[v]) > 0;
}

/* Whether another worker is parked or searching, and so could take what
 * a reap of this worker's event state brings.  Two loads of the idle
 * line, which only parks, wakes and searches write. */
static inline bool anyone_idle(struct weft_runtime *rt)
{
	return (atom_load_32(&rt->idle.nparked) | atom_load_32(&rt->idle.nsearching)) != 0;
}

/* Whether a worker other than the caller, itself searching, runs tasks
 * (a hint: the counts move under it). */
static inline bool others_running(struct weft_runtime *rt)
{
	return atom_load_32(&rt->idle.nparked) + atom_load_32(&rt->idle.nsearching) < rt->nworkers;
}

/* For an idle worker with I/O pending (idle, below): whether no other
 * worker runs and its last park slept long and ended under
 * WEFT_PARK_YIELD_NS ago. */
static bool spin_pointless(struct weft__worker *w)
{
	return w->last_sleep_ns >= WEFT_PARK_YIELD_NS && !others_running(w->rt) &&
	       weft__now_ns() - w->woke_ns < WEFT_PARK_YIELD_NS;
}

/* Returns the task's source (enum weft_trace_source), or -1 for none. */
static int find_work(struct weft__worker *w, struct weft__task *t)
{
	/* Submit what the last tasks queued and reap what completed, so that
	 * a worker busy with a long queue neither sits on its fibers' sends
	 * nor hides their completions from idle thieves; at most every
	 * WEFT_IO_POLL_NS, so that short fibers still batch, and only every
	 * WEFT_IO_POLL_BUSY_NS while no thief is idle.  Queued submissions
	 * alone count only while tasks are queued too: a worker that is out
	 * of work looks elsewhere and then parks, and the park's wait submits
	 * them (submit_queued if it finds work elsewhere).  epoll cannot
	 * hint: it is looked at every WEFT_IO_FAIR_NS of busy time while I/O
	 * is pending, so that what arrived queues behind what is queued, not
	 * the other way round (as io_uring's completions do).  A due timer
	 * is fired at the next task boundary, whatever the interval. */
	bool queued = weft__deque_size_hint(&w->dq) > 0 || w->yield_head;
	int src;
	uint64_t every = weft__io_ready_hint(w, queued) ? (anyone_idle(w->rt) ? WEFT_IO_POLL_NS : WEFT_IO_POLL_BUSY_NS)
	                 : weft__io_blind_due(w) ? WEFT_IO_FAIR_NS : 0;
	uint64_t due = weft__io_next_due(w->io);

	weft__io_unpull(w, w->io); /* a peer's pull ends here (io.c, pulls) */
	if (every || due) {
		uint64_t now = weft__now_ns();
		if ((every && now - w->io->last_poll_ns >= every) || (due && due <= now)) {
			w->io->last_poll_ns = now;
			weft__io_run(w, 0);
		}
	}
	if (++w->tick >= WEFT_INJECT_INTERVAL) {
		w->tick = 0;
		/* Fairness: completions and outside work get their turn
		 * even while local work keeps coming. */
		if (weft__io_active(w))
			weft__io_run(w, 0);
		if (inject_take(w, t))
			return WEFT_SRC_INJECTED;
		(void)help_peer(w); /* what it reaps is taken below */
	}
	if (take_balancing(w, t))
		return WEFT_SRC_STOLEN;
	if (take_local(w, t, true, true, false))
		return WEFT_SRC_LOCAL;
	src = inject_take(w, t) ? WEFT_SRC_INJECTED : steal_round(w, t) ? WEFT_SRC_STOLEN : -1;
	if (src >= 0)
		submit_queued(w);
	return src;
}

/* Run a task found outside the own deque's fast path, recorded as a span.
 * Returns the worker it returned on (another one only on a fiber). */
static struct weft__worker *run_traced(struct weft__worker *w, const struct weft__task *t, int src, bool on_fiber)
{
	WEFT_TRACE(w, WEFT_EV_TASK_BEGIN, src, task_fn_addr(t));
	if (on_fiber)
		w = weft__run_task_fiber(w, t);
	else
		weft__run_task(w, t);
	WEFT_TRACE(w, WEFT_EV_TASK_END, 0, 0);
	return w;
}

/* Run one stolen or injected task, within the stack reserve (I2).
 * Returns the worker it ran on afterwards, or NULL if it ran none. */
static struct weft__worker *help_foreign(struct weft__worker *w, bool on_fiber)
{
	struct weft__task t;
	int src;

	if ((uintptr_t)__builtin_frame_address(0) < w->stack_limit)
		return NULL;
	src = steal_round(w, &t) ? WEFT_SRC_STOLEN : inject_take(w, &t) ? WEFT_SRC_INJECTED : -1;
	if (src < 0)
		return NULL;
	return run_traced(w, &t, src, on_fiber);
}

/* Whether an idle spin that started at *since (0: starts now) has lasted
 * WEFT_HELP_SPIN_NS. */
static bool idle_spun(uint64_t *since)
{
	uint64_t now = weft__now_ns();

	if (*since == 0)
		*since = now;
	return now - *since >= WEFT_HELP_SPIN_NS;
}

void weft__help_until(struct weft__worker *w, bool (*done)(void *), void *arg, bool own_io)
{
	ck_backoff_t backoff = CK_BACKOFF_INITIALIZER;
	uint64_t spun_since = 0; /* 0: not spinning idle */
	struct weft__task t;
	/* On a fiber's stack, what runs here may park the fiber and resume
	 * it on another worker (fiber.c, I4): w is re-read after each task. */
	bool on_fiber = w->fiber != NULL;

	WEFT_TRACE(w, WEFT_EV_WAIT_BEGIN, 0, 0);
	/* What we wait for may be a typed task spawned and not yet synced on
	 * this stack: make those runnable, here too (tdq.c). */
	weft__tdq_expose(&w->tdq);
	while (!done(arg)) {
		struct weft__worker *ran = NULL;
		if (take_local(w, &t, false, true, true) || weft__tdq_steal(&w->tdq, &t, false) == WEFT_STEAL_OK) {
			if (on_fiber)
				ran = weft__run_task_fiber(w, &t);
			else
				weft__run_task(ran = w, &t);
		} else {
			ran = help_foreign(w, on_fiber);
		}
		if (ran) {
			w = ran;
			backoff = CK_BACKOFF_INITIALIZER;
			spun_since = 0;
		} else if (backoff < WEFT_BACKOFF_CEILING) {
			ck_backoff_eb(&backoff);
		} else if (weft__io_active(w) && (own_io || idle_spun(&spun_since))) {
			/* Pending I/O of this worker's own, which only it can
			 * reap: wait there for a little while.  When that is
			 * what we wait for, its completion ends the wait; a
			 * group, a future or a stolen task finishes on another
			 * thread without waking it, so those waits block only
			 * after WEFT_HELP_SPIN_NS of spinning: the fork-join
			 * tail (a fan-out request's last stolen task) is
			 * shorter than that, and blocking there added up to 50
			 * us each time. */
			weft__io_run(w, WEFT_IO_HELP_WAIT_NS);
		} else {
			sched_yield();
		}
	}
	WEFT_TRACE(w, WEFT_EV_WAIT_END, 0, 0);
}

/* Whether the place a search took its task from still shows work: more
 * of the same burst, for which the cascade wakes another worker (park.c).
 * The injector is looked at by weft__search_end itself. */
static bool more_at(struct weft__worker *w, int src)
{
	struct weft__worker *v;

	switch (src) {
	case WEFT_SRC_STOLEN:
		v = &w->rt->workers[w->victim];
		return weft__deque_size_hint(&v->dq) > 0 || weft__tdq_visible(&v->tdq);
	case WEFT_SRC_LOCAL:
		return weft__deque_size_hint(&w->dq) > 0;
	default:
		return false;
	}
}

/* Search, then park, until a task is found (its source) or the runtime
 * stops (-1). */
static int idle(struct weft__worker *w, struct weft__task *t)
{
	struct weft_runtime *rt = w->rt;
	bool searching = weft__search_begin(rt);

	for (;;) {
		if (searching) {
			ck_backoff_t backoff = CK_BACKOFF_INITIALIZER;
			bool io = weft__io_active(w), last;
			unsigned round, rounds = io ? WEFT_SEARCH_ROUNDS_IO : WEFT_SEARCH_ROUNDS;
			WEFT_TRACE(w, WEFT_EV_SEARCH_BEGIN, 0, 0);
			for (round = 0; round < rounds; round++) {
				int src = steal_round(w, t) ? WEFT_SRC_STOLEN
				          : inject_take(w, t) ? WEFT_SRC_INJECTED
				          : take_local(w, t, true, false, false) ? WEFT_SRC_LOCAL
				          : round == 0 && help_peer(w) && take_own(w, t, true) ? WEFT_SRC_LOCAL : -1;
				if (src >= 0) {
					WEFT_TRACE(w, WEFT_EV_SEARCH_END, 0, 0);
					weft__search_end(rt, true, more_at(w, src));
					if (src != WEFT_SRC_LOCAL)
						submit_queued(w);
					return src;
				}
				if (atom_load_32(&rt->stop))
					break;
				/* A worker with I/O pending is woken in its park by
				 * its own completions, so its spin catches what
				 * other workers spawn or reap and completions due
				 * within microseconds: pointless while no other
				 * worker runs and the worker came out of a long
				 * sleep a moment ago (a moderate load, whose next
				 * request is far off; under load it runs for long
				 * between parks, or hardly sleeps in them).  At
				 * 10k req/s that spin was 7% of the server's CPU. */
				last = round + 1 == rounds || (io && spin_pointless(w));
				if (!last && backoff < WEFT_BACKOFF_CEILING)
					ck_backoff_eb(&backoff);
				else if (!last || w->last_sleep_ns < WEFT_PARK_YIELD_NS)
					sched_yield(); /* also on the short search's
					                * last round, under load: with the
					                * clients on the same cores it
					                * hands them the CPU, and without
					                * it saturated GET / lost a
					                * quarter of its req/s.  Between
					                * the requests of a moderate load
					                * the park sleeps anyway, and the
					                * yield's switch was 8% of the
					                * server's CPU at 10k req/s. */
				if (last)
					break;
			}
			WEFT_TRACE(w, WEFT_EV_SEARCH_END, 0, 0);
			weft__search_end(rt, false, false);
		}
		if (atom_load_32(&rt->stop))
			return -1;
		if (weft__park(w)) {
			searching = true; /* the waker counted us */
		} else {
			/* The re-check saw work, or this worker's own event
			 * state made some: take it if it is still there. */
			if (take_local(w, t, true, false, false))
				return WEFT_SRC_LOCAL;
			if (inject_take(w, t))
				return WEFT_SRC_INJECTED;
			if (steal_round(w, t))
				return WEFT_SRC_STOLEN;
			searching = weft__search_begin(rt);
		}
	}
}

/* The lowest stack address that helping may reach (the stack grows down). */
static uintptr_t stack_limit(void)
{
	pthread_attr_t attr;
	void *lo;
	size_t size, reserve;
	uintptr_t limit = 0;

	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
			reserve = size / WEFT_STACK_RESERVE_DIV;
			if (reserve < WEFT_STACK_RESERVE_MIN)
				reserve = WEFT_STACK_RESERVE_MIN;
			limit = (uintptr_t)lo + reserve;
		}
		pthread_attr_destroy(&attr);
	}
	return limit;
}

void *weft__worker_main(void *arg)
{
	struct weft__worker *w = arg;
	struct weft_runtime *rt = w->rt;
	struct weft__task t;
	int rc;

	weft__tls_self = w;
	w->stack_limit = stack_limit();
	/* The event state is the thread's own (a ring has one issuer); create
	 * waits for every worker's outcome (runtime.c). */
	rc = weft__io_worker_init(w);
	if (rc)
		(void)atom_cas_32((uint32_t *)&rt->io_init_err, 0, (uint32_t)rc);
	if (atom_faa_32(&rt->io_init_left, (uint32_t)-1) == 1)
		weft__futex_wake(&rt->io_init_left, 1);
	for (;;) {
		int src = find_work(w, &t);
		if (src < 0)
			src = idle(w, &t);
		if (src >= 0)
			run_traced(w, &t, src, false); /* the thread's own stack */
		else if (atom_load_32(&rt->stop))
			break;
	}
	weft__io_worker_fini(w);
	weft__fiber_worker_fini(w);
	weft__tls_self = NULL;
	return NULL;
}

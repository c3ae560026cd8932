/*
 * worker.h: the runtime's internal types, shared by the scheduler files.
 * Never installed.
 */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "deque.h"
#include "fiber.h"
#include "io.h"
#include "injector.h"
#include "park.h"
#include "stats.h"
#include "tdq.h"
#include "trace.h"
#include "tunables.h"
#include "weft.h"

#define WEFT_HIDDEN __attribute__((visibility("hidden")))

struct weft__worker {
	/* Thief-visible: the deque (its own lines inside). */
	struct weft__deque dq;
	weft_tdq_t tdq; /* typed tasks (tdq.c); its own lines inside */
	/* Park word: 1 while parked, 0 otherwise; futex address. */
	uint32_t park_word __attribute__((aligned(WEFT_CACHELINE)));
	uint32_t park_in_io;  /* parked inside its event state (park.c, W4) */
	bool in_stack;   /* on the idle stack; under idle.lock */
	uint64_t stolen; /* tasks thieves took from this deque (stats.h) */
	/* Owner-private from here. */
	struct weft_runtime *rt __attribute__((aligned(WEFT_CACHELINE)));
	unsigned index;
	unsigned tick;        /* tasks run since the injector was checked */
	uintptr_t stack_limit; /* help with foreign work only above this (I2) */
	uint64_t rng;         /* xorshift state for victim choice */
	unsigned victim;      /* whom the last successful steal took from */
	int64_t last_sleep_ns; /* the last park's sleep; 0 if it did not sleep */
	uint64_t woke_ns;      /* when the last park that slept ended (weft__now_ns) */
	pthread_t thread;
	struct weft__trace_ring *trace; /* NULL unless the runtime traces */
	struct weft__io *io;            /* event state (io.h) */
	struct weft__fiber *fiber;      /* running fiber, NULL on the thread stack */
	void (*after)(struct weft__worker *, void *); /* fiber.c: after a switch */
	void *after_arg;
	struct weft__fiber *yield_head, *yield_tail; /* fibers that yielded */
	unsigned nstack_cache;
	void *stack_cache[WEFT_FIBER_STACK_CACHE]; /* free fiber stacks */
	struct weft__stats stats;       /* owner-written, see stats.h */
};

/* A submitted task and its completion state: weft_future_t.  Also the item
 * type of the injection queue. */
struct weft_future {
	uint32_t state;   /* 0 pending, 1 done; futex word for waiters */
	uint32_t waiters; /* threads sleeping on state */
	uint32_t refs;    /* the runtime's and the caller's */
	struct weft_runtime *rt;
	weft_task_fn fn;
	void *arg;
	struct weft_future *next; /* injector overflow link */
	void *fibers;     /* fibers waiting (future.c, I4) */
};

struct weft_runtime {
	unsigned nworkers;
	struct weft__worker *workers; /* array, cache-line aligned */
	struct weft__idle idle;
	struct weft__injector inj;
	weft_config_t cfg;
	/* Submissions not yet completed; destroy waits for 0. */
	int64_t outstanding __attribute__((aligned(WEFT_CACHELINE)));
	uint32_t closing;     /* destroy started: outside submits refused */
	pthread_mutex_t drain_lock; /* hand-over of outstanding == 0 to destroy */
	pthread_cond_t drain_cond;
	bool drained;
	uint32_t stop;        /* workers exit when they see it */
	int64_t outside_submits; /* weft_submit calls from outside threads */
	uint64_t trace_t0, trace_t0_ns; /* trace clock at create, both clocks */
	const struct weft__io_backend *io_backend; /* chosen at create (io.c) */
	char io_note[160];    /* why not io_uring, or "" */
	/* Free fiber stacks beyond the workers' caches (fiber.c). */
	pthread_mutex_t stack_lock;
	void **stack_pool;    /* WEFT_FIBER_STACK_POOL slots */
	uint32_t nstack_pool; /* written under stack_lock */
	uint32_t io_init_left; /* workers still setting up their event state */
	int io_init_err;      /* first worker setup error, 0 if none */
};

/* The worker running on this thread, NULL elsewhere. */
extern __thread struct weft__worker *weft__tls_self __attribute__((tls_model("initial-exec")));

static inline struct weft__worker *weft__self(void) { return weft__tls_self; }

/* Scheduler (scheduler.c). */
void *weft__worker_main(void *arg);
/* Count a task that returned in its group (group.c explains the counting).
 * w: the worker the task returned on. */
static inline void weft__task_done(struct weft__worker *w, struct weft_group *g)
{
	if (!g)
		return;
	/* Pairs with the acquire loads in group_done (group.c). */
	if (g->owner_ == (void *)w)
		g->done_++;
	else
		atom_inc_u64(&g->remote_done_);
}
/* Run one task to completion and count it.  On the worker's thread stack,
 * where a task returns on the thread that called it.  Owner worker. */
static inline void weft__run_task(struct weft__worker *w, const struct weft__task *t)
{
	struct weft_group *g = t->group;

	t->fn(t->arg);
	weft__task_done(w, g);
}
/* The same on a fiber's stack, where the task may park the fiber, which
 * then resumes on another worker (fiber.c, I4).  Returns the worker it
 * runs on afterwards. */
static inline struct weft__worker *weft__run_task_fiber(struct weft__worker *w, const struct weft__task *t)
{
	struct weft_group *g = t->group;

	t->fn(t->arg);
	w = weft__self_fresh();
	weft__task_done(w, g);
	return w;
}
/* Run tasks (own deque first, then stolen or injected ones) until done(arg)
 * is true, backing off and then yielding while there is nothing to run.
 * own_io: what is awaited completes in this worker's event state (its own
 * I/O), whose completion wakes a wait there; otherwise another thread
 * completes it, which wakes nothing, so the waiter spins a while before it
 * blocks in its event state.  Owner worker. */
void weft__help_until(struct weft__worker *w, bool (*done)(void *), void *arg, bool own_io);
/* Whether any queue (injector or deque) looks non-empty.  Any thread. */
bool weft__work_visible(struct weft_runtime *rt);

/* weft_group_t.owner_ of a group initialised on a fiber's stack: the fiber
 * may move between workers, so every count is atomic (group.c). */
#define WEFT__GROUP_SHARED ((void *)1)

/* Futures (future.c).  Runs a submission on the calling worker. */
void weft__submission_run(void *rec);
/* Count n submissions (or submitters) out of rt->outstanding; the one that
 * takes it to 0 wakes weft_runtime_destroy.  Any thread; the caller must
 * not touch rt afterwards (future.c, I2). */
void weft__outstanding_put(struct weft_runtime *rt, int64_t n);

/* Futex wrappers (park.c).  Any thread. */
void weft__futex_wait(uint32_t *addr, uint32_t val, long timeout_ns);
void weft__futex_wake(uint32_t *addr, int n);

#endif /* WEFT_WORKER_H */

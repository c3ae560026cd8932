/*
 * fiber.h: stackful fibers (weft_go) and the context switch under them.
 * fiber.c explains the design.
 */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

#include <stddef.h>
#include <stdint.h>

#include "tunables.h"
#include "weft.h"

struct weft__worker;

struct weft__fiber {
	void *sp;            /* saved stack pointer while suspended */
	void *ret_sp;        /* the resumer's, while running (fiber.c, I2) */
	weft_task_fn fn;
	void *arg;
	struct weft_runtime *rt;
	uint32_t wake;       /* suspend/wake rendezvous (fiber.c, I3) */
	uint32_t pad_;
	struct weft__fiber *next; /* yield queue or a future's waiter list */
	void *map;           /* the mapping: guard page, stack, this record */
	size_t map_size;
	uintptr_t stack_limit; /* helping bound on this stack (scheduler.c I2) */
	void *san;           /* TSan fiber, when built with TSan */
	void *san_ret;       /* TSan: the resumer's fiber */
	void *asan_fake;     /* ASan: this fiber's fake stack while suspended */
	const void *asan_ret_bottom; /* ASan: the resumer's stack */
	size_t asan_ret_size;
};

/* Switch stacks: save the callee-saved registers and the stack pointer in
 * *save, load them from `to` (a pointer saved by an earlier switch, or a
 * new fiber's initial frame).  Assembly (fiber_switch.S), or ucontext
 * (fiber_ucontext.c, configure --with-fiber-switch=ucontext). */
void weft__ctx_switch(void **save, void *to);
#ifdef WEFT_FIBER_UCONTEXT
/* A new fiber's first context, for weft__ctx_switch's `to`: it runs
 * weft__fiber_main(f) on the stack [lo, top).  NULL if getcontext fails. */
void *weft__ctx_make(uintptr_t lo, uintptr_t top, struct weft__fiber *f);
#endif

/* Run f on the calling worker until it suspends or returns.  Owner worker;
 * f is not running anywhere. */
void weft__fiber_resume(struct weft__worker *w, struct weft__fiber *f);

/* A task that resumes the fiber given as its argument. */
void weft__fiber_resume_task(void *f);

/* The fiber running on the calling thread, NULL on a plain stack. */
struct weft__fiber *weft__fiber_self(void);

/* Suspend the calling fiber until weft__fiber_wake(f).  The caller sets
 * f->wake to 0 (weft__fiber_prepare) before it publishes f to a waker. */
static inline void weft__fiber_prepare(struct weft__fiber *f) { f->wake = 0; }
void weft__fiber_park(struct weft__fiber *f);
/* Make f runnable again (pushed on the calling worker's deque).  Exactly
 * once per weft__fiber_park.  Any thread. */
void weft__fiber_wake(struct weft__fiber *f);

/* Start loading what resuming a suspended f reads first: its record (any
 * f: a prefetch never faults), then the frames at its saved stack pointer
 * (the switch's saved registers and the callers it returns through; this
 * reads f->sp, so only for a fiber the caller is about to resume). */
static inline void weft__fiber_prefetch_record(const struct weft__fiber *f)
{
	__builtin_prefetch(f);
}
static inline void weft__fiber_prefetch_stack(const struct weft__fiber *f)
{
	const char *sp = f->sp;

	for (int i = 0; i < WEFT_FIBER_PREFETCH_LINES; i++)
		__builtin_prefetch(sp + i * WEFT_CACHELINE);
}

/* The worker calling this, read afresh from the thread pointer: for code
 * that resumes after a fiber switch, possibly on another thread. */
struct weft__worker *weft__self_fresh(void);

/* The runtime's pool of free stacks: made at create, emptied at destroy
 * once every worker is joined.  init returns 0 or -ENOMEM. */
struct weft_runtime;
int weft__fiber_runtime_init(struct weft_runtime *rt);
void weft__fiber_runtime_fini(struct weft_runtime *rt);
/* Per-worker fiber state: the stack cache and the yield queue. */
void weft__fiber_worker_fini(struct weft__worker *w);
/* Pop the oldest fiber that yielded on w, or NULL.  Owner worker. */
struct weft__fiber *weft__fiber_yielded(struct weft__worker *w);

#endif /* WEFT_FIBER_H */

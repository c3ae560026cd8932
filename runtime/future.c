/*
 * future.c: entry from any thread: weft_submit, weft_run and futures.
 *
 * A submission is one heap record (struct weft_future) that is both the
 * task and its completion state.  It is allocated once per submission; the
 * fork-join path (group.c) never allocates.
 *
 * Invariants
 *   I1  refs counts the holders: the runtime until the task has returned and
 *       been signalled, and the caller until weft_future_free.  The last
 *       holder frees the record, so a caller may free before completion and
 *       a waiter may free right after waking.
 *   I2  rt->outstanding counts submissions not yet completed, outside
 *       submitters still inside weft_submit, and 1 for the runtime itself
 *       until weft_runtime_destroy drops it.  So it reaches 0 once, after
 *       destroy started; the thread that takes it to 0 hands over to
 *       destroy under drain_lock, and no other thread touches rt after its
 *       own decrement.  Destroy frees only after that hand-over.
 *   I3  state goes 0 -> 1 once, by exchange (a full barrier), after the
 *       task returned; a waiter registers in `waiters` before it re-reads
 *       state, so the completer either sees the waiter or the waiter sees 1.
 *   I4  a fiber that waits suspends instead: it pushes itself on `fibers`
 *       (a CAS), unless that already holds FIBERS_DONE; the completer
 *       exchanges FIBERS_DONE in after setting state and wakes every fiber
 *       it took.  So each pushed fiber is woken exactly once, and a fiber
 *       that finds FIBERS_DONE does not park.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "worker.h"

#define FIBERS_DONE ((void *)1)

void weft__outstanding_put(struct weft_runtime *rt, int64_t n)
{
	if (atom_faa_64(&rt->outstanding, -n) != n)
		return; /* not the last: rt may be gone from here on (I2) */
	pthread_mutex_lock(&rt->drain_lock);
	rt->drained = true;
	pthread_cond_signal(&rt->drain_cond);
	pthread_mutex_unlock(&rt->drain_lock);
}

static void future_put(struct weft_future *f)
{
	if (atom_faa_32(&f->refs, (uint32_t)-1) == 1)
		free(f);
}

void weft__submission_run(void *rec)
{
	struct weft_future *f = rec;
	struct weft_runtime *rt = f->rt;
	struct weft__fiber *fb, *next;

	f->fn(f->arg);
	(void)atom_fas_32(&f->state, 1); /* I3 */
	if (atom_load_32(&f->waiters))
		weft__futex_wake(&f->state, INT_MAX);
	for (fb = atom_fas_ptr(&f->fibers, FIBERS_DONE); fb; fb = next) { /* I4 */
		next = fb->next; /* fb may run (and reuse next) once woken */
		weft__fiber_wake(fb);
	}
	future_put(f);
	weft__outstanding_put(rt, 1);
}

int weft_submit(weft_runtime_t *rt, weft_task_fn fn, void *arg, weft_future_t **future)
{
	struct weft__worker *self = weft__self();
	struct weft_future *f;

	if (future)
		*future = NULL;
	if (!rt || !fn)
		return -EINVAL;
	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->state = 0;
	f->waiters = 0;
	f->refs = future ? 2 : 1;
	f->rt = rt;
	f->fn = fn;
	f->arg = arg;
	f->next = NULL;
	f->fibers = NULL;

	if (self && self->rt == rt) {
		/* From inside the runtime: local work, on the own deque.  The
		 * running task keeps outstanding above 0, so destroy cannot
		 * have passed its drain: no closing check here. */
		struct weft__task t = { weft__submission_run, f, NULL };
		atom_faa_64(&rt->outstanding, 1);
		if (weft__deque_push(&self->dq, &t)) {
			weft__outstanding_put(rt, 1);
			free(f);
			return -ENOMEM;
		}
		WEFT_STAT_INC(self, submits);
		weft__notify(rt, &rt->idle);
	} else {
		/* One count for the task, one for this submitter (I2). */
		atom_faa_64(&rt->outstanding, 2);
		if (atom_load_32(&rt->closing)) {
			weft__outstanding_put(rt, 2);
			free(f);
			return -ESHUTDOWN;
		}
		atom_faa_64(&rt->outside_submits, 1);
		weft__injector_push(&rt->inj, f);
		atom_fence_sc(); /* P2 for outside producers: a submit is not hot */
		weft__notify(rt, &rt->idle);
		weft__outstanding_put(rt, 1);
	}
	if (future)
		*future = f;
	return 0;
}

int weft_future_done(const weft_future_t *f)
{
	return f ? (int)atom_load_acq_32((const uint32_t *)&f->state) : 0;
}

static bool future_done_cb(void *f)
{
	return atom_load_acq_32(&((struct weft_future *)f)->state) != 0;
}

int weft_future_wait(weft_future_t *f)
{
	struct weft__worker *self = weft__self();

	if (!f)
		return -EINVAL;
	if (atom_load_acq_32(&f->state))
		return 0;
	if (self && self->fiber && !weft__tdq_pinned(&self->tdq)) {
		/* In a fiber: suspend it (I4), the worker goes on. */
		struct weft__fiber *fb = self->fiber;
		weft__fiber_prepare(fb);
		for (;;) {
			void *head = atom_load_ptr(&f->fibers);
			if (head == FIBERS_DONE)
				return 0;
			fb->next = head;
			if (atom_cas_ptr(&f->fibers, head, fb))
				break;
		}
		weft__fiber_park(fb);
		return 0;
	}
	if (self) {
		/* On a worker: run other tasks until it is done. */
		weft__help_until(self, future_done_cb, f, false);
		return 0;
	}
	atom_faa_32(&f->waiters, 1);
	while (!atom_load_acq_32(&f->state))
		weft__futex_wait(&f->state, 0, 0);
	atom_faa_32(&f->waiters, (uint32_t)-1);
	return 0;
}

void weft_future_free(weft_future_t *f)
{
	if (f)
		future_put(f);
}


int weft_run(weft_runtime_t *rt, weft_task_fn fn, void *arg)
{
	struct weft__worker *self = weft__self();
	weft_future_t *f;
	int rc;

	if (!rt || !fn)
		return -EINVAL;
	if (self && self->rt == rt) {
		fn(arg);
		return 0;
	}
	rc = weft_submit(rt, fn, arg, &f);
	if (rc)
		return rc;
	rc = weft_future_wait(f);
	weft_future_free(f);
	return rc;
}

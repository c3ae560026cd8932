/*
 * deque.h: the per-worker work-stealing deque.
 *
 * A growable Chase-Lev deque (D. Chase, Y. Lev, "Dynamic circular
 * work-stealing deque", SPAA 2005) with the C11 orderings proved by N. M. Le,
 * A. Pop, A. Cohen, F. Zappa Nardelli ("Correct and efficient work-stealing
 * for weak memory models", PPoPP 2013), written on ck_pr through atomics.h.
 *
 * Vocabulary and ownership
 *   owner   the one worker that pushes and takes at the bottom.
 *   thief   any other thread; it steals at the top.
 *   top     index of the oldest item; only ever increased, by CAS.
 *   bottom  one past the newest item; written by the owner only.
 *   buf     circular array of task records, indexed modulo its capacity;
 *           replaced (never resized in place) by the owner when full.
 * Items are task records stored inline (three words), so a spawn writes into
 * the deque and allocates nothing.
 *
 * Invariants
 *   I1  top <= bottom + 1 at all times; the deque holds bottom - top items.
 *   I2  slot i mod cap of the current buffer is written only by push of
 *       index i, and only while i - top < cap, so a slot is never overwritten
 *       while index i could still be stolen (top <= i would need top to
 *       move past i first: top is monotonic, so no ABA).
 *   I3  a thief owns item t exactly when its CAS top: t -> t+1 succeeds; the
 *       owner takes the last item (t == b) under the same CAS, so the two
 *       sides can never both get it.
 *   I4  old buffers are kept until the deque is destroyed: a thief that
 *       loaded the old pointer may still read from it, and everything it
 *       reads there is a valid copy of the same items (the owner copies, it
 *       never clears).
 *
 * Memory ordering (the numbers pair with the code below)
 *   (P1) push stores the record's fields relaxed, then stores bottom with
 *        release: a thief that acquires bottom > i sees record i whole.
 *   (T1) take stores bottom = b-1 and then needs a StoreLoad fence before it
 *        loads top: otherwise the owner and a thief could both see the last
 *        item available (each before the other's write) and both take it.
 *   (S1) steal loads top (acquire), then a full fence, then bottom
 *        (acquire): the fence pairs with (T1), so at least one side sees the
 *        other's write and the last item goes through the CAS of I3.
 *   (S2) the CAS on top is seq_cst; a thief reads the record before the CAS
 *        and only uses it when the CAS succeeds (I2 makes the read valid).
 *   (G1) growth publishes the new buffer with release before the bottom that
 *        covers items in it; a thief loads buf after bottom, so it sees a
 *        buffer that holds every index below the bottom it read.
 * The record's fields are accessed with relaxed atomics: a thief may read a
 * slot that the owner is rewriting only in the case where its CAS then fails,
 * and that read must not be a data race in the C11 sense.
 */
#ifndef WEFT_DEQUE_H
#define WEFT_DEQUE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "tunables.h"
#include "weft.h"

/* A task record: what a spawn stores and a worker runs. */
struct weft__task {
	weft_task_fn fn;
	void *arg;
	struct weft_group *group; /* completion is counted here; may be NULL */
};

struct weft__deque_buf {
	int64_t mask;                 /* capacity - 1 */
	struct weft__deque_buf *prev; /* older buffer, kept for I4 */
	struct weft__task slot[];
};

struct weft__deque {
	/* Written by thieves (CAS) and by the owner taking the last item. */
	int64_t top __attribute__((aligned(WEFT_CACHELINE)));
	/* Written by the owner only, read by thieves. */
	int64_t bottom __attribute__((aligned(WEFT_CACHELINE)));
	struct weft__deque_buf *buf;
	/* Owner-private. */
	int64_t top_cache; /* a value top had; top only grows, so it is a lower bound */
};

_Static_assert(offsetof(struct weft__deque, bottom) - offsetof(struct weft__deque, top) >= WEFT_CACHELINE,
               "top and bottom must not share a cache line");
_Static_assert(sizeof(struct weft__task) == 3 * sizeof(void *), "task records are three words");

enum weft__steal { WEFT_STEAL_EMPTY = 0, WEFT_STEAL_OK = 1, WEFT_STEAL_ABORT = 2 };

/* Initialise with capacity 1 << log2cap.  Returns 0, -EINVAL (log2cap 0 or
 * above WEFT_DEQUE_LOG2_MAX) or -ENOMEM.  Any thread,
 * before the deque is shared. */
int weft__deque_init(struct weft__deque *dq, unsigned log2cap);

/* Free the deque and all its buffers.  No thread may use it any more. */
void weft__deque_fini(struct weft__deque *dq);

/* Replace a full buffer by one twice its size.  Owner only; cold path of
 * push.  Returns 0 or -ENOMEM (the deque is unchanged then). */
int weft__deque_grow(struct weft__deque *dq, int64_t top, int64_t bottom);

static inline void task_store(struct weft__task *s, const struct weft__task *t)
{
	atom_store_ptr((void **)&s->fn, (void *)t->fn);
	atom_store_ptr(&s->arg, t->arg);
	atom_store_ptr((void **)&s->group, t->group);
}

static inline void task_load(const struct weft__task *s, struct weft__task *t)
{
	t->fn = (weft_task_fn)atom_load_ptr((void *const *)&s->fn);
	t->arg = atom_load_ptr(&s->arg);
	t->group = (struct weft_group *)atom_load_ptr((void *const *)&s->group);
}

/* Push t at the bottom if there is room without growing.  Owner only.
 * Returns false when the buffer is full (nothing was pushed). */
static inline bool weft__deque_try_push(struct weft__deque *dq, const struct weft__task *t)
{
	int64_t b = dq->bottom; /* owner is the only writer: plain read is exact */
	struct weft__deque_buf *buf = dq->buf;

	if (__builtin_expect(b - dq->top_cache > buf->mask, 0)) {
		dq->top_cache = atom_load_acq_64(&dq->top);
		if (b - dq->top_cache > buf->mask)
			return false;
	}
	task_store(&buf->slot[b & buf->mask], t);
	atom_store_rel_64(&dq->bottom, b + 1); /* (P1) */
	return true;
}

/* Push t at the bottom, growing the buffer when full.  Owner only.
 * Returns 0 or -ENOMEM (growth failed; nothing was pushed). */
static inline int weft__deque_push(struct weft__deque *dq, const struct weft__task *t)
{
	if (__builtin_expect(weft__deque_try_push(dq, t), 1))
		return 0;
	int rc = weft__deque_grow(dq, dq->top_cache, dq->bottom);
	if (rc)
		return rc;
	return weft__deque_try_push(dq, t) ? 0 : -ENOMEM;
}

/* Take the newest item into *out.  Owner only.  Returns false when empty. */
static inline bool weft__deque_take(struct weft__deque *dq, struct weft__task *out)
{
	int64_t b = dq->bottom - 1;
	struct weft__deque_buf *buf = dq->buf;
	int64_t t;

	atom_store_fence_64(&dq->bottom, b); /* (T1) */
	t = atom_load_64(&dq->top);
	if (t > b) {
		/* Empty: restore bottom. */
		atom_store_64(&dq->bottom, b + 1);
		return false;
	}
	task_load(&buf->slot[b & buf->mask], out);
	if (t == b) {
		/* The last item: race the thieves for it through top (I3). */
		bool won = atom_cas_64(&dq->top, t, t + 1);
		atom_store_64(&dq->bottom, b + 1);
		dq->top_cache = t + 1;
		return won;
	}
	return true;
}

/* Steal the oldest item into *out.  Any thread.  Returns WEFT_STEAL_OK,
 * WEFT_STEAL_EMPTY, or WEFT_STEAL_ABORT when another thread won the race
 * for that item (the caller may retry). */
static inline enum weft__steal weft__deque_steal(struct weft__deque *dq, struct weft__task *out)
{
	int64_t t = atom_load_acq_64(&dq->top);
	int64_t b;
	struct weft__deque_buf *buf;

	atom_fence_sc(); /* (S1) */
	b = atom_load_acq_64(&dq->bottom);
	if (t >= b)
		return WEFT_STEAL_EMPTY;
	buf = (struct weft__deque_buf *)atom_load_acq_ptr((void *const *)&dq->buf); /* (G1) */
	task_load(&buf->slot[t & buf->mask], out);
	if (!atom_cas_64(&dq->top, t, t + 1)) /* (S2) */
		return WEFT_STEAL_ABORT;
	return WEFT_STEAL_OK;
}

/* Copy the task `ahead` places after the oldest into *out, without taking
 * it; false if the deque holds no such task.  Owner only, and a hint only:
 * a thief may take that task meanwhile.  The slot lies in [top, bottom) of
 * the owner's own buffer, which no other thread writes or replaces. */
static inline bool weft__deque_peek_oldest(const struct weft__deque *dq, int64_t ahead, struct weft__task *out)
{
	int64_t i = atom_load_64(&dq->top) + ahead;
	const struct weft__deque_buf *buf = dq->buf;

	if (i >= dq->bottom)
		return false;
	task_load(&buf->slot[i & buf->mask], out);
	return true;
}

/* A racy size hint (bottom - top), for wake decisions only.  Any thread. */
static inline int64_t weft__deque_size_hint(const struct weft__deque *dq)
{
	int64_t b = atom_load_64(&dq->bottom);
	int64_t t = atom_load_64(&dq->top);
	return b - t;
}

#endif /* WEFT_DEQUE_H */

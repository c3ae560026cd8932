/*
 * tdq.c: typed-task deques (include/weft/task.h), a split deque.
 *
 * Each worker owns an array of 64-byte slots.  The owner pushes and pops at
 * head_ with plain loads and stores; thieves take from the other end.  The
 * array is cut in two at the split: slots below it are public (thieves may
 * claim them), slots from it up to head_ are private (only the owner knows
 * them).  This is the design of Lace (T. van Dijk, J. van de Pol, "Lace:
 * non-blocking split deque for work-stealing", Euro-Par 2014 workshops),
 * written here from its description with a CAS where Lace relies on x86
 * store ordering.  A pop of a private slot needs no fence: no other thread
 * can reach it.  The Chase-Lev deque (deque.h) pays a StoreLoad fence on
 * every take instead.
 *
 * Shared state
 *   ts_        one 64-bit word: top (low half), the index of the oldest
 *              public slot not yet claimed, and split (high half), one past
 *              the newest public slot.  The public part is [top, split).
 *              Thieves change it only by CAS top -> top+1; the owner by CAS
 *              (or a plain store while it is frozen, below) to move split.
 *   movesplit_ set by a thief that found the public part empty; the owner
 *              then publishes half of its private slots at its next spawn
 *              or pop, and clears it.
 *   slot.done_ set (release) by the thief once the slot's result is in it.
 * Owner-private: head_, split_ (== base_ + split, always exact: only the
 * owner moves split), end_, publish_, depth_, chunk_.
 *
 * Invariants
 *   T1  top <= split <= head index.  The owner writes a slot only at
 *       head >= split, so it never writes a slot a thief can claim.
 *   T2  a public slot is taken exactly once: by the thief whose CAS moves
 *       top past it, or by the owner whose CAS moves split below it (a
 *       sync taking back its newest public slot).  Both CAS the same word
 *       from the same value, so only one succeeds.
 *   T3  frozen: when top == split no thief's CAS can succeed (thieves CAS
 *       only when they read top < split, and a CAS from a stale value
 *       fails), so the owner may store ts_ plainly; publish_ == 1 only
 *       when the owner knows top == split.
 *   T4  when a sync finds its slot stolen, every older slot was stolen too
 *       (top only grows, and the slot is the newest public one), so the
 *       public part is empty and frozen; the owner waits for the slot's
 *       done_, then resets ts_ to (h, h) with split_ = head_ = slot h.
 *   T5  overflow: when head_ reaches the end of the array, further spawns
 *       go to malloc'd chunks, private for ever; split_ and end_ then
 *       describe the chunk, and the saved values return with the last pop.
 *   T6  a slot's done_ is 0 whenever the slot is not claimed: the array
 *       starts zeroed (mmap), only a thief sets done_ (once, after it ran
 *       the slot), and the owner clears it when it collects that result,
 *       before the slot can be published again.  So a spawn need not
 *       write it.  Chunk slots are never claimed and never read it.
 *   ABA on ts_ is harmless: a CAS that succeeds from an old value claims
 *   index top of the *current* state, which is public and unclaimed then,
 *   and the thief reads the slot only after its CAS.
 *
 * Memory ordering
 *   (P) the owner writes a slot's fields (plain), then publishes it with
 *       a release store, or a release fence and a CAS, of ts_; (C) a
 *       thief's successful CAS reads a value in ts_'s release sequence, and
 *       an acquire fence after it orders the thief's reads of the slot
 *       after it (ck_pr's CAS carries no ordering on AArch64).  This
 *       matters under ABA: the value the thief read may be an older
 *       publication of the same index, and only the CAS's read is recent.  (D) the thief stores the result, then
 *       done_ with release; the owner loads done_ with acquire before it
 *       reads the result or reuses the slot.  movesplit_ is a hint with
 *       relaxed accesses: a lost or late one delays a publication, never
 *       loses a task.  A publication wakes a parked worker through
 *       weft__notify, the same producer protocol as a deque push (park.c).
 *
 * Fibers.  The stack of unsynced spawns is the worker's, so a fiber must
 * not move while a task body runs on its stack: depth_ counts the bodies
 * entered (weft_tdq_enter_, weft__tslot_run) and the suspension points
 * (io_api.c, future.c, fiber.c) wait in place while it is nonzero.  A
 * fiber resumed by a helping worker starts with depth_ 0 (fiber.c).
 *
 * Waiting with unsynced spawns.  A body that waits (I/O, a future, a
 * group) before it syncs may wait for one of its own spawns: a writer to
 * the pipe it reads, say.  Private slots run only at their sync, so
 * weft__help_until first publishes all of them (weft__tdq_expose) and
 * then claims public slots of its own deque as a thief would (a later
 * sync finds them taken, T4, and their done_ set).  Chunk slots (T5)
 * cannot be published: a wait that depends on one of them waits for ever.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "tdq.h"
#include "worker.h"

#define TS(top, split) ((int64_t)((uint64_t)(top) | ((uint64_t)(split) << 32)))
#define TS_TOP(ts) ((uint32_t)(uint64_t)(ts))
#define TS_SPLIT(ts) ((uint32_t)((uint64_t)(ts) >> 32))

/* A chunk of overflow slots (T5) and what it replaced. */
struct chunk {
	struct chunk *prev;
	weft_tslot_t *head, *split, *end;
	weft_tslot_t slot[];
};

/* Typed tasks spawned off the workers run serially on the spawning
 * thread: an empty array, so every spawn goes to the chunks. */
static __thread weft_tdq_t outside_tdq;

static int64_t *ts_word(weft_tdq_t *q)
{
	return (int64_t *)&q->ts_;
}

static uint32_t idx(const weft_tdq_t *q, const weft_tslot_t *s)
{
	return (uint32_t)(s - q->base_);
}

int weft__tdq_init(weft_tdq_t *q, struct weft__worker *w, unsigned nworkers)
{
	size_t size = (size_t)WEFT_TDQ_SLOTS * sizeof(weft_tslot_t);
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m == MAP_FAILED)
		return -ENOMEM;
	q->base_ = q->head_ = q->split_ = m;
	q->end_ = q->base_ + WEFT_TDQ_SLOTS;
	q->publish_ = nworkers > 1; /* T3: ts_ is (0, 0); alone, no thieves */
	q->depth_ = 0;
	q->chunk_ = NULL;
	q->owner_ = w;
	q->ts_ = 0;
	q->movesplit_ = 0;
	return 0;
}

void weft__tdq_fini(weft_tdq_t *q)
{
	if (q->base_)
		munmap(q->base_, (size_t)WEFT_TDQ_SLOTS * sizeof(weft_tslot_t));
	q->base_ = NULL;
}

weft_tslot_t *weft_tdq_overflow_(weft_tdq_t *q)
{
	struct chunk *c = malloc(sizeof(*c) + WEFT_TDQ_CHUNK * sizeof(weft_tslot_t));

	if (!c) {
		fputs("weft: out of memory for the spawns of a typed task (WEFT_SPAWN)\n", stderr);
		abort();
	}
	c->prev = q->chunk_;
	c->head = q->head_;
	c->split = q->split_;
	c->end = q->end_;
	q->chunk_ = c;
	q->head_ = q->split_ = c->slot;
	q->end_ = c->slot + WEFT_TDQ_CHUNK;
	return q->head_;
}

/* Back from the newest chunk to what it replaced (T5). */
static void chunk_pop(weft_tdq_t *q)
{
	struct chunk *c = q->chunk_;

	q->head_ = c->head;
	q->split_ = c->split;
	q->end_ = c->end;
	q->chunk_ = c->prev;
	free(c);
}

/* Move split up to nsplit (> split), making those slots public. */
static void publish_upto(weft_tdq_t *q, uint32_t nsplit)
{
	struct weft__worker *w = q->owner_;

	if (q->publish_) {
		/* Frozen at (split, split) (T3). */
		atom_store_rel_64(ts_word(q), TS(idx(q, q->split_), nsplit)); /* (P) */
		q->publish_ = 0;
	} else {
		atom_fence_rel(); /* (P) */
		for (;;) {
			int64_t ts = atom_load_acq_64(ts_word(q));
			if (atom_cas_64(ts_word(q), ts, TS(TS_TOP(ts), nsplit)))
				break;
		}
	}
	q->split_ = q->base_ + nsplit;
	atom_store_32(&q->movesplit_, 0);
	weft__notify(w->rt, &w->rt->idle);
}

/* Whether q's runtime has parked workers (a hint). */
static bool parked_workers(const weft_tdq_t *q)
{
	const struct weft__worker *w = q->owner_;
	return w && atom_load_32(&w->rt->idle.nparked) != 0;
}

/* Whether q has private slots that may be published: chunk slots stay
 * private (T5), and off the workers nobody could take them. */
static bool can_publish(const weft_tdq_t *q)
{
	return !q->chunk_ && q->owner_ && q->head_ != q->split_;
}

void weft_tdq_publish_(weft_tdq_t *q)
{
	uint32_t split, head;

	if (!can_publish(q))
		return; /* nothing to give: keep the request for the next spawn */
	split = idx(q, q->split_);
	head = idx(q, q->head_);
	/* After an empty public part, everything; on request, half. */
	publish_upto(q, q->publish_ ? head : split + (head - split + 1) / 2);
}

void weft__tdq_expose(weft_tdq_t *q)
{
	if (can_publish(q))
		publish_upto(q, idx(q, q->head_));
}

static bool slot_done(void *s)
{
	return atom_load_acq_32(&((weft_tslot_t *)s)->done_) != 0; /* (D) */
}

weft_tslot_t *weft_tdq_sync_(weft_tdq_t *q)
{
	weft_tslot_t *s;
	uint32_t h;

	if (q->chunk_ && q->head_ == ((struct chunk *)q->chunk_)->slot) {
		chunk_pop(q);
		return weft_tdq_pop_(q);
	}
	if (q->head_ == q->base_) {
		fputs("weft: WEFT_SYNC without a WEFT_SPAWN to pair with\n", stderr);
		abort();
	}
	/* T1 and head_ <= split_: the newest spawn is the newest public
	 * slot.  Take it back unless a thief has it (T2). */
	s = q->head_ - 1;
	h = idx(q, s);
	for (;;) {
		int64_t ts = atom_load_acq_64(ts_word(q));
		if (TS_TOP(ts) > h)
			break;
		if (atom_cas_64(ts_word(q), ts, TS(TS_TOP(ts), h))) {
			q->split_ = q->head_ = s;
			/* T3.  The public part is empty now: publish the next
			 * spawn at once only for a parked worker, which asks
			 * no more; searching thieves ask through movesplit_.
			 * Otherwise a loop of spawn+sync pairs would publish
			 * and take back each one. */
			q->publish_ = TS_TOP(ts) == h && parked_workers(q);
			return s;
		}
	}
	/* Stolen (T4): help until the thief is done with it. */
	if (!slot_done(s))
		weft__help_until(q->owner_, slot_done, s, false);
	s->done_ = 0; /* T6: read (acquire) above, so no thief writes it now */
	atom_store_rel_64(ts_word(q), TS(h, h));
	q->split_ = q->head_ = s;
	q->publish_ = 1;
	return (weft_tslot_t *)((uintptr_t)s | WEFT_TSLOT_STOLEN);
}

weft_tdq_t *weft_tdq_enter_(void)
{
	struct weft__worker *w = weft__self();
	weft_tdq_t *q = w ? &w->tdq : &outside_tdq;

	q->depth_++;
	return q;
}

void weft_tdq_leave_(weft_tdq_t *q, weft_tslot_t *head)
{
	/* Back to where WEFT_RUN started: sync what the bodies left unsynced
	 * (task.h, Rules), running the private ones, waiting for the stolen
	 * ones, dropping the results; and leave a chunk that the last sync
	 * emptied (the next sync would have), so off the workers nothing
	 * stays allocated. */
	while (q->head_ != head) {
		if (q->chunk_ && q->head_ == ((struct chunk *)q->chunk_)->slot) {
			chunk_pop(q);
		} else {
			weft_tslot_t *s = weft_tdq_pop_(q);
			if (!weft_tslot_stolen_(s))
				s->run_(q, s);
		}
	}
	q->depth_--;
}

enum weft__steal weft__tdq_steal(weft_tdq_t *q, struct weft__task *out, bool ask)
{
	int64_t ts = atom_load_acq_64(ts_word(q));
	uint32_t top = TS_TOP(ts);

	if (top >= TS_SPLIT(ts)) {
		if (ask && !atom_load_32(&q->movesplit_))
			atom_store_32(&q->movesplit_, 1);
		return WEFT_STEAL_EMPTY;
	}
	if (!atom_cas_64(ts_word(q), ts, TS(top + 1, TS_SPLIT(ts))))
		return WEFT_STEAL_ABORT;
	atom_fence_acq(); /* (C) */
	out->fn = weft__tslot_run;
	out->arg = q->base_ + top;
	out->group = NULL;
	return WEFT_STEAL_OK;
}

bool weft__tdq_visible(weft_tdq_t *q)
{
	int64_t ts = atom_load_64(ts_word(q));
	return TS_TOP(ts) < TS_SPLIT(ts);
}

void weft__tslot_run(void *slot)
{
	weft_tslot_t *s = slot;
	weft_tdq_t *q = &weft__self()->tdq;

	q->depth_++;
	s->run_(q, s);
	q->depth_--;
	atom_fence_rel(); /* (D) */
	atom_store_32(&s->done_, 1);
}

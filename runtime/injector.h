/*
 * injector.h: the queue that carries work from outside threads to workers.
 *
 * A Concurrency Kit ring of pointers, single-producer/multi-consumer
 * (ck_ring_enqueue_spmc / ck_ring_dequeue_spmc): producers take `lock` (a
 * futex-based mutex) to enqueue, workers dequeue lock-free with a CAS on
 * the consumer head.  Behind the ring, under the same lock, an overflow
 * list takes what does not fit, so a burst never blocks or fails a
 * submitter.  Items are struct weft_future records (they carry an
 * intrusive `next` link for the overflow list).
 *
 * Rejected: ck_ring's MPMC enqueue.  Its producers wait, spinning, for
 * every earlier producer to publish; with more submitting threads than
 * cores a preempted producer stalls all the others for a time slice each
 * (measured: 8 submitters on 2 cores made 200 000 submissions in 24
 * minutes).  A sleeping mutex costs a little more uncontended and never
 * convoys; outside submission is not the fork-join hot path.
 *
 * Invariants
 *   I1  an item is in exactly one place: the ring, the overflow list, or
 *       the hands of the one thread that dequeued it (ck_ring's CAS on the
 *       consumer head guarantees a ring slot is consumed once).
 *   I2  only a holder of `lock` enqueues on the ring or touches the
 *       overflow list; ov_count is its length, read without the lock only
 *       as a hint.
 * Ordering: ck_ring publishes the slot before the producer tail (its own
 * fences), so a consumer that dequeues a pointer sees the record's fields
 * written before enqueue.  Under TSan the same edge is declared explicitly
 * (WEFT_HB_RELEASE/ACQUIRE) because TSan cannot see CK's volatile accesses.
 */
#ifndef WEFT_INJECTOR_H
#define WEFT_INJECTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_ring.h>

#include "tunables.h"

struct weft_future;

struct weft__injector {
	struct ck_ring ring;
	struct ck_ring_buffer *slots;
	pthread_mutex_t lock;
	struct weft_future *ov_head, *ov_tail;
	uint32_t ov_count;
};

/* Returns 0 or -ENOMEM.  Before the injector is shared. */
int weft__injector_init(struct weft__injector *q);
/* The injector must be empty and unused. */
void weft__injector_fini(struct weft__injector *q);
/* Enqueue; never fails.  Any thread (takes the lock). */
void weft__injector_push(struct weft__injector *q, struct weft_future *f);
/* Dequeue, or NULL when empty.  Any thread; lock-free unless the ring is
 * empty and the overflow list is not. */
struct weft_future *weft__injector_pop(struct weft__injector *q);
/* Racy emptiness hint for wake and park decisions.  Any thread. */
bool weft__injector_nonempty(struct weft__injector *q);

#endif /* WEFT_INJECTOR_H */

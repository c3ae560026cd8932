/*
 * injector.h: the queue that carries work from outside threads to workers.
 *
 * A Concurrency Kit MPMC ring (ck_ring_enqueue_mpmc / dequeue_mpmc) of
 * pointers, with a mutex-protected overflow list behind it so that a burst
 * larger than the ring neither blocks nor fails the submitter.  Items are
 * struct weft_future records (they carry an intrusive `next` link for the
 * overflow list).
 *
 * Invariants
 *   I1  an item is in exactly one place: the ring, the overflow list, or
 *       the hands of the one thread that dequeued it (ck_ring's CAS on the
 *       consumer head guarantees a ring slot is consumed once).
 *   I2  ov_count is the length of the overflow list; it is written under
 *       the lock and read without it only as a hint.
 * Ordering: ck_ring publishes the slot before the producer head (its own
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
/* Enqueue; never fails.  Any thread. */
void weft__injector_push(struct weft__injector *q, struct weft_future *f);
/* Dequeue, or NULL when empty.  Any thread. */
struct weft_future *weft__injector_pop(struct weft__injector *q);
/* Racy emptiness hint for wake and park decisions.  Any thread. */
bool weft__injector_nonempty(struct weft__injector *q);

#endif /* WEFT_INJECTOR_H */

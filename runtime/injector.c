/*
 * injector.c: outside-thread submission queue (see injector.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "atomics.h"
#include "injector.h"
#include "worker.h"

#ifdef WEFT_TSAN
/* TSan's dynamic annotations: CK's ring is correct, but in its portable
 * form it publishes slots with volatile accesses that TSan reports as
 * races.  Its accesses are excluded and the edge it provides is declared
 * with WEFT_HB_RELEASE/ACQUIRE on the ring instead. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define RING_BEGIN() (AnnotateIgnoreReadsBegin(__FILE__, __LINE__), AnnotateIgnoreWritesBegin(__FILE__, __LINE__))
#define RING_END() (AnnotateIgnoreWritesEnd(__FILE__, __LINE__), AnnotateIgnoreReadsEnd(__FILE__, __LINE__))
#else
#define RING_BEGIN() ((void)0)
#define RING_END() ((void)0)
#endif

int weft__injector_init(struct weft__injector *q)
{
	unsigned size = 1U << WEFT_INJECT_LOG2;

	q->slots = calloc(size, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	ck_ring_init(&q->ring, size);
	pthread_mutex_init(&q->lock, NULL);
	q->ov_head = q->ov_tail = NULL;
	q->ov_count = 0;
	return 0;
}

void weft__injector_fini(struct weft__injector *q)
{
	pthread_mutex_destroy(&q->lock);
	free(q->slots);
	q->slots = NULL;
}

void weft__injector_push(struct weft__injector *q, struct weft_future *f)
{
	bool ok = false;

	WEFT_HB_RELEASE(&q->ring);
	pthread_mutex_lock(&q->lock);
	/* Keep rough FIFO order: once items overflow, later ones follow them
	 * until the list drains. */
	if (q->ov_count == 0) {
		RING_BEGIN();
		ok = ck_ring_enqueue_spmc(&q->ring, q->slots, f);
		RING_END();
	}
	if (!ok) {
		f->next = NULL;
		if (q->ov_tail)
			q->ov_tail->next = f;
		else
			q->ov_head = f;
		q->ov_tail = f;
		atom_store_32(&q->ov_count, q->ov_count + 1);
	}
	pthread_mutex_unlock(&q->lock);
}

struct weft_future *weft__injector_pop(struct weft__injector *q)
{
	struct weft_future *f = NULL;
	bool ok;

	RING_BEGIN();
	ok = ck_ring_dequeue_spmc(&q->ring, q->slots, &f);
	RING_END();
	if (ok) {
		WEFT_HB_ACQUIRE(&q->ring);
		return f;
	}
	if (atom_load_32(&q->ov_count) == 0)
		return NULL;
	pthread_mutex_lock(&q->lock);
	f = q->ov_head;
	if (f) {
		q->ov_head = f->next;
		if (!q->ov_head)
			q->ov_tail = NULL;
		atom_store_32(&q->ov_count, q->ov_count - 1);
	}
	pthread_mutex_unlock(&q->lock);
	return f;
}

bool weft__injector_nonempty(struct weft__injector *q)
{
	bool r;

	RING_BEGIN();
	r = ck_ring_size(&q->ring) != 0;
	RING_END();
	return r || atom_load_32(&q->ov_count) != 0;
}

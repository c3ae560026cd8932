/*
 * deque.c: the cold paths of the work-stealing deque (see deque.h for the
 * algorithm, its invariants and its memory-ordering argument).
 */
#include <errno.h>
#include <stdlib.h>

#include "deque.h"

static struct weft__deque_buf *buf_new(int64_t cap)
{
	struct weft__deque_buf *b = malloc(sizeof(*b) + (size_t)cap * sizeof(struct weft__task));
	if (b) {
		b->mask = cap - 1;
		b->prev = NULL;
	}
	return b;
}

int weft__deque_init(struct weft__deque *dq, unsigned log2cap)
{
	if (log2cap == 0 || log2cap > WEFT_DEQUE_LOG2_MAX)
		return -EINVAL;
	dq->top = 0;
	dq->bottom = 0;
	dq->top_cache = 0;
	dq->buf = buf_new((int64_t)1 << log2cap);
	return dq->buf ? 0 : -ENOMEM;
}

void weft__deque_fini(struct weft__deque *dq)
{
	struct weft__deque_buf *b = dq->buf;
	while (b) {
		struct weft__deque_buf *prev = b->prev;
		free(b);
		b = prev;
	}
	dq->buf = NULL;
}

int weft__deque_grow(struct weft__deque *dq, int64_t top, int64_t bottom)
{
	struct weft__deque_buf *old = dq->buf;
	struct weft__deque_buf *nb = buf_new((old->mask + 1) * 2);
	struct weft__task t;
	int64_t i;

	if (!nb)
		return -ENOMEM;
	/* Copy every index a thief could still take: top is a lower bound of
	 * the real top, so this may copy a few already-stolen items too. */
	for (i = top; i < bottom; i++) {
		task_load(&old->slot[i & old->mask], &t);
		task_store(&nb->slot[i & nb->mask], &t);
	}
	nb->prev = old; /* I4: freed in weft__deque_fini */
	atom_store_rel_ptr((void **)&dq->buf, nb); /* (G1) */
	return 0;
}

/*
 * tdq.h: the runtime's side of typed tasks (include/weft/task.h): setting
 * up each worker's slot array, and what thieves and the park protocol
 * do with it.  tdq.c has the protocol and its invariants.
 */
#ifndef WEFT_TDQ_H
#define WEFT_TDQ_H

#include <stdbool.h>

#include "deque.h"
#include "weft.h"

struct weft__worker;

/* Map w's slot array (nworkers: the runtime's).  Returns 0 or -ENOMEM. */
int weft__tdq_init(weft_tdq_t *q, struct weft__worker *w, unsigned nworkers);
void weft__tdq_fini(weft_tdq_t *q);

/* Claim the oldest public slot of q as a task {weft__tslot_run, slot}.
 * Any worker, q's owner included (while it helps).  On an empty public
 * part returns WEFT_STEAL_EMPTY and, when ask, asks the owner to publish
 * more (movesplit). */
enum weft__steal weft__tdq_steal(weft_tdq_t *q, struct weft__task *out, bool ask);

/* Publish every private slot of q (tdq.c, Waiting with unsynced spawns).
 * Owner worker. */
void weft__tdq_expose(weft_tdq_t *q);

/* Whether q has public slots (a hint, for the park protocol's re-check). */
bool weft__tdq_visible(weft_tdq_t *q);

/* The task function of a stolen slot: runs it on the calling worker and
 * marks it done. */
void weft__tslot_run(void *slot);

/* Whether a task body runs on the current stack of w, so that the running
 * fiber must not suspend (task.h, Rules). */
static inline bool weft__tdq_pinned(const weft_tdq_t *q)
{
	return q->depth_ != 0;
}

#endif /* WEFT_TDQ_H */

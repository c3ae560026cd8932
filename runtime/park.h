/*
 * park.h: putting idle workers to sleep and waking them, without losing a
 * wake-up and without burning CPU.  The protocol is described in park.c.
 */
#ifndef WEFT_PARK_H
#define WEFT_PARK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"
#include "tunables.h"

struct weft_runtime;
struct weft__worker;

struct weft__idle {
	/* Read on every spawn (nparked) and by searchers: a line of its own,
	 * written only when workers park, wake or start/stop searching. */
	uint32_t nsearching __attribute__((aligned(WEFT_CACHELINE)));
	uint32_t nparked;
	/* Slow path, under lock: the stack of parked worker indices. */
	pthread_mutex_t lock __attribute__((aligned(WEFT_CACHELINE)));
	unsigned *stack;
	unsigned nstack;
};

int weft__idle_init(struct weft__idle *idle, unsigned nworkers);
void weft__idle_fini(struct weft__idle *idle);

/* True when the producer side must use a StoreLoad fence itself because
 * the asymmetric barrier (membarrier) is unavailable. */
extern bool weft__park_symmetric;

/* Producer side, after making work visible (push or inject): wake a parked
 * worker when nobody is searching.  Any thread.  The inline part is the
 * spawn fast path: one load of a read-mostly line. */
void weft__wake_slow(struct weft_runtime *rt);
static inline void weft__notify(struct weft_runtime *rt, struct weft__idle *idle)
{
	if (__builtin_expect(weft__park_symmetric, 0))
		atom_fence_sc();
	if (__builtin_expect(atom_load_32(&idle->nparked) != 0, 0))
		weft__wake_slow(rt);
}

/* Worker side.  Owner worker only. */
bool weft__search_begin(struct weft_runtime *rt);              /* may I search? */
/* Stop searching; found: a task was found, more: its source shows more. */
void weft__search_end(struct weft_runtime *rt, bool found, bool more);
/* Park the calling worker until woken.  Returns true when it was woken as a
 * searcher (the waker counted it in nsearching), false when its re-check
 * saw work or shutdown and it left without sleeping, or its own I/O made
 * work while it slept. */
bool weft__park(struct weft__worker *w);
/* Wake every parked worker (shutdown).  Any thread. */
void weft__wake_all(struct weft_runtime *rt);

#endif /* WEFT_PARK_H */

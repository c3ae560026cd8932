/*
 * trace_model.c: replaying lanes into spans and state segments (see
 * trace_model.h for the rules).
 *
 * Sizes: a lane of n events yields at most n + (spans open at the start)
 * slices and 2n + 2 segments, so every array is sized up front from the
 * event count (with overflow checks) and the replay itself cannot fail.
 * The open-span stack holds slice indices.
 */
#include "trace_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void seterr(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

const char *wt_state_name(enum wt_state s)
{
	switch (s) {
	case WT_ST_IDLE: return "idle";
	case WT_ST_RUNNING: return "running";
	case WT_ST_SEARCHING: return "searching";
	case WT_ST_PARKED: return "parked";
	case WT_ST_WAITING: return "waiting";
	case WT_ST_IO: return "in I/O";
	case WT_ST_NODATA: return "no data";
	default: return "?";
	}
}

enum ev_kind { K_PUSH, K_POP, K_INSTANT, K_UNKNOWN };

/* What an event does to the stack, and with which state. */
static enum ev_kind classify(uint32_t type, uint8_t *state)
{
	switch (type) {
	case WEFT_EV_TASK_BEGIN: *state = WT_ST_RUNNING; return K_PUSH;
	case WEFT_EV_TASK_END: *state = WT_ST_RUNNING; return K_POP;
	case WEFT_EV_SEARCH_BEGIN: *state = WT_ST_SEARCHING; return K_PUSH;
	case WEFT_EV_SEARCH_END: *state = WT_ST_SEARCHING; return K_POP;
	case WEFT_EV_PARK: *state = WT_ST_PARKED; return K_PUSH;
	case WEFT_EV_UNPARK: *state = WT_ST_PARKED; return K_POP;
	case WEFT_EV_WAIT_BEGIN: *state = WT_ST_WAITING; return K_PUSH;
	case WEFT_EV_WAIT_END: *state = WT_ST_WAITING; return K_POP;
	case WEFT_EV_IO_SUBMIT: *state = WT_ST_IO; return K_PUSH;
	case WEFT_EV_IO_COMPLETE: *state = WT_ST_IO; return K_POP;
	case WEFT_EV_STEAL:
	case WEFT_EV_FIBER_SUSPEND:
	case WEFT_EV_FIBER_RESUME: *state = WT_ST_IDLE; return K_INSTANT;
	default: *state = WT_ST_IDLE; return K_UNKNOWN;
	}
}

/* Pass 1: the states open at the start of the lane's data, outermost
 * first, in init[0..*ninit).  stack has room for nevents entries. */
static void find_initial(const struct wt_lane *l, uint8_t *stack, uint8_t *init, size_t *ninit)
{
	size_t depth = 0, k, j;

	*ninit = 0;
	for (k = 0; k < l->nevents; k++) {
		uint8_t st;
		enum ev_kind kind = classify(l->events[k].type, &st);

		if (kind == K_PUSH) {
			stack[depth++] = st;
		} else if (kind == K_POP) {
			for (j = depth; j > 0 && stack[j - 1] != st; j--)
				;
			if (j > 0) {
				depth = j - 1;
			} else if (st != WT_ST_IO) {
				/* Open since before the data, outside everything
				 * seen so far: it goes to the bottom. */
				memmove(init + 1, init, *ninit);
				init[0] = st;
				(*ninit)++;
				depth = 0; /* it closes everything above it */
			}
		}
	}
}

struct replay {
	struct wt_lane_model *lm;
	size_t *stack; /* slice indices */
	size_t depth;
	double seg_start;
	uint8_t seg_state;
};

static uint8_t top_state(const struct replay *r)
{
	return r->depth ? r->lm->slices[r->stack[r->depth - 1]].state : WT_ST_IDLE;
}

static void seg_emit(struct replay *r, double end, uint8_t state)
{
	struct wt_lane_model *lm = r->lm;

	if (end > r->seg_start) {
		if (lm->nsegs > 0 && lm->segs[lm->nsegs - 1].state == state) {
			lm->segs[lm->nsegs - 1].end = end;
		} else {
			lm->segs[lm->nsegs].start = r->seg_start;
			lm->segs[lm->nsegs].end = end;
			lm->segs[lm->nsegs].state = state;
			lm->nsegs++;
		}
		lm->time[state] += end - r->seg_start;
		r->seg_start = end;
	}
}

/* Called before the stack changes at time t. */
static void seg_cut(struct replay *r, double t)
{
	seg_emit(r, t, top_state(r));
}

static size_t slice_new(struct replay *r, double start, uint8_t state)
{
	struct wt_lane_model *lm = r->lm;
	struct wt_slice *s = &lm->slices[lm->nslices];

	memset(s, 0, sizeof(*s));
	s->start = start;
	s->end = start;
	s->state = state;
	s->source = WT_SRC_UNKNOWN;
	s->depth = (uint32_t)r->depth;
	r->stack[r->depth++] = lm->nslices;
	return lm->nslices++;
}

static void replay_lane(struct wt_model *m, const struct wt_lane *l, const uint8_t *init, size_t ninit,
                        size_t *stack)
{
	struct wt_lane_model *lm = &m->lanes[l->worker];
	double span = m->span;
	struct replay r = { lm, stack, 0, 0.0, WT_ST_IDLE };
	size_t k, j, last_search = SIZE_MAX;

	lm->data_start = (l->dropped && l->nevents) ? l->events[0].t : (l->dropped ? span : 0.0);
	if (lm->data_start > 0.0)
		seg_emit(&r, lm->data_start, WT_ST_NODATA);
	for (j = 0; j < ninit; j++) {
		size_t s = slice_new(&r, lm->data_start, init[j]);
		lm->slices[s].flags |= WT_SL_BEGIN_LOST;
		lm->begin_lost++;
	}
	for (k = 0; k < l->nevents; k++) {
		const struct wt_event *e = &l->events[k];
		uint8_t st;
		enum ev_kind kind = classify(e->type, &st);
		size_t after_search = last_search;

		last_search = SIZE_MAX;
		if (kind == K_PUSH) {
			size_t s;
			seg_cut(&r, e->t);
			s = slice_new(&r, e->t, st);
			if (st == WT_ST_RUNNING) {
				lm->slices[s].fn = e->arg;
				lm->slices[s].source = e->aux < 3 ? (uint8_t)e->aux : WT_SRC_UNKNOWN;
				lm->tasks++;
				if (e->aux < 3)
					lm->tasks_by_src[e->aux]++;
			} else if (st == WT_ST_SEARCHING) {
				lm->searches++;
			}
		} else if (kind == K_POP) {
			for (j = r.depth; j > 0 && lm->slices[stack[j - 1]].state != st; j--)
				;
			if (j == 0) {
				/* Pass 1 opened a span for every other END, so
				 * only an IO_COMPLETE from elsewhere gets here. */
				struct wt_instant *in = &lm->instants[lm->ninstants++];
				in->t = e->t;
				in->arg = e->arg;
				in->type = e->type;
				in->aux = e->aux;
				continue;
			}
			/* The match is stack[j - 1]; spans above it close too. */
			seg_cut(&r, e->t);
			while (r.depth > j - 1) {
				size_t idx = stack[--r.depth];
				struct wt_slice *s = &lm->slices[idx];

				s->end = e->t;
				if (r.depth > j - 1) {
					s->flags |= WT_SL_END_FORCED;
					lm->unbalanced++;
				} else if (s->state == WT_ST_SEARCHING) {
					last_search = idx;
				}
			}
		} else if (kind == K_INSTANT) {
			struct wt_instant *in = &lm->instants[lm->ninstants++];
			in->t = e->t;
			in->arg = e->arg;
			in->type = e->type;
			in->aux = e->aux;
			if (e->type == WEFT_EV_STEAL) {
				lm->steals++;
				if (e->aux < m->nworkers && e->aux != lm->worker)
					m->lanes[e->aux].stolen_from++;
				else
					m->bad_victims++;
				/* Credit the search it happened in, or the one
				 * that ended just before it. */
				if (top_state(&r) == WT_ST_SEARCHING)
					lm->slices[stack[r.depth - 1]].flags |= WT_SL_STOLE;
				else if (after_search != SIZE_MAX)
					lm->slices[after_search].flags |= WT_SL_STOLE;
			}
		} else {
			lm->unknown_events++;
		}
	}
	seg_cut(&r, span);
	while (r.depth > 0) {
		struct wt_slice *s = &lm->slices[stack[--r.depth]];
		s->end = span;
		s->flags |= WT_SL_END_OPEN;
	}
	for (k = 0; k < lm->nslices; k++)
		if (lm->slices[k].state == WT_ST_SEARCHING && (lm->slices[k].flags & WT_SL_STOLE))
			lm->searches_stole++;
	if (lm->nsegs == 0) {
		/* span 0: one empty segment keeps "covers [0, span]" true. */
		lm->segs[0].start = lm->segs[0].end = 0.0;
		lm->segs[0].state = lm->data_start > 0.0 || (l->dropped && !l->nevents) ? WT_ST_NODATA : WT_ST_IDLE;
		lm->nsegs = 1;
	}
}

void wt_model_free(struct wt_model *m)
{
	uint32_t i;

	if (!m)
		return;
	if (m->lanes)
		for (i = 0; i < m->nworkers; i++) {
			free(m->lanes[i].slices);
			free(m->lanes[i].segs);
			free(m->lanes[i].instants);
		}
	free(m->lanes);
	memset(m, 0, sizeof(*m));
}

int wt_model_build(const struct wt_trace *t, struct wt_model *m, char *err, size_t errlen)
{
	uint8_t *st_stack = NULL, *init = NULL;
	size_t *stack = NULL, maxev = 0, i;

	memset(m, 0, sizeof(*m));
	m->span = t->span;
	m->nworkers = t->nworkers;
	if (t->nworkers == 0)
		return 0;
	m->lanes = calloc(t->nworkers, sizeof(*m->lanes));
	if (!m->lanes)
		goto oom;
	for (i = 0; i < t->nworkers; i++) {
		m->lanes[i].worker = (uint32_t)i;
		if (t->lanes[i].nevents > maxev)
			maxev = t->lanes[i].nevents;
	}
	/* Scratch for the largest lane: pass-1 stack, initial states, and the
	 * pass-2 stack (initial spans + pushes <= 2 * nevents). */
	if (maxev > SIZE_MAX / 2 / sizeof(size_t) - 1)
		goto oom;
	st_stack = malloc(maxev + 1);
	init = malloc(maxev + 1);
	stack = malloc((2 * maxev + 1) * sizeof(*stack));
	if (!st_stack || !init || !stack)
		goto oom;
	for (i = 0; i < t->nworkers; i++) {
		const struct wt_lane *l = &t->lanes[i];
		struct wt_lane_model *lm = &m->lanes[l->worker];
		size_t ninit, n = l->nevents;

		find_initial(l, st_stack, init, &ninit);
		if (n > (SIZE_MAX / sizeof(struct wt_seg) - 4) / 2)
			goto oom;
		lm->slices = malloc((n + ninit + 1) * sizeof(*lm->slices));
		lm->segs = malloc((2 * n + 4) * sizeof(*lm->segs));
		lm->instants = malloc((n + 1) * sizeof(*lm->instants));
		if (!lm->slices || !lm->segs || !lm->instants)
			goto oom;
		replay_lane(m, l, init, ninit, stack);
	}
	free(st_stack);
	free(init);
	free(stack);
	return 0;
oom:
	free(st_stack);
	free(init);
	free(stack);
	wt_model_free(m);
	seterr(err, errlen, "out of memory building the timeline");
	return -1;
}

void wt_model_utilisation(const struct wt_model *m, double *bins, size_t nbins)
{
	double w;
	size_t i, b;
	uint32_t k;

	for (i = 0; i < nbins; i++)
		bins[i] = 0.0;
	if (nbins == 0 || m->span <= 0.0 || m->nworkers == 0)
		return;
	w = m->span / (double)nbins;
	for (k = 0; k < m->nworkers; k++) {
		const struct wt_lane_model *lm = &m->lanes[k];
		for (i = 0; i < lm->nsegs; i++) {
			const struct wt_seg *s = &lm->segs[i];
			size_t b0, b1;

			if (s->state != WT_ST_RUNNING || s->end <= s->start)
				continue;
			b0 = (size_t)(s->start / w);
			b1 = (size_t)(s->end / w);
			if (b0 >= nbins)
				b0 = nbins - 1;
			if (b1 >= nbins)
				b1 = nbins - 1;
			for (b = b0; b <= b1; b++) {
				double lo = (double)b * w, hi = lo + w;
				double a = s->start > lo ? s->start : lo;
				double z = s->end < hi ? s->end : hi;
				if (b == nbins - 1 && s->end > z)
					z = s->end; /* rounding at the right edge */
				if (z > a)
					bins[b] += z - a;
			}
		}
	}
	for (i = 0; i < nbins; i++) {
		bins[i] /= w * (double)m->nworkers;
		if (bins[i] > 1.0)
			bins[i] = 1.0;
	}
}

/*
 * trace_json.c: the Chrome Trace Event JSON output, for Perfetto
 * (ui.perfetto.dev) and chrome://tracing.
 *
 *   {"traceEvents":[...],"displayTimeUnit":"ns","otherData":{...}}
 *
 * pid 1 is the runtime, tid w is worker w, named "worker w" by a
 * thread_name metadata event ("M") and ordered by thread_sort_index.
 * Every span of the model is one complete event ("X"): tasks (name = the
 * function, cat "task", args: source, address, and whether its begin was
 * lost or its end forced/open) and the states searching, parked, waiting,
 * in I/O (cat "state"); they nest on the worker's track exactly as in the
 * model.  A steal is an instant ("i", thread scope) on the thief's track
 * plus a flow arrow: "s" on the victim (bound to the slice it was in) to
 * "f" on the thief (no "bp":"e", so it binds to the next slice that starts
 * there: the stolen task).  A counter ("C") "running workers" gives the
 * utilisation curve.  Fiber and unmatched I/O events are instants.
 *
 * Timestamps are microseconds from the trace origin.  They are rounded to
 * whole nanoseconds first and printed from integers, so a child's end can
 * never pass its parent's through rounding (viewers drop mis-nested slices).
 */
#include "trace_out.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static const char *src_name(unsigned s)
{
	switch (s) {
	case WEFT_SRC_LOCAL: return "local";
	case WEFT_SRC_STOLEN: return "stolen";
	case WEFT_SRC_INJECTED: return "injected";
	default: return "unknown";
	}
}

static unsigned long long ns_of(double t)
{
	return t <= 0.0 ? 0ULL : (unsigned long long)llround(t);
}

static void put_us(FILE *f, unsigned long long ns)
{
	fprintf(f, "%llu.%03llu", ns / 1000, ns % 1000);
}

static void put_fn(FILE *f, const struct wt_trace *t, uint64_t addr)
{
	char buf[32];

	fputc('"', f);
	wt_put_json(f, wt_trace_fn_name(t, addr, buf, sizeof buf));
	fputc('"', f);
}

static void put_slice(FILE *f, const struct wt_trace *t, uint32_t w, const struct wt_slice *s)
{
	unsigned long long a = ns_of(s->start), z = ns_of(s->end);

	fprintf(f, ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":%u,\"ts\":", w);
	put_us(f, a);
	fputs(",\"dur\":", f);
	put_us(f, z - a);
	if (s->state == WT_ST_RUNNING) {
		fputs(",\"cat\":\"task\",\"name\":", f);
		if (s->flags & WT_SL_BEGIN_LOST)
			fputs("\"(task, begin lost)\"", f);
		else
			put_fn(f, t, s->fn);
		fprintf(f, ",\"args\":{\"source\":\"%s\"", src_name(s->source));
		if (!(s->flags & WT_SL_BEGIN_LOST))
			fprintf(f, ",\"fn\":\"0x%llx\"", (unsigned long long)s->fn);
	} else {
		fprintf(f, ",\"cat\":\"state\",\"name\":\"%s\",\"args\":{\"state\":\"%s\"",
		        wt_state_name((enum wt_state)s->state), wt_state_name((enum wt_state)s->state));
		if (s->state == WT_ST_SEARCHING)
			fprintf(f, ",\"stole\":%s", (s->flags & WT_SL_STOLE) ? "true" : "false");
	}
	if (s->flags & WT_SL_BEGIN_LOST)
		fputs(",\"begin\":\"before the trace's data\"", f);
	if (s->flags & WT_SL_END_FORCED)
		fputs(",\"end\":\"closed by an enclosing span\"", f);
	if (s->flags & WT_SL_END_OPEN)
		fputs(",\"end\":\"still open at the end of the trace\"", f);
	fputs("}}", f);
}

static void put_instant(FILE *f, const struct wt_trace *t, const struct wt_model *m, uint32_t w,
                        const struct wt_instant *in, unsigned long long *flow_id)
{
	unsigned long long ts = ns_of(in->t);

	if (in->type == WEFT_EV_STEAL) {
		fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%u,\"ts\":", w);
		put_us(f, ts);
		fprintf(f, ",\"cat\":\"steal\",\"name\":\"steal from worker %u\",\"args\":{\"victim\":%u,\"fn\":",
		        in->aux, in->aux);
		put_fn(f, t, in->arg);
		fputs("}}", f);
		if (in->aux < m->nworkers && in->aux != w) {
			unsigned long long id = ++*flow_id;
			fprintf(f, ",\n{\"ph\":\"s\",\"id\":%llu,\"pid\":1,\"tid\":%u,\"ts\":", id, in->aux);
			put_us(f, ts);
			fputs(",\"cat\":\"steal\",\"name\":\"steal\"}", f);
			fprintf(f, ",\n{\"ph\":\"f\",\"id\":%llu,\"pid\":1,\"tid\":%u,\"ts\":", id, w);
			put_us(f, ts);
			fputs(",\"cat\":\"steal\",\"name\":\"steal\"}", f);
		}
		return;
	}
	fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%u,\"ts\":", w);
	put_us(f, ts);
	fprintf(f, ",\"cat\":\"event\",\"name\":\"%s\",\"args\":{\"arg\":\"0x%llx\",\"aux\":%u}}",
	        wt_event_type_name(in->type) ? wt_event_type_name(in->type) : "event", (unsigned long long)in->arg,
	        in->aux);
}

struct edge {
	unsigned long long t;
	int d;
};

static int edge_cmp(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

/* "running workers" counter; skipped (not an error) without memory. */
static void put_counter(FILE *f, const struct wt_model *m)
{
	struct edge *e;
	size_t n = 0, i, cap = 0;
	uint32_t w;
	long cur = 0;

	for (w = 0; w < m->nworkers; w++)
		for (i = 0; i < m->lanes[w].nsegs; i++)
			cap += m->lanes[w].segs[i].state == WT_ST_RUNNING ? 2 : 0;
	if (cap == 0 || cap > SIZE_MAX / sizeof(*e))
		return;
	e = malloc(cap * sizeof(*e));
	if (!e)
		return;
	for (w = 0; w < m->nworkers; w++)
		for (i = 0; i < m->lanes[w].nsegs; i++) {
			const struct wt_seg *s = &m->lanes[w].segs[i];
			if (s->state != WT_ST_RUNNING)
				continue;
			e[n].t = ns_of(s->start);
			e[n++].d = 1;
			e[n].t = ns_of(s->end);
			e[n++].d = -1;
		}
	qsort(e, n, sizeof(*e), edge_cmp);
	fputs(",\n{\"ph\":\"C\",\"pid\":1,\"ts\":0.000,\"name\":\"running workers\",\"args\":{\"running\":0}}", f);
	for (i = 0; i < n;) {
		unsigned long long t = e[i].t;
		long before = cur;
		while (i < n && e[i].t == t)
			cur += e[i++].d;
		if (cur != before) {
			fputs(",\n{\"ph\":\"C\",\"pid\":1,\"ts\":", f);
			put_us(f, t);
			fprintf(f, ",\"name\":\"running workers\",\"args\":{\"running\":%ld}}", cur);
		}
	}
	free(e);
}

int wt_write_json(FILE *f, const struct wt_trace *t, const struct wt_model *m)
{
	unsigned long long flow_id = 0;
	uint32_t w;
	size_t i;

	fputs("{\"traceEvents\":[\n", f);
	fputs("{\"ph\":\"M\",\"pid\":1,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":\"weft\"}}", f);
	for (w = 0; w < m->nworkers; w++) {
		fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_name\",\"args\":{\"name\":\"worker %u\"}}",
		        w, w);
		fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%u}}",
		        w, w);
	}
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		for (i = 0; i < lm->nslices; i++)
			put_slice(f, t, w, &lm->slices[i]);
		for (i = 0; i < lm->ninstants; i++)
			put_instant(f, t, m, w, &lm->instants[i], &flow_id);
	}
	put_counter(f, m);
	fputs("\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"tool\":\"weft-trace\"", f);
	fprintf(f, ",\"version\":%u,\"workers\":%u,\"ticks_per_sec\":%llu,\"events\":%zu,\"dropped_events\":%llu",
	        t->version, t->nworkers, (unsigned long long)t->ticks_per_sec, t->nevents,
	        (unsigned long long)t->dropped);
	fputs("}}\n", f);
	return ferror(f) ? -1 : 0;
}

/*
 * trace_summary.c: the text summary.
 *
 * Sections:
 *   header     workers, span, events, dropped events, repairs made
 *   workers    per worker: % of the span in each state, tasks (by source),
 *              the longest stretch not running
 *   idle gaps  the longest stretches during which a worker ran no task
 *              (idle, searching, parked or waiting), over all workers
 *   silences   stretches of at least SILENCE_NS in state "idle": outside
 *              any task, search, park or wait a worker on its core records
 *              its next event within microseconds, so a long silence
 *              means its thread was off its core (preempted by the kernel,
 *              or woken from a park but not yet run) or inside one long
 *              call; the lane's first and last segments (before its first
 *              event, after its last) are not counted.  Per worker count
 *              and total, and the longest, each with the tasks the other
 *              workers began meanwhile (work went on without it)
 *   steals     the trace records successful steals only, so the success
 *              measure is per worker: steals against time spent searching
 *              (steals per ms of search, searches that ended in a steal),
 *              and who was stolen from (per victim; a thief x victim table
 *              up to MATRIX_MAX workers)
 *   tasks      log2 histogram of TASK_BEGIN..TASK_END durations (a task's
 *              time includes the tasks it ran nested while waiting; spans
 *              with a lost begin or a forced/open end are left out), and
 *              the functions with the most task time
 */
#include "trace_out.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOP_GAPS 10
#define SILENCE_NS 1e6
#define TOP_FNS 10
#define MATRIX_MAX 16
#define HIST_BUCKETS 64
#define BAR_WIDTH 40

struct gap {
	double start, len;
	uint32_t worker;
};

static void put_pct(FILE *f, double part, double whole)
{
	fprintf(f, " %6.1f%%", whole > 0.0 ? 100.0 * part / whole : 0.0);
}

/* Insert a stretch into top[0..*n), kept sorted longest first and at most
 * TOP_GAPS long. */
static void top_insert(struct gap *top, size_t *n, double start, double len, uint32_t worker)
{
	size_t k;

	for (k = *n; k > 0 && top[k - 1].len < len; k--)
		if (k < TOP_GAPS)
			top[k] = top[k - 1];
	if (k < TOP_GAPS) {
		top[k].start = start;
		top[k].len = len;
		top[k].worker = worker;
		if (*n < TOP_GAPS)
			(*n)++;
	}
}

/* The longest not-running stretches (idle, searching, parked, waiting;
 * "no data" ends a stretch) of lane lm, merged into top[0..*n). */
static void lane_gaps(const struct wt_lane_model *lm, struct gap *top, size_t *n, double *longest)
{
	double start = 0.0;
	int open = 0;
	size_t i;

	*longest = 0.0;
	for (i = 0; i <= lm->nsegs; i++) {
		const struct wt_seg *s = i < lm->nsegs ? &lm->segs[i] : NULL;
		int gapstate = s && s->state != WT_ST_RUNNING && s->state != WT_ST_NODATA && s->state != WT_ST_IO;

		if (gapstate && !open) {
			open = 1;
			start = s->start;
		} else if (!gapstate && open) {
			double len = (s ? s->start : lm->segs[lm->nsegs - 1].end) - start;

			open = 0;
			if (len > *longest)
				*longest = len;
			if (len <= 0.0)
				continue;
			top_insert(top, n, start, len, lm->worker);
		}
	}
}

static void section_workers(FILE *f, const struct wt_model *m, struct gap *gaps, size_t *ngaps)
{
	double tot[WT_NSTATES] = { 0 };
	size_t tasks = 0, src[3] = { 0 };
	uint32_t w;
	int k;

	fprintf(f, "\nPer worker (%% of the trace's span):\n");
	fprintf(f, "  worker  running  search  waiting  parked   in I/O    idle  no data   tasks (local/stolen/injected)  longest gap\n");
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		double longest;
		char d[32];

		lane_gaps(lm, gaps, ngaps, &longest);
		wt_fmt_dur(d, sizeof d, longest);
		fprintf(f, "  %6u", w);
		put_pct(f, lm->time[WT_ST_RUNNING], m->span);
		put_pct(f, lm->time[WT_ST_SEARCHING], m->span);
		put_pct(f, lm->time[WT_ST_WAITING], m->span);
		put_pct(f, lm->time[WT_ST_PARKED], m->span);
		put_pct(f, lm->time[WT_ST_IO], m->span);
		put_pct(f, lm->time[WT_ST_IDLE], m->span);
		put_pct(f, lm->time[WT_ST_NODATA], m->span);
		fprintf(f, "  %7zu (%zu/%zu/%zu)%*s%s\n", lm->tasks, lm->tasks_by_src[0], lm->tasks_by_src[1],
		        lm->tasks_by_src[2], 6, "", d);
		for (k = 0; k < WT_NSTATES; k++)
			tot[k] += lm->time[k];
		tasks += lm->tasks;
		for (k = 0; k < 3; k++)
			src[k] += lm->tasks_by_src[k];
	}
	if (m->nworkers) {
		double all = m->span * m->nworkers;
		fprintf(f, "     all");
		put_pct(f, tot[WT_ST_RUNNING], all);
		put_pct(f, tot[WT_ST_SEARCHING], all);
		put_pct(f, tot[WT_ST_WAITING], all);
		put_pct(f, tot[WT_ST_PARKED], all);
		put_pct(f, tot[WT_ST_IO], all);
		put_pct(f, tot[WT_ST_IDLE], all);
		put_pct(f, tot[WT_ST_NODATA], all);
		fprintf(f, "  %7zu (%zu/%zu/%zu)\n", tasks, src[0], src[1], src[2]);
	}
}

static void section_gaps(FILE *f, const struct gap *gaps, size_t n)
{
	size_t i;

	fprintf(f, "\nLongest idle gaps (no task running: idle, searching, parked or waiting):\n");
	if (n == 0)
		fprintf(f, "  none\n");
	for (i = 0; i < n; i++) {
		char a[32], b[32];
		wt_fmt_dur(a, sizeof a, gaps[i].len);
		wt_fmt_dur(b, sizeof b, gaps[i].start);
		fprintf(f, "  %2zu. worker %-4u %10s  from %s\n", i + 1, gaps[i].worker, a, b);
	}
}

/* Tasks that workers other than w began in [start, end). */
static size_t others_began(const struct wt_model *m, uint32_t w, double start, double end)
{
	size_t n = 0, i;
	uint32_t v;

	for (v = 0; v < m->nworkers; v++) {
		const struct wt_lane_model *lm = &m->lanes[v];
		if (v == w)
			continue;
		for (i = 0; i < lm->nslices; i++)
			if (lm->slices[i].state == WT_ST_RUNNING && !(lm->slices[i].flags & WT_SL_BEGIN_LOST) &&
			    lm->slices[i].start >= start && lm->slices[i].start < end)
				n++;
	}
	return n;
}

static void section_silences(FILE *f, const struct wt_model *m)
{
	struct gap top[TOP_GAPS];
	size_t ntop = 0, i;
	uint32_t w;
	int any = 0;

	fprintf(f, "\nSilences (at least 1 ms idle without an event: the thread off its core, or in one long call):\n");
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		size_t count = 0;
		double total = 0.0, longest = 0.0;
		char a[32], b[32];

		for (i = 1; i + 1 < lm->nsegs; i++) {
			const struct wt_seg *sg = &lm->segs[i];
			double len = sg->end - sg->start;

			if (sg->state != WT_ST_IDLE || len < SILENCE_NS)
				continue;
			count++;
			total += len;
			if (len > longest)
				longest = len;
			top_insert(top, &ntop, sg->start, len, w);
		}
		if (!count)
			continue;
		if (!any)
			fprintf(f, "  worker  silences      total    longest\n");
		any = 1;
		wt_fmt_dur(a, sizeof a, total);
		wt_fmt_dur(b, sizeof b, longest);
		fprintf(f, "  %6u  %8zu  %9s  %9s\n", w, count, a, b);
	}
	if (!any) {
		fprintf(f, "  none\n");
		return;
	}
	for (i = 0; i < ntop; i++) {
		char a[32], b[32];
		wt_fmt_dur(a, sizeof a, top[i].len);
		wt_fmt_dur(b, sizeof b, top[i].start);
		fprintf(f, "  %2zu. worker %-4u %10s  from %s; other workers began %zu tasks meanwhile\n", i + 1,
		        top[i].worker, a, b, others_began(m, top[i].worker, top[i].start, top[i].start + top[i].len));
	}
}

static void section_steals(FILE *f, const struct wt_model *m)
{
	size_t total = 0, searches = 0, stole = 0;
	double search = 0.0;
	uint32_t w, v;
	size_t i;

	fprintf(f, "\nSteals (the trace records successful steals only):\n");
	fprintf(f, "  worker   steals  stolen from it  search time  steals/ms searching  searches ending in a steal\n");
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		double st = lm->time[WT_ST_SEARCHING];
		char d[32];

		wt_fmt_dur(d, sizeof d, st);
		fprintf(f, "  %6u  %7zu  %14zu  %11s", w, lm->steals, lm->stolen_from, d);
		if (st > 0.0)
			fprintf(f, "  %19.2f", (double)lm->steals / (st / 1e6));
		else
			fprintf(f, "  %19s", "-");
		if (lm->searches)
			fprintf(f, "  %zu/%zu (%.0f%%)\n", lm->searches_stole, lm->searches,
			        100.0 * (double)lm->searches_stole / (double)lm->searches);
		else
			fprintf(f, "  -\n");
		total += lm->steals;
		search += st;
		searches += lm->searches;
		stole += lm->searches_stole;
	}
	{
		char d[32];
		wt_fmt_dur(d, sizeof d, search);
		fprintf(f, "     all  %7zu  %14s  %11s", total, "", d);
		if (search > 0.0)
			fprintf(f, "  %19.2f", (double)total / (search / 1e6));
		else
			fprintf(f, "  %19s", "-");
		if (searches)
			fprintf(f, "  %zu/%zu (%.0f%%)\n", stole, searches, 100.0 * (double)stole / (double)searches);
		else
			fprintf(f, "  -\n");
	}
	if (m->bad_victims)
		fprintf(f, "  %zu steals name no valid victim\n", m->bad_victims);
	if (total == 0 || m->nworkers > MATRIX_MAX)
		return;
	/* Thief x victim. */
	fprintf(f, "\n  steals by thief (row) from victim (column):\n  %8s", "");
	for (v = 0; v < m->nworkers; v++)
		fprintf(f, " %6u", v);
	fputc('\n', f);
	for (w = 0; w < m->nworkers; w++) {
		size_t row[MATRIX_MAX] = { 0 };
		const struct wt_lane_model *lm = &m->lanes[w];
		for (i = 0; i < lm->ninstants; i++)
			if (lm->instants[i].type == WEFT_EV_STEAL && lm->instants[i].aux < m->nworkers)
				row[lm->instants[i].aux]++;
		fprintf(f, "  %8u", w);
		for (v = 0; v < m->nworkers; v++)
			if (v == w)
				fprintf(f, " %6s", "-");
			else
				fprintf(f, " %6zu", row[v]);
		fputc('\n', f);
	}
}

struct fnstat {
	uint64_t fn;
	size_t count;
	double total;
};

static int fnstat_addr_cmp(const void *a, const void *b)
{
	const struct fnstat *x = a, *y = b;
	return x->fn < y->fn ? -1 : x->fn > y->fn;
}

static int fnstat_total_cmp(const void *a, const void *b)
{
	const struct fnstat *x = a, *y = b;
	return x->total < y->total ? 1 : x->total > y->total ? -1 : 0;
}

static void section_tasks(FILE *f, const struct wt_trace *t, const struct wt_model *m)
{
	size_t hist[HIST_BUCKETS] = { 0 }, n = 0, lo = HIST_BUCKETS, hi = 0, peak = 0, i, cap = 0, nf = 0;
	struct fnstat *fs;
	double sum = 0.0, maxd = 0.0;
	uint32_t w;

	for (w = 0; w < m->nworkers; w++)
		cap += m->lanes[w].nslices;
	fs = cap ? malloc(cap * sizeof(*fs)) : NULL;
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		for (i = 0; i < lm->nslices; i++) {
			const struct wt_slice *s = &lm->slices[i];
			double d = s->end - s->start;
			size_t b = 0;

			if (s->state != WT_ST_RUNNING ||
			    (s->flags & (WT_SL_BEGIN_LOST | WT_SL_END_FORCED | WT_SL_END_OPEN)))
				continue;
			if (d >= 1.0)
				b = (size_t)floor(log2(d));
			if (b >= HIST_BUCKETS)
				b = HIST_BUCKETS - 1;
			hist[b]++;
			n++;
			sum += d;
			if (d > maxd)
				maxd = d;
			if (fs) {
				fs[nf].fn = s->fn;
				fs[nf].count = 1;
				fs[nf++].total = d;
			}
		}
	}
	fprintf(f, "\nTask lengths (TASK_BEGIN..TASK_END, nested tasks included; %zu complete spans):\n", n);
	if (n == 0) {
		fprintf(f, "  none\n");
		free(fs);
		return;
	}
	for (i = 0; i < HIST_BUCKETS; i++)
		if (hist[i]) {
			if (i < lo)
				lo = i;
			hi = i;
			if (hist[i] > peak)
				peak = hist[i];
		}
	for (i = lo; i <= hi; i++) {
		char a[32], b[32];
		size_t bar = peak ? (hist[i] * BAR_WIDTH + peak - 1) / peak : 0;
		wt_fmt_dur(a, sizeof a, i == 0 ? 0.0 : ldexp(1.0, (int)i));
		wt_fmt_dur(b, sizeof b, ldexp(1.0, (int)i + 1));
		fprintf(f, "  [%9s, %9s) %9zu  ", a, b, hist[i]);
		while (bar--)
			fputc('#', f);
		fputc('\n', f);
	}
	{
		char a[32], b[32];
		wt_fmt_dur(a, sizeof a, sum / (double)n);
		wt_fmt_dur(b, sizeof b, maxd);
		fprintf(f, "  mean %s, longest %s\n", a, b);
	}
	if (!fs)
		return;
	/* Functions with the most task time. */
	qsort(fs, nf, sizeof(*fs), fnstat_addr_cmp);
	{
		size_t k = 0;
		for (i = 0; i < nf; i++) {
			if (k && fs[k - 1].fn == fs[i].fn) {
				fs[k - 1].count += fs[i].count;
				fs[k - 1].total += fs[i].total;
			} else {
				fs[k++] = fs[i];
			}
		}
		nf = k;
	}
	qsort(fs, nf, sizeof(*fs), fnstat_total_cmp);
	fprintf(f, "\nTask functions by total time (top %d):\n", TOP_FNS);
	fprintf(f, "  %10s  %10s  %10s  function\n", "total", "count", "mean");
	for (i = 0; i < nf && i < TOP_FNS; i++) {
		char a[32], b[32], nb[32];
		const char *name = wt_trace_fn_name(t, fs[i].fn, nb, sizeof nb);
		wt_fmt_dur(a, sizeof a, fs[i].total);
		wt_fmt_dur(b, sizeof b, fs[i].total / (double)fs[i].count);
		fprintf(f, "  %10s  %10zu  %10s  ", a, fs[i].count, b);
		/* Names are arbitrary bytes: keep the terminal sane. */
		for (const unsigned char *p = (const unsigned char *)name; *p; p++)
			fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
		fputc('\n', f);
	}
	free(fs);
}

int wt_write_summary(FILE *f, const struct wt_trace *t, const struct wt_model *m, const char *title)
{
	struct gap gaps[TOP_GAPS];
	size_t ngaps = 0, clamped = 0, unbalanced = 0, lost = 0, unknown = 0, i;
	double running = 0.0;
	char span[32];
	uint32_t w;

	for (i = 0; i < t->nworkers; i++)
		clamped += t->lanes[i].clamped;
	for (w = 0; w < m->nworkers; w++) {
		unbalanced += m->lanes[w].unbalanced;
		lost += m->lanes[w].begin_lost;
		unknown += m->lanes[w].unknown_events;
		running += m->lanes[w].time[WT_ST_RUNNING];
	}
	wt_fmt_dur(span, sizeof span, m->span);
	fprintf(f, "weft trace %s\n", title ? title : "");
	fprintf(f, "  %u workers, span %s, %zu events, %zu symbols, clock %llu ticks/s\n", t->nworkers, span,
	        t->nevents, t->nsyms, (unsigned long long)t->ticks_per_sec);
	fprintf(f, "  utilisation (time in tasks / workers x span): %.1f%%\n",
	        m->span > 0.0 && m->nworkers ? 100.0 * running / (m->span * m->nworkers) : 0.0);
	if (t->dropped)
		fprintf(f, "  note: %llu older events were dropped by full rings; those lanes start later (\"no data\")\n",
		        (unsigned long long)t->dropped);
	if (lost)
		fprintf(f, "  note: %zu spans were already open where their lane's data starts\n", lost);
	if (unbalanced)
		fprintf(f, "  warning: %zu spans were closed by an enclosing span's end (unbalanced events)\n", unbalanced);
	if (clamped)
		fprintf(f, "  warning: %zu timestamps went backwards and were clamped\n", clamped);
	if (unknown)
		fprintf(f, "  warning: %zu events of unknown type were ignored\n", unknown);
	if (t->dup_syms)
		fprintf(f, "  warning: %zu duplicate symbol entries were ignored\n", t->dup_syms);
	section_workers(f, m, gaps, &ngaps);
	section_gaps(f, gaps, ngaps);
	section_silences(f, m);
	section_steals(f, m);
	section_tasks(f, t, m);
	return ferror(f) ? -1 : 0;
}

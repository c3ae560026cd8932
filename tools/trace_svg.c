/*
 * trace_svg.c: the SVG timeline: one lane per worker coloured by state,
 * steal marks and arrows, the utilisation curve underneath, a legend and
 * time axes.  Self-contained: presentation attributes only, no stylesheet,
 * script, font or image from elsewhere; 1200 px wide.
 *
 * Lanes are drawn from bins, not from every segment: each lane is cut into
 * two bins per pixel, each bin takes the state it spent most time in, and
 * runs of equal bins become one rect.  The file stays small (at most ~2000
 * rects a lane whatever the trace's size) and shows what a screen could
 * show anyway.  Idle is the lane's background; "no data" (before a
 * dropped ring's first event) is hatched.  Each lane is one
 * <g class="lane" data-worker="N"> with a <title> tooltip of its numbers.
 *
 * Steals: a red triangle over the thief's lane at the steal's time (one
 * per half pixel), and, when there are few enough to stay readable
 * (MAX_ARROWS), a thin arrow from the victim's lane to the thief's.  With
 * more than MAX_MARKS steals, triangles would merge into a solid bar, so
 * each lane gets a strip of DENSITY_PX-wide cells instead, shaded by the
 * number of steals in the cell (relative to the busiest cell of the trace).
 * The utilisation curve is the fraction of workers running, in bins of
 * UTIL_BIN_PX pixels, with its mean as a dashed line.
 */
#include "trace_out.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 1200
#define LEFT 92
#define RIGHT 24
#define PLOT_W (WIDTH - LEFT - RIGHT)
#define LANE_H 18
#define LANE_PITCH 24
#define LANES_TOP 92
#define BINS_PER_PX 2
#define UTIL_H 110
#define UTIL_BIN_PX 3
#define MAX_ARROWS 400
#define MAX_MARKS 1500
#define DENSITY_PX 4
#define NCELLS (PLOT_W / DENSITY_PX)
#define FONT "font-family=\"Helvetica,Arial,sans-serif\""

struct colour {
	const char *fill;
	const char *label;
};

/* Indexed by enum wt_state. */
static const struct colour palette[WT_NSTATES] = {
	[WT_ST_IDLE] = { "#eceff1", "idle" },
	[WT_ST_RUNNING] = { "#2e7d32", "running (in a task)" },
	[WT_ST_SEARCHING] = { "#f9a825", "searching / stealing" },
	[WT_ST_PARKED] = { "#90a4ae", "parked (asleep)" },
	[WT_ST_WAITING] = { "#8e24aa", "waiting (helping)" },
	[WT_ST_IO] = { "#1e88e5", "in I/O" },
	[WT_ST_NODATA] = { "url(#nodata)", "no data (ring dropped)" },
};

#define STEAL_COLOUR "#d50000"

struct axis {
	double step;    /* ns between ticks */
	double unit;    /* ns per label unit */
	const char *uname;
	int decimals;
};

static struct axis pick_axis(double span)
{
	struct axis a;
	double raw = span / 8.0, mag, f;

	if (raw <= 0.0)
		raw = 1.0;
	mag = pow(10.0, floor(log10(raw)));
	f = raw / mag;
	a.step = (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
	if (span < 1e4) {
		a.unit = 1.0;
		a.uname = "ns";
	} else if (span < 1e7) {
		a.unit = 1e3;
		a.uname = "us";
	} else if (span < 1e10) {
		a.unit = 1e6;
		a.uname = "ms";
	} else {
		a.unit = 1e9;
		a.uname = "s";
	}
	a.decimals = 0;
	while (a.decimals < 6 && a.step / a.unit * pow(10.0, a.decimals) < 0.999)
		a.decimals++;
	return a;
}

static double xof(double t, double span)
{
	return LEFT + (span > 0.0 ? t / span : 0.0) * PLOT_W;
}

/* Tick labels at y, grid lines from gy0 to gy1. */
static void put_axis(FILE *f, const struct axis *a, double span, double y, double gy0, double gy1)
{
	double t;
	int i;

	fprintf(f, "<g %s font-size=\"11\" fill=\"#37474f\">\n", FONT);
	fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#78909c\" stroke-width=\"1\"/>\n", LEFT,
	        y, LEFT + PLOT_W, y);
	for (i = 0, t = 0.0; t <= span * (1.0 + 1e-9) && i < 1000; i++, t = a->step * i) {
		double x = xof(t, span);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#cfd8dc\" stroke-width=\"1\"/>\n",
		        x, gy0, x, gy1);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#78909c\" stroke-width=\"1\"/>\n",
		        x, y, x, y + 4);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f %s</text>\n", x, y + 16, a->decimals,
		        t / a->unit, a->uname);
		if (span <= 0.0)
			break;
	}
	fputs("</g>\n", f);
}

static void put_legend(FILE *f, double y, int dense)
{
	static const int order[] = { WT_ST_RUNNING, WT_ST_SEARCHING, WT_ST_WAITING, WT_ST_PARKED,
		                     WT_ST_IO,      WT_ST_IDLE,      WT_ST_NODATA };
	double x = LEFT;
	size_t i;

	fprintf(f, "<g %s font-size=\"12\" fill=\"#263238\">\n", FONT);
	for (i = 0; i < sizeof order / sizeof order[0]; i++) {
		const struct colour *c = &palette[order[i]];
		fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"12\" fill=\"%s\" stroke=\"#90a4ae\" stroke-width=\"0.5\"/>",
		        x, y - 10, c->fill);
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n", x + 19, y, c->label);
		x += 19 + 6.1 * (double)strlen(c->label) + 16;
	}
	if (dense) {
		fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"4\" height=\"4\" fill=\"%s\" fill-opacity=\"0.3\"/>",
		        x, y - 6, STEAL_COLOUR);
		fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"4\" height=\"4\" fill=\"%s\"/>", x + 5, y - 6,
		        STEAL_COLOUR);
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">steals (darker: more per %d px)</text>\n", x + 15, y,
		        DENSITY_PX);
	} else {
		fprintf(f, "<path d=\"M%.0f %.0f l5 8 l5 -8 z\" fill=\"%s\"/>", x, y - 9, STEAL_COLOUR);
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">steal (arrow: victim to thief)</text>\n", x + 15, y);
	}
	fputs("</g>\n", f);
}

/* Dominant state of each bin of lane lm into out[nbins]; acc is scratch of
 * nbins * WT_NSTATES doubles. */
static void bin_lane(const struct wt_lane_model *lm, double span, size_t nbins, double *acc, unsigned char *out)
{
	double w = span / (double)nbins;
	size_t i, b;

	memset(acc, 0, nbins * WT_NSTATES * sizeof(*acc));
	for (i = 0; i < lm->nsegs; i++) {
		const struct wt_seg *s = &lm->segs[i];
		size_t b0, b1;

		if (s->end <= s->start)
			continue;
		b0 = (size_t)(s->start / w);
		b1 = (size_t)(s->end / w);
		if (b0 >= nbins)
			b0 = nbins - 1;
		if (b1 >= nbins)
			b1 = nbins - 1;
		for (b = b0; b <= b1; b++) {
			double lo = (double)b * w, hi = lo + w;
			double a = s->start > lo ? s->start : lo, z = s->end < hi ? s->end : hi;
			if (z > a)
				acc[b * WT_NSTATES + s->state] += z - a;
		}
	}
	for (b = 0; b < nbins; b++) {
		unsigned char best = WT_ST_IDLE;
		double bv = 0.0;
		int k;
		for (k = 0; k < WT_NSTATES; k++)
			if (acc[b * WT_NSTATES + k] > bv) {
				bv = acc[b * WT_NSTATES + k];
				best = (unsigned char)k;
			}
		out[b] = best;
	}
}

static double lane_y(uint32_t w)
{
	return LANES_TOP + (double)w * LANE_PITCH;
}

/* Steals of lane lm per DENSITY_PX cell into cells[NCELLS]; returns the
 * largest count. */
static size_t steal_cells(const struct wt_lane_model *lm, double span, size_t *cells)
{
	size_t i, max = 0;

	memset(cells, 0, NCELLS * sizeof(*cells));
	for (i = 0; i < lm->ninstants; i++) {
		size_t c;
		if (lm->instants[i].type != WEFT_EV_STEAL)
			continue;
		c = span > 0.0 ? (size_t)(lm->instants[i].t / span * NCELLS) : 0;
		if (c >= NCELLS)
			c = NCELLS - 1;
		if (++cells[c] > max)
			max = cells[c];
	}
	return max;
}

/* dense_max: 0 for triangles, else the busiest cell of the trace. */
static void put_lane(FILE *f, const struct wt_trace *t, const struct wt_model *m, uint32_t w, double *acc,
                     unsigned char *bins, size_t nbins, size_t dense_max)
{
	const struct wt_lane_model *lm = &m->lanes[w];
	double y = lane_y(w), bw = (double)PLOT_W / (double)nbins, busy;
	char d1[32], d2[32];
	size_t b, i;

	busy = m->span > 0.0 ? 100.0 * lm->time[WT_ST_RUNNING] / m->span : 0.0;
	fprintf(f, "<g class=\"lane\" data-worker=\"%u\">\n", w);
	wt_fmt_dur(d1, sizeof d1, lm->time[WT_ST_SEARCHING]);
	wt_fmt_dur(d2, sizeof d2, lm->time[WT_ST_PARKED]);
	fprintf(f, "<title>worker %u: running %.1f%%, %zu tasks, %zu steals (stolen from %zu times), searching %s, parked %s",
	        w, busy, lm->tasks, lm->steals, lm->stolen_from, d1, d2);
	for (i = 0; i < t->nworkers; i++)
		if (t->lanes[i].worker == w && t->lanes[i].dropped)
			fprintf(f, ", %llu older events dropped", (unsigned long long)t->lanes[i].dropped);
	fputs("</title>\n", f);
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" %s font-size=\"12\" text-anchor=\"end\" fill=\"#263238\">worker %u</text>\n",
	        LEFT - 8, y + LANE_H - 5, FONT, w);
	fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", LEFT, y, PLOT_W, LANE_H,
	        palette[WT_ST_IDLE].fill);
	if (m->span > 0.0) {
		bin_lane(lm, m->span, nbins, acc, bins);
		for (b = 0; b < nbins;) {
			size_t e = b;
			while (e < nbins && bins[e] == bins[b])
				e++;
			if (bins[b] != WT_ST_IDLE)
				fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>\n",
				        LEFT + (double)b * bw, y, (double)(e - b) * bw, LANE_H, palette[bins[b]].fill);
			b = e;
		}
	} else if (lm->nsegs && lm->segs[0].state == WT_ST_NODATA) {
		fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", LEFT, y, PLOT_W, LANE_H,
		        palette[WT_ST_NODATA].fill);
	}
	if (dense_max) {
		size_t cells[NCELLS];
		steal_cells(lm, m->span, cells);
		for (i = 0; i < NCELLS; i++)
			if (cells[i])
				fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"4\" fill=\"%s\" fill-opacity=\"%.2f\"/>\n",
				        LEFT + (int)i * DENSITY_PX, y - 5, DENSITY_PX, STEAL_COLOUR,
				        0.15 + 0.85 * (double)cells[i] / (double)dense_max);
	} else {
		/* Steal marks, one per half pixel. */
		long last = -1;
		for (i = 0; i < lm->ninstants; i++) {
			const struct wt_instant *in = &lm->instants[i];
			double x = xof(in->t, m->span);
			long px = lround(x * 2.0);
			if (in->type != WEFT_EV_STEAL || px == last)
				continue;
			last = px;
			fprintf(f, "<path d=\"M%.1f %.1f l-3.5 -6 h7 z\" fill=\"%s\"/>\n", x, y + 1, STEAL_COLOUR);
		}
	}
	fputs("</g>\n", f);
}

static void put_arrows(FILE *f, const struct wt_model *m)
{
	size_t total = 0, i;
	uint32_t w;

	for (w = 0; w < m->nworkers; w++)
		total += m->lanes[w].steals;
	if (total == 0 || total > MAX_ARROWS)
		return;
	fprintf(f, "<g stroke=\"%s\" stroke-width=\"1\" stroke-opacity=\"0.55\" fill=\"none\">\n", STEAL_COLOUR);
	for (w = 0; w < m->nworkers; w++) {
		const struct wt_lane_model *lm = &m->lanes[w];
		for (i = 0; i < lm->ninstants; i++) {
			const struct wt_instant *in = &lm->instants[i];
			double x, y0, y1;
			if (in->type != WEFT_EV_STEAL || in->aux >= m->nworkers || in->aux == w)
				continue;
			x = xof(in->t, m->span);
			y0 = lane_y(in->aux) + LANE_H / 2.0;
			y1 = in->aux < w ? lane_y(w) - 0.5 : lane_y(w) + LANE_H + 0.5;
			fprintf(f, "<path d=\"M%.1f %.1f L%.1f %.1f\" marker-end=\"url(#arrow)\"/>\n", x, y0, x, y1);
		}
	}
	fputs("</g>\n", f);
}

static void put_util(FILE *f, const struct wt_model *m, double top)
{
	size_t nbins = PLOT_W / UTIL_BIN_PX, i;
	double *u = calloc(nbins, sizeof(*u)), mean = 0.0, bw = (double)PLOT_W / (double)nbins;
	double base = top + UTIL_H;

	fprintf(f, "<g %s font-size=\"11\" fill=\"#37474f\">\n", FONT);
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" fill=\"#263238\">utilisation: fraction of workers running</text>\n",
	        LEFT, top - 8);
	fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#b0bec5\" stroke-width=\"1\"/>\n",
	        LEFT, top, PLOT_W, UTIL_H);
	for (i = 0; i <= 4; i++) {
		double y = base - UTIL_H * (double)i / 4.0;
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n",
		        LEFT, y, LEFT + PLOT_W, y);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%zu%%</text>\n", LEFT - 6, y + 4, i * 25);
	}
	if (u && m->span > 0.0) {
		wt_model_utilisation(m, u, nbins);
		fprintf(f, "<path fill=\"#66bb6a\" fill-opacity=\"0.45\" stroke=\"#2e7d32\" stroke-width=\"1.2\" d=\"M%d %.1f",
		        LEFT, base);
		for (i = 0; i < nbins; i++) {
			double y = base - UTIL_H * u[i];
			fprintf(f, " L%.2f %.1f L%.2f %.1f", LEFT + (double)i * bw, y, LEFT + (double)(i + 1) * bw, y);
			mean += u[i];
		}
		fprintf(f, " L%d %.1f Z\"/>\n", LEFT + PLOT_W, base);
		mean /= (double)nbins;
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#1b5e20\" stroke-width=\"1\" stroke-dasharray=\"5 4\"/>\n",
		        LEFT, base - UTIL_H * mean, LEFT + PLOT_W, base - UTIL_H * mean);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1b5e20\">mean %.0f%%</text>\n",
		        LEFT + PLOT_W - 4, base - UTIL_H * mean - 4, 100.0 * mean);
	}
	fputs("</g>\n", f);
	free(u);
}

int wt_write_svg(FILE *f, const struct wt_trace *t, const struct wt_model *m, const char *title, char *err,
                 size_t errlen)
{
	size_t nbins = (size_t)PLOT_W * BINS_PER_PX, tasks = 0, steals = 0, dense_max = 0;
	double *acc = NULL, lanes_bottom, util_top, height, running = 0.0;
	unsigned char *bins = NULL;
	struct axis ax = pick_axis(m->span);
	char span[32];
	uint32_t w;

	if (m->nworkers > WT_SVG_MAX_WORKERS) {
		snprintf(err, errlen, "too many workers for an SVG timeline (%u, at most %d)", m->nworkers,
		         WT_SVG_MAX_WORKERS);
		return -1;
	}
	acc = malloc(nbins * WT_NSTATES * sizeof(*acc));
	bins = malloc(nbins);
	if (!acc || !bins) {
		free(acc);
		free(bins);
		snprintf(err, errlen, "out of memory drawing the timeline");
		return -1;
	}
	for (w = 0; w < m->nworkers; w++) {
		tasks += m->lanes[w].tasks;
		steals += m->lanes[w].steals;
		running += m->lanes[w].time[WT_ST_RUNNING];
	}
	if (steals > MAX_MARKS) {
		size_t cells[NCELLS];
		for (w = 0; w < m->nworkers; w++) {
			size_t c = steal_cells(&m->lanes[w], m->span, cells);
			if (c > dense_max)
				dense_max = c;
		}
	}
	lanes_bottom = lane_y(m->nworkers) - (LANE_PITCH - LANE_H);
	util_top = lanes_bottom + 62;
	height = util_top + UTIL_H + 40;
	wt_fmt_dur(span, sizeof span, m->span);

	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\">\n",
	        WIDTH, height, WIDTH, height);
	fputs("<defs>\n"
	      "<pattern id=\"nodata\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
	      "<rect width=\"6\" height=\"6\" fill=\"#ffffff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b0bec5\" stroke-width=\"2\"/></pattern>\n",
	      f);
	fprintf(f, "<marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"7\" refY=\"4\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\">"
	           "<path d=\"M0 0 L8 4 L0 8 z\" fill=\"%s\"/></marker>\n</defs>\n",
	        STEAL_COLOUR);
	fprintf(f, "<rect width=\"%d\" height=\"%.0f\" fill=\"#ffffff\"/>\n", WIDTH, height);
	fprintf(f, "<text x=\"%d\" y=\"24\" %s font-size=\"16\" font-weight=\"bold\" fill=\"#263238\">weft trace: ", LEFT,
	        FONT);
	wt_put_xml(f, title ? title : "");
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"%d\" y=\"44\" %s font-size=\"12\" fill=\"#546e7a\">%u workers, %s, %zu tasks, %zu steals, utilisation %.1f%%",
	        LEFT, FONT, m->nworkers, span, tasks, steals,
	        m->span > 0.0 && m->nworkers ? 100.0 * running / (m->span * m->nworkers) : 0.0);
	if (t->dropped)
		fprintf(f, ", %llu older events dropped by full rings", (unsigned long long)t->dropped);
	fputs("</text>\n", f);
	put_legend(f, 70, dense_max > 0);

	/* Grid behind the lanes, then lanes, arrows on top. */
	put_axis(f, &ax, m->span, lanes_bottom + 6, LANES_TOP - 4, lanes_bottom + 6);
	for (w = 0; w < m->nworkers; w++)
		put_lane(f, t, m, w, acc, bins, nbins, dense_max);
	put_arrows(f, m);
	put_util(f, m, util_top);
	put_axis(f, &ax, m->span, util_top + UTIL_H, util_top, util_top + UTIL_H);
	fputs("</svg>\n", f);
	free(acc);
	free(bins);
	if (ferror(f)) {
		snprintf(err, errlen, "write error");
		return -1;
	}
	return 0;
}

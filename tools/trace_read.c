/*
 * trace_read.c: the weft trace loader (see trace_read.h).
 *
 * The whole file is read into memory, then walked with a cursor that can
 * only advance by amounts already checked against the remaining length.
 * Structures are copied out with memcpy (the symbol table's variable-length
 * names leave later entries unaligned).  Lanes are checked for
 * worker < nworkers and uniqueness, since every output keys on it.  A file
 * with bytes after the symbol table is refused: the format has no trailer,
 * so extra bytes mean a writer bug or a file that is not a trace.
 */
#include "trace_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest file we agree to read (the writer's default is 256 Ki events a
 * worker, 6 MiB each; this leaves room for hundreds of workers). */
#define WT_MAX_FILE_64 ((uint64_t)4 << 30)
#define WT_MAX_FILE ((size_t)(WT_MAX_FILE_64 < SIZE_MAX / 2 ? WT_MAX_FILE_64 : SIZE_MAX / 2))

struct cursor {
	const unsigned char *p;
	size_t left;
	size_t off; /* from the start of the file, for messages */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int take(struct cursor *c, void *dst, size_t n)
{
	if (c->left < n)
		return -1;
	memcpy(dst, c->p, n);
	c->p += n;
	c->left -= n;
	c->off += n;
	return 0;
}

static uint32_t bswap32(uint32_t x)
{
	return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

const char *wt_event_type_name(uint32_t type)
{
	switch (type) {
	case WEFT_EV_TASK_BEGIN: return "TASK_BEGIN";
	case WEFT_EV_TASK_END: return "TASK_END";
	case WEFT_EV_STEAL: return "STEAL";
	case WEFT_EV_SEARCH_BEGIN: return "SEARCH_BEGIN";
	case WEFT_EV_SEARCH_END: return "SEARCH_END";
	case WEFT_EV_PARK: return "PARK";
	case WEFT_EV_UNPARK: return "UNPARK";
	case WEFT_EV_WAIT_BEGIN: return "WAIT_BEGIN";
	case WEFT_EV_WAIT_END: return "WAIT_END";
	case WEFT_EV_FIBER_SUSPEND: return "FIBER_SUSPEND";
	case WEFT_EV_FIBER_RESUME: return "FIBER_RESUME";
	case WEFT_EV_IO_SUBMIT: return "IO_SUBMIT";
	case WEFT_EV_IO_COMPLETE: return "IO_COMPLETE";
	default: return NULL;
	}
}

void wt_trace_free(struct wt_trace *t)
{
	size_t i;

	if (!t)
		return;
	if (t->lanes)
		for (i = 0; i < t->nworkers; i++)
			free(t->lanes[i].events);
	free(t->lanes);
	if (t->syms)
		for (i = 0; i < t->nsyms; i++)
			free(t->syms[i].name);
	free(t->syms);
	memset(t, 0, sizeof(*t));
}

static int parse_lanes(struct cursor *c, struct wt_trace *t, char *err, size_t errlen)
{
	unsigned char *seen;
	uint32_t i;

	if (t->nworkers == 0)
		return 0;
	/* Each lane needs at least its own header: bound nworkers first. */
	if (t->nworkers > c->left / sizeof(struct weft_trace_lane)) {
		seterr(err, errlen, "truncated trace: header says %u workers, but only %zu bytes follow the header",
		       t->nworkers, c->left);
		return -1;
	}
	t->lanes = calloc(t->nworkers, sizeof(*t->lanes));
	seen = calloc(t->nworkers, 1);
	if (!t->lanes || !seen) {
		free(seen);
		seterr(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < t->nworkers; i++) {
		struct weft_trace_lane lh;
		struct wt_lane *l = &t->lanes[i];
		size_t lane_off = c->off, k;
		uint64_t prev = 0;

		if (take(c, &lh, sizeof lh)) {
			seterr(err, errlen, "truncated trace: lane %u of %u: header at offset %zu is cut short",
			       i, t->nworkers, lane_off);
			goto fail;
		}
		if (lh.worker >= t->nworkers) {
			seterr(err, errlen, "corrupt trace: lane %u (offset %zu) names worker %u, but there are %u workers",
			       i, lane_off, lh.worker, t->nworkers);
			goto fail;
		}
		if (seen[lh.worker]) {
			seterr(err, errlen, "corrupt trace: lane %u (offset %zu) repeats worker %u", i, lane_off,
			       lh.worker);
			goto fail;
		}
		seen[lh.worker] = 1;
		l->worker = lh.worker;
		l->dropped = lh.dropped;
		if (lh.nevents > c->left / sizeof(struct weft_trace_event)) {
			seterr(err, errlen,
			       "truncated trace: worker %u has %llu events at offset %zu, but only %zu bytes (%zu events) remain",
			       lh.worker, (unsigned long long)lh.nevents, c->off, c->left,
			       c->left / sizeof(struct weft_trace_event));
			goto fail;
		}
		l->nevents = (size_t)lh.nevents;
		if (l->nevents) {
			l->events = malloc(l->nevents * sizeof(*l->events));
			if (!l->events) {
				seterr(err, errlen, "out of memory (%zu events)", l->nevents);
				goto fail;
			}
		}
		for (k = 0; k < l->nevents; k++) {
			struct weft_trace_event e;

			(void)take(c, &e, sizeof e); /* length checked above */
			if (k > 0 && e.ts < prev) {
				e.ts = prev;
				l->clamped++;
			}
			prev = e.ts;
			l->events[k].ts = e.ts;
			l->events[k].arg = e.arg;
			l->events[k].type = e.type;
			l->events[k].aux = e.aux;
		}
		t->nevents += l->nevents;
		t->dropped = t->dropped + l->dropped < t->dropped ? UINT64_MAX : t->dropped + l->dropped;
	}
	free(seen);
	return 0;
fail:
	free(seen);
	return -1;
}

/* Symbols as read, sorted by (addr, file order) so the first of
 * duplicate entries is the one kept. */
struct rawsym {
	uint64_t addr;
	size_t idx;
	char *name;
};

static int rawsym_cmp(const void *a, const void *b)
{
	const struct rawsym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int parse_syms(struct cursor *c, uint64_t nsyms, struct wt_trace *t, char *err, size_t errlen)
{
	struct rawsym *raw;
	size_t i, n, kept;
	int rc = -1;

	if (nsyms == 0)
		return 0;
	if (nsyms > c->left / sizeof(struct weft_trace_sym)) {
		seterr(err, errlen, "truncated trace: header says %llu symbols, but only %zu bytes follow the events",
		       (unsigned long long)nsyms, c->left);
		return -1;
	}
	n = (size_t)nsyms;
	raw = calloc(n, sizeof(*raw));
	if (!raw) {
		seterr(err, errlen, "out of memory (%zu symbols)", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct weft_trace_sym s;
		size_t off = c->off, k;

		if (take(c, &s, sizeof s)) {
			seterr(err, errlen, "truncated trace: symbol %zu of %zu at offset %zu is cut short", i, n, off);
			goto out;
		}
		if (s.len > c->left) {
			seterr(err, errlen,
			       "truncated trace: symbol %zu of %zu (offset %zu) has a %u-byte name, but only %zu bytes remain",
			       i, n, off, s.len, c->left);
			goto out;
		}
		raw[i].addr = s.addr;
		raw[i].idx = i;
		raw[i].name = malloc((size_t)s.len + 1);
		if (!raw[i].name) {
			seterr(err, errlen, "out of memory");
			goto out;
		}
		(void)take(c, raw[i].name, s.len);
		raw[i].name[s.len] = '\0';
		/* An embedded NUL would silently shorten the name: show it. */
		for (k = 0; k < s.len; k++)
			if (raw[i].name[k] == '\0')
				raw[i].name[k] = '?';
	}
	qsort(raw, n, sizeof(*raw), rawsym_cmp);
	t->syms = calloc(n, sizeof(*t->syms));
	if (!t->syms) {
		seterr(err, errlen, "out of memory (%zu symbols)", n);
		goto out;
	}
	kept = 0;
	for (i = 0; i < n; i++) {
		if (kept > 0 && t->syms[kept - 1].addr == raw[i].addr) {
			t->dup_syms++;
			continue;
		}
		t->syms[kept].addr = raw[i].addr;
		t->syms[kept].name = raw[i].name;
		raw[i].name = NULL;
		kept++;
	}
	t->nsyms = kept;
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(raw[i].name);
	free(raw);
	return rc;
}

/* Times in ns from the origin; span = latest event. */
static void set_times(struct wt_trace *t)
{
	double scale = 1e9 / (double)t->ticks_per_sec;
	uint64_t origin = t->t0, last = 0;
	int any = 0;
	size_t i, k;

	for (i = 0; i < t->nworkers; i++) {
		const struct wt_lane *l = &t->lanes[i];
		if (l->nevents == 0)
			continue;
		/* Lanes are in order after clamping: first and last suffice. */
		if (l->events[0].ts < origin)
			origin = l->events[0].ts;
		if (!any || l->events[l->nevents - 1].ts > last)
			last = l->events[l->nevents - 1].ts;
		any = 1;
	}
	t->origin = origin;
	t->span = any ? (double)(last - origin) * scale : 0.0;
	for (i = 0; i < t->nworkers; i++) {
		struct wt_lane *l = &t->lanes[i];
		for (k = 0; k < l->nevents; k++)
			l->events[k].t = (double)(l->events[k].ts - origin) * scale;
	}
}

int wt_trace_parse(const void *buf, size_t len, struct wt_trace *t, char *err, size_t errlen)
{
	struct weft_trace_header h;
	struct cursor c = { buf, len, 0 };

	memset(t, 0, sizeof(*t));
	if (!buf && len)
		len = 0;
	if (len < sizeof(h.magic) || memcmp(buf, WEFT_TRACE_MAGIC, sizeof(h.magic)) != 0) {
		if (len < sizeof(h.magic) && len > 0 && memcmp(buf, WEFT_TRACE_MAGIC, len) == 0)
			seterr(err, errlen, "truncated trace: %zu bytes, shorter than the %zu-byte header", len,
			       sizeof h);
		else if (len == 0)
			seterr(err, errlen, "not a weft trace: the file is empty");
		else
			seterr(err, errlen, "not a weft trace: bad magic (expected \"WEFTTRC\\1\")");
		return -1;
	}
	if (take(&c, &h, sizeof h)) {
		seterr(err, errlen, "truncated trace: %zu bytes, shorter than the %zu-byte header", len, sizeof h);
		return -1;
	}
	if (h.version != WEFT_TRACE_VERSION) {
		if (bswap32(h.version) == WEFT_TRACE_VERSION)
			seterr(err, errlen, "trace written on a machine of the other byte order; not supported");
		else
			seterr(err, errlen, "unsupported trace version %u (this weft-trace reads version %u)", h.version,
			       WEFT_TRACE_VERSION);
		return -1;
	}
	if (h.ticks_per_sec == 0) {
		seterr(err, errlen, "corrupt trace: ticks_per_sec is 0");
		return -1;
	}
	t->version = h.version;
	t->nworkers = h.nworkers;
	t->ticks_per_sec = h.ticks_per_sec;
	t->t0 = h.t0;
	if (parse_lanes(&c, t, err, errlen) || parse_syms(&c, h.nsyms, t, err, errlen))
		goto fail;
	if (c.left) {
		seterr(err, errlen, "corrupt trace: %zu unexpected bytes after the symbol table (offset %zu)", c.left,
		       c.off);
		goto fail;
	}
	set_times(t);
	return 0;
fail:
	wt_trace_free(t);
	return -1;
}

static int read_all(int fd, unsigned char **out, size_t *outlen, char *err, size_t errlen, const char *path)
{
	struct stat st;
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf;

	if (fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			seterr(err, errlen, "cannot read '%s': %s", path, strerror(EISDIR));
			return -1;
		}
		if (S_ISREG(st.st_mode) && st.st_size > 0) {
			if ((uint64_t)st.st_size > WT_MAX_FILE) {
				seterr(err, errlen, "'%s' is too large for a trace (%lld bytes)", path,
				       (long long)st.st_size);
				return -1;
			}
			cap = (size_t)st.st_size + 1; /* +1: see EOF without a regrow */
		}
	}
	buf = malloc(cap);
	if (!buf) {
		seterr(err, errlen, "out of memory reading '%s'", path);
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (n == cap) {
			unsigned char *nb;
			if (cap >= WT_MAX_FILE) {
				free(buf);
				seterr(err, errlen, "'%s' is too large for a trace", path);
				return -1;
			}
			cap = cap > WT_MAX_FILE / 2 ? WT_MAX_FILE : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				seterr(err, errlen, "out of memory reading '%s'", path);
				return -1;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

int wt_trace_load(const char *path, struct wt_trace *t, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	char why[512];
	int fd, rc;

	memset(t, 0, sizeof(*t));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		seterr(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	rc = read_all(fd, &buf, &len, err, errlen, path);
	close(fd);
	if (rc)
		return -1;
	rc = wt_trace_parse(buf, len, t, why, sizeof why);
	free(buf);
	if (rc)
		seterr(err, errlen, "'%s': %s", path, why);
	return rc;
}

const struct wt_sym *wt_trace_sym(const struct wt_trace *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nsyms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->syms[mid].addr == addr)
			return &t->syms[mid];
		if (t->syms[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *wt_trace_fn_name(const struct wt_trace *t, uint64_t addr, char *buf, size_t buflen)
{
	const struct wt_sym *s = wt_trace_sym(t, addr);

	if (s && s->name[0])
		return s->name;
	snprintf(buf, buflen, "0x%llx", (unsigned long long)addr);
	return buf;
}

/*
 * trace.c: trace rings' lifetime and writing a trace file (format in
 * trace_format.h, recording in trace.h).
 *
 * Writing copies each ring's published events (head read with acquire; the
 * oldest quarter of a wrapped ring is skipped, because the worker may be
 * overwriting it while we copy), then resolves every task function address
 * it saw through dladdr: an exported symbol's name, or "object+0xOFFSET"
 * for a static function, which weft-trace can pass to addr2line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

#define TRACE_EVENTS_DEFAULT (1U << 18)

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int weft__trace_init(struct weft_runtime *rt)
{
#ifdef WEFT_NO_TRACE
	(void)rt;
	return 0;
#else
	unsigned i, n = rt->cfg.trace_events ? rt->cfg.trace_events : TRACE_EVENTS_DEFAULT;
	uint64_t cap = 1;

	if (!rt->cfg.trace_path)
		return 0;
	while (cap < n)
		cap <<= 1;
	rt->trace_t0 = weft__trace_now();
	rt->trace_t0_ns = mono_ns();
	for (i = 0; i < rt->nworkers; i++) {
		struct weft__trace_ring *r = calloc(1, sizeof(*r));
		if (r)
			r->ev = calloc(cap, sizeof(*r->ev));
		if (!r || !r->ev) {
			free(r);
			return -ENOMEM; /* the caller frees the rings made so far */
		}
		r->mask = cap - 1;
		rt->workers[i].trace = r;
	}
	return 0;
#endif
}

void weft__trace_flush(struct weft_runtime *rt)
{
	if (rt->cfg.trace_path && rt->workers[0].trace) {
		int rc = weft_trace_write(rt, rt->cfg.trace_path);
		if (rc)
			fprintf(stderr, "weft: writing trace %s: %s\n", rt->cfg.trace_path, weft_strerror(rc));
	}
}

void weft__trace_fini(struct weft_runtime *rt)
{
	unsigned i;

	for (i = 0; rt->workers && i < rt->nworkers; i++) {
		if (rt->workers[i].trace) {
			free(rt->workers[i].trace->ev);
			free(rt->workers[i].trace);
			rt->workers[i].trace = NULL;
		}
	}
}

/* Distinct addresses, open addressing; 0 marks an empty slot. */
struct addrset {
	uint64_t *slot;
	size_t cap, n;
};

static int addrset_add(struct addrset *s, uint64_t a)
{
	size_t i;

	if (a == 0)
		return 0;
	if (2 * (s->n + 1) > s->cap) {
		struct addrset g = { calloc(s->cap ? 2 * s->cap : 64, sizeof(uint64_t)), s->cap ? 2 * s->cap : 64, 0 };
		if (!g.slot)
			return -ENOMEM;
		for (i = 0; i < s->cap; i++)
			if (s->slot[i])
				addrset_add(&g, s->slot[i]);
		free(s->slot);
		*s = g;
	}
	for (i = (size_t)(a * 0x9e3779b97f4a7c15ULL) & (s->cap - 1); s->slot[i]; i = (i + 1) & (s->cap - 1))
		if (s->slot[i] == a)
			return 0;
	s->slot[i] = a;
	s->n++;
	return 0;
}

static int write_all(FILE *f, const void *p, size_t n)
{
	return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

/* An absolute path for a loaded object, so that weft-trace can open it from
 * anywhere: dladdr reports the main program by the name it was started
 * with (relative, or rewritten like argv[0]). */
static const char *object_path(const char *fname, char *buf, size_t size)
{
	ssize_t n;

	if (fname[0] == '/')
		return fname;
	if (fname[0] && realpath(fname, buf))
		return buf;
	n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0)
		return fname;
	buf[n] = 0;
	return buf;
}

/* The address addr2line expects for addr in the object: the offset from the
 * load base for position-independent objects, the address itself for a
 * fixed-address (ET_EXEC) executable. */
static uint64_t object_offset(const Dl_info *info, uint64_t addr)
{
	const ElfW(Ehdr) *eh = info->dli_fbase;

	if (eh && eh->e_type == ET_EXEC)
		return addr;
	return addr - (uint64_t)(uintptr_t)info->dli_fbase;
}

static int write_sym(FILE *f, uint64_t addr)
{
	struct weft_trace_sym sym = { addr, 0, 0 };
	char name[PATH_MAX + 32], path[PATH_MAX];
	Dl_info info;
	int len = 0;

	if (dladdr((void *)(uintptr_t)addr, &info)) {
		if (info.dli_sname && (uint64_t)(uintptr_t)info.dli_saddr == addr)
			len = snprintf(name, sizeof name, "%s", info.dli_sname);
		else if (info.dli_fname)
			len = snprintf(name, sizeof name, "%s+0x%llx", object_path(info.dli_fname, path, sizeof path),
			               (unsigned long long)object_offset(&info, addr));
	}
	if (len <= 0)
		len = snprintf(name, sizeof name, "0x%llx", (unsigned long long)addr);
	if ((size_t)len >= sizeof name)
		len = sizeof name - 1;
	sym.len = (uint32_t)len;
	if (write_all(f, &sym, sizeof sym))
		return -EIO;
	return write_all(f, name, (size_t)len);
}

int weft_trace_write(weft_runtime_t *rt, const char *path)
{
	struct weft_trace_header h;
	struct addrset syms = { NULL, 0, 0 };
	FILE *f;
	unsigned w;
	size_t i;
	int rc = 0;

	if (!rt || !path)
		return -EINVAL;
	if (!rt->workers[0].trace)
		return -ENOTSUP;
	f = fopen(path, "wb");
	if (!f)
		return -errno;

	memset(&h, 0, sizeof h);
	memcpy(h.magic, WEFT_TRACE_MAGIC, sizeof h.magic);
	h.version = WEFT_TRACE_VERSION;
	h.nworkers = rt->nworkers;
	{
		uint64_t dt = weft__trace_now() - rt->trace_t0, dns = mono_ns() - rt->trace_t0_ns;
		h.ticks_per_sec = dns ? (uint64_t)((double)dt * 1e9 / (double)dns) : 1000000000u;
		if (h.ticks_per_sec == 0)
			h.ticks_per_sec = 1000000000u;
	}
	h.t0 = rt->trace_t0;
	h.nsyms = 0; /* patched below */
	rc = write_all(f, &h, sizeof h);

	for (w = 0; rc == 0 && w < rt->nworkers; w++) {
		struct weft__trace_ring *r = rt->workers[w].trace;
		uint64_t head = (uint64_t)atom_load_acq_64((const int64_t *)&r->head);
		uint64_t cap = r->mask + 1, n = head < cap ? head : cap - cap / 4;
		struct weft_trace_lane lane = { w, 0, n, head - n };

		rc = write_all(f, &lane, sizeof lane);
		for (i = 0; rc == 0 && i < n; i++) {
			const struct weft_trace_event *s = &r->ev[(head - n + i) & r->mask];
			struct weft_trace_event e;
			e.ts = (uint64_t)atom_load_64((const int64_t *)&s->ts);
			e.arg = (uint64_t)atom_load_64((const int64_t *)&s->arg);
			e.type = atom_load_32(&s->type);
			e.aux = atom_load_32(&s->aux);
			if ((e.type == WEFT_EV_TASK_BEGIN || e.type == WEFT_EV_STEAL) && addrset_add(&syms, e.arg))
				rc = -ENOMEM;
			if (rc == 0)
				rc = write_all(f, &e, sizeof e);
		}
	}
	for (i = 0; rc == 0 && i < syms.cap; i++)
		if (syms.slot[i])
			rc = write_sym(f, syms.slot[i]);
	if (rc == 0) {
		h.nsyms = syms.n;
		if (fseek(f, 0, SEEK_SET) != 0 || write_all(f, &h, sizeof h))
			rc = -EIO;
	}
	free(syms.slot);
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}

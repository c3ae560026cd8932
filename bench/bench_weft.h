/*
 * bench_weft.h: the few lines every weft benchmark needs on top of
 * bench_util.h.  Public API only (weft.h).
 */
#ifndef BENCH_WEFT_H
#define BENCH_WEFT_H

#include <weft.h>

#include "bench_util.h"

/* A runtime with exactly `workers` workers (other settings: defaults plus
 * environment), or NULL after printing why. */
static inline weft_runtime_t *bench_weft_create(unsigned workers)
{
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	int rc;

	weft_config_init(&cfg);
	cfg.workers = workers;
	rc = weft_runtime_create(&rt, &cfg);
	if (rc != 0) {
		fprintf(stderr, "bench: weft_runtime_create(%u workers): %s\n", workers,
		        weft_strerror(rc));
		bench_fail("weft_runtime_create", rc);
		return NULL;
	}
	if (weft_runtime_workers(rt) != workers) {
		fprintf(stderr, "bench: asked for %u workers, runtime has %u\n", workers,
		        weft_runtime_workers(rt));
		bench_fail("weft_runtime_workers", -EINVAL);
	}
	return rt;
}

static inline void bench_weft_destroy(weft_runtime_t *rt)
{
	int rc;
	if (!rt)
		return;
	rc = weft_runtime_destroy(rt);
	if (rc != 0)
		bench_fail("weft_runtime_destroy", rc);
}

/* weft_run timed from the calling (non-worker) thread; returns seconds. */
static inline double bench_weft_run(weft_runtime_t *rt, weft_task_fn fn, void *arg)
{
	double t0 = bench_now();
	int rc = weft_run(rt, fn, arg);
	double t1 = bench_now();
	if (rc != 0)
		bench_fail("weft_run", rc);
	return t1 - t0;
}

#endif /* BENCH_WEFT_H */

/*
 * runtime.c: configuration, creating and destroying a runtime.
 *
 * Lifecycle invariants
 *   - create either returns a runtime whose workers all run, or frees
 *     everything it made and returns an error.
 *   - destroy finishes all submitted work first (see the shutdown steps in
 *     scheduler.c), so nothing a caller handed over is lost; it refuses to
 *     run on one of the runtime's own workers (it would wait for itself).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

#define WORKERS_MAX 4096

static bool env_ulong(const char *name, unsigned long *out)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-')
		return false;
	*out = v;
	return true;
}

void weft_config_init(weft_config_t *cfg)
{
	unsigned long v;

	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	if (env_ulong("WEFT_WORKERS", &v) && v >= 1 && v <= WORKERS_MAX)
		cfg->workers = (unsigned)v;
	if (env_ulong("WEFT_PIN", &v) && v <= 1)
		cfg->pin = (int)v;
	if (env_ulong("WEFT_STACK", &v) && v >= (unsigned long)PTHREAD_STACK_MIN)
		cfg->stack_size = v;
	if (env_ulong("WEFT_STATS", &v) && v <= 1)
		cfg->stats_at_exit = (int)v;
	if (getenv("WEFT_TRACE") && *getenv("WEFT_TRACE"))
		cfg->trace_path = getenv("WEFT_TRACE");
	if (env_ulong("WEFT_TRACE_EVENTS", &v) && v >= 1 && v <= (1UL << 28))
		cfg->trace_events = (unsigned)v;
	if (getenv("WEFT_IO")) {
		const char *io = getenv("WEFT_IO");
		if (strcmp(io, "uring") == 0)
			cfg->io = WEFT_IO_URING;
		else if (strcmp(io, "epoll") == 0)
			cfg->io = WEFT_IO_EPOLL;
		else if (strcmp(io, "auto") == 0)
			cfg->io = WEFT_IO_AUTO;
	}
	if (env_ulong("WEFT_FIBER_STACK", &v) && v >= WEFT_FIBER_STACK_MIN && v <= (1UL << 30))
		cfg->fiber_stack_size = v;
}

/* CPUs in the process's affinity mask, in order. */
static unsigned affinity_cpus(cpu_set_t *set)
{
	CPU_ZERO(set);
	if (sched_getaffinity(0, sizeof(*set), set) != 0 || CPU_COUNT(set) == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned i;
		CPU_ZERO(set);
		for (i = 0; i < (n > 0 ? (unsigned)n : 1U) && i < CPU_SETSIZE; i++)
			CPU_SET(i, set);
	}
	return (unsigned)CPU_COUNT(set);
}

static int nth_cpu(const cpu_set_t *set, unsigned n)
{
	unsigned count = (unsigned)CPU_COUNT(set), seen = 0;
	int c;

	n %= count;
	for (c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set) && seen++ == n)
			return c;
	return 0;
}

static void stop_workers(weft_runtime_t *rt, unsigned started)
{
	unsigned i;

	atom_store_32(&rt->stop, 1);
	weft__wake_all(rt);
	for (i = 0; i < started; i++)
		pthread_join(rt->workers[i].thread, NULL);
}

static void free_runtime(weft_runtime_t *rt, unsigned deques)
{
	unsigned i;

	weft__trace_fini(rt);
	for (i = 0; i < deques; i++) {
		weft__io_worker_free(&rt->workers[i]);
		weft__deque_fini(&rt->workers[i].dq);
		weft__tdq_fini(&rt->workers[i].tdq);
	}
	free(rt->workers);
	weft__fiber_runtime_fini(rt);
	weft__idle_fini(&rt->idle);
	weft__injector_fini(&rt->inj);
	pthread_cond_destroy(&rt->drain_cond);
	pthread_mutex_destroy(&rt->drain_lock);
	free(rt);
}

int weft_runtime_create(weft_runtime_t **out, const weft_config_t *cfg)
{
	weft_config_t c;
	weft_runtime_t *rt;
	cpu_set_t cpus;
	unsigned ncpu, i;
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (cfg)
		c = *cfg;
	else
		weft_config_init(&c);
	ncpu = affinity_cpus(&cpus);
	if (c.workers == 0)
		c.workers = ncpu;
	if (c.stack_size == 0)
		c.stack_size = WEFT_STACK_DEFAULT;
	if (c.deque_log2 == 0)
		c.deque_log2 = WEFT_DEQUE_LOG2_DEFAULT;
	if (c.fiber_stack_size == 0)
		c.fiber_stack_size = WEFT_FIBER_STACK_DEFAULT;
	if (c.io_entries == 0)
		c.io_entries = WEFT_IO_ENTRIES_DEFAULT;
	if (c.workers > WORKERS_MAX || c.stack_size < (size_t)PTHREAD_STACK_MIN || c.deque_log2 > WEFT_DEQUE_LOG2_MAX ||
	    c.io < WEFT_IO_AUTO || c.io > WEFT_IO_EPOLL || c.fiber_stack_size < WEFT_FIBER_STACK_MIN ||
	    c.fiber_stack_size > (1UL << 30) || c.io_entries > 32768)
		return -EINVAL;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->cfg = c;
	rt->nworkers = c.workers;
	rt->outstanding = 1; /* the runtime's own count (future.c, I2) */
	pthread_mutex_init(&rt->drain_lock, NULL);
	pthread_cond_init(&rt->drain_cond, NULL);
	if (weft__injector_init(&rt->inj)) {
		free(rt);
		return -ENOMEM;
	}
	if (weft__idle_init(&rt->idle, c.workers)) {
		weft__injector_fini(&rt->inj);
		free(rt);
		return -ENOMEM;
	}
	if (posix_memalign((void **)&rt->workers, WEFT_CACHELINE, c.workers * sizeof(*rt->workers))) {
		rt->workers = NULL;
		free_runtime(rt, 0);
		return -ENOMEM;
	}
	memset(rt->workers, 0, c.workers * sizeof(*rt->workers));
	for (i = 0; i < c.workers; i++) {
		struct weft__worker *w = &rt->workers[i];
		if (weft__deque_init(&w->dq, c.deque_log2)) {
			free_runtime(rt, i);
			return -ENOMEM;
		}
		if (weft__tdq_init(&w->tdq, w, c.workers)) {
			free_runtime(rt, i + 1);
			return -ENOMEM;
		}
		w->rt = rt;
		w->index = i;
		w->rng = 0x9e3779b97f4a7c15ULL * (i + 1) ^ (uint64_t)(uintptr_t)rt;
		if (!w->rng)
			w->rng = 1;
	}
	if (weft__trace_init(rt)) {
		free_runtime(rt, c.workers);
		return -ENOMEM;
	}
	rc = weft__io_runtime_init(rt);
	if (rc == 0)
		rc = weft__fiber_runtime_init(rt);
	if (rc) {
		free_runtime(rt, c.workers);
		return rc;
	}
	rt->io_init_left = c.workers;

	/* Workers start with every signal blocked, so the program's signal
	 * handling stays on its own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	rc = pthread_attr_setstacksize(&attr, c.stack_size);
	for (i = 0; rc == 0 && i < c.workers; i++) {
		if (c.pin) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(nth_cpu(&cpus, i), &one);
			pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		}
		rc = pthread_create(&rt->workers[i].thread, &attr, weft__worker_main, &rt->workers[i]);
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		stop_workers(rt, rc == 0 ? i : i - 1);
		free_runtime(rt, c.workers);
		return rc == EINVAL ? -EINVAL : -EAGAIN;
	}
	/* Every worker sets up its own event state; wait for the outcome. */
	for (;;) {
		uint32_t left = atom_load_32(&rt->io_init_left);
		if (left == 0)
			break;
		weft__futex_wait(&rt->io_init_left, left, 0);
	}
	if (rt->io_init_err) {
		rc = rt->io_init_err;
		stop_workers(rt, c.workers);
		free_runtime(rt, c.workers);
		return rc;
	}
	*out = rt;
	return 0;
}

int weft_runtime_destroy(weft_runtime_t *rt)
{
	struct weft__worker *self = weft__self();

	if (!rt)
		return -EINVAL;
	if (self && self->rt == rt)
		return -EDEADLK;
	(void)atom_fas_32(&rt->closing, 1);
	/* Workers asleep in their event state wake up to cancel what is
	 * pending there (io.c, I5), so that fibers waiting on I/O finish. */
	weft__wake_all(rt);
	/* Drop the runtime's own count, then wait for every submission (and
	 * so everything it spawned) to finish (future.c, I2). */
	weft__outstanding_put(rt, 1);
	pthread_mutex_lock(&rt->drain_lock);
	while (!rt->drained)
		pthread_cond_wait(&rt->drain_cond, &rt->drain_lock);
	pthread_mutex_unlock(&rt->drain_lock);
	stop_workers(rt, rt->nworkers);
	if (rt->cfg.stats_at_exit)
		weft_stats_print(rt, stderr);
	weft__trace_flush(rt);
	free_runtime(rt, rt->nworkers);
	return 0;
}

unsigned weft_runtime_workers(const weft_runtime_t *rt)
{
	return rt ? rt->nworkers : 0;
}

int weft_worker_index(void)
{
	struct weft__worker *w = weft__self();
	return w ? (int)w->index : -1;
}

int weft_runtime_io_backend(const weft_runtime_t *rt)
{
	return rt ? rt->io_backend->id : -EINVAL;
}

const char *weft_runtime_io_note(const weft_runtime_t *rt)
{
	return rt && rt->io_note[0] ? rt->io_note : NULL;
}

weft_runtime_t *weft_runtime_current(void)
{
	struct weft__worker *w = weft__self();
	return w ? w->rt : NULL;
}

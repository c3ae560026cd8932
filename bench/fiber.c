/*
 * fiber: the cost of weft's fibers, with ucontext's swapcontext measured in
 * the same run for comparison.  One line per (benchmark, backend, workers);
 * median_s/min_s/max_s are the seconds taken by `ops` operations over the
 * repetitions, result is ns_per_op= (the median over ops).
 *
 *   swapcontext  main <-> a ucontext coroutine, `ops` round trips (two
 *                swapcontext calls each; glibc makes a sigprocmask system
 *                call in every one).  runtime "ucontext".
 *   ctx_switch   the runtime's own context switch (weft__ctx_switch from
 *                runtime/fiber.h), main <-> a context on its own stack,
 *                `ops` round trips = 2 switches each; result also has
 *                ns_per_switch=.  Only when built against libweft_core
 *                with BENCH_HAVE_CTX_SWITCH (bench/io.mk does when the
 *                header exists).  runtime "weft-raw".
 *   yield_self   one fiber alone on the worker calls weft_yield `ops` times:
 *                each call suspends, requeues and resumes the fiber.
 *   yield_pair   two fibers on one worker ping-pong with weft_yield,
 *                `ops` yields in all (ns per yield = one suspend + requeue +
 *                switch to the other fiber; a round trip of the pair is two
 *                yields).  result also has alt= the fraction of yields after
 *                which the other fiber had run (1.0 when they alternate).
 *   create       a fiber starts --create-ops fibers with weft_go, in batches
 *                of --batch, yielding until each batch has returned; each
 *                child increments a counter.  Stacks come from the pool,
 *                warmed by the untimed warm-up run.
 *
 * The fiber benchmarks time inside the fibers (clock_gettime before the
 * first and after the last operation), so runtime start-up and the outside
 * thread's wake-up are not counted.  result also has cpu_ns_per_op=: the
 * same median measured in the CPU time of the thread that ran the loop
 * (CLOCK_THREAD_CPUTIME_ID), which leaves out the time other processes
 * took the CPU away on a loaded machine (fiber benchmarks: only with one
 * worker, where the fibers stay on one thread).  --batch takes a list: the
 * runtime keeps a small stack cache per worker, and a batch larger than it
 * shows what a fresh stack costs.
 *
 *   fiber [--what swapcontext,ctx_switch,yield_self,yield_pair,create]
 *         [--ops N] [--create-ops N] [--batch 32,1000] [--io uring,epoll]
 *         [--workers 1] [--reps 5] [--warmup 1] [--no-header]
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "bench_io.h"

/* The raw switch is internal (libweft_core) and would confuse the
 * sanitizers' stack tracking: only in plain builds, and only the assembly
 * one (with --with-fiber-switch=ucontext, swapcontext above is it). */
#if defined(BENCH_HAVE_CTX_SWITCH) && (defined(WEFT_TSAN) || defined(WEFT_ASAN) || defined(WEFT_FIBER_UCONTEXT))
#undef BENCH_HAVE_CTX_SWITCH
#endif
#ifdef BENCH_HAVE_CTX_SWITCH
#include "fiber.h"
#endif

static const char *own_usage =
	"[--what swapcontext,ctx_switch,yield_self,yield_pair,create] [--ops N] "
	"[--create-ops N] [--batch B,...] [--io uring,epoll] ";

/* CPU seconds of the calling thread. */
static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The CPU time of the last run_* / fiber_once, seconds. */
static double last_cpu;

/* ------------------------------------------------------------------ ucontext */
static ucontext_t uc_main, uc_co;

static void uc_body(void)
{
	for (;;)
		swapcontext(&uc_co, &uc_main);
}

static double run_swapcontext(long ops)
{
	static char *stack;
	const size_t sz = 64 * 1024;
	double t0, t1;

	if (!stack && !(stack = malloc(sz))) {
		bench_fail("malloc", -ENOMEM);
		return 0;
	}
	getcontext(&uc_co);
	uc_co.uc_stack.ss_sp = stack;
	uc_co.uc_stack.ss_size = sz;
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_body, 0);
	double c0 = thread_cpu();
	t0 = bench_now();
	for (long i = 0; i < ops; i++)
		swapcontext(&uc_main, &uc_co);
	t1 = bench_now();
	last_cpu = thread_cpu() - c0;
	return t1 - t0;
}

/* ------------------------------------------------------- the runtime's switch */
#ifdef BENCH_HAVE_CTX_SWITCH
/* main <-> a bare context running raw_body on raw_stack, built the way
 * fiber.c builds a new fiber's first frame but entering raw_body
 * directly; the context is abandoned (never returns) after each run. */
static void *raw_main_sp, *raw_co_sp;

static __attribute__((noreturn, noinline)) void raw_body(void)
{
	for (;;)
		weft__ctx_switch(&raw_co_sp, raw_main_sp);
}

static double run_ctx_switch(long ops)
{
	static char *stack;
	const size_t sz = 64 * 1024;
	uintptr_t top;
	double t0, t1;

	if (!stack && !(stack = aligned_alloc(64, sz))) {
		bench_fail("aligned_alloc", -ENOMEM);
		return 0;
	}
	top = ((uintptr_t)stack + sz - 64) & ~(uintptr_t)15;
#if defined(__x86_64__)
	{
		/* control words, r15, r14, r13, r12, rbx, rbp, return address;
		 * after the `ret` rsp is 8 mod 16, as at a function's entry. */
		uint64_t *frame = (uint64_t *)(top - 8) - 8;
		memset(frame, 0, 8 * sizeof *frame);
		frame[0] = 0x1F80u | ((uint64_t)0x037Fu << 32);
		frame[7] = (uint64_t)(uintptr_t)raw_body;
		raw_co_sp = frame;
	}
#elif defined(__aarch64__)
	{
		/* x19..x28, x29 = 0, x30 = raw_body, d8..d15; sp = top after. */
		uint64_t *frame = (uint64_t *)(top - 160);
		memset(frame, 0, 160);
		frame[11] = (uint64_t)(uintptr_t)raw_body;
		raw_co_sp = frame;
	}
#else
#error "no frame layout for this architecture"
#endif
	double c0 = thread_cpu();
	t0 = bench_now();
	for (long i = 0; i < ops; i++)
		weft__ctx_switch(&raw_main_sp, raw_co_sp);
	t1 = bench_now();
	last_cpu = thread_cpu() - c0;
	return t1 - t0;
}
#endif

/* -------------------------------------------------------------- yield_self */
struct yield_arg {
	long ops;
	double t0[2], t1[2], c0[2], c1[2];
	atomic_int arrived;
	atomic_long progress[2]; /* yields done by each fiber */
	long alternations;       /* yields after which the other had moved */
	struct bench_latch done;
	int idx;
};

static void yield_self_fiber(void *p)
{
	struct yield_arg *a = p;
	long n = a->ops;
	a->c0[0] = thread_cpu();
	a->t0[0] = bench_now();
	for (long i = 0; i < n; i++)
		weft_yield();
	a->t1[0] = bench_now();
	a->c1[0] = thread_cpu();
	bench_latch_done(&a->done);
}

/* ------------------------------------------------------------- yield_pair */
struct pair_arg {
	struct yield_arg *a;
	int me;
};

static void yield_pair_fiber(void *p)
{
	struct pair_arg *pa = p;
	struct yield_arg *a = pa->a;
	int me = pa->me, other = 1 - me;
	long n = a->ops / 2, alt = 0;

	/* Both fibers running before either starts the clock. */
	atomic_fetch_add(&a->arrived, 1);
	while (atomic_load(&a->arrived) < 2)
		weft_yield();
	a->c0[me] = thread_cpu();
	a->t0[me] = bench_now();
	for (long i = 0; i < n; i++) {
		long before = atomic_load_explicit(&a->progress[other], memory_order_relaxed);
		weft_yield();
		alt += atomic_load_explicit(&a->progress[other], memory_order_relaxed) != before;
		atomic_store_explicit(&a->progress[me], i + 1, memory_order_relaxed);
	}
	a->t1[me] = bench_now();
	a->c1[me] = thread_cpu();
	__atomic_fetch_add(&a->alternations, alt, __ATOMIC_RELAXED);
	bench_latch_done(&a->done);
}

/* ----------------------------------------------------------------- create */
struct create_arg {
	long ops, batch;
	atomic_long count;
	double t, c;
	struct bench_latch done;
	weft_runtime_t *rt;
};

static void create_child(void *p)
{
	atomic_fetch_add_explicit((atomic_long *)p, 1, memory_order_relaxed);
}

static void create_fiber(void *p)
{
	struct create_arg *a = p;
	long made = 0;
	double c0 = thread_cpu();
	double t0 = bench_now();
	while (made < a->ops) {
		long b = a->ops - made < a->batch ? a->ops - made : a->batch;
		for (long i = 0; i < b; i++) {
			int rc = weft_go(a->rt, create_child, &a->count);
			if (rc != 0) {
				bench_fail("weft_go", rc);
				atomic_fetch_add(&a->count, 1);
			}
		}
		made += b;
		while (atomic_load_explicit(&a->count, memory_order_acquire) < made)
			weft_yield();
	}
	a->t = bench_now() - t0;
	a->c = thread_cpu() - c0;
	bench_latch_done(&a->done);
}

/* ------------------------------------------------------------------ driver */
enum { W_SWAP = 1, W_RAW = 2, W_SELF = 4, W_PAIR = 8, W_CREATE = 16 };

static int parse_what(const char *s)
{
	int m = 0;
	char buf[256], *tok, *save;
	snprintf(buf, sizeof buf, "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "swapcontext"))
			m |= W_SWAP;
		else if (!strcmp(tok, "ctx_switch"))
			m |= W_RAW;
		else if (!strcmp(tok, "yield_self"))
			m |= W_SELF;
		else if (!strcmp(tok, "yield_pair"))
			m |= W_PAIR;
		else if (!strcmp(tok, "create"))
			m |= W_CREATE;
		else
			return -1;
	}
	return m;
}

/* One timed run of a fiber benchmark on rt; returns seconds (0 on error). */
static double fiber_once(weft_runtime_t *rt, int what, long ops, long batch, double *alt)
{
	int rc;
	if (what == W_SELF || what == W_PAIR) {
		struct yield_arg a;
		struct pair_arg pa[2];
		memset(&a, 0, sizeof a);
		a.ops = ops;
		bench_latch_init(&a.done, what == W_SELF ? 1 : 2);
		if (what == W_SELF) {
			rc = weft_go(rt, yield_self_fiber, &a);
		} else {
			pa[0].a = pa[1].a = &a;
			pa[0].me = 0;
			pa[1].me = 1;
			rc = weft_go(rt, yield_pair_fiber, &pa[0]);
			if (rc == 0 && (rc = weft_go(rt, yield_pair_fiber, &pa[1])) != 0)
				bench_latch_done(&a.done);
		}
		if (rc != 0) {
			bench_fail("weft_go", rc);
			return 0;
		}
		if (bench_latch_wait(&a.done, 120.0) != 0) {
			bench_fail("fiber benchmark (timed out after 120 s)", -ETIMEDOUT);
			exit(1);
		}
		bench_latch_destroy(&a.done);
		if (what == W_SELF) {
			last_cpu = a.c1[0] - a.c0[0];
			return a.t1[0] - a.t0[0];
		}
		/* one worker: both ran on its thread, one after the other */
		last_cpu = (a.c1[0] > a.c1[1] ? a.c1[0] : a.c1[1]) -
		           (a.c0[0] < a.c0[1] ? a.c0[0] : a.c0[1]);
		if (alt)
			*alt = (double)a.alternations / (double)(2 * (ops / 2));
		return (a.t1[0] > a.t1[1] ? a.t1[0] : a.t1[1]) -
		       (a.t0[0] < a.t0[1] ? a.t0[0] : a.t0[1]);
	} else {
		struct create_arg a;
		memset(&a, 0, sizeof a);
		a.ops = ops;
		a.batch = batch;
		a.rt = rt;
		bench_latch_init(&a.done, 1);
		if ((rc = weft_go(rt, create_fiber, &a)) != 0) {
			bench_fail("weft_go", rc);
			return 0;
		}
		if (bench_latch_wait(&a.done, 120.0) != 0) {
			bench_fail("create (timed out after 120 s)", -ETIMEDOUT);
			exit(1);
		}
		bench_latch_destroy(&a.done);
		if (atomic_load(&a.count) != ops)
			bench_fail("create count", -EIO);
		last_cpu = a.c;
		return a.t;
	}
}

static void report_ops(const char *bench, const char *rt, unsigned w, const char *param,
                       const double *t, const double *cpu, int n, long ops, const char *extra,
                       int ok)
{
	char result[192], cpus[48] = "";
	double med = bench_median(t, n);
	if (cpu)
		snprintf(cpus, sizeof cpus, ";cpu_ns_per_op=%.2f",
		         bench_median(cpu, n) / (double)ops * 1e9);
	snprintf(result, sizeof result, "ns_per_op=%.2f%s%s", med / (double)ops * 1e9, cpus,
	         extra ? extra : "");
	bench_report(bench, rt, w, param, t, n, result, ok && !bench_failed());
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	int what = W_SWAP | W_RAW | W_SELF | W_PAIR | W_CREATE;
	long ops = 2000000, create_ops = 50000;
	long batches[8] = { 32, 1000 };
	int nbatches = 2;
	double t[BENCH_MAX_REPS], cpu[BENCH_MAX_REPS];
	char param[160];

	bench_opts_init(&o, "1", 5);
	bench_io_parse(&io, "uring,epoll");
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage) ||
		    bench_io_arg(&io, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--what")) {
			if ((what = parse_what(bench_optval(argc, argv, &i, own_usage))) <= 0) {
				fprintf(stderr, "%s: bad --what\n", argv[0]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--ops")) {
			ops = bench_optlong(argc, argv, &i, own_usage, 2, 1L << 40);
		} else if (!strcmp(argv[i], "--create-ops")) {
			create_ops = bench_optlong(argc, argv, &i, own_usage, 1, 1L << 40);
		} else if (!strcmp(argv[i], "--batch")) {
			const char *v = bench_optval(argc, argv, &i, own_usage);
			char *end;
			nbatches = 0;
			while (*v && nbatches < 8) {
				long b = strtol(v, &end, 10);
				if (end == v || b < 1)
					bench_usage_exit(argv[0], own_usage);
				batches[nbatches++] = b;
				v = *end == ',' ? end + 1 : end;
				if (*end && *end != ',')
					bench_usage_exit(argv[0], own_usage);
			}
			if (!nbatches || *v)
				bench_usage_exit(argv[0], own_usage);
		} else {
			bench_usage_exit(argv[0], own_usage);
		}
	}
	ops &= ~1L; /* yield_pair splits them in two */
	bench_print_header(&o);

	if (what & W_SWAP) {
		for (int k = 0; k < o.warmup; k++)
			run_swapcontext(ops / 10 + 1);
		for (int k = 0; k < o.reps; k++) {
			t[k] = run_swapcontext(ops);
			cpu[k] = last_cpu;
		}
		snprintf(param, sizeof param, "ops=%ld;switches_per_op=2", ops);
		report_ops("swapcontext", "ucontext", 1, param, t, cpu, o.reps, ops, NULL, 1);
	}
#ifdef BENCH_HAVE_CTX_SWITCH
	if (what & W_RAW) {
		char extra[64];
		for (int k = 0; k < o.warmup; k++)
			run_ctx_switch(ops / 10 + 1);
		for (int k = 0; k < o.reps; k++) {
			t[k] = run_ctx_switch(ops);
			cpu[k] = last_cpu;
		}
		snprintf(param, sizeof param, "ops=%ld;switches_per_op=2", ops);
		snprintf(extra, sizeof extra, ";ns_per_switch=%.2f;cpu_ns_per_switch=%.2f",
		         bench_median(t, o.reps) / (double)ops / 2 * 1e9,
		         bench_median(cpu, o.reps) / (double)ops / 2 * 1e9);
		report_ops("ctx_switch", "weft-raw", 1, param, t, cpu, o.reps, ops, extra, 1);
	}
#else
	if ((what & W_RAW) && what != W_RAW)
		fprintf(stderr, "fiber: ctx_switch not built (sanitizer or ucontext build); skipped\n");
#endif

	/* The fiber benchmarks: (what, batch) cases. */
	struct fcase {
		int what;
		const char *name;
		long batch;
	} cases[3 + 8];
	int ncases = 0;
	if (what & W_SELF)
		cases[ncases++] = (struct fcase){ W_SELF, "yield_self", 0 };
	if (what & W_PAIR)
		cases[ncases++] = (struct fcase){ W_PAIR, "yield_pair", 0 };
	if (what & W_CREATE)
		for (int bi = 0; bi < nbatches; bi++)
			cases[ncases++] = (struct fcase){ W_CREATE, "create", batches[bi] };

	for (int wi = 0; wi < o.nworkers; wi++) {
		unsigned w = o.workers[wi];
		/* One runtime per backend, kept for all repetitions; the
		 * backends' repetitions interleave so that noise hits both. */
		weft_runtime_t *rts[BENCH_IO_MAX] = { 0 };
		for (int b = 0; b < io.n; b++)
			rts[b] = bench_io_create(w, io.io[b], 0);
		for (int c = 0; c < ncases; c++) {
			int wf = cases[c].what;
			long batch = cases[c].batch;
			double tt[BENCH_IO_MAX][BENCH_MAX_REPS], cc[BENCH_IO_MAX][BENCH_MAX_REPS];
			double alt[BENCH_IO_MAX][BENCH_MAX_REPS];
			long n = wf == W_CREATE ? create_ops : ops;
			for (int b = 0; b < io.n; b++)
				for (int k = 0; rts[b] && k < o.warmup; k++)
					fiber_once(rts[b], wf, wf == W_CREATE ? n : n / 10 + 2, batch, NULL);
			for (int k = 0; k < o.reps; k++)
				for (int bb = 0; bb < io.n; bb++) {
					int b = (bb + k) % io.n;
					alt[b][k] = 1.0;
					if (rts[b]) {
						tt[b][k] = fiber_once(rts[b], wf, n, batch, &alt[b][k]);
						cc[b][k] = last_cpu;
					}
				}
			for (int b = 0; b < io.n; b++) {
				char extra[64] = "";
				int ok = rts[b] != NULL;
				if (!rts[b])
					continue;
				if (wf == W_CREATE)
					snprintf(param, sizeof param, "ops=%ld;batch=%ld", n, batch);
				else
					snprintf(param, sizeof param, "ops=%ld", n);
				if (wf == W_PAIR) {
					double a = bench_median(alt[b], o.reps);
					snprintf(extra, sizeof extra, ";alt=%.3f", a);
					/* on one worker the two must alternate */
					if (w == 1 && a < 0.99)
						ok = 0;
				}
				report_ops(cases[c].name, bench_io_label(io.io[b]), w, param, tt[b],
				           w == 1 ? cc[b] : NULL, o.reps, n, extra, ok);
			}
		}
		for (int b = 0; b < io.n; b++)
			bench_weft_destroy(rts[b]);
	}
	return bench_failed() ? 1 : 0;
}

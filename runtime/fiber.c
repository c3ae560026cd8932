/*
 * fiber.c: stackful fibers on pooled, guard-paged stacks.
 *
 * Vocabulary
 *   fiber     a function running on its own stack, started by weft_go.  It
 *             runs as the continuation of a task: a worker "resumes" it (a
 *             function call that switches to the fiber's stack) and gets
 *             control back when the fiber suspends or returns.
 *   resumer   the stack (a worker's thread stack, or another fiber helping
 *             in weft_wait) whose context the running fiber returns to.
 *   after     what the resumer does right after the fiber switched away
 *             (requeue it, publish its suspension, free its stack): work
 *             that must not start while the fiber still runs on its stack.
 *
 * Invariants
 *   I1  a fiber runs on at most one thread at a time: it becomes runnable
 *       (a resume task on a deque, or the yield queue) only from an `after`
 *       action or from weft__fiber_wake, both of which follow its switch
 *       away (I3).
 *   I2  while a fiber runs, ret_sp is the context of the resumer on the
 *       same thread; the fiber only ever switches back there.  A fiber that
 *       migrates is resumed by another worker, whose resume saves a new
 *       ret_sp: the fiber suspends on the thread that last resumed it.
 *   I3  weft__fiber_park and weft__fiber_wake meet on `wake`: the suspended
 *       side (the resumer's after action, once the fiber is off its stack)
 *       and the waker each add 1; whoever sees 1 (the second) makes the
 *       fiber runnable.  So a wake-up that arrives before the fiber has
 *       finished switching away is neither lost nor early.
 *   I4  code in a fiber that resumes after a suspension re-reads the worker
 *       (weft__self_fresh): thread-local addresses computed before the
 *       switch may belong to another thread now.
 *
 * Stacks are mmap'd with a PROT_NONE guard page below them (an overflow
 * faults instead of corrupting memory) and the fiber record at the top.
 * Each worker keeps up to WEFT_FIBER_STACK_CACHE of them for reuse, so a
 * create-and-finish cycle costs no system call once warm; a full cache
 * spills half into the runtime's pool (WEFT_FIBER_STACK_POOL, under
 * stack_lock) and an empty one refills from it.  nstack_pool is written
 * under the lock and read without it only as a hint.
 *
 * Sanitizers are told about every switch: TSan through its fiber API
 * (otherwise it sees one thread's accesses on many stacks and reports
 * nonsense), ASan through start/finish_switch_fiber (otherwise it loses
 * track of which stack is live).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber.h"
#include "io.h"
#include "worker.h"

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef WEFT_FIBER_UCONTEXT
void weft__fiber_trampoline(void); /* fiber_switch.S */
#endif
void weft__fiber_main(struct weft__fiber *f) __attribute__((noreturn));

__attribute__((noinline)) struct weft__worker *weft__self_fresh(void)
{
	struct weft__worker *w;

	/* The asm keeps the compiler from reusing a thread-pointer-relative
	 * address computed before a switch, even if this were inlined. */
	__asm__ volatile("" ::: "memory");
	w = weft__tls_self;
	return w;
}

struct weft__fiber *weft__fiber_self(void)
{
	struct weft__worker *w = weft__self_fresh();

	return w ? w->fiber : NULL;
}

/* ---- stacks ---------------------------------------------------------- */

static size_t page_size(void)
{
	static size_t ps; /* racing first callers store the same value */
	size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);

	if (!v) {
		long p = sysconf(_SC_PAGESIZE);
		v = p > 0 ? (size_t)p : 4096;
		__atomic_store_n(&ps, v, __ATOMIC_RELAXED);
	}
	return v;
}

/* The mapping's size for a stack of `stack` usable bytes plus the record. */
static size_t map_size(size_t stack)
{
	size_t ps = page_size();
	size_t rec = (sizeof(struct weft__fiber) + 63) & ~(size_t)63;

	return ps + ((stack + rec + ps - 1) & ~(ps - 1));
}

static void *stack_map(size_t size)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
	               -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m, page_size(), PROT_NONE) != 0) {
		munmap(m, size);
		return NULL;
	}
	return m;
}

/* Move up to n stacks between w's cache and the runtime's pool. */
static void pool_refill(struct weft__worker *w, unsigned n)
{
	struct weft_runtime *rt = w->rt;

	unsigned np;

	pthread_mutex_lock(&rt->stack_lock);
	np = rt->nstack_pool;
	while (n-- && np && w->nstack_cache < WEFT_FIBER_STACK_CACHE)
		w->stack_cache[w->nstack_cache++] = rt->stack_pool[--np];
	atom_store_32(&rt->nstack_pool, np);
	pthread_mutex_unlock(&rt->stack_lock);
}

static void pool_spill(struct weft__worker *w, unsigned n, size_t size)
{
	struct weft_runtime *rt = w->rt;

	unsigned np;

	pthread_mutex_lock(&rt->stack_lock);
	np = rt->nstack_pool;
	while (n && w->nstack_cache && np < WEFT_FIBER_STACK_POOL) {
		rt->stack_pool[np++] = w->stack_cache[--w->nstack_cache];
		n--;
	}
	atom_store_32(&rt->nstack_pool, np);
	pthread_mutex_unlock(&rt->stack_lock);
	while (n-- && w->nstack_cache) /* the pool is full */
		munmap(w->stack_cache[--w->nstack_cache], size);
}

/* A stack of rt's size: from w's cache (refilled from the runtime's pool)
 * when w is given, else newly mapped. */
static void *stack_get(struct weft__worker *w, size_t size)
{
	if (w && !w->nstack_cache && atom_load_32(&w->rt->nstack_pool))
		pool_refill(w, WEFT_FIBER_STACK_CACHE / 2);
	if (w && w->nstack_cache) {
		void *m = w->stack_cache[--w->nstack_cache];
#ifdef WEFT_ASAN
		ASAN_UNPOISON_MEMORY_REGION((char *)m + page_size(), size - page_size());
#endif
		return m;
	}
	return stack_map(size);
}

static void stack_put(struct weft__worker *w, void *m, size_t size)
{
	if (w->nstack_cache == WEFT_FIBER_STACK_CACHE)
		pool_spill(w, WEFT_FIBER_STACK_CACHE / 2, size);
	w->stack_cache[w->nstack_cache++] = m;
}

void weft__fiber_worker_fini(struct weft__worker *w)
{
	size_t size = map_size(w->rt->cfg.fiber_stack_size);

	while (w->nstack_cache)
		munmap(w->stack_cache[--w->nstack_cache], size);
}

int weft__fiber_runtime_init(struct weft_runtime *rt)
{
	rt->stack_pool = malloc(WEFT_FIBER_STACK_POOL * sizeof(*rt->stack_pool));
	if (!rt->stack_pool)
		return -ENOMEM;
	rt->nstack_pool = 0;
	pthread_mutex_init(&rt->stack_lock, NULL);
	return 0;
}

void weft__fiber_runtime_fini(struct weft_runtime *rt)
{
	size_t size = map_size(rt->cfg.fiber_stack_size);

	if (!rt->stack_pool)
		return;
	while (rt->nstack_pool)
		munmap(rt->stack_pool[--rt->nstack_pool], size);
	free(rt->stack_pool);
	rt->stack_pool = NULL;
	pthread_mutex_destroy(&rt->stack_lock);
}

/* ---- creation and the first frame ------------------------------------ */

static struct weft__fiber *fiber_new(struct weft__worker *w, struct weft_runtime *rt, weft_task_fn fn, void *arg)
{
	size_t size = map_size(rt->cfg.fiber_stack_size);
	char *m = stack_get(w, size);
	struct weft__fiber *f;
	uintptr_t top, lo;
	size_t reserve;

	if (!m)
		return NULL;
	f = (struct weft__fiber *)(void *)(m + size - ((sizeof(*f) + 63) & ~(size_t)63));
	/* Field by field: a memset or a compound literal of the record
	 * compiles to `rep stos`, which took 75-100 of the 190 ns of a create
	 * and completion on the AMD VM this was measured on (bench/fiber
	 * --what create, batch 32: 190 -> 93 ns). */
	f->sp = NULL;
	f->ret_sp = NULL;
	f->fn = fn;
	f->arg = arg;
	f->rt = rt;
	f->wake = 0;
	f->pad_ = 0;
	f->next = NULL;
	f->map = m;
	f->map_size = size;
	f->san = NULL;
	f->san_ret = NULL;
	f->asan_fake = NULL;
	f->asan_ret_bottom = NULL;
	f->asan_ret_size = 0;
	lo = (uintptr_t)m + page_size();
	reserve = (size_t)((uintptr_t)f - lo) / WEFT_STACK_RESERVE_DIV;
	if (reserve < WEFT_STACK_RESERVE_MIN)
		reserve = WEFT_STACK_RESERVE_MIN;
	f->stack_limit = lo + reserve;

	top = ((uintptr_t)f - 64) & ~(uintptr_t)15;
#if defined(WEFT_FIBER_UCONTEXT)
	f->sp = weft__ctx_make(lo, top, f);
	if (!f->sp) {
		stack_put(w, m, size);
		return NULL;
	}
#elif defined(__x86_64__)
	{
		/* Popped by weft__ctx_switch: control words, r15, r14, r13,
		 * r12 (the fiber), rbx, rbp, then the jump to the trampoline with
		 * rsp = top, 16-byte aligned as a call site requires. */
		uint64_t *frame = (uint64_t *)top - 8;
		memset(frame, 0, 8 * sizeof(*frame));
		frame[0] = 0x1F80u | ((uint64_t)0x037Fu << 32);
		frame[4] = (uint64_t)(uintptr_t)f;
		frame[7] = (uint64_t)(uintptr_t)weft__fiber_trampoline;
		f->sp = frame;
	}
#elif defined(__aarch64__)
	{
		/* x19 (the fiber) at 0, x29 = 0 at 80, x30 (trampoline) at 88. */
		uint64_t *frame = (uint64_t *)(top - 160);
		memset(frame, 0, 160);
		frame[0] = (uint64_t)(uintptr_t)f;
		frame[11] = (uint64_t)(uintptr_t)weft__fiber_trampoline;
		f->sp = frame;
	}
#else
#error "weft fibers: no assembly switch for this architecture: configure --with-fiber-switch=ucontext"
#endif
#ifdef WEFT_TSAN
	f->san = __tsan_create_fiber(0);
#endif
	return f;
}

static void fiber_free(struct weft__worker *w, struct weft__fiber *f)
{
#ifdef WEFT_TSAN
	__tsan_destroy_fiber(f->san);
#endif
	stack_put(w, f->map, f->map_size);
}

/* ---- switching --------------------------------------------------------- */

void weft__fiber_resume(struct weft__worker *w, struct weft__fiber *f)
{
	struct weft__fiber *prev = w->fiber;
	uintptr_t prev_limit = w->stack_limit;
	uint32_t prev_depth = w->tdq.depth_; /* tdq.c, Fibers */
	void (*after)(struct weft__worker *, void *);
#ifdef WEFT_ASAN
	void *fake = NULL;
#endif

	w->fiber = f;
	w->stack_limit = f->stack_limit;
	w->tdq.depth_ = 0;
#ifdef WEFT_TSAN
	f->san_ret = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(f->san, 0);
#endif
#ifdef WEFT_ASAN
	__sanitizer_start_switch_fiber(&fake, (char *)f->map + page_size(),
	                               (size_t)((char *)f - (char *)f->map) - page_size());
#endif
	weft__ctx_switch(&f->ret_sp, f->sp);
	/* Back on the same thread (I2): f suspended or returned. */
#ifdef WEFT_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	w->fiber = prev;
	w->stack_limit = prev_limit;
	w->tdq.depth_ = prev_depth;
	after = w->after;
	if (after) {
		w->after = NULL;
		after(w, w->after_arg);
	}
}

/* Called on the fiber once it runs again after a switch away. */
static inline void switched_in(struct weft__fiber *f)
{
#ifdef WEFT_ASAN
	__sanitizer_finish_switch_fiber(f->asan_fake, &f->asan_ret_bottom, &f->asan_ret_size);
#else
	(void)f;
#endif
}

/* Leave f for its resumer, which runs after(w, arg) once f is off its
 * stack.  Returns when f is resumed, maybe on another worker.  On f. */
static void switch_out(struct weft__worker *w, struct weft__fiber *f, void (*after)(struct weft__worker *, void *),
                       void *arg, int dying)
{
	w->after = after;
	w->after_arg = arg;
#ifdef WEFT_TSAN
	__tsan_switch_to_fiber(f->san_ret, 0);
#endif
#ifdef WEFT_ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &f->asan_fake, f->asan_ret_bottom, f->asan_ret_size);
#else
	(void)dying;
#endif
	weft__ctx_switch(&f->sp, f->ret_sp);
	switched_in(f);
}

static void after_exit(struct weft__worker *w, void *arg)
{
	struct weft__fiber *f = arg;
	struct weft_runtime *rt = f->rt;

	fiber_free(w, f);
	weft__outstanding_put(rt, 1); /* rt may be gone after this */
}

void weft__fiber_main(struct weft__fiber *f)
{
	struct weft__worker *w;

	switched_in(f);
	f->fn(f->arg);
	w = weft__self_fresh();
	switch_out(w, f, after_exit, f, 1);
	__builtin_unreachable();
}

/* ---- making fibers runnable ---------------------------------------------- */

void weft__fiber_resume_task(void *arg)
{
	weft__fiber_resume(weft__self_fresh(), arg);
}

/* Queue f to run: on w's deque where thieves can take it.  w is the
 * calling worker, or NULL off the workers. */
static void make_ready(struct weft__worker *w, struct weft__fiber *f)
{
	struct weft__task t = { weft__fiber_resume_task, f, NULL };

	if (w && w->rt == f->rt) {
		if (weft__deque_push(&w->dq, &t) == 0) {
			WEFT_STAT_INC(w, resumes);
			if (weft__io_notify_now(w->io))
				weft__notify(w->rt, &w->rt->idle);
			return;
		}
		/* No memory to grow the deque: run it here and now, nested
		 * on this stack (I2 holds: resume saves a fresh ret_sp). */
		weft__fiber_resume(w, f);
		return;
	}
	/* Another runtime's worker or an outside thread: through the
	 * injector.  rt is alive: f counts in its outstanding. */
	while (weft_submit(f->rt, weft__fiber_resume_task, f, NULL) == -ENOMEM)
		sched_yield();
}

static void after_park(struct weft__worker *w, void *arg)
{
	struct weft__fiber *f = arg;

	if (atom_faa_32(&f->wake, 1) == 1) /* I3: the waker came first */
		make_ready(w, f);
}

void weft__fiber_park(struct weft__fiber *f)
{
	switch_out(weft__self_fresh(), f, after_park, f, 0);
}

void weft__fiber_wake(struct weft__fiber *f)
{
	if (atom_faa_32(&f->wake, 1) == 1) /* I3: the fiber is off its stack */
		make_ready(weft__self_fresh(), f);
}

static void after_yield(struct weft__worker *w, void *arg)
{
	struct weft__fiber *f = arg;

	f->next = NULL;
	if (w->yield_tail)
		w->yield_tail->next = f;
	else
		w->yield_head = f;
	w->yield_tail = f;
}

struct weft__fiber *weft__fiber_yielded(struct weft__worker *w)
{
	struct weft__fiber *f = w->yield_head;

	if (f) {
		w->yield_head = f->next;
		if (!w->yield_head)
			w->yield_tail = NULL;
	}
	return f;
}

/* ---- public ------------------------------------------------------------ */

/* An outside weft_go: the first run counts the fiber in outstanding, while
 * its submission still holds a count (future.c, I2). */
static void start_outside(void *arg)
{
	struct weft__fiber *f = arg;

	struct weft__worker *w = weft__self_fresh();

	atom_faa_64(&f->rt->outstanding, 1);
	WEFT_STAT_INC(w, fibers);
	weft__fiber_resume(w, f);
}

int weft_go(weft_runtime_t *rt, weft_task_fn fn, void *arg)
{
	struct weft__worker *w = weft__self_fresh();
	struct weft__fiber *f;
	int rc;

	if (!rt || !fn)
		return -EINVAL;
	if (w && w->rt == rt) {
		struct weft__task t;
		f = fiber_new(w, rt, fn, arg);
		if (!f)
			return -ENOMEM;
		/* The running task keeps outstanding above 0 (future.c I2). */
		atom_faa_64(&rt->outstanding, 1);
		t.fn = weft__fiber_resume_task;
		t.arg = f;
		t.group = NULL;
		if (weft__deque_push(&w->dq, &t) != 0) {
			fiber_free(w, f);
			weft__outstanding_put(rt, 1);
			return -ENOMEM;
		}
		WEFT_STAT_INC(w, fibers);
		WEFT_STAT_INC(w, resumes);
		weft__notify(rt, &rt->idle);
		return 0;
	}
	f = fiber_new(NULL, rt, fn, arg);
	if (!f)
		return -ENOMEM;
	rc = weft_submit(rt, start_outside, f, NULL);
	if (rc) {
#ifdef WEFT_TSAN
		__tsan_destroy_fiber(f->san);
#endif
		munmap(f->map, f->map_size);
	}
	return rc;
}

int weft_in_fiber(void)
{
	return weft__fiber_self() != NULL;
}

static bool second_call(void *calls)
{
	return (*(int *)calls)++ > 0;
}

void weft_yield(void)
{
	struct weft__worker *w = weft__self_fresh();
	struct weft__fiber *f = w ? w->fiber : NULL;

	if (!w) {
		sched_yield();
		return;
	}
	if (!f || weft__tdq_pinned(&w->tdq)) {
		/* A plain task, or a task body on this stack (tdq.c, Fibers):
		 * no switching, so run one other task here, if there is one. */
		int calls = 0;
		weft__help_until(w, second_call, &calls, false);
		return;
	}
	switch_out(w, f, after_yield, f, 0);
}

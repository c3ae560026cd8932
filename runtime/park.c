/*
 * park.c: idle workers sleep on a futex; producers wake them.
 *
 * Vocabulary
 *   searching  a worker that has no work and is stealing.  At most about
 *              half of the non-parked workers search at once (Go's rule,
 *              2 * nsearching < nworkers - nparked), so a burst of idleness
 *              does not turn into every core hammering every deque.
 *   parked     a worker asleep, listed on the idle stack: in its event state
 *              (io.c: the waker writes its eventfd) while it has I/O or
 *              timers pending, so that their completions wake it too, else
 *              on its park_word futex, which wakes faster.
 *   producer   any thread that makes work visible: a spawn (deque push),
 *              a submit (injector push).
 *
 * The protocol: two mirrored recipes with a StoreLoad barrier between them.
 *
 *   Producer                            Parking worker
 *   P1 publish the work (push)          W1 nsearching--; register on the idle
 *                                          stack, nparked++ (under lock)
 *   P2 StoreLoad barrier                W2 StoreLoad barrier
 *   P3 if nparked > 0 and nobody        W3 re-check every queue; if any work
 *      is searching: wake one parked       is visible, unregister and go back
 *      worker, counted as searching        to searching instead of sleeping
 *
 * Whatever the interleaving, either P3 sees the registration of W1 or W3
 * sees the work of P1, so no work is left with every worker asleep.  If P3
 * sees a searcher, that searcher has not yet passed W1, so its W3 sees the
 * work.  A searcher that finds work stops searching; if it was the last one,
 * workers are parked, and more work shows where it found its task (the
 * victim's deque, its own) or in the injector, it wakes one more (the
 * cascade): that work came in a burst whose producer skipped the wake-up on
 * seeing it search.  It reads the injector after leaving the search count,
 * with a full fence between, the mirror of an outside producer's push,
 * fence, read of nsearching: either that producer wakes a worker or the
 * searcher sees its work.  Work it does not see from a producer that skipped
 * the wake-up is on a running worker's own deque, not stranded: that worker
 * runs it, and its next spawn wakes a worker if nobody searches.  Without
 * the condition every lone task (an outside submit, one request) woke a
 * second worker, which searched and parked again, and the wake-up's system
 * call came before the first task ran: an outside submit to 2 parked
 * workers started after 44 us at the median, against 27 with 1 worker
 * (bench/idle).  A woken worker is counted as searching by its waker, so
 * one item of work wakes one worker, not all of them.
 *
 * The barrier is asymmetric.  P2 would cost a full fence on every spawn,
 * more than the rest of the spawn together.  Instead W2 is a
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) call, which makes every
 * running thread of the process execute a full barrier before it returns:
 * either that barrier falls after a producer's P1 (so W3 sees the work) or
 * before its P3 (so P3 sees W1's registration).  P2 is then only a compiler
 * barrier.  Where membarrier is unavailable (old kernel, seccomp),
 * weft__park_symmetric is set and P2 is a real fence.  Parking is the slow
 * path (a worker already searched for tens of microseconds), so its cost is
 * paid where it does not matter.
 *
 * W4, where the parked worker sleeps.  While it has I/O or timers pending
 * it sleeps in its event state, so that their completions wake it, and the
 * waker must write its eventfd; otherwise on the park_word futex, whose
 * wake-up is faster (about 40 against 60 us from an outside submit on this
 * machine).  The worker stores park_in_io = 1 and then re-reads park_word
 * before it waits there; the waker stores park_word = 0 and then reads
 * park_in_io; both with a full barrier in between (Dekker).  So either the
 * worker sees 0 and does not wait, or the waker sees 1 and writes the
 * eventfd.  A worker that reads park_in_io = 0 waits on the futex for
 * park_word == 1, which a store of 0 before the wait makes return at once.
 *
 * W5, the last worker to park skips the membarrier.  The membarrier is
 * there for producers whose P2 is only a compiler barrier: workers running
 * tasks.  Outside threads fence themselves (weft_submit), and so does a
 * parked worker whose own event state made work (weft__io_run's notify).
 * When W1 finds every worker on the idle stack, every other worker leaves
 * it (and becomes a producer that does not fence) only through the idle
 * lock: by unpark_self, or by a waker that pops it under the lock and
 * stores park_word = 0, which the woken worker reads before it runs.
 * Either way its P3 comes after our W1 in happens-before and sees our
 * registration, so a plain fence for our own W1 -> W3 order suffices.  At
 * a moderate request rate the parking worker is usually the last, and the
 * membarrier (a system call and an interrupt to every other running CPU of
 * the process) was one of the 6 system calls per request.  One exception
 * remains: a parked worker whose deque cannot grow (out of memory) runs a
 * continuation inline inside its park's weft__io_run, and what that code
 * spawns may then miss waking us.  Nothing is stranded by it: the work is
 * on that worker's own deque, and it runs its deque before it sleeps.
 *
 * Rejected designs: a futex per runtime that every producer touches (a
 * shared write on every spawn); waking on every push (thundering herd);
 * timed sleeps that poll for work (idle CPU, and latency up to the period).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "park.h"
#include "worker.h"

WEFT_HIDDEN bool weft__park_symmetric = true;
static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;

static void membarrier_register(void)
{
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		weft__park_symmetric = false;
}

static void store_load_barrier_asym(void)
{
	if (weft__park_symmetric || syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		atom_fence_sc();
}

void weft__futex_wait(uint32_t *addr, uint32_t val, long timeout_ns)
{
	struct timespec ts = { timeout_ns / 1000000000L, timeout_ns % 1000000000L };

	(void)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, timeout_ns > 0 ? &ts : NULL, NULL, 0);
}

void weft__futex_wake(uint32_t *addr, int n)
{
	(void)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int weft__idle_init(struct weft__idle *idle, unsigned nworkers)
{
	pthread_once(&membarrier_once, membarrier_register);
	idle->nsearching = 0;
	idle->nparked = 0;
	idle->nstack = 0;
	idle->stack = calloc(nworkers, sizeof(*idle->stack));
	if (!idle->stack)
		return -ENOMEM;
	pthread_mutex_init(&idle->lock, NULL);
	return 0;
}

void weft__idle_fini(struct weft__idle *idle)
{
	pthread_mutex_destroy(&idle->lock);
	free(idle->stack);
	idle->stack = NULL;
}

/* Pop one parked worker and wake it.  Caller has already counted it in
 * nsearching.  Returns false if none was parked. */
static bool wake_one(struct weft_runtime *rt)
{
	struct weft__idle *idle = &rt->idle;
	struct weft__worker *w;

	pthread_mutex_lock(&idle->lock);
	if (idle->nstack == 0) {
		pthread_mutex_unlock(&idle->lock);
		return false;
	}
	w = &rt->workers[idle->stack[--idle->nstack]];
	w->in_stack = false;
	atom_store_32(&idle->nparked, idle->nstack);
	atom_fence_rel(); /* W5: the woken worker's acquire of park_word */
	atom_store_32(&w->park_word, 0);
	pthread_mutex_unlock(&idle->lock);
	atom_fence_sc(); /* W4: park_word, then park_in_io */
	if (atom_load_32(&w->park_in_io))
		weft__io_wake(w); /* it sleeps in its event state */
	else
		weft__futex_wake(&w->park_word, 1);
	return true;
}

void weft__wake_slow(struct weft_runtime *rt)
{
	struct weft__idle *idle = &rt->idle;

	/* P3: only when nobody searches, and only one producer gets to wake
	 * (the CAS): the woken worker is the new searcher. */
	if (atom_load_32(&idle->nsearching) != 0 || !atom_cas_32(&idle->nsearching, 0, 1))
		return;
	if (!wake_one(rt))
		atom_faa_32(&idle->nsearching, (uint32_t)-1);
}

bool weft__search_begin(struct weft_runtime *rt)
{
	struct weft__idle *idle = &rt->idle;
	uint32_t s = atom_load_32(&idle->nsearching);
	uint32_t active = rt->nworkers - atom_load_32(&idle->nparked);

	if (2 * s >= active && s != 0)
		return false;
	atom_faa_32(&idle->nsearching, 1);
	return true;
}

void weft__search_end(struct weft_runtime *rt, bool found, bool more)
{
	struct weft__idle *idle = &rt->idle;
	uint32_t prev = atom_faa_32(&idle->nsearching, (uint32_t)-1);

	/* The cascade: the last searcher to find work wakes another if more
	 * of it shows.  The fence orders our decrement before the read of
	 * the injector (Dekker with weft_submit's push, fence, notify). */
	if (found && prev == 1 && atom_load_32(&idle->nparked) != 0) {
		atom_fence_sc();
		if (more || weft__injector_nonempty(&rt->inj))
			weft__wake_slow(rt);
	}
}

/* Take w off the idle stack.  Returns false if a waker already did (and
 * counted w as searching).  Owner worker. */
static bool unpark_self(struct weft__worker *w)
{
	struct weft__idle *idle = &w->rt->idle;
	bool removed = false;

	pthread_mutex_lock(&idle->lock);
	if (w->in_stack) {
		unsigned i;
		for (i = 0; i < idle->nstack; i++)
			if (idle->stack[i] == w->index)
				break;
		idle->stack[i] = idle->stack[--idle->nstack];
		w->in_stack = false;
		atom_store_32(&idle->nparked, idle->nstack);
		atom_store_32(&w->park_word, 0);
		removed = true;
	}
	pthread_mutex_unlock(&idle->lock);
	return removed;
}

bool weft__park(struct weft__worker *w)
{
	struct weft_runtime *rt = w->rt;
	struct weft__idle *idle = &rt->idle;
	bool last;

	/* W1: register.  park_word goes to 1 before anyone can see us on the
	 * stack, so a waker's store of 0 is never overwritten. */
	atom_store_32(&w->park_word, 1);
	pthread_mutex_lock(&idle->lock);
	idle->stack[idle->nstack++] = w->index;
	w->in_stack = true;
	atom_store_32(&idle->nparked, idle->nstack);
	last = idle->nstack == rt->nworkers;
	pthread_mutex_unlock(&idle->lock);

	/* W2, pairs with P2 in weft__notify; the last worker to park needs
	 * only its own fence (W5). */
	if (last)
		atom_fence_sc();
	else
		store_load_barrier_asym();

	/* W3: re-check.  If a waker already took us off the stack it counted
	 * us as a searcher, and its store of 0 to park_word follows. */
	if ((weft__work_visible(rt) || atom_load_32(&rt->stop)) && unpark_self(w)) {
		w->last_sleep_ns = 0;
		return false;
	}
	WEFT_STAT_INC(w, parks);
	WEFT_TRACE(w, WEFT_EV_PARK, 0, 0);
	{
		uint64_t t0 = weft__now_ns();
		bool made_work = false;
		while (atom_load_acq_32(&w->park_word) == 1) { /* W5 */
			/* A running peer with I/O in its shared event state
			 * (io.h): sleep at most until it could go stale, then
			 * reap it if it did. */
			struct weft__worker *peer = weft__io_watch_peer(w);
			int made = 0;
			if (!weft__io_active(w)) {
				/* Nothing can complete here: the futex, whose
				 * wake-up is the cheaper one. */
				atom_fence_sc(); /* io.c, pulls: after npending went to 0 */
				weft__io_unpull(w, w->io);
				weft__futex_wait(&w->park_word, 1, peer ? WEFT_IO_STALE_NS : 0);
			} else {
				(void)atom_fas_32(&w->park_in_io, 1); /* W4 */
				if (atom_load_32(&w->park_word) == 1)
					made = weft__io_run(w, peer ? WEFT_IO_STALE_NS : -1);
				atom_store_32(&w->park_in_io, 0);
			}
			if (peer && made <= 0 && atom_load_acq_32(&w->park_word) == 1)
				made = weft__io_help_peer(w, peer);
			if (made > 0 && unpark_self(w)) {
				/* Our own I/O, or the peer's, made work: go
				 * and run it. */
				made_work = true;
				break;
			}
		}
		w->woke_ns = weft__now_ns();
		w->last_sleep_ns = (int64_t)(w->woke_ns - t0);
		WEFT_STAT_ADD(w, parked_ns, w->last_sleep_ns);
		WEFT_TRACE(w, WEFT_EV_UNPARK, 0, 0);
		if (made_work)
			return false;
	}
	WEFT_STAT_INC(w, wakeups);
	return true;
}

void weft__wake_all(struct weft_runtime *rt)
{
	for (;;) {
		atom_faa_32(&rt->idle.nsearching, 1);
		if (!wake_one(rt)) {
			atom_faa_32(&rt->idle.nsearching, (uint32_t)-1);
			return;
		}
	}
}

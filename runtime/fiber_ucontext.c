/*
 * fiber_ucontext.c: the portable fiber switch, on ucontext (makecontext,
 * swapcontext), for the architectures fiber_switch.S does not cover, or
 * when ./configure --with-fiber-switch=ucontext asks for it.
 *
 * Same contract as the assembly (fiber.h): weft__ctx_switch(save, to)
 * stores in *save what a later switch resumes, then resumes `to`.  What it
 * stores is a ucontext_t in weft__ctx_switch's own frame: that frame stays
 * alive, on the suspended stack, until the context is resumed, exactly as
 * the assembly keeps the registers on the suspended stack.  A new fiber's
 * first context lies on its own stack, above the part makecontext runs on
 * (weft__ctx_make), so it is never overwritten before it is loaded.
 *
 * Cost: swapcontext saves and restores the signal mask with a system call
 * on every switch (the assembly switch saves no mask: fibers share their
 * worker's, which blocks every signal), and the whole floating-point
 * environment.  bench/fiber reports what that makes here.  The sanitizers'
 * fiber hooks are not used with it (configure refuses the combination).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <ucontext.h>

#include "fiber.h"

void weft__fiber_main(struct weft__fiber *f) __attribute__((noreturn));

void weft__ctx_switch(void **save, void *to)
{
	ucontext_t self;

	/* Outlives this call as long as it matters: until resumed (above). */
	/* cppcheck-suppress autoVariables */
	*save = &self;
	/* Fails only for a bad context; ours are made by getcontext and
	 * makecontext, or saved here. */
	(void)swapcontext(&self, (ucontext_t *)to);
}

/* makecontext passes int arguments: the fiber pointer comes in halves. */
static void entry(unsigned lo, unsigned hi)
{
	uintptr_t p = (uintptr_t)lo;

	if (sizeof(uintptr_t) > 4)
		p |= (uintptr_t)hi << 16 << 16;
	weft__fiber_main((struct weft__fiber *)p);
}

/* getcontext "returns twice" for setcontext's sake, so locals live across
 * it may be clobbered; none is here.  (This context is only ever started
 * through makecontext, never resumed into getcontext.) */
static __attribute__((noinline)) int get_ctx(ucontext_t *uc)
{
	return getcontext(uc);
}

void *weft__ctx_make(uintptr_t lo, uintptr_t top, struct weft__fiber *f)
{
	ucontext_t *uc = (ucontext_t *)((top - sizeof(ucontext_t)) & ~(uintptr_t)63);
	uintptr_t p = (uintptr_t)f;

	if (get_ctx(uc) != 0)
		return NULL;
	uc->uc_stack.ss_sp = (void *)lo;
	uc->uc_stack.ss_size = ((uintptr_t)uc - lo) & ~(uintptr_t)15;
	uc->uc_link = NULL;
	makecontext(uc, (void (*)(void))entry, 2, (unsigned)p, (unsigned)(p >> 16 >> 16));
	return uc;
}

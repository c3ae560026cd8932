/*
 * tsan_criterion.c: lets Criterion run under ThreadSanitizer (linked into
 * every test program; empty in other builds).
 *
 * Criterion's sandbox library (BoxFort) puts its shared "inheritable arena"
 * at a random MAP_FIXED address in [0x2000'0000'0000, 0x7f00'0000'0000).
 * On x86-64 that range is TSan's shadow/meta space, so TSan's mmap
 * interceptor refuses the mapping and every test program aborts at start
 * with "criterion: Could not initialize inheritable arena: Resource
 * temporarily unavailable" (Snaipe/Criterion issue #274, still open).
 *
 * The executable's own mmap/mmap64/mincore come first in symbol lookup, so
 * these wrappers see BoxFort's calls (from libcriterion.so):
 *   - mincore: BoxFort probes a candidate address and only uses it when
 *     its pages are unmapped; TSan has reserved (PROT_NONE) nearly all of
 *     the range, so candidates there are reported free;
 *   - mmap/mmap64: a MAP_FIXED shared-file mapping below TSan's high
 *     application range is moved into [0x7e80'0000'0000, 0x7f00'0000'0000),
 *     which is application memory for TSan and still inside BoxFort's
 *     accepted window, with MAP_FIXED_NOREPLACE so that nothing is ever
 *     clobbered.  The test worker process then maps the arena at that same
 *     address, which passes through unchanged.
 * Every call goes on to the next definition (TSan's interceptor for mmap),
 * so TSan still tracks all mappings.  Only the x86-64 layout of TSan is
 * handled; other builds compile this file to nothing.
 *
 * It also sets TSan defaults for the tests (TSAN_OPTIONS overrides them):
 * halt on the first report, so a race fails the test that hit it instead
 * of only printing a warning while the test passes.
 */
#if defined(__SANITIZE_THREAD__) && defined(__x86_64__) && defined(__linux__)

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#define BXF_LO 0x200000000000ULL  /* BoxFort's mmap_base */
#define TSAN_HI_APP 0x7e8000000000ULL /* TSan's high application range */
#define BXF_HI 0x7f0000000000ULL  /* BoxFort's mmap_max */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

/* Not instrumented: libraries call mmap before TSan has set up the thread. */
__attribute__((no_sanitize_thread)) static void *
relocate_mmap(const char *name, mmap_fn *next, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!*next)
		*next = (mmap_fn)dlsym(RTLD_NEXT, name);
	uintptr_t a = (uintptr_t)addr;
	uintptr_t span = (BXF_HI - TSAN_HI_APP) / 2;
	if (fd >= 0 && (flags & MAP_FIXED) && (flags & MAP_SHARED) && a >= BXF_LO && a < TSAN_HI_APP &&
	    len < span) {
		a = TSAN_HI_APP + (((a - BXF_LO) % span) & ~(uintptr_t)0xffff);
		addr = (void *)a;
		flags = (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE;
	}
	return (*next)(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);

__attribute__((no_sanitize_thread)) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static mmap_fn next;
	return relocate_mmap("mmap", &next, addr, len, prot, flags, fd, off);
}

/* BoxFort (inside libcriterion.so) calls mmap64. */
__attribute__((no_sanitize_thread)) void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static mmap_fn next;
	return relocate_mmap("mmap64", &next, addr, len, prot, flags, fd, off);
}

/* BoxFort's probe (see the top of the file): candidates in the range are
 * "free"; the mapping itself is then moved by the wrappers above. */
int mincore(void *addr, size_t len, unsigned char *vec);

__attribute__((no_sanitize_thread)) int mincore(void *addr, size_t len, unsigned char *vec)
{
	static int (*next)(void *, size_t, unsigned char *);
	uintptr_t a = (uintptr_t)addr;
	if (a >= BXF_LO && a < TSAN_HI_APP && len <= 4096) {
		errno = ENOMEM;
		return -1;
	}
	if (!next)
		next = (int (*)(void *, size_t, unsigned char *))dlsym(RTLD_NEXT, "mincore");
	return next(addr, len, vec);
}

const char *__tsan_default_options(void);
__attribute__((no_sanitize_thread)) const char *__tsan_default_options(void)
{
	return "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1";
}

#else
typedef int weft_tsan_criterion_unused_t; /* ISO C: no empty translation unit */
#endif

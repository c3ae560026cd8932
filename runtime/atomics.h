/*
 * atomics.h: the one place where weft touches shared memory atomically.
 *
 * Every atomic access in the runtime goes through these wrappers, so that a
 * sanitizer or model-checking build can swap the implementation here and
 * nowhere else.  The normal build maps them onto Concurrency Kit's ck_pr
 * primitives.  The ThreadSanitizer build (WEFT_TSAN) maps them onto the
 * compiler's __atomic builtins, because TSan understands those but not
 * ck_pr's volatile accesses and inline assembly; there every access is
 * seq_cst and the standalone fences become no-ops (TSan does not model
 * fences), which is strictly stronger than what the fences provide.
 *
 * Orderings named here follow C11: relaxed, acquire (load), release (store).
 * atom_store_fence_64() is "store, then a full StoreLoad fence": the one
 * fence that Chase-Lev's take and the park protocol need.
 */
#ifndef WEFT_ATOMICS_H
#define WEFT_ATOMICS_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>

#define ATOM_SC __ATOMIC_SEQ_CST

static inline int64_t atom_load_64(const int64_t *p) { return __atomic_load_n(p, ATOM_SC); }
static inline int64_t atom_load_acq_64(const int64_t *p) { return __atomic_load_n(p, ATOM_SC); }
static inline void atom_store_64(int64_t *p, int64_t v) { __atomic_store_n(p, v, ATOM_SC); }
static inline void atom_store_rel_64(int64_t *p, int64_t v) { __atomic_store_n(p, v, ATOM_SC); }
static inline void atom_store_fence_64(int64_t *p, int64_t v) { __atomic_store_n(p, v, ATOM_SC); }
static inline bool atom_cas_64(int64_t *p, int64_t old, int64_t new_)
{
	return __atomic_compare_exchange_n(p, &old, new_, false, ATOM_SC, ATOM_SC);
}
static inline int64_t atom_faa_64(int64_t *p, int64_t d) { return __atomic_fetch_add(p, d, ATOM_SC); }

static inline uint32_t atom_load_32(const uint32_t *p) { return __atomic_load_n(p, ATOM_SC); }
static inline uint32_t atom_load_acq_32(const uint32_t *p) { return __atomic_load_n(p, ATOM_SC); }
static inline void atom_store_32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, ATOM_SC); }
static inline uint32_t atom_faa_32(uint32_t *p, uint32_t d) { return __atomic_fetch_add(p, d, ATOM_SC); }
static inline uint32_t atom_fas_32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, ATOM_SC); }
static inline bool atom_cas_32(uint32_t *p, uint32_t old, uint32_t new_)
{
	return __atomic_compare_exchange_n(p, &old, new_, false, ATOM_SC, ATOM_SC);
}

static inline void *atom_load_ptr(void *const *p) { return __atomic_load_n(p, ATOM_SC); }
static inline void *atom_load_acq_ptr(void *const *p) { return __atomic_load_n(p, ATOM_SC); }
static inline void atom_store_ptr(void **p, void *v) { __atomic_store_n(p, v, ATOM_SC); }
static inline void atom_store_rel_ptr(void **p, void *v) { __atomic_store_n(p, v, ATOM_SC); }
static inline void *atom_fas_ptr(void **p, void *v) { return __atomic_exchange_n(p, v, ATOM_SC); }
static inline bool atom_cas_ptr(void **p, void *old, void *new_)
{
	return __atomic_compare_exchange_n(p, &old, new_, false, ATOM_SC, ATOM_SC);
}

static inline void atom_fence_sc(void) {}
static inline void atom_fence_acq(void) {}
static inline void atom_fence_rel(void) {}

/* Happens-before edges that travel through code TSan cannot see (CK's ring
 * in its volatile form): release on the producer side, acquire on the
 * consumer side, on the same address. */
#define WEFT_HB_RELEASE(addr) __tsan_release((void *)(addr))
#define WEFT_HB_ACQUIRE(addr) __tsan_acquire((void *)(addr))

#else /* !WEFT_TSAN: Concurrency Kit */

static inline int64_t atom_load_64(const int64_t *p) { return (int64_t)ck_pr_load_64((const uint64_t *)p); }
static inline int64_t atom_load_acq_64(const int64_t *p)
{
	int64_t v = (int64_t)ck_pr_load_64((const uint64_t *)p);
	ck_pr_fence_acquire();
	return v;
}
static inline void atom_store_64(int64_t *p, int64_t v) { ck_pr_store_64((uint64_t *)p, (uint64_t)v); }
static inline void atom_store_rel_64(int64_t *p, int64_t v)
{
	ck_pr_fence_release();
	ck_pr_store_64((uint64_t *)p, (uint64_t)v);
}
static inline void atom_store_fence_64(int64_t *p, int64_t v)
{
#if defined(__x86_64__) && !CK_USE_CC_BUILTINS
	/* xchg is a full barrier on x86 and cheaper than mov + mfence. */
	(void)ck_pr_fas_64((uint64_t *)p, (uint64_t)v);
#else
	ck_pr_store_64((uint64_t *)p, (uint64_t)v);
	ck_pr_fence_store_load();
#endif
}
static inline bool atom_cas_64(int64_t *p, int64_t old, int64_t new_)
{
	return ck_pr_cas_64((uint64_t *)p, (uint64_t)old, (uint64_t)new_);
}
static inline int64_t atom_faa_64(int64_t *p, int64_t d) { return (int64_t)ck_pr_faa_64((uint64_t *)p, (uint64_t)d); }

static inline uint32_t atom_load_32(const uint32_t *p) { return ck_pr_load_32(p); }
static inline uint32_t atom_load_acq_32(const uint32_t *p)
{
	uint32_t v = ck_pr_load_32(p);
	ck_pr_fence_acquire();
	return v;
}
static inline void atom_store_32(uint32_t *p, uint32_t v) { ck_pr_store_32(p, v); }
static inline uint32_t atom_faa_32(uint32_t *p, uint32_t d) { return ck_pr_faa_32(p, d); }
static inline uint32_t atom_fas_32(uint32_t *p, uint32_t v) { return ck_pr_fas_32(p, v); }
static inline bool atom_cas_32(uint32_t *p, uint32_t old, uint32_t new_) { return ck_pr_cas_32(p, old, new_); }

static inline void *atom_load_ptr(void *const *p) { return ck_pr_load_ptr(p); }
static inline void *atom_load_acq_ptr(void *const *p)
{
	void *v = ck_pr_load_ptr(p);
	ck_pr_fence_acquire();
	return v;
}
static inline void atom_store_ptr(void **p, void *v) { ck_pr_store_ptr(p, v); }
static inline void atom_store_rel_ptr(void **p, void *v)
{
	ck_pr_fence_release();
	ck_pr_store_ptr(p, v);
}
static inline void *atom_fas_ptr(void **p, void *v) { return ck_pr_fas_ptr(p, v); }
static inline bool atom_cas_ptr(void **p, void *old, void *new_) { return ck_pr_cas_ptr(p, old, new_); }

static inline void atom_fence_sc(void) { ck_pr_fence_memory(); }
static inline void atom_fence_acq(void) { ck_pr_fence_acquire(); }
static inline void atom_fence_rel(void) { ck_pr_fence_release(); }

#define WEFT_HB_RELEASE(addr) ((void)(addr))
#define WEFT_HB_ACQUIRE(addr) ((void)(addr))

#endif /* WEFT_TSAN */

/* 64-bit unsigned counters on the same primitives (statistics, groups). */
static inline uint64_t atom_load_u64(const uint64_t *p) { return (uint64_t)atom_load_acq_64((const int64_t *)p); }
static inline void atom_inc_u64(uint64_t *p) { (void)atom_faa_64((int64_t *)p, 1); }

#endif /* WEFT_ATOMICS_H */

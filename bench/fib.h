/* fib.h: the serial fib and its known answers, shared by fib*.c/cpp. */
#ifndef BENCH_FIB_H
#define BENCH_FIB_H

#define FIB_MAX_N 60

/*
 * The serial elision: the same recursion with the spawn replaced by a call.
 * Compilers transform this one heavily (gcc -O2 turns one of the two calls
 * into a loop and inlines the recursion into itself), so it makes far fewer
 * than fib(n)'s calls.
 */
__attribute__((unused)) static long fib_serial(int n)
{
	return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/*
 * The same recursion making one real call per fib call: the recursive calls
 * go through a volatile function pointer, which no compiler can inline or
 * turn into a loop.  The baseline for "what does a spawn+wait cost on top
 * of a call".
 */
__attribute__((unused)) static long fib_calls_impl(int n);
__attribute__((unused)) static long (*volatile fib_calls_fp)(int) = fib_calls_impl;
__attribute__((unused)) static long fib_calls_impl(int n)
{
	return n < 2 ? n : fib_calls_fp(n - 1) + fib_calls_fp(n - 2);
}

__attribute__((unused)) static long fib_calls(int n)
{
	return fib_calls_fp(n);
}

static inline long fib_expected(int n)
{
	long a = 0, b = 1;
	for (int i = 0; i < n; i++) {
		long c = a + b;
		a = b;
		b = c;
	}
	return a;
}

/* Calls with n >= 2 in the call tree of fib(n): F(n+1) - 1 (0 for n < 2). */
static inline unsigned long fib_spawns(int n)
{
	return n < 2 ? 0UL : (unsigned long)fib_expected(n + 1) - 1UL;
}

#endif /* BENCH_FIB_H */

# tests/local.mk: owned by the test suite.
#
# Criterion test programs, one per concept.  They link the convenience
# library libweft_core.la so that internals (runtime/deque.h) are reachable.
# Stress sizes are bounded by WEFT_TEST_QUICK=1 (see tests/test_util.h);
# CI sets it for the ThreadSanitizer pass.  tests/tsan_criterion.c is what
# lets Criterion start at all under -fsanitize=thread (empty otherwise).

if HAVE_CRITERION
check_PROGRAMS += \
	tests/test_deque \
	tests/test_forkjoin \
	tests/test_submit \
	tests/test_lifecycle \
	tests/test_errors \
	tests/test_parallel_for \
	tests/test_task
TESTS += \
	tests/test_deque \
	tests/test_forkjoin \
	tests/test_submit \
	tests/test_lifecycle \
	tests/test_errors \
	tests/test_parallel_for \
	tests/test_task

WEFT_TEST_CPPFLAGS = $(AM_CPPFLAGS) $(CRITERION_CFLAGS)
WEFT_TEST_LDADD = libweft_core.la $(CRITERION_LIBS) $(CK_LIBS) -lpthread

tests_test_deque_SOURCES = tests/test_deque.c tests/test_util.h tests/tsan_criterion.c
tests_test_deque_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_deque_LDADD = $(WEFT_TEST_LDADD)

tests_test_forkjoin_SOURCES = tests/test_forkjoin.c tests/test_util.h tests/tsan_criterion.c
tests_test_forkjoin_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_forkjoin_LDADD = $(WEFT_TEST_LDADD)

tests_test_submit_SOURCES = tests/test_submit.c tests/test_util.h tests/tsan_criterion.c
tests_test_submit_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_submit_LDADD = $(WEFT_TEST_LDADD)

tests_test_lifecycle_SOURCES = tests/test_lifecycle.c tests/test_util.h tests/tsan_criterion.c
tests_test_lifecycle_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_lifecycle_LDADD = $(WEFT_TEST_LDADD)

tests_test_errors_SOURCES = tests/test_errors.c tests/test_util.h tests/tsan_criterion.c
tests_test_errors_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_errors_LDADD = $(WEFT_TEST_LDADD)

tests_test_parallel_for_SOURCES = tests/test_parallel_for.c tests/test_util.h tests/tsan_criterion.c
tests_test_parallel_for_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_parallel_for_LDADD = $(WEFT_TEST_LDADD)

tests_test_task_SOURCES = tests/test_task.c tests/test_util.h tests/tsan_criterion.c
tests_test_task_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_task_LDADD = $(WEFT_TEST_LDADD)
endif

if HAVE_CRITERION
check_PROGRAMS += tests/test_stats
TESTS += tests/test_stats
tests_test_stats_SOURCES = tests/test_stats.c tests/test_util.h tests/tsan_criterion.c
tests_test_stats_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_stats_LDADD = $(WEFT_TEST_LDADD)
endif

if HAVE_CRITERION
check_PROGRAMS += tests/test_oom
TESTS += tests/test_oom
tests_test_oom_SOURCES = tests/test_oom.c tests/test_util.h tests/tsan_criterion.c
tests_test_oom_CPPFLAGS = $(WEFT_TEST_CPPFLAGS)
tests_test_oom_LDADD = $(WEFT_TEST_LDADD)
tests_test_oom_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc,--wrap=calloc,--wrap=posix_memalign
endif

# The README's example program, compiled and run against this build.
TESTS += tests/readme_example.sh
EXTRA_DIST += tests/readme_example.sh
AM_TESTS_ENVIRONMENT += CC="$(CC)" SAN_CFLAGS="$(SAN_CFLAGS)" top_srcdir="$(abs_top_srcdir)" top_builddir="$(abs_top_builddir)"; export CC SAN_CFLAGS top_srcdir top_builddir;

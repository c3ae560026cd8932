# tests/http.mk: the Criterion suite of weft-httpd (tests/test_http.c).
#
# It compiles the server core (tools/http.mk's WEFT_HTTPD_CORE_SOURCES)
# into the test program and starts the server in-process on an ephemeral
# loopback port, on both I/O backends.  Built when Criterion and llhttp
# were both found.  Bounded by WEFT_TEST_QUICK like the rest of the suite.

if HAVE_CRITERION
if HAVE_LLHTTP
check_PROGRAMS += tests/test_http
TESTS += tests/test_http
tests_test_http_SOURCES = tests/test_http.c tests/test_util.h tests/tsan_criterion.c $(WEFT_HTTPD_CORE_SOURCES)
tests_test_http_CPPFLAGS = $(WEFT_HTTPD_CPPFLAGS) $(CRITERION_CFLAGS)
tests_test_http_LDADD = tools/libweft_llhttp.la libweft_core.la $(CRITERION_LIBS) $(CK_LIBS) $(URING_LIBS) -lpthread
endif
endif

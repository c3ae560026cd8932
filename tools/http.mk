# tools/http.mk: weft-httpd, the HTTP/1.1 server on weft fibers (installed).
#
# Built only when configure found llhttp's C sources (HAVE_LLHTTP; Debian:
# node-llhttp).  The server core (tools/httpd.[ch]) is listed in
# WEFT_HTTPD_CORE_SOURCES so that tests/http.mk can compile it into the
# test program, which starts the server in-process.  llhttp itself is
# generated third-party code: it goes into a convenience library built
# without our warning flags (-w), sanitizer flags kept.

WEFT_HTTPD_CORE_SOURCES = tools/httpd.h tools/httpd.c
WEFT_HTTPD_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools -I$(LLHTTP_INCDIR)

if HAVE_LLHTTP
noinst_LTLIBRARIES += tools/libweft_llhttp.la
tools_libweft_llhttp_la_SOURCES = tools/llhttp_llhttp.c tools/llhttp_api.c tools/llhttp_http.c
tools_libweft_llhttp_la_CPPFLAGS = -I$(LLHTTP_INCDIR) -I$(LLHTTP_SRCDIR)
tools_libweft_llhttp_la_CFLAGS = $(SAN_CFLAGS) -std=gnu11 -w

bin_PROGRAMS += tools/weft-httpd
tools_weft_httpd_SOURCES = tools/weft_httpd.c $(WEFT_HTTPD_CORE_SOURCES)
tools_weft_httpd_CPPFLAGS = $(WEFT_HTTPD_CPPFLAGS)
tools_weft_httpd_LDADD = tools/libweft_llhttp.la libweft.la -lpthread
endif

# The request-processing demo (README): weft-httpd driven by weft-load.
EXTRA_DIST += tools/http-demo
HTTP_DEMO_SECONDS = 3
http-demo: all
	$(top_srcdir)/tools/http-demo $(abs_top_builddir) $(HTTP_DEMO_SECONDS)
.PHONY: http-demo

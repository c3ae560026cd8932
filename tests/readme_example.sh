#!/bin/sh
# Compile and run the example programs in README.md against this build, so
# the README's "Using weft in a program" stays true.  Skipped (exit 77) in
# sanitizer builds, where fib(40) would take minutes.
set -eu
: "${CC:=cc}" "${top_srcdir:?}" "${top_builddir:?}"
[ -z "${SAN_CFLAGS:-}" ] || { echo "sanitizer build: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# The Nth C block of README.md.
block() {
	awk -v want="$1" '/^```c$/ { n++; on = (n == want); next } /^```$/ { on = 0 } on' "$top_srcdir/README.md"
}
# run N EXPECTED: compile block N, run it on 2 workers, compare its output.
run() {
	block "$1" > "$dir/example$1.c"
	[ -s "$dir/example$1.c" ] || { echo "no C example $1 in README.md"; exit 1; }
	$CC -std=c11 -Wall -Wextra -Werror -O2 -I"$top_srcdir/include" "$dir/example$1.c" -o "$dir/example$1" \
		-L"$top_builddir/.libs" -lweft -Wl,-rpath,"$top_builddir/.libs"
	out=$(WEFT_WORKERS=2 "$dir/example$1")
	echo "$out"
	[ "$out" = "$2" ]
}
run 1 "fib(40) = 102334155"
run 2 "fib(40) = 102334155"
run 3 "echoed: hello"

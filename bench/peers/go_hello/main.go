// Go net/http peer server for bench/http-compare.
//
// Routes: "/" answers "Hello, World!"; "/work?us=N" burns about N µs of CPU
// in the handler's goroutine with a loop calibrated at start against the
// thread's CPU clock (the same xorshift loop as the other peers); "/sleep?ms=N" waits on a timer.
// Anything else: 404.  GOMAXPROCS comes from -workers (0: Go's default).
// Standard library only, so it builds offline.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

var itersPerUS float64
var sink uint64

//go:noinline
func spin(iters uint64) uint64 {
	x := uint64(88172645463325252)
	for i := uint64(0); i < iters; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// threadCPUus returns the calling OS thread's CPU time in µs.
func threadCPUus() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, /* CLOCK_THREAD_CPUTIME_ID */
		uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec)*1e6 + float64(ts.Nsec)/1e3
}

// calibrate returns iterations per microsecond of CPU: best of several runs
// of at least 5 ms, timed with the thread's CPU clock (the goroutine is
// locked to its thread) so that preemption does not make the loop look
// slower.
func calibrate() float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := 0.0
	n := uint64(100000)
	for i := 0; i < 8; i++ {
		t := threadCPUus()
		sink += spin(n)
		us := threadCPUus() - t
		if us < 5000 {
			n *= 4
			continue
		}
		if r := float64(n) / us; r > best {
			best = r
		}
	}
	if best == 0 {
		best = 100
	}
	return best
}

func queryInt(r *http.Request, key string, max int64) int64 {
	v, err := strconv.ParseInt(r.URL.Query().Get(key), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	if v > max {
		return max
	}
	return v
}

func reply(w http.ResponseWriter, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write([]byte(body))
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "HOST:PORT")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}
	itersPerUS = calibrate()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		reply(w, "Hello, World!")
	})
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		us := queryInt(r, "us", 10000000)
		atomic.AddUint64(&sink, spin(uint64(float64(us)*itersPerUS)))
		reply(w, "done")
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(queryInt(r, "ms", 60000)) * time.Millisecond)
		reply(w, "slept")
	})
	fmt.Fprintf(os.Stderr, "go_hello: on %s, GOMAXPROCS %d\n", *listen, runtime.GOMAXPROCS(0))
	log.Fatal(http.ListenAndServe(*listen, mux))
}

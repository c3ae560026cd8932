//! Tokio peer server for bench/http-compare.
//!
//! Two modes on the same multi-thread runtime (`--workers N` threads):
//!   --mode raw    tokio TcpStream with a minimal hand parser (request line
//!                 and the blank line that ends the headers; no bodies),
//!                 like the libuv peer;
//!   --mode hyper  hyper 0.14's HTTP/1.1 server.
//! Routes: `/` answers "Hello, World!"; `/work?us=N` burns about N µs of
//! CPU on the worker thread with a loop calibrated at start against the
//! thread's CPU clock (the same xorshift loop as the other peers);
//! `/sleep?ms=N` waits on a tokio timer.
//! Anything else: 404.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static ITERS_PER_US: OnceLock<f64> = OnceLock::new();

/// The burn loop: an xorshift chain the compiler cannot fold.
fn spin(iters: u64) -> u64 {
    let mut x: u64 = 88172645463325252;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = black_box(x);
    }
    x
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// This thread's CPU time in µs (Linux x86-64 / aarch64 timespec layout).
fn thread_cpu_us() -> f64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

/// Iterations per microsecond of CPU: best of several runs of at least
/// 5 ms, timed with the thread's CPU clock so that preemption by other
/// processes does not make the loop look slower.
fn calibrate() -> f64 {
    let mut best = 0.0f64;
    let mut n: u64 = 100_000;
    for _ in 0..8 {
        let t = thread_cpu_us();
        black_box(spin(n));
        let us = thread_cpu_us() - t;
        if us < 5_000.0 {
            n *= 4;
            continue;
        }
        best = best.max(n as f64 / us);
    }
    if best == 0.0 {
        best = 100.0;
    }
    best
}

fn burn_us(us: u64) {
    let ipu = *ITERS_PER_US.get().unwrap();
    black_box(spin((us as f64 * ipu) as u64));
}

fn query_u64(target: &str, key: &str) -> Option<u64> {
    let q = target.split_once('?')?.1;
    for kv in q.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            if k == key {
                return v.parse().ok();
            }
        }
    }
    None
}

enum Route {
    Hello,
    Work(u64),
    Sleep(u64),
    NotFound,
}

fn route(target: &str) -> Route {
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/" => Route::Hello,
        "/work" => Route::Work(query_u64(target, "us").unwrap_or(0).min(10_000_000)),
        "/sleep" => Route::Sleep(query_u64(target, "ms").unwrap_or(0).min(60_000)),
        _ => Route::NotFound,
    }
}

/// Run a route's work; returns (status line, body).
async fn serve(target: &str) -> (&'static str, &'static str) {
    match route(target) {
        Route::Hello => ("200 OK", "Hello, World!"),
        Route::Work(us) => {
            burn_us(us);
            ("200 OK", "done")
        }
        Route::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ("200 OK", "slept")
        }
        Route::NotFound => ("404 Not Found", "not found"),
    }
}

async fn raw_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16384];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match s.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let mut start = 0usize;
        // Answer every complete request in the buffer (pipelining).
        while let Some(end) = find_end(&buf[start..have]) {
            let req = &buf[start..start + end];
            let line_end = req.iter().position(|&b| b == b'\r').unwrap_or(req.len());
            let line = std::str::from_utf8(&req[..line_end]).unwrap_or("");
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or("");
            let target = parts.next().unwrap_or("");
            let (status, body) = if method == "GET" {
                serve(target).await
            } else {
                ("400 Bad Request", "bad request")
            };
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{}",
                    status,
                    body.len(),
                    body
                )
                .as_bytes(),
            );
            start += end;
            if method != "GET" {
                let _ = s.write_all(&out).await;
                return;
            }
        }
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            return; // header block too large
        }
    }
}

/// Length up to and including the "\r\n\r\n" that ends a request head.
fn find_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

async fn hyper_handle(
    req: hyper::Request<hyper::Body>,
) -> Result<hyper::Response<hyper::Body>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (status, body) = serve(&target).await;
    let code = if status.starts_with("200") { 200 } else { 404 };
    Ok(hyper::Response::builder()
        .status(code)
        .header("Content-Type", "text/plain")
        .body(hyper::Body::from(body))
        .unwrap())
}

fn main() {
    let mut listen = "127.0.0.1:8083".to_string();
    let mut workers = 2usize;
    let mut mode = "raw".to_string();
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--listen" => listen = v,
            "--workers" => workers = v.parse().expect("--workers N"),
            "--mode" => mode = v,
            a => {
                eprintln!("tokio_hello: unknown option {a}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    ITERS_PER_US.set(calibrate()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    let addr: SocketAddr = listen.parse().expect("--listen HOST:PORT");
    rt.block_on(async move {
        if mode == "hyper" {
            let make = hyper::service::make_service_fn(|_| async {
                Ok::<_, Infallible>(hyper::service::service_fn(hyper_handle))
            });
            let server = hyper::Server::bind(&addr).tcp_nodelay(true).serve(make);
            eprintln!("tokio_hello: hyper on {addr}, {workers} workers");
            if let Err(e) = server.await {
                eprintln!("tokio_hello: {e}");
            }
        } else {
            let l = TcpListener::bind(addr).await.expect("bind");
            eprintln!("tokio_hello: raw on {addr}, {workers} workers");
            loop {
                match l.accept().await {
                    Ok((s, _)) => {
                        tokio::spawn(raw_conn(s));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }
    });
}

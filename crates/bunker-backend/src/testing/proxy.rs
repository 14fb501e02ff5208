//! A loopback HTTP proxy the tests control, between Bunker and an HTTP
//! storage server (moto, Azurite, fake-gcs-server): it counts requests by
//! kind and can add latency, reset connections, stall them, or answer 503
//! instead of the server.
//!
//! Faults strike before a request is forwarded, so a failed request never
//! reached the server: what the client retries is what a real network loses
//! on the way there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Delay added before each request is forwarded.
    pub latency: Duration,
    /// One request in this many fails (0: none), cycling through a reset
    /// connection, a stall of `stall`, and a 503 answer.
    pub fail_one_in: u64,
    /// How long a stalled request hangs before its connection is closed.
    pub stall: Duration,
}

/// Requests seen, by kind, and bytes moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Listings (`GET` of a bucket or container with a list query).
    pub lists: u64,
    /// Other `GET`s (downloads).
    pub gets: u64,
    /// `HEAD`s (stats).
    pub heads: u64,
    /// `PUT`s and `POST`s (uploads, multipart steps, batch deletes).
    pub puts: u64,
    /// `DELETE`s.
    pub deletes: u64,
    /// Requests failed on purpose.
    pub faults: u64,
    /// Response bytes sent to the client.
    pub bytes_down: u64,
}

impl Counts {
    /// Every request.
    pub fn requests(&self) -> u64 {
        self.lists + self.gets + self.heads + self.puts + self.deletes
    }
}

struct State {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    counts: Mutex<Counts>,
    seen: AtomicU64,
    stop: AtomicBool,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            faults: Mutex::new(Faults::default()),
            counts: Mutex::new(Counts::default()),
            seen: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let state = accept_state.clone();
                std::thread::spawn(move || serve(client, &state));
            }
        });
        Ok(Proxy { addr, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the faults for requests from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().expect("proxy lock") = faults;
    }

    /// Requests counted so far.
    pub fn counts(&self) -> Counts {
        *self.state.counts.lock().expect("proxy lock")
    }

    /// Starts counting from zero.
    pub fn reset_counts(&self) {
        *self.state.counts.lock().expect("proxy lock") = Counts::default();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One request's head, and its body.
struct Request {
    head: Vec<u8>,
    method: String,
    target: String,
    body: Vec<u8>,
}

/// Reads one request; `None` at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Kept as sent: chunk sizes, data and the final empty chunk.
        loop {
            let mut size_line = Vec::new();
            reader.read_until(b'\n', &mut size_line).ok()?;
            body.extend_from_slice(&size_line);
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&size_line)
                    .trim()
                    .split(';')
                    .next()?,
                16,
            )
            .ok()?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        head,
        method,
        target,
        body,
    })
}

fn count(state: &State, request: &Request) {
    let mut c = state.counts.lock().expect("proxy lock");
    let listing = [
        "list-type=",
        "comp=list",
        "restype=container&comp",
        "prefix=",
    ]
    .iter()
    .any(|q| request.target.contains(q))
        || request.target.contains("/o?")
        || request.target.ends_with("/o");
    match request.method.as_str() {
        "GET" if listing => c.lists += 1,
        "GET" => c.gets += 1,
        "HEAD" => c.heads += 1,
        "DELETE" => c.deletes += 1,
        _ => c.puts += 1,
    }
}

/// Serves one client connection until it closes.
fn serve(client: TcpStream, state: &Arc<State>) {
    let Ok(client_write) = client.try_clone() else {
        return;
    };
    let client_write = Arc::new(Mutex::new(client_write));
    let mut reader = BufReader::new(client);
    let mut upstream: Option<TcpStream> = None;
    let log = std::env::var_os("BUNKER_PROXY_LOG").is_some();
    while let Some(request) = read_request(&mut reader) {
        count(state, &request);
        if log {
            eprintln!("proxy: {} {}", request.method, request.target);
        }
        let faults = *state.faults.lock().expect("proxy lock");
        if !faults.latency.is_zero() {
            std::thread::sleep(faults.latency);
        }
        let n = state.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if faults.fail_one_in > 0 && n.is_multiple_of(faults.fail_one_in) {
            state.counts.lock().expect("proxy lock").faults += 1;
            match (n / faults.fail_one_in) % 3 {
                0 => {}
                1 => std::thread::sleep(faults.stall),
                _ => {
                    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
                    if client_write.lock().expect("lock").write_all(answer).is_ok() {
                        continue;
                    }
                }
            }
            break;
        }
        let up = match &mut upstream {
            Some(up) => up,
            None => {
                let Ok(up) = TcpStream::connect(state.upstream) else {
                    break;
                };
                let Ok(down) = up.try_clone() else { break };
                let client_write = client_write.clone();
                let relay_state = state.clone();
                std::thread::spawn(move || relay(down, &client_write, &relay_state));
                upstream.insert(up)
            }
        };
        if up.write_all(&request.head).is_err() || up.write_all(&request.body).is_err() {
            break;
        }
    }
    if let Some(up) = upstream {
        let _ = up.shutdown(Shutdown::Both);
    }
    let _ = client_write.lock().expect("lock").shutdown(Shutdown::Both);
}

/// Copies the server's answers to the client.
fn relay(mut from: TcpStream, to: &Mutex<TcpStream>, state: &State) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        state.counts.lock().expect("proxy lock").bytes_down += n as u64;
        if to.lock().expect("lock").write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.lock().expect("lock").shutdown(Shutdown::Both);
}

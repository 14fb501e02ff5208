//! `bunker daemon` as a process: an `every 20s` plan runs on schedule, a
//! run asked for through the API runs, `/healthz`, `/metrics` and the JSON
//! API answer, webhooks and healthcheck pings reach a receiver on
//! loopback, SIGHUP reloads the config, and SIGTERM in the middle of a
//! backup stops it cleanly with the repository sound.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::web::{free_port, request, wait_for, Reaped};
use common::*;
use serde_json::Value;

/// One HTTP request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    body: String,
}

/// A webhook receiver on loopback: answers 200 to everything, keeps what it got.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            keep.lock().unwrap().push(Received {
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = reader
                .into_inner()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (base, got)
}

/// `METHOD path` against the daemon: (status, body).
fn http(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    request(addr, method, path, &[], b"").map(|r| (r.status, r.text()))
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path).expect("daemon answers");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn metric(metrics: &str, line_start: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(line_start)
            .map(|v| v.trim().parse().unwrap())
    })
}

#[test]
fn the_daemon_runs_plans_serves_metrics_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new();
    expect_code(
        &run(env.cmd().args(["init", "--pack-size", "2M"])),
        0,
        "init",
    );
    let mut rng = Rng::new(5);
    write_random(&env.path("small/a"), 10_000, &mut rng);
    for i in 0..8 {
        write_random(&env.path(&format!("big/f{i}")), 16 << 20, &mut rng);
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (hooks, received) = receiver();
    let config = env.path("bunker.toml");
    let text = format!(
            "[repositories.main]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
             [plans.small]\nrepository = \"main\"\npaths = [\"{}\"]\nschedule = \"every 20s\"\nrpo = \"1h\"\n\n\
             [plans.big]\nrepository = \"main\"\npaths = [\"{}\"]\n\n\
             [notify]\nwebhooks = [\"{hooks}/hook\"]\nhealthchecks = {{ small = \"{hooks}/hc/small\" }}\n\n\
             [daemon]\nlisten = \"{addr}\"\n",
            env.repo.display(),
            env.password_file.display(),
            env.path("small").display(),
            env.path("big").display(),
    );
    std::fs::write(&config, &text).unwrap();

    let daemon = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &env.home)
        .arg("--config")
        .arg(&config)
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Reaped(Some(daemon));
    let daemon = &mut daemon;
    wait_for(30, "/healthz", || {
        http(&addr, "GET", "/healthz").is_some_and(|(s, b)| s == 200 && b == "ok\n")
    });

    // The interval plan runs at once, then again 20 seconds later.
    let backups = |addr: &str| {
        let (_, m) = http(addr, "GET", "/metrics").unwrap_or_default();
        metric(&m, "bunker_plan_runs_total{plan=\"small\",repository=\"main\",kind=\"backup\",status=\"success\"}")
            .unwrap_or(0.0)
    };
    let small = |addr: &str| {
        let plans = get_json(addr, "/api/plans");
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "small")
            .unwrap()
            .clone()
    };
    wait_for(60, "the first scheduled backup", || {
        small(&addr)["last"]["backup"]["status"] == "success"
    });
    let first = Instant::now();
    assert_eq!(small(&addr)["schedule"], "every 20s");
    assert_eq!(backups(&addr), 1.0);
    let runs = get_json(&addr, "/api/plans/small/runs");
    assert_eq!(runs["runs"][0]["kind"], "backup");
    assert_eq!(runs["runs"][0]["status"], "success");
    let report = get_json(&addr, "/api/report");
    assert!(report["plans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "small"));
    let (_, metrics) = http(&addr, "GET", "/metrics").unwrap();
    assert!(
        metric(
            &metrics,
            "bunker_repository_size_bytes{repository=\"main\"}"
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "bunker_plan_rpo_target_seconds{plan=\"small\",repository=\"main\"}"
        ),
        Some(3600.0)
    );
    wait_for(60, "the second scheduled backup", || backups(&addr) >= 2.0);
    let gap = first.elapsed();
    assert!(
        gap > Duration::from_secs(12),
        "the second run came after {gap:?}, not about 20 s"
    );

    // Webhooks and healthcheck pings arrived.
    // The plan has an RPO but no drill: nothing is verified, the RPO is
    // breached, and that is told once.
    wait_for(30, "the notifications", || {
        let got = received.lock().unwrap();
        got.iter().any(|r| r.path == "/hc/small/start")
            && got.iter().any(|r| r.path == "/hc/small")
            && got.iter().any(|r| r.body.contains("\"rpo_breached\""))
    });
    let hook: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/hook")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert!(
        hook.iter()
            .any(|h| h["event"] == "run_started" && h["plan"] == "small"),
        "{hook:?}"
    );
    let done = hook
        .iter()
        .find(|h| h["event"] == "run_succeeded")
        .expect("run_succeeded");
    assert_eq!(done["plan"], "small");
    assert!(done["time"].is_string() && done["host"].is_string());
    assert_eq!(done["details"]["snapshots"].as_array().unwrap().len(), 1);
    let breaches = hook.iter().filter(|h| h["event"] == "rpo_breached").count();
    assert_eq!(breaches, 1, "{hook:?}");
    assert_eq!(
        hook.iter().find(|h| h["event"] == "rpo_breached").unwrap()["plan"],
        "small"
    );

    // SIGHUP reads the config again: a plan added appears.
    let more = format!(
        "{text}\n[plans.extra]\nrepository = \"main\"\npaths = [\"{}\"]\n",
        env.path("small").display()
    );
    std::fs::write(&config, more).unwrap();
    // SAFETY: kill with a valid pid and signal.
    assert_eq!(
        unsafe { libc::kill(daemon.child().id() as i32, libc::SIGHUP) },
        0
    );
    wait_for(30, "the reloaded config", || {
        get_json(&addr, "/api/plans")["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "extra")
    });

    // A backup asked for through the API, stopped by SIGTERM half way.
    let before = files_below(&env.repo.join("data")).len();
    let (status, body) = http(&addr, "POST", "/api/plans/big/run").unwrap();
    assert_eq!(status, 202, "{body}");
    let (status, _) = http(&addr, "POST", "/api/plans/nope/run").unwrap();
    assert_eq!(status, 404);
    let asked = Instant::now();
    while files_below(&env.repo.join("data")).len() < before + 2 {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "no pack within a minute"
        );
        assert!(
            daemon.child().try_wait().unwrap().is_none(),
            "the daemon ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The API shows the run going, with its progress (the dashboard's live view).
    let plans = get_json(&addr, "/api/plans");
    let big = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "big")
        .unwrap();
    assert_eq!(big["running"]["kind"], "backup", "{big}");
    let progress = &big["running"]["progress"];
    assert!(progress["bytes_done"].as_u64().unwrap() > 0, "{progress}");
    assert!(
        progress["bytes_total"].as_u64().unwrap() >= 8 << 24,
        "{progress}"
    );
    // SAFETY: kill with a valid pid and signal.
    assert_eq!(
        unsafe { libc::kill(daemon.child().id() as i32, libc::SIGTERM) },
        0
    );
    let stopped = Instant::now();
    let out = daemon.0.take().unwrap().wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(stopped.elapsed() < Duration::from_secs(30), "{log}");
    assert!(
        log.contains("plan big: backup FAILED: files: interrupted"),
        "{log}"
    );
    assert!(log.trim_end().ends_with("bunker daemon: stopped"), "{log}");
    assert!(log.contains("config reloaded: 3 plan(s)"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // No snapshot of the interrupted backup, and a sound repository.
    let snaps = env.snapshots(&["--tag", "big"]);
    assert!(snaps.is_empty(), "{snaps:?}");
    expect_code(
        &run(env.cmd().args(["check", "--read-data"])),
        0,
        "check after SIGTERM",
    );
    assert!(Path::new(&env.repo).join("runs").is_dir());
}

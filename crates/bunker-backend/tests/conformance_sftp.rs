//! The backend contract over SFTP, against a private sshd on loopback
//! (scripts/test-services). Its own test binary: `ssh` is found through
//! PATH, which this process sets once, before any other thread reads it.

use std::time::{Duration, Instant};

use bunker_backend::testing::{conformance, Gaps, Service, TestServices};
use bunker_backend::{open, ErrorKind, FileKind, Location, Settings};

#[test]
fn sftp_keeps_the_contract_and_refuses_unknown_host_keys() {
    let Some(services) = TestServices::get("sftp_keeps_the_contract") else {
        return;
    };
    std::env::set_var("PATH", services.sftp_path());
    let location = services.location(Service::Sftp, "conformance");
    let b = open(&location, &services.settings(Service::Sftp), true).unwrap();
    assert!(b.capabilities().atomic_create && !b.capabilities().batch_delete);
    conformance(b, Gaps::default());

    // 127.0.0.1 under another name has no known_hosts entry: refused, with
    // the way to accept it, and not retried into a storm.
    let Location::Sftp { path, .. } = location else {
        unreachable!()
    };
    let unknown = Location::Sftp {
        user: Some("root".into()),
        host: "localhost".into(),
        port: Some(2222),
        path,
    };
    let b = open(&unknown, &Settings::default(), false).unwrap();
    let started = Instant::now();
    let e = b.read(FileKind::Config, "").unwrap_err();
    assert_ne!(e.kind, ErrorKind::NotFound, "{e}");
    let text = e.to_string();
    assert!(text.contains("host key"), "says why: {text}");
    assert!(
        text.contains("ssh-keyscan"),
        "says how to accept it: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

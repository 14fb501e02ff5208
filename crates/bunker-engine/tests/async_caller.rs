//! The engine called from inside an async runtime, as the scheduler daemon
//! will call it: init, backup and restore run to the end, on a local
//! directory and (with the test servers) on S3, and nothing panics over a
//! runtime blocking inside another.

use std::sync::Arc;

use bunker_backend::testing::{Service, TestServices};
use bunker_backend::{Location, Settings};
use bunker_engine::backup::{backup, BackupOptions, BackupSource};
use bunker_engine::format::keyfile::KdfParams;
use bunker_engine::restore::{restore, RestoreOptions};
use bunker_engine::{InitOptions, NoProgress, Repository};

const PASSWORD: &[u8] = b"called from a runtime";

fn round_trip(location: Location, settings: Settings, dir: &std::path::Path) {
    let source = dir.join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(source.join("sub/big"), &data).unwrap();
    std::fs::write(source.join("small"), b"small").unwrap();
    let target = dir.join(format!("out-{}", location.scheme()));

    let backend = bunker_backend::open(&location, &settings, true).unwrap();
    let repo = Repository::init(
        backend.clone(),
        PASSWORD,
        InitOptions {
            kdf: KdfParams::MIN,
            ..Default::default()
        },
    )
    .unwrap();
    backup(
        repo,
        BackupSource::Paths(vec![source.clone()]),
        BackupOptions::default(),
        Arc::new(NoProgress),
    )
    .unwrap();
    let repo = Repository::open(backend, PASSWORD)
        .unwrap()
        .load_index()
        .unwrap();
    let snapshot = repo.snapshots().unwrap().pop().unwrap();
    let summary = restore(
        Arc::new(repo),
        &snapshot.snapshot.tree,
        &RestoreOptions {
            target: target.clone(),
            subpath: source.display().to_string(),
            ..Default::default()
        },
        Arc::new(NoProgress),
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(std::fs::read(target.join("sub/big")).unwrap(), data);
    assert_eq!(std::fs::read(target.join("small")).unwrap(), b"small");
}

#[test]
fn the_engine_runs_inside_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut places = vec![(
        Location::Local(dir.path().join("repo")),
        Settings::default(),
    )];
    if let Some(services) = TestServices::get("the_engine_runs_inside_an_async_runtime") {
        places.push((
            services.location(Service::S3, "async"),
            services.settings(Service::S3),
        ));
    }
    // A single-threaded runtime: the strictest place to call blocking code from.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (location, settings) in places {
        let dir = dir.path().to_path_buf();
        runtime.block_on(async move { round_trip(location, settings, &dir) });
    }
}

/// Two operations in one process: cancelling one stops only that one, keeps
/// no snapshot of it, and leaves the repository for the other.
#[test]
fn cancelling_one_operation_leaves_the_others_running() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("file"), vec![7u8; 2_000_000]).unwrap();
    let backend = bunker_backend::open(
        &Location::Local(dir.path().join("repo")),
        &Settings::default(),
        true,
    )
    .unwrap();
    let init = InitOptions {
        kdf: KdfParams::MIN,
        ..Default::default()
    };
    drop(Repository::init(backend.clone(), PASSWORD, init).unwrap());

    let mut cancelled = Repository::open(backend.clone(), PASSWORD).unwrap();
    let token = bunker_engine::Cancel::new();
    cancelled.set_cancel(token.clone());
    token.cancel();
    let other = Repository::open(backend.clone(), PASSWORD).unwrap();
    assert!(!other.cancel().is_cancelled());

    let paths = || BackupSource::Paths(vec![source.clone()]);
    let err = backup(
        cancelled,
        paths(),
        BackupOptions::default(),
        Arc::new(NoProgress),
    )
    .err()
    .expect("a cancelled backup fails");
    assert!(
        matches!(err, bunker_engine::EngineError::Interrupted(_)),
        "{err}"
    );
    let done = backup(
        other,
        paths(),
        BackupOptions::default(),
        Arc::new(NoProgress),
    )
    .unwrap();
    assert!(done.id.is_some());
    let repo = Repository::open(backend, PASSWORD).unwrap();
    assert_eq!(
        repo.snapshots().unwrap().len(),
        1,
        "only the other backup saved a snapshot"
    );
}

//! Write once, read many, on S3 (moto with versioning and Object Lock on):
//! `init --object-lock` retains every file and prune renews it; `--as-of`
//! reads the repository as it was before an attack by a holder of the
//! client's credentials that deleted every object and overwrote some.

mod common;

use std::process::Command;
use std::time::Duration;

use bunker_backend::testing::{Service, TestServices};
use bunker_backend::{FileKind, Location, Settings};
use common::*;

/// A fresh bucket with Object Lock (and so versioning) on.
fn versioned_bucket(services: &TestServices) -> String {
    let endpoint = services.env(Service::S3)[3].1.clone();
    let bucket = format!("worm-{}-{}", std::process::id(), rand_suffix());
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-o", "/dev/null", "-X", "PUT"])
            .args(args)
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    curl(&[
        "-H",
        "x-amz-bucket-object-lock-enabled: true",
        &format!("{endpoint}/{bucket}"),
    ]);
    curl(&[
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>",
        &format!("{endpoint}/{bucket}?versioning"),
    ]);
    bucket
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn after_an_attack_the_repository_as_it_was_is_listed_checked_and_restored() {
    let Some(services) = TestServices::get("as_of_after_an_attack") else {
        return;
    };
    let bucket = versioned_bucket(&services);
    let url = format!("s3://{bucket}/repo");
    let env = TestEnv::remote(url.clone(), services.env(Service::S3));
    env.init_small_packs();
    let mut rng = Rng::new(79);
    env.write_source_files(0..4, 500_000, &mut rng);
    let src = env.path("src");
    env.backup(&[src.to_str().unwrap()]);
    write_random(&env.path("src/f1"), 400_000, &mut rng);
    env.backup(&[src.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1500));
    let before = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(1500));

    // The attack, with the client's own credentials: every object deleted,
    // then the config, a key and a snapshot overwritten with garbage.
    let settings = Settings::from_env(services.env(Service::S3), None);
    let storage = bunker_backend::open(&Location::parse(&url).unwrap(), &settings, false).unwrap();
    let kinds = [
        FileKind::Key,
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Tombstone,
    ];
    let snapshot_name = storage.list_names(FileKind::Snapshot).unwrap()[0].clone();
    let key_name = storage.list_names(FileKind::Key).unwrap()[0].clone();
    let mut deleted = 0;
    for kind in kinds {
        let names = storage.list_names(kind).unwrap();
        deleted += names.len();
        storage.remove_many(kind, &names).unwrap();
    }
    storage.remove(FileKind::Config, "").unwrap();
    assert!(deleted >= 8, "{deleted} objects deleted");
    for (kind, name) in [
        (FileKind::Config, ""),
        (FileKind::Key, key_name.as_str()),
        (FileKind::Snapshot, snapshot_name.as_str()),
    ] {
        storage
            .write(kind, name, b"encrypted by ransomware")
            .unwrap();
    }

    // Today the repository is gone.
    let out = run(env.cmd().arg("snapshots"));
    assert_ne!(out.status.code(), Some(0), "the attacked repository opens");
    assert_no_panic(&out);

    // As it was: both snapshots, sound, restorable.
    let past = |args: &[&str]| {
        let mut c = env.cmd();
        c.args(["--as-of", &before]).args(args);
        c
    };
    let out = run(&mut past(&["snapshots", "--json"]));
    expect_code(&out, 0, "snapshots --as-of");
    assert_eq!(parse_json(&out.stdout).as_array().unwrap().len(), 2);
    let out = run(&mut past(&["check", "--read-data"]));
    expect_code(&out, 0, "check --as-of");
    let target = env.path("restored");
    let out = run(past(&["restore", "latest", "--verify", "--target"]).arg(&target));
    expect_code(&out, 0, "restore --as-of");
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // The past is read-only, and only S3 keeps it.
    let out = run(past(&["backup"]).arg(&src));
    expect_code(&out, 1, "backup --as-of");
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    let local = TestEnv::new();
    local.init();
    let out = run(local.cmd().args(["--as-of", &before, "snapshots"]));
    expect_code(&out, 1, "--as-of on a local repository");
    assert!(stderr(&out).contains("S3 bucket"), "{}", stderr(&out));
}

/// The retention date of a repository file, read back from the bucket.
fn retained_until(
    storage: &dyn bunker_backend::Backend,
    kind: FileKind,
    name: &str,
) -> Option<i64> {
    storage.retention_until(kind, name).unwrap()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn object_lock_retains_every_file_and_prune_renews_it() {
    let Some(services) = TestServices::get("object_lock_retains_and_renews") else {
        return;
    };
    // A bucket without Object Lock, and a local folder: refused, nothing made.
    let plain = TestEnv::remote(
        services.url(Service::S3, "nolock"),
        services.env(Service::S3),
    );
    let out = run(plain.cmd().args(["init", "--object-lock", "7"]));
    expect_code(&out, 1, "init --object-lock on a bucket without it");
    assert!(
        stderr(&out).contains("has no Object Lock"),
        "{}",
        stderr(&out)
    );
    expect_code(
        &run(plain.cmd().arg("snapshots")),
        10,
        "nothing was created",
    );
    let local = TestEnv::new();
    let out = run(local.cmd().args(["init", "--object-lock", "7"]));
    expect_code(&out, 1, "init --object-lock on a local folder");
    assert!(stderr(&out).contains("Object Lock"), "{}", stderr(&out));
    let out = run(plain.cmd().args([
        "-o",
        "s3.object-lock-mode=forever",
        "init",
        "--object-lock",
        "7",
    ]));
    expect_code(&out, 2, "an unknown retention mode");

    let bucket = versioned_bucket(&services);
    let url = format!("s3://{bucket}/repo");
    let env = TestEnv::remote(url.clone(), services.env(Service::S3));
    let out = run(env
        .cmd()
        .args(["init", "--pack-size", "1M", "--object-lock", "2"]));
    expect_code(&out, 0, "init --object-lock 2");
    let mut rng = Rng::new(83);
    env.write_source_files(0..3, 600_000, &mut rng);
    env.backup(&[env.path("src").to_str().unwrap()]);

    let settings = Settings::from_env(services.env(Service::S3), None);
    let storage = bunker_backend::open(&Location::parse(&url).unwrap(), &settings, false).unwrap();
    let two_days = 2 * 86_400;
    let pack = storage.list_names(FileKind::Pack).unwrap()[0].clone();
    let snapshot = storage.list_names(FileKind::Snapshot).unwrap()[0].clone();
    let key = storage.list_names(FileKind::Key).unwrap()[0].clone();
    for (kind, name) in [
        (FileKind::Config, ""),
        (FileKind::Key, key.as_str()),
        (FileKind::Pack, pack.as_str()),
        (FileKind::Snapshot, snapshot.as_str()),
    ] {
        let until = retained_until(&*storage, kind, name)
            .unwrap_or_else(|| panic!("{kind:?} {name} has no retention"));
        assert!(
            (until - now_secs() - two_days).abs() < 600,
            "{kind:?} retained until {until}, not two days from now"
        );
    }

    // Prune extends every file's retention from now.
    let first = retained_until(&*storage, FileKind::Pack, &pack).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let report = env.prune(&[]);
    assert!(
        report["retention_renewed"].as_u64().unwrap() >= 4,
        "{report}"
    );
    let renewed = retained_until(&*storage, FileKind::Pack, &pack).unwrap();
    assert!(renewed >= first + 2, "{first} -> {renewed}");
    env.check_read_data();
}

#[test]
fn the_past_and_a_lock_mode_need_what_they_apply_to() {
    // No servers needed: refused before any storage is reached.
    let env = TestEnv::new();
    let out = run(bunker(&env).args(["--as-of", "2026-01-01", "snapshots"]));
    expect_code(&out, 2, "--as-of without -r");
    assert!(stderr(&out).contains("-r s3://"), "{}", stderr(&out));
    let out = run(env
        .cmd()
        .args(["-o", "s3.object-lock-mode=compliance", "init"]));
    expect_code(&out, 2, "a lock mode without --object-lock");
    assert!(
        stderr(&out).contains("--object-lock DAYS"),
        "{}",
        stderr(&out)
    );
    assert!(!env.repo.join("config").exists(), "nothing was created");
}

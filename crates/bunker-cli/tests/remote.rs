//! Every command, unchanged, against each remote backend on its real test
//! server over loopback (scripts/test-services): S3 on moto, Azure Blob on
//! Azurite, GCS on fake-gcs-server, SFTP on a private sshd.

mod common;

use std::process::{Child, Stdio};

use bunker_backend::testing::{Service, TestServices};
use common::*;

/// A world whose repository is a fresh prefix on `service`.
fn world(services: &TestServices, service: Service) -> TestEnv {
    TestEnv::remote(services.url(service, "cli"), services.env(service))
}

/// init, backup twice, snapshots, restore --verify (bytes and metadata
/// compared with the source), check --read-data, forget --prune.
fn every_command_works(service: Service, test: &str) {
    let Some(services) = TestServices::get(test) else {
        return;
    };
    let env = world(&services, service);
    env.init_small_packs();
    let mut rng = Rng::new(11);
    env.write_source_files(0..5, 700_000, &mut rng);
    write_file(&env.path("src/sub/small"), b"small file");
    std::os::unix::fs::symlink("../f0", env.path("src/sub/link")).unwrap();
    let src = env.path("src");
    let first = env.backup(&[src.to_str().unwrap()]);
    assert!(
        first["bytes_added"].as_u64().unwrap() > 3_000_000,
        "{first}"
    );

    write_random(&env.path("src/f1"), 500_000, &mut rng);
    let second = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(env.snapshots(&[]).len(), 2);
    // Unchanged files are deduplicated against what is already stored.
    assert!(
        second["bytes_added"].as_u64().unwrap() < 1_000_000,
        "{second}"
    );

    let target = env.path("out");
    env.restore_verified("latest", &target);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    env.check_read_data();

    let out = run(env.cmd().args(["forget", "--keep-last", "1", "--prune"]));
    expect_code(&out, 0, "forget --prune");
    assert_eq!(env.snapshots(&[]).len(), 1);
    env.check_read_data();
    let again = env.path("again");
    env.restore_verified("latest", &again);
    assert_same_tree(&src, &again.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn every_command_works_on_s3() {
    every_command_works(Service::S3, "every_command_works_on_s3");
}

#[test]
fn every_command_works_on_azure_blob() {
    every_command_works(Service::Azblob, "every_command_works_on_azure_blob");
}

#[test]
fn every_command_works_on_gcs() {
    every_command_works(Service::Gcs, "every_command_works_on_gcs");
}

#[test]
fn every_command_works_on_sftp() {
    every_command_works(Service::Sftp, "every_command_works_on_sftp");
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.spawnable()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bunker")
}

/// Four backups at once with a prune running beside them, into one
/// bucket: session locks and the two-phase prune on the service.
fn four_writers_and_a_prune(service: Service, test: &str) {
    let Some(services) = TestServices::get(test) else {
        return;
    };
    let env = world(&services, service);
    env.init_small_packs();
    let mut rng = Rng::new(5);
    let shared = rng.bytes(2 << 20);
    for s in 0..4 {
        write_file(&env.path(&format!("src{s}/shared")), &shared);
        write_random(&env.path(&format!("src{s}/own")), 1 << 20, &mut rng);
    }
    // An old snapshot sharing data with the new ones, for the prune to drop.
    write_random(&env.path("old/gone"), 1 << 20, &mut rng);
    write_file(&env.path("old/shared"), &shared);
    let old = env.backup(&["--host", "old", env.path("old").to_str().unwrap()]);
    let old_id = old["snapshot_id"].as_str().unwrap().to_string();

    let mut children: Vec<(String, Child)> = (0..4)
        .map(|s| {
            let src = env.path(&format!("src{s}")).display().to_string();
            let host = format!("host{s}");
            (
                format!("backup {s}"),
                spawn(&env, &["backup", "--json", "--host", &host, &src]),
            )
        })
        .collect();
    children.push((
        "forget --prune".into(),
        spawn(&env, &["forget", &old_id, "--prune"]),
    ));
    for (what, c) in children {
        let out = c.wait_with_output().unwrap();
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
    }
    assert_eq!(env.snapshots(&[]).len(), 4);
    // A prune after the writers finished deletes what the first could not.
    env.prune(&[]);
    env.check_read_data();
    for s in 0..4 {
        assert_host_restores(
            &env,
            &format!("host{s}"),
            &env.path(&format!("src{s}")),
            &env.path(&format!("out{s}")),
        );
    }
}

#[test]
fn four_writers_and_a_prune_on_s3() {
    four_writers_and_a_prune(Service::S3, "four_writers_and_a_prune_on_s3");
}

#[test]
fn four_writers_and_a_prune_on_azure_blob() {
    four_writers_and_a_prune(Service::Azblob, "four_writers_and_a_prune_on_azure_blob");
}

#[test]
fn four_writers_and_a_prune_on_gcs() {
    four_writers_and_a_prune(Service::Gcs, "four_writers_and_a_prune_on_gcs");
}

#[test]
fn four_writers_and_a_prune_on_sftp() {
    four_writers_and_a_prune(Service::Sftp, "four_writers_and_a_prune_on_sftp");
}

#[test]
fn a_second_init_into_the_same_place_is_refused() {
    let Some(services) = TestServices::get("a_second_init_into_the_same_place_is_refused") else {
        return;
    };
    let env = world(&services, Service::S3);
    env.init();
    let out = run(env.cmd().arg("init"));
    expect_code(&out, 1, "second init");
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
}

#[test]
fn a_missing_bucket_is_named_and_exits_10() {
    let Some(services) = TestServices::get("a_missing_bucket_is_named_and_exits_10") else {
        return;
    };
    let env = TestEnv::remote("s3://no-such-bucket/x".into(), services.env(Service::S3));
    let out = run(env.cmd().arg("snapshots"));
    expect_code(&out, 10, "snapshots on a missing bucket");
    let err = stderr(&out);
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let out = run(env.cmd().arg("init"));
    expect_code(&out, 1, "init into a missing bucket");
    assert!(stderr(&out).contains("create it first"), "{}", stderr(&out));
}

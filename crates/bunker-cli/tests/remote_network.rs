//! Remote repositories through a loopback proxy the test controls: request
//! counts with a warm cache, and a link that fails or stalls one request in
//! ten (the backup, restore and check still come out exact).

mod common;

use std::time::Duration;

use bunker_backend::testing::{Faults, Proxy, Service, TestServices};
use common::*;

/// A world on `service` reached through a new proxy, and the proxy.
fn proxied(services: &TestServices, service: Service, name: &str) -> (TestEnv, Proxy) {
    let proxy = Proxy::start(services.http_addr(service)).unwrap();
    let env = TestEnv::remote(
        services.url(service, name),
        services.env_via(service, &proxy.url()),
    );
    (env, proxy)
}

#[test]
fn a_warm_cache_makes_listing_and_a_no_change_backup_a_few_requests() {
    let Some(services) = TestServices::get("a_warm_cache_makes_listing_cheap") else {
        return;
    };
    let (env, proxy) = proxied(&services, Service::S3, "cache");
    env.init_small_packs();
    let mut rng = Rng::new(3);
    env.write_source_files(0..6, 800_000, &mut rng);
    for i in 0..6 {
        write_random(&env.path(&format!("src/d{i}/f")), 1000, &mut rng);
    }
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    env.backup(&[&src]);

    proxy.reset_counts();
    env.snapshots(&[]);
    let listing = proxy.counts();
    eprintln!("snapshots, warm cache: {listing:?}");
    assert!(
        listing.gets <= 2,
        "only config and key are read: {listing:?}"
    );
    assert!(listing.lists <= 6, "{listing:?}");

    proxy.reset_counts();
    let summary = env.backup(&[&src]);
    assert_eq!(summary["files_new"], 0);
    let backup = proxy.counts();
    eprintln!("no-change backup, warm cache: {backup:?}");
    // config, key; no index file, snapshot or tree is downloaded again.
    assert!(backup.gets <= 2, "{backup:?}");
    assert!(backup.bytes_down < 64 << 10, "{backup:?}");
    assert!(backup.requests() <= 24, "{backup:?}");

    // With the cache gone, everything is read again, and the cache is rebuilt.
    proxy.reset_counts();
    let out = run(env.cmd().args(["--no-cache", "ls", "latest"]));
    expect_code(&out, 0, "ls without cache");
    assert!(proxy.counts().gets > 4, "{:?}", proxy.counts());
}

#[test]
fn a_cache_entry_that_is_damaged_is_fetched_again_never_trusted() {
    let Some(services) = TestServices::get("a_damaged_cache_entry_is_fetched_again") else {
        return;
    };
    let (env, proxy) = proxied(&services, Service::S3, "damaged-cache");
    env.init();
    let mut rng = Rng::new(4);
    env.write_source_files(0..3, 100_000, &mut rng);
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    let out = run(env.cmd().args(["ls", "latest"]));
    expect_code(&out, 0, "ls");
    // Flip a byte in every cached index file and tree pack.
    let cache = env.home.join(".cache/bunker");
    let mut damaged = 0;
    for (path, len) in files_below(&cache) {
        let parent = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if (parent == "index" || parent == "packs") && len > 0 {
            flip_byte(&path, (len / 2) as usize);
            damaged += 1;
        }
    }
    assert!(damaged >= 2, "index files and tree packs are cached");
    proxy.reset_counts();
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
    assert!(
        proxy.counts().gets >= 2,
        "damaged entries fetched again: {:?}",
        proxy.counts()
    );
}

/// Backup, restore --verify and check --read-data through a link that
/// fails one request in ten (reset, 3 s stall, or 503, in turn).
fn flaky_link(service: Service, test: &str) {
    let Some(services) = TestServices::get(test) else {
        return;
    };
    let (env, proxy) = proxied(&services, service, "flaky");
    env.init_small_packs();
    let mut rng = Rng::new(8);
    env.write_source_files(0..5, 900_000, &mut rng);
    let src = env.path("src").display().to_string();
    proxy.set_faults(Faults {
        fail_one_in: 10,
        stall: Duration::from_secs(3),
        ..Faults::default()
    });
    // Requests time out after 2 s, so a stall is a timeout, then a retry.
    let with_timeout = |args: &[&str]| {
        let mut c = env.cmd();
        c.args(["-o", "timeout=2"]).args(args);
        c
    };
    let out = run(&mut with_timeout(&["backup", "--json", &src]));
    expect_code(&out, 0, "backup through a flaky link");
    let target = env.path("out");
    let out = run(with_timeout(&["restore", "latest", "--verify", "--target"]).arg(&target));
    expect_code(&out, 0, "restore through a flaky link");
    assert_same_tree(&env.path("src"), &target.join(src.trim_start_matches('/')));
    let out = run(&mut with_timeout(&["check", "--read-data"]));
    expect_code(&out, 0, "check --read-data through a flaky link");
    let counts = proxy.counts();
    eprintln!("{service:?} through a flaky link: {counts:?}");
    assert!(counts.faults >= 3, "faults were injected: {counts:?}");
}

#[test]
fn a_flaky_link_to_s3_loses_nothing() {
    flaky_link(Service::S3, "a_flaky_link_to_s3_loses_nothing");
}

#[test]
fn a_flaky_link_to_azure_loses_nothing() {
    flaky_link(Service::Azblob, "a_flaky_link_to_azure_loses_nothing");
}

#[test]
fn an_outage_fails_in_one_line_and_the_repository_stays_sound() {
    let Some(services) = TestServices::get("an_outage_fails_in_one_line") else {
        return;
    };
    let (env, proxy) = proxied(&services, Service::S3, "outage");
    env.init_small_packs();
    let mut rng = Rng::new(9);
    env.write_source_files(0..3, 700_000, &mut rng);
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    // Every request fails from now on.
    proxy.set_faults(Faults {
        fail_one_in: 1,
        stall: Duration::from_millis(100),
        ..Faults::default()
    });
    write_random(&env.path("src/f0"), 700_000, &mut rng);
    let started = std::time::Instant::now();
    let out = run(env
        .cmd()
        .args(["-o", "retries=2", "-o", "timeout=2", "backup", &src]));
    expect_code(&out, 1, "backup during an outage");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("s3://"), "names the repository: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    proxy.set_faults(Faults::default());
    env.check_read_data();
    assert_eq!(env.snapshots(&[]).len(), 1);
    env.backup(&[&src]);
    env.restore_verified("latest", &env.path("out"));
}

#[test]
fn limits_cap_upload_and_download_bandwidth() {
    let Some(services) = TestServices::get("limits_cap_bandwidth") else {
        return;
    };
    let (env, proxy) = proxied(&services, Service::S3, "limits");
    env.init();
    let mut rng = Rng::new(12);
    // Incompressible, so what is sent is what was read.
    env.write_source_files(0..3, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    let started = std::time::Instant::now();
    let out = run(env.cmd().args(["--limit-upload", "1024", "backup", &src]));
    expect_code(&out, 0, "backup --limit-upload 1024");
    let up = started.elapsed();
    // 3 MiB at 1 MiB/s: the first piece goes at once, the rest waits.
    assert!(up >= Duration::from_millis(1800), "upload took {up:?}");

    proxy.reset_counts();
    let started = std::time::Instant::now();
    let target = env.path("out");
    let out = run(env
        .cmd()
        .args([
            "--no-cache",
            "--limit-download",
            "1024",
            "restore",
            "latest",
            "--target",
        ])
        .arg(&target));
    expect_code(&out, 0, "restore --limit-download 1024");
    let down = started.elapsed();
    assert!(proxy.counts().bytes_down > 3 << 20, "{:?}", proxy.counts());
    assert!(
        down >= Duration::from_millis(1800),
        "download took {down:?}"
    );
    assert_same_tree(&env.path("src"), &target.join(src.trim_start_matches('/')));
}

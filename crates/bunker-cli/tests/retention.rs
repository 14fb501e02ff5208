//! Retention: `forget` policies with restic's semantics, and `prune`
//! freeing space while every kept snapshot stays whole.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

/// Snapshot times (UTC) chosen around month, year and ISO-week boundaries:
/// 2025-12-29 is the Monday starting ISO week 1 of 2026.
const TIMES: &[(&str, &str, &str)] = &[
    ("s1", "2025-11-30T12:00:00Z", ""),
    ("s2", "2025-12-01T09:00:00Z", ""),
    ("s3", "2025-12-01T18:00:00Z", "audit"),
    ("s4", "2025-12-28T08:00:00Z", ""),
    ("s5", "2025-12-29T08:00:00Z", ""),
    ("s6", "2025-12-31T23:30:00Z", ""),
    ("s7", "2026-01-01T00:30:00Z", ""),
    ("s8", "2026-01-01T00:45:00Z", ""),
    ("s9", "2026-01-02T10:00:00Z", ""),
    ("s10", "2026-01-05T10:00:00Z", ""),
];

/// Forget with `--dry-run --json`; returns the kept names per group, and the reasons.
fn kept(
    env: &TestEnv,
    names: &BTreeMap<String, String>,
    args: &[&str],
) -> (Vec<BTreeSet<String>>, BTreeMap<String, Vec<String>>) {
    let out = run(env
        .cmd()
        .env("TZ", "UTC")
        .args(["forget", "--dry-run", "--json"])
        .args(args));
    expect_code(&out, 0, &format!("forget {args:?}"));
    let mut groups = Vec::new();
    let mut reasons = BTreeMap::new();
    for g in parse_json(&out.stdout).as_array().expect("array") {
        let mut set = BTreeSet::new();
        for k in g["keep"].as_array().unwrap() {
            let name = names[k["id"].as_str().unwrap()].clone();
            let r: Vec<String> = k["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            reasons.insert(name.clone(), r);
            set.insert(name);
        }
        groups.push(set);
    }
    (groups, reasons)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn forget_policies_follow_restics_rules() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/f"), b"retention");
    let src = env.path("src").display().to_string();
    let mut names = BTreeMap::new();
    for (name, time, tag) in TIMES {
        let mut args = vec!["--time", time, src.as_str()];
        if !tag.is_empty() {
            args.extend(["--tag", tag]);
        }
        let s = env.backup(&args);
        names.insert(
            s["snapshot_id"].as_str().unwrap().to_string(),
            name.to_string(),
        );
    }
    let other = env.backup(&["--time", "2026-01-03T00:00:00Z", "--host", "other", &src]);
    names.insert(
        other["snapshot_id"].as_str().unwrap().to_string(),
        "o1".into(),
    );

    let table: &[(&[&str], &[&str])] = &[
        (&["--keep-last", "3"], &["s10", "s9", "s8"]),
        // s7 shares s8's hour, so the third hour is s8's.
        (&["--keep-hourly", "3"], &["s10", "s9", "s8"]),
        (&["--keep-daily", "4"], &["s10", "s9", "s8", "s6"]),
        // s5..s9 are all in 2026-W01; s4 is 2025-W52.
        (&["--keep-weekly", "3"], &["s10", "s9", "s4"]),
        (&["--keep-monthly", "2"], &["s10", "s6"]),
        (&["--keep-monthly", "-1"], &["s10", "s6", "s1"]),
        (&["--keep-yearly", "-1"], &["s10", "s6"]),
        // Relative to the newest snapshot (2026-01-05 10:00), not to now.
        (&["--keep-within", "4d"], &["s10", "s9"]),
        (
            &["--keep-within", "1m"],
            &["s10", "s9", "s8", "s7", "s6", "s5", "s4"],
        ),
        (&["--keep-tag", "audit"], &["s3"]),
        (&["--keep-daily", "1", "--keep-weekly", "2"], &["s10", "s9"]),
        (&["--keep-last", "1", "--keep-tag", "audit"], &["s10", "s3"]),
    ];
    for (args, expected) in table {
        let (groups, _) = kept(&env, &names, &[&["--host", &hostname()], *args].concat());
        assert_eq!(groups.len(), 1, "{args:?}");
        assert_eq!(groups[0], set(expected), "forget {args:?}");
    }
    let (_, reasons) = kept(
        &env,
        &names,
        &[
            "--host",
            &hostname(),
            "--keep-daily",
            "1",
            "--keep-weekly",
            "2",
        ],
    );
    assert_eq!(reasons["s10"], ["daily snapshot", "weekly snapshot"]);
    assert_eq!(reasons["s9"], ["weekly snapshot"]);

    // Grouping: by host (and paths) each host keeps its newest; one group keeps one.
    let (groups, _) = kept(&env, &names, &["--keep-last", "1"]);
    let all: BTreeSet<String> = groups.into_iter().flatten().collect();
    assert_eq!(all, set(&["s10", "o1"]));
    let (groups, _) = kept(&env, &names, &["--keep-last", "1", "--group-by", ""]);
    assert_eq!(groups, vec![set(&["s10"])]);

    // A dry run removed nothing; a real one removes exactly the others.
    assert_eq!(env.snapshots(&[]).len(), 11);
    let out = run(env.cmd().env("TZ", "UTC").args([
        "forget",
        "--keep-weekly",
        "3",
        "--host",
        &hostname(),
    ]));
    expect_code(&out, 0, "forget");
    let left: BTreeSet<String> = env
        .snapshots(&[])
        .iter()
        .map(|s| names[s["id"].as_str().unwrap()].clone())
        .collect();
    assert_eq!(left, set(&["s10", "s9", "s4", "o1"]));

    // No rule and no id: a usage error, nothing removed.
    let out = run(env.cmd().arg("forget"));
    expect_code(&out, 2, "forget without a policy");
    assert!(
        stderr(&out).contains("nothing to forget"),
        "{}",
        stderr(&out)
    );
    let out = run(env.cmd().args(["forget", "--keep-daily", "-2"]));
    expect_code(&out, 2, "forget with a bad count");
    assert_eq!(env.snapshots(&[]).len(), 4);
}

/// This machine's host name, as bunker records it (without needing the
/// `hostname` program, which a minimal machine may lack).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn prune_frees_forgotten_data_and_keeps_the_rest_whole() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(21);
    env.write_source_files(0..8, 2 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    let first = env.backup(&[&src]);
    env.write_source_files(0..4, 2 << 20, &mut rng);
    env.backup(&[&src]);
    env.write_source_files(4..6, 2 << 20, &mut rng);
    env.backup(&[&src]);
    // Nothing is unused yet: a prune deletes no pack (it may merge index files).
    let packs_before = dir_size(&env.repo.join("data"));
    let idle = env.prune(&[]);
    assert_eq!(idle["packs_deleted"], 0, "{idle}");
    assert_eq!(dir_size(&env.repo.join("data")), packs_before);

    // A dry run reports, and changes nothing.
    let out = run(env.cmd().args(["forget", "--keep-last", "1"]));
    expect_code(&out, 0, "forget");
    let before = dir_size(&env.repo);
    let dry = env.prune(&["--dry-run"]);
    assert!(dry["packs_deleted"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(dir_size(&env.repo), before);

    let report = env.prune(&[]);
    assert_eq!(report["packs_deleted"], dry["packs_deleted"], "{report}");
    assert_eq!(report["sessions_waiting"], 0);
    let after = dir_size(&env.repo);
    // 6 of the 14 distinct 2 MiB files were forgotten (12 MiB); packs whose
    // unused share is under the 25 % repack threshold keep their garbage.
    assert!(
        after < before - (8 << 20),
        "prune freed too little: {before} -> {after}"
    );
    assert!(after > 14 << 20, "prune freed too much: {after}");
    assert!(env
        .repo
        .join("condemned")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
    env.check_read_data();
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );

    // The forgotten snapshot is gone for good.
    let out = run(env
        .cmd()
        .args(["ls", first["snapshot_id"].as_str().unwrap()]));
    expect_code(&out, 1, "ls a forgotten snapshot");

    // A second prune finds nothing more; forget --prune does both steps.
    assert_eq!(env.prune(&[])["packs_deleted"], 0);
    write_random(&env.path("src/f7"), 2 << 20, &mut rng);
    env.backup(&[&src]);
    let out = run(env.cmd().args(["forget", "--keep-last", "1", "--prune"]));
    expect_code(&out, 0, "forget --prune");
    assert!(stdout(&out).contains("deleted"), "{}", stdout(&out));
    env.check_read_data();
    assert_eq!(env.snapshots(&[]).len(), 1);
}

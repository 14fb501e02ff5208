//! Damage reports: each damaged object is named with the snapshots and files
//! it affects, and the newest intact snapshot of the source; restoring a
//! damaged snapshot brings back every intact file and names the others.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

struct Fixture {
    env: TestEnv,
    src: String,
    older: String,
    newer: String,
    /// The two packs only the newer snapshot wrote: data, then trees.
    newer_packs: Vec<PathBuf>,
}

fn fixture() -> Fixture {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(51);
    write_random(&env.path("src/old.bin"), 2 << 20, &mut rng);
    write_file(&env.path("src/keep.txt"), b"in both snapshots");
    let src = env.path("src").display().to_string();
    let older = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before: BTreeSet<PathBuf> = files_below(&env.repo.join("data"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    fs::remove_file(env.path("src/old.bin")).unwrap();
    // Below the minimum chunk size: one blob in one data pack, so the
    // newer snapshot writes exactly two packs, one of data, one of trees.
    write_random(&env.path("src/new.bin"), 200_000, &mut rng);
    let newer = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut newer_packs: Vec<(PathBuf, u64)> = files_below(&env.repo.join("data"))
        .into_iter()
        .filter(|(p, _)| !before.contains(p))
        .collect();
    newer_packs.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    assert_eq!(newer_packs.len(), 2, "{newer_packs:?}");
    Fixture {
        env,
        src,
        older,
        newer,
        newer_packs: newer_packs.into_iter().map(|(p, _)| p).collect(),
    }
}

fn check_json(env: &TestEnv, args: &[&str]) -> Value {
    let out = run(env.cmd().args(["check", "--json"]).args(args));
    expect_code(&out, 1, "check of a damaged repository");
    parse_json(&out.stdout)
}

fn assert_report(report: &Value, f: &Fixture, pack: &str) {
    let damage = report["damage"].as_array().unwrap();
    let entry = damage
        .iter()
        .find(|d| d["object"] == format!("pack {pack}"))
        .unwrap_or_else(|| panic!("pack {pack} not named: {report}"));
    let affected = entry["affected"].as_array().unwrap();
    assert_eq!(affected.len(), 1, "{entry}");
    assert_eq!(affected[0]["snapshot"], f.newer.as_str());
    let paths: Vec<&str> = affected[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, [format!("{}/new.bin", f.src)], "{entry}");
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{report}");
    assert_eq!(sources[0]["newest_intact"], f.older.as_str());
    assert_eq!(sources[0]["damaged_snapshots"][0], f.newer.as_str());
}

#[test]
fn check_names_the_files_and_snapshots_a_lost_pack_affects() {
    let f = fixture();
    let pack = f.newer_packs[0].clone();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    fs::remove_file(&pack).unwrap();

    // Structure alone finds a missing pack.
    let report = check_json(&f.env, &[]);
    assert_report(&report, &f, &name);

    // The human report says the same on stderr.
    let out = run(f.env.cmd().arg("check"));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("damaged: pack {name}"))
            && err.contains(&format!("affects snapshot {}", &f.newer[..8]))
            && err.contains("new.bin")
            && err.contains(&format!("newest intact: {}", &f.older[..8])),
        "{err}"
    );

    // Restoring the damaged snapshot restores the intact file, names the lost one.
    let target = f.env.path("out");
    let out = run(f
        .env
        .cmd()
        .args(["restore", &format!("{}:{}", f.newer, f.src), "--target"])
        .arg(&target));
    expect_code(&out, 1, "restore of a damaged snapshot");
    assert!(stderr(&out).contains("new.bin"), "{}", stderr(&out));
    assert_eq!(
        fs::read(target.join("keep.txt")).unwrap(),
        b"in both snapshots"
    );
    // The older snapshot is whole.
    f.env.restore_verified(&f.older, &f.env.path("out-older"));
}

#[test]
fn read_data_attributes_a_flipped_byte_to_its_file() {
    let f = fixture();
    let pack = f.newer_packs[0].clone();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    // The middle of the largest new pack is inside a data blob of new.bin.
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2);

    let out = run(f.env.cmd().args(["check", "--json"]));
    expect_code(&out, 0, "structure check cannot see a flipped byte");
    let report = check_json(&f.env, &["--read-data"]);
    assert_report(&report, &f, &name);

    let target = f.env.path("out");
    let out = run(f
        .env
        .cmd()
        .args(["restore", &f.newer, "--target"])
        .arg(&target));
    expect_code(&out, 1, "restore of a damaged snapshot");
    let restored = target.join(f.src.trim_start_matches('/'));
    assert_eq!(
        fs::read(restored.join("keep.txt")).unwrap(),
        b"in both snapshots"
    );
    if let Ok(bytes) = fs::read(restored.join("new.bin")) {
        assert_ne!(
            bytes,
            fs::read(f.env.path("src/new.bin")).unwrap(),
            "a damaged file cannot be whole"
        );
        panic!("a damaged file was left in place");
    }
}

#[test]
fn a_lost_tree_pack_is_reported_as_whole_directories() {
    let f = fixture();
    // The newer snapshot's tree pack.
    let pack = f.newer_packs.last().unwrap().clone();
    fs::remove_file(&pack).unwrap();
    let report = check_json(&f.env, &[]);
    let name = pack.file_name().unwrap().to_str().unwrap();
    let entry = report["damage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["object"] == format!("pack {name}"))
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    let paths = entry["affected"][0]["paths"].to_string();
    assert!(paths.contains("whole directory"), "{entry}");
    assert_eq!(report["sources"][0]["newest_intact"], f.older.as_str());
}

#[test]
fn repair_index_rebuilds_lost_index_files_from_the_packs() {
    let f = fixture();
    let index_dir = f.env.repo.join("index");
    let names: Vec<PathBuf> = files_below(&index_dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // One index file lost, another damaged.
    fs::remove_file(&names[0]).unwrap();
    flip_byte(&names[1], 20);
    let out = run(f.env.cmd().arg("check"));
    expect_code(&out, 1, "check with a lost index");
    let out = run(f.env.cmd().args(["repair", "index", "--json"]));
    expect_code(&out, 0, "repair index");
    let r = parse_json(&out.stdout);
    assert_eq!(
        r["packs"].as_u64(),
        Some(files_below(&f.env.repo.join("data")).len() as u64)
    );
    let out = run(f.env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check after repair index");
    f.env.restore_verified(&f.newer, &f.env.path("out"));
}

#[test]
fn repair_snapshots_leaves_out_damaged_files_and_keeps_the_original() {
    let f = fixture();
    fs::remove_file(&f.newer_packs[0]).unwrap();
    // Drop the missing pack from the index, then rewrite what lost data.
    expect_code(
        &run(f.env.cmd().args(["repair", "index"])),
        0,
        "repair index",
    );
    let out = run(f
        .env
        .cmd()
        .args(["repair", "snapshots", "--dry-run", "--json"]));
    expect_code(&out, 0, "repair snapshots --dry-run");
    let dry = &parse_json(&out.stdout)["repaired"];
    assert_eq!(dry[0]["removed"][0], format!("{}/new.bin", f.src));
    assert!(dry[0]["repaired"].is_null());
    assert_eq!(f.env.snapshots(&[]).len(), 2);

    let out = run(f.env.cmd().args(["repair", "snapshots", "--json"]));
    expect_code(&out, 0, "repair snapshots");
    let done = &parse_json(&out.stdout)["repaired"];
    assert_eq!(done.as_array().unwrap().len(), 1, "{done}");
    assert_eq!(done[0]["original"], f.newer.as_str());
    let repaired = done[0]["repaired"].as_str().unwrap().to_string();
    let snapshots = f.env.snapshots(&["--tag", "repaired"]);
    assert_eq!(snapshots.len(), 1);
    assert_eq!(f.env.snapshots(&[]).len(), 3, "the original is kept");

    // The repaired snapshot restores whole, without the lost file.
    let target = f.env.path("out");
    f.env.restore_verified(&repaired, &target);
    let restored = target.join(f.src.trim_start_matches('/'));
    assert_eq!(
        fs::read(restored.join("keep.txt")).unwrap(),
        b"in both snapshots"
    );
    assert!(!restored.join("new.bin").exists());

    // Forgetting the damaged original leaves a repository that checks clean.
    expect_code(&run(f.env.cmd().args(["forget", &f.newer])), 0, "forget");
    let out = run(f.env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check after the repair");
}

#[test]
fn read_data_subsets_partition_the_packs_and_find_the_damage() {
    let f = fixture();
    let pack = f.newer_packs[0].clone();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2);
    let total = files_below(&f.env.repo.join("data")).len() as u64;
    let (mut read, mut found) = (0, 0);
    for n in 1..=3 {
        let out =
            run(f
                .env
                .cmd()
                .args(["check", "--json", "--read-data-subset", &format!("{n}/3")]));
        let report = parse_json(&out.stdout);
        read += report["packs_read"].as_u64().unwrap();
        if out.status.code() == Some(1) {
            found += 1;
        }
    }
    assert_eq!(read, total, "the parts 1/3..3/3 must read every pack once");
    assert_eq!(found, 1, "exactly one part holds the damaged pack");
    let out = run(f.env.cmd().args(["check", "--read-data-subset", "100%"]));
    expect_code(&out, 1, "a 100% subset");
    for bad in ["0/3", "4/3", "0%", "150%", "x"] {
        let out = run(f.env.cmd().args(["check", "--read-data-subset", bad]));
        expect_code(&out, 2, &format!("--read-data-subset {bad}"));
    }
}

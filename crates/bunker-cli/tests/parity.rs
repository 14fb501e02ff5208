//! Reed–Solomon parity (`init --parity`): damage within the budget is
//! corrected on read and rewritten by `check --repair`; damage beyond it is
//! reported, never restored wrong.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn fixture() -> (TestEnv, String) {
    let env = TestEnv::new();
    expect_code(
        &run(env.cmd().args(["init", "--parity", "--pack-size", "1M"])),
        0,
        "init --parity",
    );
    let mut rng = Rng::new(61);
    write_random(&env.path("src/big.bin"), 5 << 20, &mut rng);
    for i in 0..20 {
        write_random(
            &env.path(&format!("src/small/{i}")),
            3000 + i * 700,
            &mut rng,
        );
    }
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    (env, src)
}

fn packs(repo: &Path) -> Vec<(PathBuf, u64)> {
    files_below(&repo.join("data"))
}

fn name_matches(pack: &Path) -> bool {
    let bytes = fs::read(pack).unwrap();
    blake3::hash(&bytes).to_hex().as_str() == pack.file_name().unwrap().to_str().unwrap()
}

#[test]
fn every_pack_has_parity() {
    let (env, _) = fixture();
    for (pack, _) in packs(&env.repo) {
        let name = pack.file_name().unwrap().to_str().unwrap();
        let parity = env.repo.join("parity").join(&name[..2]).join(name);
        assert!(parity.is_file(), "no parity for {name}");
    }
}

#[test]
fn damage_within_budget_is_corrected_on_read_and_by_check_repair() {
    let (env, src) = fixture();
    let mut rng = Rng::new(62);
    let packs = packs(&env.repo);
    let (mut trials, mut detected, mut read_ok, mut repaired) = (0, 0, 0, 0);
    for round in 0..16 {
        let (pack, len) = &packs[round % packs.len()];
        let len = *len as usize;
        let copy = env.path(&format!("trial-{round}"));
        copy_dir(&env.repo, &copy);
        let damaged = copy.join(pack.strip_prefix(&env.repo).unwrap());
        // Alternate: a flipped bit; a zeroed 4 KiB block; both; a lost tail.
        let mut bytes = fs::read(&damaged).unwrap();
        match round % 4 {
            0 => bytes[rng.below(len as u64) as usize] ^= 1 << rng.below(8),
            1 => {
                let at = rng.below(len as u64) as usize;
                bytes[at..(at + 4096).min(len)].fill(0);
            }
            2 => {
                bytes[rng.below(len as u64) as usize] ^= 0x80;
                let at = rng.below(len as u64) as usize;
                bytes[at..(at + 4096).min(len)].fill(0);
            }
            _ => bytes.truncate(len - 1 - rng.below((len as u64).min(4000)) as usize),
        }
        fs::write(&damaged, &bytes).unwrap();
        trials += 1;

        let out = env.on_repo(&copy, &["check", "--read-data"]);
        if out.status.code() == Some(1) && stderr(&out).contains("check --repair") {
            detected += 1;
        }
        // Reads are corrected without touching the damaged pack.
        let target = env.path(&format!("trial-{round}-out"));
        let out = env.on_repo(
            &copy,
            &[
                "restore",
                "latest",
                "--verify",
                "--target",
                target.to_str().unwrap(),
            ],
        );
        expect_code(&out, 0, &format!("restore, trial {round}"));
        assert_same_tree(&env.path("src"), &target.join(src.trim_start_matches('/')));
        read_ok += 1;
        assert!(!name_matches(&damaged), "restore rewrote the pack");

        let out = env.on_repo(&copy, &["check", "--repair"]);
        expect_code(&out, 0, &format!("check --repair, trial {round}"));
        assert!(stderr(&out).contains("repaired: pack"), "{}", stderr(&out));
        assert!(name_matches(&damaged), "pack not rewritten whole");
        let out = env.on_repo(&copy, &["check", "--read-data"]);
        expect_code(&out, 0, &format!("check after repair, trial {round}"));
        repaired += 1;
        fs::remove_dir_all(&copy).unwrap();
        fs::remove_dir_all(&target).unwrap();
    }
    eprintln!(
        "parity trials: {trials}; detected {detected}; read correctly {read_ok}; repaired {repaired}"
    );
    assert_eq!((detected, read_ok, repaired), (trials, trials, trials));
}

#[test]
fn a_lost_small_pack_is_rebuilt_from_parity_alone() {
    let (env, src) = fixture();
    // The smallest pack (the trees) spans at most 4 shards: parity holds it all.
    let (pack, _) = packs(&env.repo)
        .into_iter()
        .min_by_key(|(_, len)| *len)
        .unwrap();
    fs::remove_file(&pack).unwrap();
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
    let out = run(env.cmd().args(["check", "--repair"]));
    expect_code(&out, 0, "check --repair");
    assert!(name_matches(&pack));
}

#[test]
fn damage_beyond_the_budget_is_reported_not_restored_wrong() {
    let (env, src) = fixture();
    let (pack, len) = packs(&env.repo)
        .into_iter()
        .max_by_key(|(_, len)| *len)
        .unwrap();
    // Flip a byte in every 16th of the pack: far more than 4 shards.
    let mut bytes = fs::read(&pack).unwrap();
    for i in 0..16 {
        bytes[i * (len as usize / 16)] ^= 0xff;
    }
    fs::write(&pack, &bytes).unwrap();
    let out = run(env.cmd().args(["check", "--repair"]));
    expect_code(&out, 1, "check --repair beyond the budget");
    assert!(
        stderr(&out).contains("parity cannot repair"),
        "{}",
        stderr(&out)
    );
    let target = env.path("out");
    let out = run(env
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&target));
    expect_code(&out, 1, "restore of a damaged snapshot");
    assert!(stderr(&out).contains("big.bin"), "{}", stderr(&out));
    let restored = target.join(src.trim_start_matches('/'));
    assert!(!restored.join("big.bin").exists());
}

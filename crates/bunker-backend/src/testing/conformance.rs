//! The contract of [`Backend`], checked against a live backend: every
//! backend (local, S3, Azure Blob, GCS, SFTP) must pass it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::{Backend, ErrorKind, FileKind};

/// What a service under test is known not to do, declared rather than
/// papered over: each gap skips one check, and the suite says so.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gaps {
    /// Create-if-absent is not enforced (fake-gcs-server ignores
    /// `ifGenerationMatch=0` on the uploads OpenDAL makes).
    pub create_if_absent: bool,
}

/// Bytes that differ from file to file: `len` bytes from `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs every check against `b`, a backend over an empty place; panics
/// with the first broken promise.
pub fn conformance(b: Arc<dyn Backend>, gaps: Gaps) {
    let name = b.location();
    b.create().unwrap_or_else(|e| panic!("{name}: create: {e}"));
    b.probe().unwrap_or_else(|e| panic!("{name}: probe: {e}"));

    whole_files(&*b);
    ranges(&*b);
    missing_files(&*b);
    listing_many_files(&b);
    fan_out_directories(&*b);
    create_if_absent(&b, gaps);
    large_streamed_write(&*b);
    eprintln!("{name}: conformance passed");
}

fn whole_files(b: &dyn Backend) {
    let config = bytes(1, 300);
    b.write(FileKind::Config, "", &config).unwrap();
    assert_eq!(b.read(FileKind::Config, "").unwrap(), config);
    assert_eq!(b.size(FileKind::Config, "").unwrap(), 300);
    assert!(b.exists(FileKind::Config, "").unwrap());
    assert_eq!(b.read_at_most(FileKind::Config, "", 300).unwrap(), config);
    let e = b.read_at_most(FileKind::Config, "", 299).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    // Rewriting a name replaces the file whole.
    let again = bytes(2, 120);
    b.write(FileKind::Config, "", &again).unwrap();
    assert_eq!(b.read(FileKind::Config, "").unwrap(), again);
    // An empty file is a file.
    b.write(FileKind::Lock, "empty", b"").unwrap();
    assert_eq!(b.read(FileKind::Lock, "empty").unwrap(), b"");
    assert_eq!(b.list(FileKind::Lock).unwrap().len(), 1);
    b.remove(FileKind::Lock, "empty").unwrap();
}

fn ranges(b: &dyn Backend) {
    let pack = bytes(3, 1000);
    b.write(FileKind::Pack, "aa11", &pack).unwrap();
    assert_eq!(
        b.read_range(FileKind::Pack, "aa11", 0, 1).unwrap(),
        pack[..1]
    );
    assert_eq!(
        b.read_range(FileKind::Pack, "aa11", 10, 20).unwrap(),
        pack[10..30]
    );
    assert_eq!(
        b.read_range(FileKind::Pack, "aa11", 990, 10).unwrap(),
        pack[990..]
    );
    // Past the end is an error, never a short answer.
    assert!(b.read_range(FileKind::Pack, "aa11", 990, 20).is_err());
    assert!(b.read_range(FileKind::Pack, "aa11", 2000, 5).is_err());
    b.remove(FileKind::Pack, "aa11").unwrap();
}

fn missing_files(b: &dyn Backend) {
    for e in [
        b.read(FileKind::Index, "0badf00d").unwrap_err(),
        b.read_range(FileKind::Pack, "0badf00d", 0, 1).unwrap_err(),
        b.size(FileKind::Snapshot, "0badf00d").unwrap_err(),
    ] {
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    }
    assert!(!b.exists(FileKind::Key, "0badf00d").unwrap());
    // Removing what is not there succeeds.
    b.remove(FileKind::Snapshot, "0badf00d").unwrap();
    b.remove(FileKind::Parity, "0badf00d").unwrap();
    assert!(b.list(FileKind::Tombstone).unwrap().is_empty());
}

/// More files than one page of an object store's listing (1000).
fn listing_many_files(b: &Arc<dyn Backend>) {
    const FILES: usize = 1100;
    let names: Vec<String> = (0..FILES).map(|i| format!("{i:064x}")).collect();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let b = b.clone();
            let names = names.clone();
            std::thread::spawn(move || {
                for (i, n) in names.iter().enumerate().skip(t).step_by(8) {
                    b.write(FileKind::Index, n, &bytes(i as u64, 1 + i % 7))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let listed = b.list(FileKind::Index).unwrap();
    assert_eq!(listed.len(), FILES, "every file listed once");
    for (i, f) in listed.iter().enumerate() {
        assert_eq!(f.name, names[i], "listed in name order");
        assert_eq!(f.size, 1 + (i % 7) as u64, "size of {}", f.name);
    }
    assert_eq!(b.list_names(FileKind::Index).unwrap(), names);
    b.remove_many(FileKind::Index, &names).unwrap();
    assert!(b.list(FileKind::Index).unwrap().is_empty());
}

fn fan_out_directories(b: &dyn Backend) {
    let names = ["00aa", "ab01", "ab02", "ff99"];
    for (i, n) in names.iter().enumerate() {
        b.write(FileKind::Pack, n, &bytes(i as u64, 10)).unwrap();
        b.write(FileKind::Parity, n, &bytes(i as u64, 3)).unwrap();
    }
    let listed: Vec<String> = b
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(listed, names);
    assert_eq!(b.list_names(FileKind::Parity).unwrap(), names);
    for n in names {
        b.remove(FileKind::Pack, n).unwrap();
        b.remove(FileKind::Parity, n).unwrap();
    }
    assert!(b.list(FileKind::Pack).unwrap().is_empty());
}

fn create_if_absent(b: &Arc<dyn Backend>, gaps: Gaps) {
    if gaps.create_if_absent {
        b.write_new(FileKind::Key, "k1", b"first").unwrap();
        let again = b.write_new(FileKind::Key, "k1", b"second");
        eprintln!(
            "{}: GAP declared: create-if-absent not enforced (a second create {})",
            b.location(),
            if again.is_ok() { "succeeded" } else { "failed" }
        );
        b.remove(FileKind::Key, "k1").unwrap();
        return;
    }
    b.write_new(FileKind::Key, "k1", b"first").unwrap();
    let e = b.write_new(FileKind::Key, "k1", b"second").unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    assert_eq!(b.read(FileKind::Key, "k1").unwrap(), b"first");
    b.remove(FileKind::Key, "k1").unwrap();

    // Sixteen racers, one name.
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let racers: Vec<_> = (0..16u8)
        .map(|i| {
            let b = b.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (i, b.write_new(FileKind::Key, "race", &[i; 64]))
            })
        })
        .collect();
    let outcomes: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<u8> = outcomes
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| *i)
        .collect();
    for (_, r) in &outcomes {
        if let Err(e) = r {
            assert_eq!(
                e.kind,
                ErrorKind::AlreadyExists,
                "a loser fails as such: {e}"
            );
        }
    }
    let stored = b.read(FileKind::Key, "race").unwrap();
    assert_eq!(winners.len(), 1, "exactly one racer creates the file");
    assert_eq!(
        stored, [winners[0]; 64],
        "the file holds the winner's bytes"
    );
    b.remove(FileKind::Key, "race").unwrap();
}

/// A file bigger than one upload piece, staged and committed piece by piece.
fn large_streamed_write(b: &dyn Backend) {
    let data = bytes(9, 20 << 20);
    let mut staged = b.stage(FileKind::Pack).unwrap();
    for piece in data.chunks(1 << 20) {
        staged.append(piece).unwrap();
    }
    // Nothing is visible before the commit.
    assert!(b.list(FileKind::Pack).unwrap().is_empty());
    b.commit(FileKind::Pack, "bb22", staged).unwrap();
    assert_eq!(b.size(FileKind::Pack, "bb22").unwrap(), data.len() as u64);
    let tail = b
        .read_range(FileKind::Pack, "bb22", data.len() as u64 - 4096, 4096)
        .unwrap();
    assert_eq!(tail, data[data.len() - 4096..]);
    assert!(
        b.read(FileKind::Pack, "bb22").unwrap() == data,
        "bytes differ"
    );
    // Nothing is left staged behind a commit.
    let staged: BTreeSet<String> = b
        .list_staged()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(staged.is_empty(), "left staged: {staged:?}");
    b.remove(FileKind::Pack, "bb22").unwrap();
}

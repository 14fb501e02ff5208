//! Storage faults injected by wrapping the backend: writes that fail, that
//! are cut short yet reported done, that die half-written, and reads that
//! return flipped bits. Whatever the storage does, the engine must report
//! the failure, never hand back wrong bytes, and leave a repository that a
//! later run (on healthy storage) completes and checks clean.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bunker_backend::testing::{Fault, FaultyBackend, Service, TestServices};
use bunker_engine::backend::{Backend, LocalBackend};
use bunker_engine::backup::{backup, BackupOptions, BackupSource};
use bunker_engine::check::{check, CheckOptions};
use bunker_engine::format::keyfile::KdfParams;
use bunker_engine::restore::{restore, RestoreOptions};
use bunker_engine::{InitOptions, NoProgress, Repository};

const PASSWORD: &[u8] = b"fault injection";

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    faulty: Arc<FaultyBackend>,
    source: PathBuf,
}

/// One world per storage: a local directory, and S3 (moto) when the test
/// servers run: the wrapper injects the same faults into either.
fn worlds(test: &str) -> Vec<World> {
    let mut worlds = vec![world(None)];
    if let Some(services) = TestServices::get(test) {
        let location = services.location(Service::S3, "faults");
        let backend =
            bunker_backend::open(&location, &services.settings(Service::S3), true).unwrap();
        worlds.push(world(Some(backend)));
    }
    worlds
}

/// A repository with 1 MiB packs behind the wrapper (over `storage`, by
/// default a local directory), and a source of 6 MiB of random data in 12
/// files.
fn world(storage: Option<Arc<dyn Backend>>) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();

    let inner: Arc<dyn Backend> =
        storage.unwrap_or_else(|| Arc::new(LocalBackend::open(&root.join("repo"), true).unwrap()));
    let faulty = Arc::new(FaultyBackend::new(inner));
    Repository::init(
        faulty.clone(),
        PASSWORD,
        InitOptions {
            kdf: KdfParams::MIN,
            pack_size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let source = root.join("src");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..12 {
        let mut data = vec![0u8; 512 << 10];
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let path = source.join(format!("d{}/f{i}", i % 3));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    World {
        _tmp: tmp,
        root,
        faulty,
        source,
    }
}

impl World {
    fn open(&self) -> Repository {
        Repository::open(self.faulty.clone(), PASSWORD).unwrap()
    }

    fn backup(&self) -> bunker_engine::Result<bunker_engine::backup::BackupOutcome> {
        backup(
            self.open(),
            BackupSource::Paths(vec![self.source.clone()]),
            BackupOptions {
                host: Some("faults".into()),
                ..Default::default()
            },
            Arc::new(NoProgress),
        )
    }

    fn check(&self, read_data: bool) -> bunker_engine::check::CheckReport {
        check(
            self.open(),
            CheckOptions {
                read_data,
                ..Default::default()
            },
            Arc::new(NoProgress),
        )
        .unwrap()
    }

    /// Restores the newest snapshot; returns the restore's errors.
    fn restore(&self, target: &Path) -> Vec<String> {
        let repo = self.open().load_index().unwrap();
        let snapshots = repo.snapshots().unwrap();
        let newest = snapshots.last().expect("a snapshot");
        let summary = restore(
            Arc::new(repo.reload_index().unwrap()),
            &newest.snapshot.tree,
            &RestoreOptions {
                target: target.to_path_buf(),
                subpath: self.source.display().to_string(),
                ..Default::default()
            },
            Arc::new(NoProgress),
        );
        match summary {
            Ok(s) => s.errors,
            Err(e) => vec![e.to_string()],
        }
    }

    fn snapshots(&self) -> usize {
        self.open().snapshots().unwrap().len()
    }

    /// Every restored file equals its source, and those missing are named in
    /// `errors` (or the restore failed as a whole, naming why).
    fn assert_restored(&self, target: &Path, errors: &[String]) {
        let nothing_written = std::fs::read_dir(target).map_or(true, |mut d| d.next().is_none());
        if nothing_written {
            assert!(!errors.is_empty(), "nothing restored, and no error");
            return;
        }
        for d in 0..3 {
            for entry in std::fs::read_dir(self.source.join(format!("d{d}"))).unwrap() {
                let src = entry.unwrap().path();
                let rel = src.strip_prefix(&self.source).unwrap();
                match std::fs::read(target.join(rel)) {
                    Ok(bytes) => assert!(
                        bytes == std::fs::read(&src).unwrap(),
                        "{} restored with wrong bytes",
                        rel.display()
                    ),
                    // Named itself, or its whole directory is.
                    Err(_) => assert!(
                        errors.iter().any(|e| e.contains(rel.to_str().unwrap())
                            || e.contains(&format!(
                                "{}: directory not restored",
                                rel.parent().unwrap().display()
                            ))),
                        "{} missing but not named in {errors:?}",
                        rel.display()
                    ),
                }
            }
        }
    }
}

#[test]
fn failing_writes_fail_the_backup_and_leave_a_sound_repository() {
    for from in [0, 2, 5] {
        for w in worlds("failing_writes_fail_the_backup") {
            w.faulty.set(Fault::FailFrom(from));
            let err = w.backup().err().expect("backup must fail");
            assert!(err.to_string().contains("injected"), "{err}");
            assert_eq!(w.snapshots(), 0);
            w.faulty.set(Fault::None);
            let report = w.check(true);
            assert!(
                report.errors.is_empty(),
                "fail from {from}: {:?}",
                report.errors
            );
            w.backup().unwrap();
            assert!(w.check(true).errors.is_empty());
            let target = w.root.join("out");
            let errors = w.restore(&target);
            assert!(errors.is_empty(), "{errors:?}");
            w.assert_restored(&target, &errors);
        }
    }
}

#[test]
fn a_write_dying_midway_is_never_trusted() {
    for w in worlds("a_write_dying_midway_is_never_trusted") {
        w.faulty.set(Fault::DieMidWrite(1));
        assert!(w.backup().is_err());
        w.faulty.set(Fault::None);
        // The half-written pack was never indexed: at worst a harmless leftover.
        let report = w.check(true);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let outcome = w.backup().unwrap();
        assert!(outcome.id.is_some());
        let target = w.root.join("out");
        let errors = w.restore(&target);
        assert!(errors.is_empty(), "{errors:?}");
        w.assert_restored(&target, &errors);
    }
}

#[test]
fn a_storage_that_lies_about_a_write_is_caught_by_check_and_restore() {
    for w in worlds("a_storage_that_lies_about_a_write") {
        w.faulty.set(Fault::Truncate(2));
        w.backup().unwrap();
        w.faulty.set(Fault::None);
        let report = w.check(false);
        assert!(
            report.damage.iter().any(|d| d.object.starts_with("pack ")),
            "structure check missed a truncated pack: {:?}",
            report.errors
        );
        assert!(!report.sources.is_empty() && report.sources[0].newest_intact.is_none());
        let target = w.root.join("out");
        let errors = w.restore(&target);
        assert!(!errors.is_empty(), "restore did not notice the lost data");
        w.assert_restored(&target, &errors);
    }
}

#[test]
fn flipped_bits_on_read_are_detected_never_returned() {
    for w in worlds("flipped_bits_on_read_are_detected") {
        w.backup().unwrap();
        w.faulty.set(Fault::FlipReads);
        let report = w.check(true);
        assert!(
            !report.errors.is_empty(),
            "check --read-data missed flipped reads"
        );
        let target = w.root.join("out");
        let errors = w.restore(&target);
        assert!(!errors.is_empty(), "restore did not notice flipped reads");
        w.assert_restored(&target, &errors);
        // Healthy reads again: everything is there.
        w.faulty.set(Fault::None);
        assert!(w.check(true).errors.is_empty());
    }
}

#[test]
fn deletes_the_storage_refuses_are_not_yet_and_a_later_prune_finishes() {
    for w in worlds("deletes_the_storage_refuses_are_not_yet") {
        w.backup().unwrap();
        // A second source state, so the first snapshot's data becomes garbage.
        for i in 0..12 {
            let path = w.source.join(format!("d{}/f{i}", i % 3));
            let mut data = std::fs::read(&path).unwrap();
            data.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            std::fs::write(path, data).unwrap();
        }
        w.backup().unwrap();
        w.faulty.set(Fault::RefuseDeletes);
        // forget withdraws by tombstone; the file it cannot delete stays.
        let repo = w.open();
        let first = repo.snapshots().unwrap()[0].id;
        bunker_engine::forget::remove(&repo, &[first]).unwrap();
        assert_eq!(w.snapshots(), 1);
        // Two prunes (condemn, then delete) with deletes refused: each ends
        // well, counting what it could not delete, and nothing is lost.
        let options = bunker_engine::prune::PruneOptions::default();
        let mut refused = 0;
        for _ in 0..2 {
            let report = bunker_engine::prune::prune(w.open(), &options).unwrap();
            refused += report.deletes_refused;
            assert_eq!(report.packs_deleted, 0, "{report:?}");
        }
        assert!(refused > 0);
        assert!(w.check(true).errors.is_empty());
        // With delete rights back, prune finishes the work.
        w.faulty.set(Fault::None);
        let mut deleted = 0;
        for _ in 0..2 {
            let report = bunker_engine::prune::prune(w.open(), &options).unwrap();
            assert_eq!(report.deletes_refused, 0);
            deleted += report.packs_deleted;
        }
        assert!(
            deleted > 0,
            "the first snapshot's packs are deleted at last"
        );
        assert!(w.check(true).errors.is_empty());
        let target = w.root.join("out");
        let errors = w.restore(&target);
        assert!(errors.is_empty(), "{errors:?}");
        w.assert_restored(&target, &errors);
    }
}

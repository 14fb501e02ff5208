//! Object Lock renewal. Every file a repository keeps was written with a
//! retention date (docs/FORMAT.md §4.2); maintenance extends it to the
//! policy's days from now, so no file a kept snapshot needs ever becomes
//! deletable while the repository is looked after. Kopia writes retention
//! dates but never renews them: a repository it stops writing to becomes
//! deletable after the period.

use bunker_backend::FileKind;

use crate::repository::Repository;
use crate::Result;

/// The kinds of files kept under retention (locks apart: they protect nothing).
const RETAINED: [FileKind; 8] = [
    FileKind::Config,
    FileKind::Key,
    FileKind::Pack,
    FileKind::Parity,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::Tombstone,
    FileKind::Run,
];

/// Requests in flight at once.
const WORKERS: usize = 8;

/// Extends the retention of every file of the repository to the policy's
/// days from now; the number of files. Nothing when it has no policy.
pub fn renew<S: Sync>(repo: &Repository<S>) -> Result<u64> {
    if repo.config().object_lock.is_none() {
        return Ok(0);
    }
    let backend = repo.backend();
    let mut files: Vec<(FileKind, String)> = vec![(FileKind::Config, String::new())];
    for kind in &RETAINED[1..] {
        files.extend(backend.list_names(*kind)?.into_iter().map(|n| (*kind, n)));
    }
    let chunk = files.len().div_ceil(WORKERS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .try_for_each(|(kind, name)| backend.extend_retention(*kind, name))
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a renewal thread panicked"))
    })?;
    Ok(files.len() as u64)
}

//! Read-ahead for remote repositories: a blob is read with the rest of its
//! pack (or, in a large pack, the stretch that follows it), and the next
//! blobs of a restore, stored near it, come from memory. One request then
//! serves many blobs, which is what hides a high-latency link; and a pack
//! whose blobs belong to several files (a backup reads files in parallel)
//! is downloaded once, not once per file.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use bunker_format::id::PackId;

/// Packs up to this size are read whole.
pub(crate) const WHOLE_PACK: u64 = 32 << 20;
/// Bytes read from a larger pack in one request.
pub(crate) const SEGMENT: u64 = 8 << 20;
/// Bytes read after a tree blob on local storage (its directory's other
/// pieces follow it).
pub(crate) const LOCAL_TREE_WINDOW: u64 = 256 << 10;
/// Segments kept: a few per restore thread (at most 256 MiB).
const KEPT: usize = 8;

/// A stretch of a pack as stored.
struct Segment {
    pack: PackId,
    start: u64,
    bytes: Arc<Vec<u8>>,
}

/// The segments read most recently, and those being read.
#[derive(Default)]
pub(crate) struct Readahead {
    segments: Mutex<VecDeque<Segment>>,
    /// Segments some thread is downloading now: another thread that wants
    /// one waits for it rather than download it again.
    fetching: Mutex<HashSet<(PackId, u64)>>,
    fetched: Condvar,
}

/// The right to download one segment; dropping it lets waiters look again.
pub(crate) struct Fetch<'a> {
    readahead: &'a Readahead,
    key: (PackId, u64),
}

impl Drop for Fetch<'_> {
    fn drop(&mut self) {
        let mut fetching = self.readahead.fetching.lock().expect("readahead lock");
        fetching.remove(&self.key);
        self.readahead.fetched.notify_all();
    }
}

impl Readahead {
    /// `length` bytes at `offset` of `pack`, if a kept segment holds them.
    pub(crate) fn get(&self, pack: &PackId, offset: u64, length: u64) -> Option<Vec<u8>> {
        let segments = self.segments.lock().expect("readahead lock");
        segments.iter().find_map(|s| {
            let end = s.start + s.bytes.len() as u64;
            (s.pack == *pack && s.start <= offset && offset + length <= end).then(|| {
                let at = (offset - s.start) as usize;
                s.bytes[at..at + length as usize].to_vec()
            })
        })
    }

    /// The right to download the segment of `pack` at `start`, or `None`
    /// once another thread has downloaded it (look in the kept segments).
    pub(crate) fn fetch(&self, pack: PackId, start: u64) -> Option<Fetch<'_>> {
        let key = (pack, start);
        let mut fetching = self.fetching.lock().expect("readahead lock");
        if !fetching.contains(&key) {
            fetching.insert(key);
            return Some(Fetch {
                readahead: self,
                key,
            });
        }
        while fetching.contains(&key) {
            fetching = self.fetched.wait(fetching).expect("readahead lock");
        }
        None
    }

    /// Keeps a segment read from `pack` at `start`, dropping the oldest.
    pub(crate) fn keep(&self, pack: PackId, start: u64, bytes: Vec<u8>) {
        let mut segments = self.segments.lock().expect("readahead lock");
        if segments.len() >= KEPT {
            segments.pop_front();
        }
        segments.push_back(Segment {
            pack,
            start,
            bytes: Arc::new(bytes),
        });
    }
}

//! Read-ahead for remote repositories: a blob is read with the stretch of
//! its pack that follows it, and the next blobs of a restore (stored one
//! after another, as backup wrote them) come from memory. One request then
//! serves many blobs, which is what hides a high-latency link.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bunker_format::id::PackId;

/// Bytes read from a pack in one request.
pub(crate) const SEGMENT: u64 = 4 << 20;
/// Segments kept: a few per restore thread.
const KEPT: usize = 8;

/// A stretch of a pack as stored.
struct Segment {
    pack: PackId,
    start: u64,
    bytes: Arc<Vec<u8>>,
}

/// The segments read most recently.
#[derive(Default)]
pub(crate) struct Readahead {
    segments: Mutex<VecDeque<Segment>>,
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

//! Content-defined chunking: FastCDC (2020) with a gear table keyed per repository.
//!
//! The cut-point scan is the `fastcdc` crate's; the 256-entry gear table is not
//! its public one but 256 words drawn from BLAKE3 in keyed XOF mode, so chunk
//! boundaries depend on a repository secret and an observer cannot predict them
//! for a known file. The reasoning and its limits are in `docs/FORMAT.md`.

use std::io::{self, Read};
use std::sync::Arc;

use fastcdc::v2020::{cut_gear, select_masks, Normalization};
use zeroize::Zeroize;

use crate::FormatError;

/// Chunk size bounds, stored in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct ChunkerParams {
    /// No chunk is smaller, except a file's last.
    #[n(0)]
    pub min_size: u32,
    /// Expected chunk size.
    #[n(1)]
    pub avg_size: u32,
    /// No chunk is larger.
    #[n(2)]
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 128 KiB / 512 KiB / 2 MiB; see `docs/FORMAT.md` for why.
    fn default() -> Self {
        ChunkerParams {
            min_size: 128 << 10,
            avg_size: 512 << 10,
            max_size: 2 << 20,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds against what FastCDC supports.
    pub fn validate(&self) -> Result<(), FormatError> {
        use fastcdc::v2020::*;
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min < avg
            && avg < max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(FormatError::Malformed("chunker sizes out of range"))
        }
    }
}

/// The keyed gear table and its shifted copy: secret (they would let an
/// observer predict cut points), so wiped when the last chunker drops them.
struct GearTable([u64; 256], [u64; 256]);

impl Drop for GearTable {
    fn drop(&mut self) {
        self.0.zeroize();
        self.1.zeroize();
    }
}

/// A keyed FastCDC chunker. Cheap to clone; share one per repository.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Arc<GearTable>,
}

impl Chunker {
    /// A chunker whose gear table is derived from `key`.
    pub fn new(params: ChunkerParams, key: &[u8; 32]) -> Self {
        let mut words = zeroize::Zeroizing::new([0u8; 256 * 8]);
        blake3::Hasher::new_keyed(key)
            .update(b"gear table")
            .finalize_xof()
            .fill(words.as_mut());
        let mut table = GearTable([0u64; 256], [0u64; 256]);
        for (i, w) in words.chunks_exact(8).enumerate() {
            table.0[i] = u64::from_le_bytes(w.try_into().expect("8-byte word"));
            table.1[i] = table.0[i] << 1;
        }
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, Normalization::Level1);
        Chunker {
            params,
            mask_s,
            mask_l,
            gear: Arc::new(table),
        }
    }

    /// The size bounds in use.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data` (all of it if `data` is final and short).
    fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear.0,
            &self.gear.1,
        );
        len
    }

    /// Splits a stream into chunks. Memory: a buffer of twice the maximum chunk size.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<R> {
        self.stream_with_buffer(reader, Vec::new())
    }

    /// Like [`Chunker::stream`], reusing `buffer` (get it back with
    /// [`ChunkStream::into_buffer`]): allocating and zeroing a fresh 8 MiB
    /// buffer per file dominated backups of many small files.
    pub fn stream_with_buffer<R: Read>(&self, reader: R, mut buffer: Vec<u8>) -> ChunkStream<R> {
        buffer.resize(2 * self.params.max_size as usize, 0);
        ChunkStream {
            chunker: self.clone(),
            reader,
            buf: buffer,
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

/// Iterator over the chunks of a stream, from [`Chunker::stream`].
pub struct ChunkStream<R> {
    chunker: Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> ChunkStream<R> {
    /// The buffer, for the next [`Chunker::stream_with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn fill(&mut self) -> io::Result<()> {
        let max = self.chunker.params.max_size as usize;
        if self.eof || self.end - self.start >= max {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while !self.eof && self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for ChunkStream<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            return Some(Err(e));
        }
        if self.start == self.end {
            return None;
        }
        let window = &self.buf[self.start..self.end];
        // A short window that is not the end of the stream cannot happen: fill()
        // tops the window up to max_size unless the stream ended.
        let len = self.chunker.cut(window);
        let chunk = window[..len].to_vec();
        self.start += len;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 32768,
        }
    }

    #[test]
    fn chunks_concatenate_to_input_and_respect_bounds() {
        let data = pseudo_random(500_000, 1);
        let chunker = Chunker::new(small(), &[1u8; 32]);
        let chunks: Vec<Vec<u8>> = chunker.stream(&data[..]).map(|c| c.unwrap()).collect();
        assert_eq!(chunks.concat(), data);
        for c in &chunks[..chunks.len() - 1] {
            assert!(
                c.len() >= 2048 && c.len() <= 32768,
                "chunk of {} bytes",
                c.len()
            );
        }
        assert!(
            chunks.len() > 20,
            "expected ~60 chunks, got {}",
            chunks.len()
        );
    }

    #[test]
    fn boundaries_depend_on_key_and_resync_after_insert() {
        let data = pseudo_random(400_000, 2);
        let a = Chunker::new(small(), &[1u8; 32]);
        let b = Chunker::new(small(), &[2u8; 32]);
        let lens =
            |c: &Chunker, d: &[u8]| c.stream(d).map(|x| x.unwrap().len()).collect::<Vec<_>>();
        assert_ne!(lens(&a, &data), lens(&b, &data));

        let mut shifted = data[..100_000].to_vec();
        shifted.extend_from_slice(b"inserted bytes");
        shifted.extend_from_slice(&data[100_000..]);
        let before: std::collections::HashSet<Vec<u8>> =
            a.stream(&data[..]).map(|c| c.unwrap()).collect();
        let after: Vec<Vec<u8>> = a.stream(&shifted[..]).map(|c| c.unwrap()).collect();
        let shared = after.iter().filter(|c| before.contains(*c)).count();
        assert!(
            shared + 3 >= after.len(),
            "only {shared} of {} chunks survived an insert",
            after.len()
        );
    }

    #[test]
    fn reused_buffer_gives_the_same_chunks() {
        let a = pseudo_random(300_000, 3);
        let b = pseudo_random(200_000, 4);
        let c = Chunker::new(small(), &[7u8; 32]);
        let fresh: Vec<Vec<u8>> = c.stream(&b[..]).map(|x| x.unwrap()).collect();
        let mut first = c.stream_with_buffer(&a[..], Vec::new());
        while first.next().is_some() {}
        let reused: Vec<Vec<u8>> = c
            .stream_with_buffer(&b[..], first.into_buffer())
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(fresh, reused);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let c = Chunker::new(small(), &[0u8; 32]);
        assert_eq!(c.stream(&b""[..]).count(), 0);
        let one: Vec<_> = c.stream(&b"x"[..]).map(|c| c.unwrap()).collect();
        assert_eq!(one, vec![b"x".to_vec()]);
    }

    #[test]
    fn default_params_are_valid() {
        ChunkerParams::default().validate().unwrap();
        assert!(ChunkerParams {
            min_size: 10,
            avg_size: 20,
            max_size: 30
        }
        .validate()
        .is_err());
    }
}

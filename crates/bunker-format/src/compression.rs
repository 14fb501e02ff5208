//! The compression envelope shared by blobs and whole-file objects.
//!
//! One flag byte, then the payload: `0` raw, `1` a zstd frame. Compression is
//! kept only when it saves at least 1/64 of the size, because decompressing
//! costs restore time and a near-zero saving is not worth it.

use std::cell::RefCell;

use crate::FormatError;

const RAW: u8 = 0;
const ZSTD: u8 = 1;

/// Default zstd level: level 3 compresses text about 4x at several hundred
/// MB/s per core, fast enough to keep up with reading on typical disks.
pub const DEFAULT_LEVEL: i32 = 3;

thread_local! {
    // zstd contexts are costly to create (a few hundred KiB each); every
    // thread keeps one of each for all the blobs it handles.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Appends `data` compressed to `out`; returns the compressed length.
fn zstd_compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<usize> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        let mut end = std::io::Cursor::new(out);
        end.set_position(end.get_ref().len() as u64);
        slot.as_mut()
            .expect("just set")
            .1
            .compress_to_buffer(data, &mut end)
    })
}

fn zstd_decompress(data: &[u8], max_len: usize) -> std::io::Result<Vec<u8>> {
    // Room for what the frame says it holds, within the bound: reserving
    // the bound itself (a gigabyte for whole-file objects) for every small
    // object costs memory. A frame holding more than it says fails.
    let room = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n <= max_len as u64 => n as usize,
        Ok(Some(_)) => {
            return Err(std::io::Error::other(
                "the frame holds more than the expected length",
            ))
        }
        _ => max_len,
    };
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut().expect("just set").decompress(data, room)
    })
}

/// Wraps `data` in the envelope, compressed when it pays.
pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    compress_into(data, level, &mut out);
    out
}

/// The largest envelope of `len` bytes of data.
pub fn max_envelope_len(len: usize) -> usize {
    1 + zstd::zstd_safe::compress_bound(len).max(len)
}

/// Appends the envelope of `data` to `out`: compressed straight into place,
/// so a blob's bytes are not copied between compression and encryption.
pub fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    let start = out.len();
    if data.len() >= 64 {
        out.push(ZSTD);
        match zstd_compress_into(data, level, out) {
            Ok(n) if n + data.len() / 64 < data.len() => return,
            _ => out.truncate(start),
        }
    }
    out.reserve(data.len() + 1);
    out.push(RAW);
    out.extend_from_slice(data);
}

/// Unwraps the envelope. `max_len` bounds the decompressed size (known for
/// blobs from the index; a generous bound for other objects).
pub fn decompress(envelope: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    match envelope.split_first() {
        Some((&RAW, rest)) => {
            if rest.len() > max_len {
                return Err(FormatError::Malformed(
                    "stored length exceeds the expected length",
                ));
            }
            Ok(rest.to_vec())
        }
        Some((&ZSTD, rest)) => {
            zstd_decompress(rest, max_len).map_err(|e| FormatError::Compression(e.to_string()))
        }
        Some(_) => Err(FormatError::Malformed("unknown compression flag")),
        None => Err(FormatError::Malformed("empty compression envelope")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressible_data_is_compressed_random_is_not() {
        let text = b"hello world ".repeat(1000);
        let env = compress(&text, DEFAULT_LEVEL);
        assert_eq!(env[0], ZSTD);
        assert!(env.len() < text.len() / 10);
        let mut random = vec![0u8; 10_000];
        crate::crypto::fill_random(&mut random);
        let env = compress(&random, DEFAULT_LEVEL);
        assert_eq!(env[0], RAW);
        assert_eq!(decompress(&env, random.len()).unwrap(), random);
    }

    #[test]
    fn rejects_oversize_and_garbage() {
        let text = b"abc".repeat(1000);
        let env = compress(&text, DEFAULT_LEVEL);
        assert!(decompress(&env, 10).is_err());
        assert!(decompress(&[7, 1, 2], 10).is_err());
        assert!(decompress(&[], 10).is_err());
    }

    /// An object is decompressed into the room its frame declares, not into
    /// the 1 GiB bound of whole-file objects.
    #[test]
    fn reserves_what_the_frame_declares() {
        let text = b"abc".repeat(1000);
        let env = compress(&text, DEFAULT_LEVEL);
        let plain = decompress(&env, 1 << 30).unwrap();
        assert_eq!(plain, text);
        assert_eq!(plain.capacity(), text.len());
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(0u8..4, 0..20_000)) {
            let env = compress(&data, DEFAULT_LEVEL);
            prop_assert_eq!(decompress(&env, data.len()).unwrap(), data);
        }
    }
}

//! Reed–Solomon parity for packs, an option chosen at `init`.
//!
//! A pack is cut into `k` data shards of equal length (the last one padded
//! with zeros, at most [`MAX_DATA_SHARDS`], each a multiple of 4 KiB), and
//! [`PARITY_SHARDS`] parity shards are computed over GF(2⁸). The parity file
//! stores every shard's BLAKE3 hash, so damaged shards are *located* by their
//! hashes and then *rebuilt* as erasures: any damage confined to at most
//! `PARITY_SHARDS` shards of a pack (a flipped bit, a zeroed 4 KiB block, a
//! truncated tail shorter than a shard…) is corrected, and the result is
//! accepted only if it hashes to the pack's name.
//!
//! ```text
//! parity = "BKR1" ‖ version:u8 (=1) ‖ k:u8 ‖ m:u8 ‖ 0x00
//!          ‖ pack_length:u64 ‖ shard_length:u32
//!          ‖ BLAKE3(shard)×(k+m) ‖ BLAKE3(all of the above)
//!          ‖ parity shard×m
//! ```
//! Parity is computed over the stored (encrypted) pack, so it reveals
//! nothing a pack does not; it is not encrypted.

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::FormatError;

const MAGIC: &[u8; 4] = b"BKR1";
const VERSION: u8 = 1;
/// At most this many data shards per pack.
pub const MAX_DATA_SHARDS: usize = 64;
/// Parity shards per pack: how many damaged shards can be rebuilt.
pub const PARITY_SHARDS: usize = 4;
/// Shard lengths are multiples of this, so an aligned 4 KiB block of damage
/// touches one shard.
const SHARD_ALIGN: usize = 4096;
const FIXED_HEADER: usize = 4 + 4 + 8 + 4;

/// The outcome of checking a pack against its parity.
#[derive(Debug, PartialEq, Eq)]
pub enum Repair {
    /// The pack is whole.
    Intact,
    /// The pack was damaged; here are its original bytes, verified by hash.
    Repaired {
        /// The pack as written.
        bytes: Vec<u8>,
        /// How many shards were rebuilt.
        shards: usize,
    },
}

fn layout(pack_length: usize) -> (usize, usize) {
    let per_shard = pack_length.div_ceil(MAX_DATA_SHARDS).max(1);
    let shard = per_shard.div_ceil(SHARD_ALIGN) * SHARD_ALIGN;
    (pack_length.div_ceil(shard).max(1), shard)
}

fn data_shards(pack: &[u8], k: usize, shard: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| {
            let mut s = vec![0u8; shard];
            let start = (i * shard).min(pack.len());
            let end = ((i + 1) * shard).min(pack.len());
            s[..end - start].copy_from_slice(&pack[start..end]);
            s
        })
        .collect()
}

fn codec(k: usize, m: usize) -> Result<ReedSolomon, FormatError> {
    ReedSolomon::new(k, m).map_err(|_| FormatError::Malformed("parity: impossible shard counts"))
}

/// Computes the parity file of a stored pack.
pub fn encode(pack: &[u8]) -> Vec<u8> {
    let (k, shard) = layout(pack.len());
    let data = data_shards(pack, k, shard);
    let mut parity = vec![vec![0u8; shard]; PARITY_SHARDS];
    codec(k, PARITY_SHARDS)
        .expect("k is within 1..=64")
        .encode_sep(&data, &mut parity)
        .expect("shards have equal lengths");
    let mut out =
        Vec::with_capacity(FIXED_HEADER + 32 * (k + PARITY_SHARDS + 1) + shard * PARITY_SHARDS);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, k as u8, PARITY_SHARDS as u8, 0]);
    out.extend_from_slice(&(pack.len() as u64).to_le_bytes());
    out.extend_from_slice(&(shard as u32).to_le_bytes());
    for s in data.iter().chain(&parity) {
        out.extend_from_slice(blake3::hash(s).as_bytes());
    }
    let check = blake3::hash(&out);
    out.extend_from_slice(check.as_bytes());
    for p in &parity {
        out.extend_from_slice(p);
    }
    out
}

/// Checks `pack` (possibly damaged, truncated or padded) against its parity
/// file and rebuilds it if it can. `name` is the pack's id, BLAKE3 of its
/// original bytes: a rebuilt pack must hash to it.
/// The length of the parity file of a pack of `pack_length` bytes.
pub fn file_length(pack_length: u64) -> u64 {
    let (k, shard) = layout(pack_length as usize);
    (FIXED_HEADER + 32 * (k + PARITY_SHARDS) + 32 + PARITY_SHARDS * shard) as u64
}

/// Checks `pack` (as read; possibly damaged or short) against its parity
/// file, and rebuilds it if it can. `pack_length` is the pack's true length
/// (from the index): the parity file must have exactly the geometry that
/// length implies, so a planted parity file cannot make a reader allocate
/// more than the pack itself.
pub fn repair(
    pack: &[u8],
    parity_file: &[u8],
    name: &[u8; 32],
    pack_length: u64,
) -> Result<Repair, FormatError> {
    let bad = |what| FormatError::Malformed(what);
    if parity_file.len() < FIXED_HEADER || &parity_file[..4] != MAGIC {
        return Err(bad("not a bunker parity file"));
    }
    if parity_file[4] != VERSION {
        return Err(FormatError::UnsupportedVersion {
            kind: "parity file",
            version: parity_file[4] as u32,
            supported: VERSION as u32,
        });
    }
    let (k, m) = (parity_file[5] as usize, parity_file[6] as usize);
    let shard = u32::from_le_bytes(parity_file[16..20].try_into().expect("4 bytes")) as usize;
    if u64::from_le_bytes(parity_file[8..16].try_into().expect("8 bytes")) != pack_length
        || (k, shard) != layout(pack_length as usize)
        || m != PARITY_SHARDS
        || parity_file.len() as u64 != file_length(pack_length)
    {
        return Err(bad("parity file does not have the geometry of its pack"));
    }
    let hashes_end = FIXED_HEADER + 32 * (k + m);
    let header_end = hashes_end + 32;
    if k == 0 || m == 0 || k + m > 256 || shard == 0 {
        return Err(bad("parity file has impossible shard counts"));
    }
    let expected_len = (m as u64)
        .checked_mul(shard as u64)
        .and_then(|p| p.checked_add(header_end as u64))
        .ok_or(bad("parity file sizes overflow"))?;
    if parity_file.len() as u64 != expected_len || (k as u64) * (shard as u64) < pack_length {
        return Err(bad("parity file length does not match its header"));
    }
    if blake3::hash(&parity_file[..hashes_end]).as_bytes() != &parity_file[hashes_end..header_end] {
        return Err(bad("parity file header is damaged"));
    }
    let hash_of = |i: usize| &parity_file[FIXED_HEADER + 32 * i..FIXED_HEADER + 32 * (i + 1)];
    let pack = &pack[..pack.len().min(pack_length as usize)];
    if pack.len() as u64 == pack_length && blake3::hash(pack).as_bytes() == name {
        return Ok(Repair::Intact);
    }
    let mut shards: Vec<Option<Vec<u8>>> = data_shards(pack, k, shard)
        .into_iter()
        .chain((0..m).map(|i| {
            let start = header_end + i * shard;
            parity_file[start..start + shard].to_vec()
        }))
        .enumerate()
        .map(|(i, s)| (blake3::hash(&s).as_bytes() == hash_of(i)).then_some(s))
        .collect();
    let damaged = shards.iter().filter(|s| s.is_none()).count();
    if damaged > m {
        return Err(bad("pack damage exceeds what its parity can repair"));
    }
    codec(k, m)?
        .reconstruct_data(&mut shards)
        .map_err(|_| bad("parity reconstruction failed"))?;
    let mut bytes = Vec::with_capacity(k * shard);
    for s in shards.into_iter().take(k) {
        bytes.extend_from_slice(&s.expect("reconstructed"));
    }
    bytes.truncate(pack_length as usize);
    if blake3::hash(&bytes).as_bytes() != name {
        return Err(bad("pack rebuilt from parity does not match its name"));
    }
    Ok(Repair::Repaired {
        bytes,
        shards: damaged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn name(p: &[u8]) -> [u8; 32] {
        *blake3::hash(p).as_bytes()
    }

    #[test]
    fn intact_packs_stay_intact() {
        for len in [1, 100, 4096, 4097, 1 << 20, (16 << 20) + 3] {
            let p = pack(len, 1);
            let parity = encode(&p);
            assert_eq!(
                repair(&p, &parity, &name(&p), p.len() as u64).unwrap(),
                Repair::Intact,
                "{len}"
            );
        }
    }

    #[test]
    fn budget_damage_is_repaired() {
        let p = pack(16 << 20, 2);
        let parity = encode(&p);
        // A flipped bit, a zeroed 4 KiB block, and a truncated tail.
        let mut d = p.clone();
        d[12345] ^= 0x10;
        d[8 << 20..(8 << 20) + 4096].fill(0);
        d.truncate(p.len() - 1000);
        match repair(&d, &parity, &name(&p), p.len() as u64).unwrap() {
            Repair::Repaired { bytes, shards } => {
                assert_eq!(bytes, p);
                assert_eq!(shards, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_beyond_budget_is_refused_not_misrepaired() {
        let p = pack(1 << 20, 3);
        let parity = encode(&p);
        let (_, shard) = layout(p.len());
        let mut d = p.clone();
        for i in 0..=PARITY_SHARDS {
            d[i * shard] ^= 1;
        }
        assert!(repair(&d, &parity, &name(&p), p.len() as u64).is_err());
        let mut bad_parity = parity.clone();
        bad_parity[30] ^= 1;
        assert!(repair(&p[..10], &bad_parity, &name(&p), p.len() as u64).is_err());
        assert!(repair(&p, &parity[..40], &name(&p), p.len() as u64).is_err());
    }

    #[test]
    fn a_parity_file_must_have_its_packs_geometry() {
        let p = pack(1 << 20, 5);
        let parity = encode(&p);
        assert_eq!(parity.len() as u64, file_length(p.len() as u64));
        // The parity of another (larger) pack, or a length that disagrees
        // with the index, is refused before anything is allocated for it.
        let big = encode(&pack(4 << 20, 5));
        assert!(repair(&p, &big, &name(&p), p.len() as u64).is_err());
        assert!(repair(&p, &parity, &name(&p), 64 << 30).is_err());
        assert!(repair(&p, &parity, &name(&p), p.len() as u64 + 1).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_damage_within_budget_is_repaired(
            len in 1usize..300_000,
            flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..=PARITY_SHARDS),
        ) {
            let p = pack(len, 4);
            let parity = encode(&p);
            let (_, shard) = layout(len);
            // One flip per distinct shard, at most PARITY_SHARDS shards.
            let mut d = p.clone();
            let mut shards_hit = std::collections::HashSet::new();
            for (at, x) in flips {
                let at = at % len;
                if shards_hit.insert(at / shard) {
                    d[at] ^= x;
                }
            }
            let repaired = repair(&d, &parity, &name(&p), p.len() as u64).unwrap();
            match repaired {
                Repair::Repaired { bytes, .. } => prop_assert_eq!(bytes, p),
                Repair::Intact => prop_assert!(false, "damage not seen"),
            }
        }
    }
}

//! Keys and authenticated encryption.
//!
//! One random 32-byte master secret per repository. Every other key is derived
//! from it with BLAKE3's key derivation mode and a fixed context string, so the
//! key files only ever wrap those 32 bytes. Encryption is XChaCha20-Poly1305
//! with a random 24-byte nonce per object: nonces are long enough to draw at
//! random for the lifetime of any repository (see `docs/FORMAT.md`).

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::id::BlobId;
use crate::FormatError;

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes added by [`seal`] to every plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const CONTEXT_DATA: &str = "bunker 2026-11 repository v1 encryption key";
const CONTEXT_ID: &str = "bunker 2026-11 repository v1 blob id key";
const CONTEXT_CHUNKER: &str = "bunker 2026-11 repository v1 chunker gear table";

/// The repository's root secret. Never stored in clear; see [`crate::keyfile`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        MasterKey(bytes)
    }

    /// Wraps existing secret bytes (from a decrypted key file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// The raw secret, for wrapping into a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives the working keys, not yet bound to a repository (see
    /// [`RepoKeys::bound`]): fit only to open the config.
    pub fn derive(&self) -> RepoKeys {
        RepoKeys {
            cipher: XChaCha20Poly1305::new(&blake3::derive_key(CONTEXT_DATA, &self.0).into()),
            id_key: blake3::derive_key(CONTEXT_ID, &self.0),
            chunker_key: blake3::derive_key(CONTEXT_CHUNKER, &self.0),
            binding: Binding {
                version: 1,
                repository: [0; 32],
            },
        }
    }
}

/// The secrets of a repository's content: the chunker's gear table key and
/// the blob id key. Up to version 2 they derive from the master key; from
/// version 3 they are random and kept in the config, so that a repository
/// made with `init --copy-chunker-params-from` can share them with another
/// (same chunk boundaries, same blob ids: `copy` between the two moves only
/// missing blobs) while every other key stays its own.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct ContentKeys {
    /// Keys the chunker's gear table.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub chunker: [u8; 32],
    /// Keys blob ids.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub id: [u8; 32],
}

impl ContentKeys {
    /// Fresh random content keys.
    pub fn generate() -> Self {
        let mut keys = ContentKeys {
            chunker: [0; 32],
            id: [0; 32],
        };
        fill_random(&mut keys.chunker);
        fill_random(&mut keys.id);
        keys
    }
}

impl std::fmt::Debug for ContentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKeys(..)")
    }
}

/// What every object a repository stores is bound to: the format version it
/// is written in, and (from version 2) the repository's id, which enters the
/// associated data of every sealed object, so none can be moved to another
/// repository that shares its key (docs/FORMAT.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The version its objects are sealed in (1, 2 or 3; see
    /// [`crate::object::sealing_version`]).
    pub version: u8,
    /// The repository's id.
    pub repository: [u8; 32],
}

/// The keys an open repository works with (wiped when dropped; the
/// cipher wipes its own key).
#[derive(Clone)]
pub struct RepoKeys {
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
    chunker_key: [u8; 32],
    binding: Binding,
}

impl RepoKeys {
    /// These keys bound to a repository's version and id, as every object
    /// of that repository is sealed and opened.
    pub fn bound(&self, version: u8, repository: [u8; 32]) -> RepoKeys {
        let mut keys = self.clone();
        keys.binding = Binding {
            version,
            repository,
        };
        keys
    }

    /// These keys with the content keys of a version 3 config.
    pub fn with_content(&self, content: &ContentKeys) -> RepoKeys {
        let mut keys = self.clone();
        keys.id_key = content.id;
        keys.chunker_key = content.chunker;
        keys
    }

    /// The content keys in use (for a repository that is to share them).
    pub fn content_keys(&self) -> ContentKeys {
        ContentKeys {
            chunker: self.chunker_key,
            id: self.id_key,
        }
    }

    /// True if blob ids computed with either key set are the same.
    pub fn same_blob_ids(&self, other: &RepoKeys) -> bool {
        self.id_key == other.id_key
    }

    /// What objects sealed with these keys are bound to.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    /// The id of a blob with this plaintext: keyed BLAKE3, so ids reveal
    /// nothing about content to anyone without the key.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The secret that places the cuts between a directory's pieces
    /// (format version 4, docs/FORMAT.md §8.1): derived from the id key, so
    /// repositories that share blob ids cut directories alike.
    pub fn piece_cut_key(&self) -> [u8; 32] {
        blake3::derive_key("bunker 2026-11 directory piece cuts", &self.id_key)
    }

    /// The secret that keys the chunker's gear table.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker_key
    }

    /// Encrypts and authenticates `plaintext`, binding it to `ad`.
    /// Output: nonce (24) ‖ ciphertext ‖ tag (16).
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, ad, plaintext)
    }

    /// [`seal`](Self::seal) without copying: `buf` holds [`NONCE_LEN`]
    /// bytes of room, then the plaintext, which is encrypted in place; the
    /// nonce is filled in and the tag appended. The result is the same
    /// layout as `seal`'s.
    pub fn seal_in_place(&self, ad: &[u8], buf: &mut Vec<u8>) {
        seal_in_place_with(&self.cipher, ad, buf)
    }

    /// Reverses [`RepoKeys::seal`]; fails unless the bytes and `ad` are exactly
    /// what was sealed with this key.
    pub fn open(
        &self,
        ad: &[u8],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, FormatError> {
        open_with(&self.cipher, ad, sealed, what)
    }
}

impl Drop for RepoKeys {
    fn drop(&mut self) {
        self.id_key.zeroize();
        self.chunker_key.zeroize();
    }
}

pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    buf.extend_from_slice(&[0u8; NONCE_LEN]);
    buf.extend_from_slice(plaintext);
    seal_in_place_with(cipher, ad, &mut buf);
    buf
}

fn seal_in_place_with(cipher: &XChaCha20Poly1305, ad: &[u8], buf: &mut Vec<u8>) {
    let (nonce, message) = buf.split_at_mut(NONCE_LEN);
    fill_random(nonce);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), ad, message)
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    buf.extend_from_slice(&tag);
}

pub(crate) fn open_with(
    cipher: &XChaCha20Poly1305,
    ad: &[u8],
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, FormatError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(FormatError::Malformed(
            "sealed object shorter than nonce and tag",
        ));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
        .map_err(|_| FormatError::Authentication(what))
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seal_open_and_tamper() {
        let keys = MasterKey::generate().derive();
        let sealed = keys.seal(b"ad", b"hello");
        assert_eq!(keys.open(b"ad", &sealed, "test").unwrap(), b"hello");
        assert!(keys.open(b"other ad", &sealed, "test").is_err());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(keys.open(b"ad", &bad, "test").is_err());
        let other = MasterKey::generate().derive();
        assert!(other.open(b"ad", &sealed, "test").is_err());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate().derive();
        let b = MasterKey::generate().derive();
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }

    proptest! {
        #[test]
        fn seal_round_trips(data in proptest::collection::vec(any::<u8>(), 0..4096), ad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let keys = MasterKey::from_bytes([3u8; 32]).derive();
            let sealed = keys.seal(&ad, &data);
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(keys.open(&ad, &sealed, "t").unwrap(), data);
        }
    }
}

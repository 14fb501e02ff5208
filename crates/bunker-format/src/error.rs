//! Errors raised while encoding or decoding repository objects.

/// A stored object that cannot be read as what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Authentication failed: the bytes were changed, or another key wrote them.
    #[error("authentication failed: the {0} was modified or written with another key")]
    Authentication(&'static str),
    /// The bytes do not have the structure the format requires.
    #[error("malformed object: {0}")]
    Malformed(&'static str),
    /// Decrypted and decompressed, but the content does not hash to its id.
    #[error("content does not match its id (damaged, or replaced by other content)")]
    IdMismatch(String),
    /// The object was written by a format version this build cannot read.
    #[error("unsupported {kind} version {version} (this build reads versions up to {supported})")]
    UnsupportedVersion {
        /// What kind of object.
        kind: &'static str,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The password does not open this key file.
    #[error("wrong password")]
    WrongPassword,
    /// zstd failed to compress or decompress.
    #[error("compression: {0}")]
    Compression(String),
    /// CBOR decoding failed.
    #[error("malformed object: {0}")]
    Cbor(String),
    /// JSON decoding failed (key files).
    #[error("malformed key file: {0}")]
    Json(String),
    /// A stored file is larger than any file of its kind can be.
    #[error("too large: {0}")]
    Oversized(String),
    /// A KDF parameter is outside what the format allows.
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
}

impl From<minicbor::decode::Error> for FormatError {
    fn from(e: minicbor::decode::Error) -> Self {
        FormatError::Cbor(e.to_string())
    }
}

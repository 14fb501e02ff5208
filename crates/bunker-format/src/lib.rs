//! Bunker's repository format, versions 1 to 4.
//!
//! Everything here is pure: it turns values into bytes and bytes into values,
//! with no file or network access and no policy. `docs/FORMAT.md` is the
//! specification this crate implements.

pub mod blob;
pub mod chunker;
pub mod client_state;
pub mod compression;
pub mod condemnation;
pub mod config;
pub mod crypto;
pub mod directory;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod lock_watch;
pub mod object;
pub mod pack;
pub mod parity;
pub mod run_record;
pub mod snapshot;
pub mod snapshot_cache;
pub mod tombstone;
pub mod tree;

pub use error::FormatError;

//! Sources Bunker backs up: the local file system, and databases
//! ([`database`]).
//!
//! The walker visits the selected paths depth-first in byte order of names,
//! so equal trees always produce equal tree blobs. It reports what it finds
//! through a [`Visitor`]; reading file content is the engine's job.

pub mod database;
mod metadata;
mod pattern;
mod protect;
mod reach;
mod walk;

pub use metadata::{node_from_metadata, node_kind};
pub use pattern::{PatternError, PatternSet};
pub use protect::ProtectedPaths;
pub use reach::ReachablePath;
pub use walk::{walk, Visitor, WalkOptions};

//! Bunker's engine: everything the `bunker` command does, as a library.
//!
//! Open a [`Repository`], load its index, then back up, restore, check, list
//! or measure. Progress goes through the [`Progress`] trait; errors are
//! [`EngineError`]s that say what failed, on what, and what to do.

pub mod backup;
pub mod cache;
pub mod cancel;
pub mod check;
pub mod copy;
pub mod database;
pub mod diff;
pub mod dump;
mod error;
mod failpoint;
pub mod find;
pub mod forget;
pub mod identity;
pub mod index;
pub mod lock;
pub mod memory;
pub mod mirror;
pub mod notices;
pub mod object_lock;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod staging;
pub mod stats;
#[cfg(feature = "synthetic")]
pub mod synthetic;
pub mod upgrade;
pub mod walk_tree;

pub use cancel::Cancel;
pub use error::{EngineError, Result};
pub use notices::{NoticeSink, Notices};
pub use progress::{NoProgress, Progress};
pub use repository::{
    Indexed, InitOptions, KeyEntry, Open, PackRead, Repository, SnapshotEntry, SnapshotList,
    UnreadableSnapshot,
};

pub use bunker_backend as backend;
pub use bunker_format as format;
pub use bunker_source as source;

//! Files written piece by piece, named only when complete.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A file being written whose name (the hash of its bytes) is known only at
/// the end: packs. On local storage it is a temporary file beside its final
/// place, so a pack never sits whole in memory; elsewhere it is a buffer
/// until [`Backend::commit`](crate::Backend::commit) uploads it. Dropped
/// without a commit, it leaves nothing behind.
pub struct StagedFile {
    pub(crate) staging: Staging,
}

pub(crate) enum Staging {
    File(tempfile::NamedTempFile),
    Memory(Vec<u8>),
}

impl StagedFile {
    /// Staged in memory.
    pub fn in_memory() -> Self {
        StagedFile {
            staging: Staging::Memory(Vec::new()),
        }
    }

    /// Staged in a temporary file in `dir`.
    pub fn in_dir(dir: &Path) -> std::io::Result<Self> {
        Ok(StagedFile {
            staging: Staging::File(tempfile::NamedTempFile::new_in(dir)?),
        })
    }

    /// Appends bytes.
    pub fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.staging {
            Staging::File(f) => f.write_all(data),
            Staging::Memory(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Every byte appended, consuming the staged file.
    pub fn into_bytes(mut self) -> std::io::Result<Vec<u8>> {
        match self.staging {
            Staging::Memory(v) => Ok(v),
            Staging::File(_) => self.read_all(),
        }
    }

    /// Every byte appended so far.
    pub fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.staging {
            Staging::File(f) => {
                let file = f.as_file_mut();
                let mut bytes = Vec::new();
                file.seek(SeekFrom::Start(0))?;
                file.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
            Staging::Memory(v) => Ok(v.clone()),
        }
    }
}

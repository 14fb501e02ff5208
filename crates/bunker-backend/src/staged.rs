//! Files written piece by piece, named only when complete.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

/// A file being written whose name (the hash of its bytes) is known only at
/// the end: packs. On local storage it is an unnamed file on the
/// repository's file system (`O_TMPFILE`): no directory shows it while it
/// grows, so the storage cannot watch blob lengths arrive, and it vanishes
/// if the writer dies; it is linked under its name only when complete.
/// Elsewhere it is a buffer until [`Backend::commit`](crate::Backend::commit)
/// uploads it. Dropped without a commit, it leaves nothing behind.
pub struct StagedFile {
    pub(crate) staging: Staging,
}

pub(crate) enum Staging {
    /// A named temporary file (where unnamed ones are not supported).
    File(tempfile::NamedTempFile),
    /// An unnamed file, or one already unlinked.
    Unnamed(std::fs::File),
    Memory(Vec<u8>),
}

/// Who wrote a staged file: its name is `HOST-PID-RANDOM`, so that a later
/// process can tell the files of dead writers from those being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingOwner {
    /// The writer's host name, reduced to `[A-Za-z0-9.]` (see [`StagingOwner::host_tag`]).
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
}

impl StagingOwner {
    /// The owner of files staged by this process.
    pub fn this_process() -> Self {
        StagingOwner {
            host: Self::host_tag(&gethostname::gethostname().to_string_lossy()),
            pid: std::process::id(),
        }
    }

    /// A host name as it appears in staged file names.
    pub fn host_tag(hostname: &str) -> String {
        let tag: String = hostname
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .take(32)
            .collect();
        match tag.is_empty() {
            true => "host".to_string(),
            false => tag,
        }
    }

    /// The prefix of this owner's staged file names.
    fn prefix(&self) -> String {
        format!("{}-{}-", self.host, self.pid)
    }

    /// The owner named by a staged file's name, if it has one.
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.rsplitn(3, '-');
        let _random = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(StagingOwner { host, pid })
    }
}

/// A staged file as listed.
#[derive(Clone, Debug)]
pub struct StagedInfo {
    /// Its name in the staging area.
    pub name: String,
    /// Bytes written so far.
    pub size: u64,
    /// Its writer, when the name says.
    pub owner: Option<StagingOwner>,
    /// When it was last written to.
    pub modified: Option<SystemTime>,
}

impl StagedFile {
    /// Staged in memory.
    pub fn in_memory() -> Self {
        StagedFile {
            staging: Staging::Memory(Vec::new()),
        }
    }

    /// Staged in an unnamed file on the file system of `dir`.
    pub fn unnamed_in(dir: &Path) -> std::io::Result<Self> {
        Ok(StagedFile {
            staging: Staging::Unnamed(tempfile::tempfile_in(dir)?),
        })
    }

    /// Staged in a temporary file in `dir`, named after `owner`.
    pub fn in_dir(dir: &Path, owner: &StagingOwner) -> std::io::Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(&owner.prefix())
            .rand_bytes(12)
            .tempfile_in(dir)?;
        Ok(StagedFile {
            staging: Staging::File(file),
        })
    }

    /// Appends bytes.
    pub fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.staging {
            Staging::File(f) => f.write_all(data),
            Staging::Unnamed(f) => f.write_all(data),
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
            Staging::File(_) | Staging::Unnamed(_) => self.read_all(),
        }
    }

    /// Every byte appended so far.
    pub fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.staging {
            Staging::File(f) => read_whole(f.as_file_mut()),
            Staging::Unnamed(f) => read_whole(f),
            Staging::Memory(v) => Ok(v.clone()),
        }
    }
}

/// Refuses a name that is not a plain file name in the staging area.
pub(crate) fn check_staged_name(name: &str) -> Result<(), crate::BackendError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(crate::BackendError::new(
            crate::ErrorKind::Permanent,
            format!("remove tmp/{name}"),
            "not a staged file name",
        ));
    }
    Ok(())
}

fn read_whole(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_through_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let owner = StagingOwner {
            host: StagingOwner::host_tag("web-1.example.com"),
            pid: 4242,
        };
        assert_eq!(owner.host, "web1.example.com");
        let staged = StagedFile::in_dir(dir.path(), &owner).unwrap();
        let Staging::File(f) = &staged.staging else {
            unreachable!()
        };
        let name = f.path().file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(StagingOwner::parse(&name), Some(owner));
        assert_eq!(StagingOwner::parse(".tmpAbCdEf"), None);
    }
}

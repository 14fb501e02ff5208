//! Snapshot objects: one backup of a set of paths at a point in time.

use crate::id::{BlobId, SnapshotId};
use crate::FormatError;

/// Which earlier snapshot a backup compared against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, minicbor::Encode, minicbor::Decode)]
#[cbor(index_only)]
pub enum BackupMode {
    /// No parent: every byte read and hashed.
    #[n(0)]
    Full,
    /// Parent: the newest snapshot of the same source.
    #[n(1)]
    #[default]
    Incremental,
    /// Parent: the newest full snapshot of the same source.
    #[n(2)]
    Differential,
}

impl BackupMode {
    /// Lowercase name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackupMode::Full => "full",
            BackupMode::Incremental => "incremental",
            BackupMode::Differential => "differential",
        }
    }
}

/// What a backup did, stored with its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct SnapshotSummary {
    /// Files not in the parent.
    #[n(0)]
    pub files_new: u64,
    /// Files in the parent whose metadata changed.
    #[n(1)]
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    #[n(2)]
    pub files_unmodified: u64,
    /// Directories.
    #[n(3)]
    pub dirs: u64,
    /// Bytes read from the source.
    #[n(4)]
    pub bytes_read: u64,
    /// Total size of the files in the snapshot.
    #[n(5)]
    pub total_bytes: u64,
    /// Blobs added to the repository.
    #[n(6)]
    pub blobs_added: u64,
    /// Plaintext bytes of the blobs added.
    #[n(7)]
    pub bytes_added: u64,
    /// Bytes written to storage (packs and index).
    #[n(8)]
    pub bytes_stored: u64,
    /// Backup start, Unix nanoseconds.
    #[n(9)]
    pub started_ns: i64,
    /// Backup end, Unix nanoseconds.
    #[n(10)]
    pub finished_ns: i64,
}

/// A snapshot, stored encrypted under `snapshots/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Snapshot {
    /// When the backup started (or `--time`), Unix nanoseconds, UTC.
    #[n(0)]
    pub time_ns: i64,
    /// Host the backup ran on (or `--host`).
    #[n(1)]
    pub hostname: String,
    /// User who ran it.
    #[n(2)]
    pub username: String,
    /// Absolute source paths (or the stdin file name).
    #[n(3)]
    pub paths: Vec<String>,
    /// User tags.
    #[n(4)]
    pub tags: Vec<String>,
    /// Backup strategy.
    #[n(5)]
    pub mode: BackupMode,
    /// The snapshot compared against, if any.
    #[n(6)]
    pub parent: Option<SnapshotId>,
    /// Root tree.
    #[n(7)]
    pub tree: BlobId,
    /// What the backup did.
    #[n(8)]
    pub summary: SnapshotSummary,
    /// Version of bunker that wrote it.
    #[n(9)]
    pub program_version: String,
    /// Exclude patterns in force.
    #[cbor(n(10), default)]
    pub excludes: Vec<String>,
    /// Sources that could not be read; non-empty means the snapshot is incomplete.
    #[cbor(n(11), default)]
    pub skipped: Vec<String>,
    /// Other problems worth knowing, e.g. files that changed while being read.
    #[cbor(n(12), default)]
    pub warnings: Vec<String>,
    /// For a snapshot written by `copy`: the id of the snapshot it copies,
    /// in the repository it was first written to (copies of copies keep it).
    #[cbor(n(13), default)]
    pub original: Option<SnapshotId>,
    /// For a database dump: what was dumped, by what, and how many rows
    /// each table held. Absent for files.
    #[cbor(n(14), default)]
    pub database: Option<DatabaseDump>,
}

/// The database servers Bunker dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, minicbor::Encode, minicbor::Decode)]
#[cbor(index_only)]
pub enum DatabaseKind {
    /// PostgreSQL, dumped by `pg_dump` in its custom archive format.
    #[n(0)]
    Postgres,
    /// MySQL or MariaDB, dumped by `mysqldump`/`mariadb-dump` as SQL.
    #[n(1)]
    Mysql,
}

impl DatabaseKind {
    /// Lowercase name, as `snapshots --kind` takes it.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
        }
    }
}

/// What a database snapshot holds. Its tree has the dump as a file at the
/// root (`dump_file`) and, when they could be read, the server's global
/// objects (roles, users, grants) as SQL in `globals_file`.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct DatabaseDump {
    /// Server kind.
    #[n(0)]
    pub kind: DatabaseKind,
    /// Server version as the server reports it.
    #[n(1)]
    pub server_version: String,
    /// Name of the database dumped.
    #[n(2)]
    pub database: String,
    /// The dump program's `--version` line.
    #[n(3)]
    pub dump_program: String,
    /// Name of the file at the snapshot's root that holds the dump.
    #[n(4)]
    pub dump_file: String,
    /// Name of the file holding the global objects, if they were dumped.
    #[cbor(n(5), default)]
    pub globals_file: Option<String>,
    /// Every table's exact row count in the dump, in dump order.
    #[cbor(n(6), default)]
    pub tables: Vec<TableRows>,
}

/// One table's row count.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct TableRows {
    /// Schema (PostgreSQL) or database (MySQL).
    #[n(0)]
    pub schema: String,
    /// Table name.
    #[n(1)]
    pub name: String,
    /// Rows.
    #[n(2)]
    pub rows: u64,
}

impl Snapshot {
    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes from CBOR.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        Ok(minicbor::decode(bytes)?)
    }

    /// What identifies this backup across repositories: the id it was
    /// first written under.
    pub fn identity(&self, id: SnapshotId) -> SnapshotId {
        self.original.unwrap_or(id)
    }

    /// What the snapshot holds: `files`, or the database kind's name.
    pub fn kind_name(&self) -> &'static str {
        self.database.as_ref().map_or("files", |d| d.kind.name())
    }

    /// True when some sources could not be read.
    pub fn is_incomplete(&self) -> bool {
        !self.skipped.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Snapshot {
            time_ns: -5,
            hostname: "h".into(),
            username: "u".into(),
            paths: vec!["/a".into()],
            tags: vec!["t".into()],
            mode: BackupMode::Differential,
            parent: Some(SnapshotId([1; 32])),
            tree: BlobId([2; 32]),
            summary: SnapshotSummary {
                files_new: 3,
                ..Default::default()
            },
            program_version: "bunker 0.1.0".into(),
            excludes: vec![],
            skipped: vec!["/a/x".into()],
            warnings: vec!["/a/y: file changed while it was read".into()],
            original: Some(SnapshotId([3; 32])),
            database: None,
        };
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        assert_eq!(s.identity(SnapshotId([9; 32])), SnapshotId([3; 32]));
        assert!(Snapshot::decode(b"\xff\x00").is_err());
    }

    /// The database fields' encoding is pinned: every later version must
    /// read these bytes (docs/FORMAT.md §4.3, key 14).
    #[test]
    fn database_dump_vector() {
        let dump = DatabaseDump {
            kind: DatabaseKind::Mysql,
            server_version: "10.11".into(),
            database: "shop".into(),
            dump_program: "d".into(),
            dump_file: "shop.sql".into(),
            globals_file: Some("users.sql".into()),
            tables: vec![TableRows {
                schema: "shop".into(),
                name: "t".into(),
                rows: 300,
            }],
        };
        let bytes = minicbor::to_vec(&dump).unwrap();
        assert_eq!(
            hex::encode(&bytes),
            "a70001016531302e3131026473686f70036164046873686f702e73716c05697573657273\
             2e73716c0681a3006473686f700161740219012c"
        );
        let decoded: DatabaseDump = minicbor::decode(&bytes).unwrap();
        assert_eq!(decoded, dump);
    }
}

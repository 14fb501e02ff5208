//! A streaming reader of `pg_dump`'s custom archive format (`-Fc`), as
//! written to a pipe: header, table of contents, then one data block per
//! entry that has data. It checks that every block the table of contents
//! announces arrives whole, and counts each table's rows in the COPY text.
//!
//! Layout (PostgreSQL's `pg_backup_archiver.c` and `pg_backup_custom.c`):
//! an int is a sign byte and `int_size` little-endian bytes; a string is an
//! int length (-1: none) and that many bytes. A data block is a type byte
//! (1 data, 3 large objects), the entry's dump id, then chunks (int length,
//! bytes) ending with a zero length; a large-object block holds, per
//! object, its oid then its chunks, and ends with oid 0.

use std::collections::HashMap;

use bunker_format::snapshot::TableRows;

use super::check::DumpCheck;

/// Archive versions this reader knows (PostgreSQL 10 to 17 write 1.12–1.16).
const OLDEST: u32 = version(1, 12);
const NEWEST: u32 = version(1, 16);

const fn version(major: u8, minor: u8) -> u32 {
    ((major as u32) << 8) | minor as u32
}

/// The end of a table's COPY data in an archive.
const COPY_END: &[u8] = b"\\.\n\n\n";

/// Name under which large objects are counted.
pub const LARGE_OBJECTS: &str = "(large objects)";

/// The archive's header, once read.
struct Header {
    version: u32,
    int_size: usize,
    off_size: usize,
}

/// An entry of the table of contents that has a data block.
struct Entry {
    desc: String,
    schema: String,
    name: String,
    seen: bool,
    closed: bool,
    newlines: u64,
    tail: Vec<u8>,
    objects: u64,
}

/// What the next bytes of the data section are.
#[derive(Clone, Copy)]
enum Expect {
    BlockType,
    Int(IntFor),
    Chunk(u64),
}

#[derive(Clone, Copy)]
enum IntFor {
    DumpId(u8),
    ChunkLength,
    ObjectOid,
}

/// The guard's reader of a custom archive.
pub struct PgArchiveCheck {
    /// Bytes of the header and table of contents not parsed yet.
    pending: Vec<u8>,
    header: Option<Header>,
    toc_left: Option<u64>,
    entries: Vec<Entry>,
    by_id: HashMap<i64, usize>,
    expect: Expect,
    int_bytes: Vec<u8>,
    current: Option<(usize, u8)>,
    error: Option<String>,
    total: u64,
}

impl Default for PgArchiveCheck {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a parse of the buffered start of the archive stopped.
enum Stop {
    More,
    Bad(String),
}

/// A cursor over the buffered header and table of contents.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    int_size: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::More)?;
        let s = self.bytes.get(self.pos..end).ok_or(Stop::More)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    fn int(&mut self) -> Result<i64, Stop> {
        let sign = self.byte()?;
        let size = self.int_size;
        let bytes = self.take(size)?;
        let value = bytes.iter().rev().fold(0i64, |v, b| (v << 8) | *b as i64);
        Ok(if sign == 0 { value } else { -value })
    }

    fn string(&mut self) -> Result<Option<String>, Stop> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > 1 << 30 {
            return Err(Stop::Bad(format!(
                "a string of {len} bytes in the table of contents"
            )));
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(len as usize)?).into_owned(),
        ))
    }
}

impl PgArchiveCheck {
    /// A reader expecting the archive's first byte.
    pub fn new() -> Self {
        PgArchiveCheck {
            pending: Vec::new(),
            header: None,
            toc_left: None,
            entries: Vec::new(),
            by_id: HashMap::new(),
            expect: Expect::BlockType,
            int_bytes: Vec::new(),
            current: None,
            error: None,
            total: 0,
        }
    }

    fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
    }

    /// Parses what it can of the header and table of contents, dropping
    /// the buffered bytes of each part read.
    fn parse_start(&mut self) -> Result<(), Stop> {
        if self.header.is_none() {
            let mut c = Cursor {
                bytes: &self.pending,
                pos: 0,
                int_size: 4,
            };
            if c.take(5)? != b"PGDMP" {
                return Err(Stop::Bad(
                    "not a pg_dump custom archive (no PGDMP header)".into(),
                ));
            }
            let (major, minor, _rev) = (c.byte()?, c.byte()?, c.byte()?);
            let v = version(major, minor);
            if !(OLDEST..=NEWEST).contains(&v) {
                return Err(Stop::Bad(format!(
                    "archive version {major}.{minor} is not one Bunker reads (1.12 to 1.16); the completeness check cannot vouch for it"
                )));
            }
            let int_size = c.byte()? as usize;
            let off_size = c.byte()? as usize;
            if !(1..=8).contains(&int_size) || !(1..=8).contains(&off_size) {
                return Err(Stop::Bad("a damaged archive header".into()));
            }
            c.int_size = int_size;
            if c.byte()? != 1 {
                return Err(Stop::Bad(
                    "not a custom-format archive (pg_dump -Fc)".into(),
                ));
            }
            let compressed = if v >= version(1, 15) {
                c.byte()? != 0
            } else {
                c.int()? != 0
            };
            if compressed {
                return Err(Stop::Bad(
                    "the archive is compressed: Bunker dumps uncompressed (it compresses and deduplicates itself)".into(),
                ));
            }
            for _ in 0..7 {
                c.int()?; // creation time
            }
            for _ in 0..3 {
                c.string()?; // database name, server version, pg_dump version
            }
            let count = c.int()?;
            if count < 0 {
                return Err(Stop::Bad("a damaged table of contents".into()));
            }
            let used = c.pos;
            self.pending.drain(..used);
            self.header = Some(Header {
                version: v,
                int_size,
                off_size,
            });
            self.toc_left = Some(count as u64);
        }
        let header = self.header.as_ref().expect("read above");
        while self.toc_left.is_some_and(|n| n > 0) {
            let mut c = Cursor {
                bytes: &self.pending,
                pos: 0,
                int_size: header.int_size,
            };
            let v = header.version;
            let dump_id = c.int()?;
            let had_dumper = c.int()? != 0;
            c.string()?; // table oid
            c.string()?; // oid
            let tag = c.string()?.unwrap_or_default();
            let desc = c.string()?.unwrap_or_default();
            c.int()?; // section
            c.string()?; // definition
            c.string()?; // drop statement
            c.string()?; // copy statement
            let schema = c.string()?.unwrap_or_default();
            c.string()?; // tablespace
            c.string()?; // table access method
            if v >= version(1, 16) {
                c.int()?; // relkind
            }
            c.string()?; // owner
            c.string()?; // "with oids"
            while c.string()?.is_some() {} // dependencies
            let flag = c.byte()?; // data offset: flag and off_size bytes
            c.take(header.off_size)?;
            if !(1..=3).contains(&flag) {
                return Err(Stop::Bad("a damaged table of contents entry".into()));
            }
            let used = c.pos;
            self.pending.drain(..used);
            if had_dumper {
                self.by_id.insert(dump_id, self.entries.len());
                self.entries.push(Entry {
                    desc,
                    schema,
                    name: tag,
                    seen: false,
                    closed: false,
                    newlines: 0,
                    tail: Vec::new(),
                    objects: 0,
                });
            }
            self.toc_left = self.toc_left.map(|n| n - 1);
        }
        Ok(())
    }

    /// Reads data-section bytes.
    fn feed_data(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            match self.expect {
                Expect::BlockType => {
                    let ty = bytes[0];
                    bytes = &bytes[1..];
                    if ty != 1 && ty != 3 {
                        return self.fail(format!(
                            "an unknown data block type {ty}: the archive is damaged"
                        ));
                    }
                    self.expect = Expect::Int(IntFor::DumpId(ty));
                }
                Expect::Int(purpose) => {
                    let size = 1 + self
                        .header
                        .as_ref()
                        .expect("data follows the header")
                        .int_size;
                    let n = (size - self.int_bytes.len()).min(bytes.len());
                    self.int_bytes.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.int_bytes.len() == size {
                        let value = self.int_bytes[1..]
                            .iter()
                            .rev()
                            .fold(0i64, |v, b| (v << 8) | *b as i64);
                        let value = if self.int_bytes[0] == 0 {
                            value
                        } else {
                            -value
                        };
                        self.int_bytes.clear();
                        self.got_int(purpose, value);
                    }
                }
                Expect::Chunk(left) => {
                    let n = (left as usize).min(bytes.len());
                    let (index, ty) = self.current.expect("a chunk is inside a block");
                    if ty == 1 {
                        let e = &mut self.entries[index];
                        e.newlines += memchr::memchr_iter(b'\n', &bytes[..n]).count() as u64;
                        e.tail
                            .extend_from_slice(&bytes[n.saturating_sub(COPY_END.len())..n]);
                        let extra = e.tail.len().saturating_sub(COPY_END.len());
                        e.tail.drain(..extra);
                    }
                    bytes = &bytes[n..];
                    self.expect = match left - n as u64 {
                        0 => Expect::Int(IntFor::ChunkLength),
                        rest => Expect::Chunk(rest),
                    };
                }
            }
        }
    }

    fn got_int(&mut self, purpose: IntFor, value: i64) {
        match purpose {
            IntFor::DumpId(ty) => {
                let Some(&index) = self.by_id.get(&value) else {
                    return self.fail(format!(
                        "a data block for entry {value}, which the table of contents does not list"
                    ));
                };
                if self.entries[index].seen {
                    return self.fail(format!("two data blocks for entry {value}"));
                }
                self.entries[index].seen = true;
                self.current = Some((index, ty));
                self.expect = Expect::Int(if ty == 3 {
                    IntFor::ObjectOid
                } else {
                    IntFor::ChunkLength
                });
            }
            IntFor::ObjectOid => {
                let (index, _) = self.current.expect("inside a block");
                if value == 0 {
                    self.entries[index].closed = true;
                    self.current = None;
                    self.expect = Expect::BlockType;
                } else {
                    self.entries[index].objects += 1;
                    self.expect = Expect::Int(IntFor::ChunkLength);
                }
            }
            IntFor::ChunkLength => {
                let (index, ty) = self.current.expect("inside a block");
                if value < 0 {
                    return self.fail("a negative chunk length: the archive is damaged".into());
                }
                if value > 0 {
                    self.expect = Expect::Chunk(value as u64);
                } else if ty == 3 {
                    self.expect = Expect::Int(IntFor::ObjectOid);
                } else {
                    self.entries[index].closed = true;
                    self.current = None;
                    self.expect = Expect::BlockType;
                }
            }
        }
    }
}

impl DumpCheck for PgArchiveCheck {
    fn feed(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.error.is_some() {
            return;
        }
        if self.toc_left != Some(0) {
            self.pending.extend_from_slice(bytes);
            match self.parse_start() {
                Ok(()) => {}
                Err(Stop::More) => return,
                Err(Stop::Bad(why)) => return self.fail(why),
            }
            if self.toc_left != Some(0) {
                return;
            }
            let rest = std::mem::take(&mut self.pending);
            self.feed_data(&rest);
        } else {
            self.feed_data(bytes);
        }
    }

    fn announced(&self) -> Option<Vec<(String, String)>> {
        (self.toc_left == Some(0)).then(|| {
            self.entries
                .iter()
                .filter(|e| e.desc == "TABLE DATA")
                .map(|e| (e.schema.clone(), e.name.clone()))
                .collect()
        })
    }

    fn finish(&mut self) -> Result<Vec<TableRows>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.total == 0 {
            return Err("the dump is empty".into());
        }
        if self.toc_left != Some(0) {
            return Err("the archive ends inside its table of contents".into());
        }
        if let Some((index, _)) = self.current {
            let e = &self.entries[index];
            return Err(format!(
                "the archive ends inside the data of {}",
                entry_name(e)
            ));
        }
        if !matches!(self.expect, Expect::BlockType) {
            return Err("the archive ends inside a data block header".into());
        }
        let missing: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.seen)
            .map(entry_name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} data block(s) announced by the table of contents are missing: {}",
                missing.len(),
                abbreviate(&missing)
            ));
        }
        let mut tables = Vec::new();
        for e in &self.entries {
            debug_assert!(e.closed);
            match e.desc.as_str() {
                "TABLE DATA" => {
                    if e.tail != COPY_END {
                        return Err(format!(
                            "the data of {} does not end as COPY data ends",
                            entry_name(e)
                        ));
                    }
                    tables.push(TableRows {
                        schema: e.schema.clone(),
                        name: e.name.clone(),
                        rows: e.newlines - 3,
                    });
                }
                _ if e.objects > 0 || e.desc == "BLOBS" || e.desc == "LARGE OBJECTS" => tables
                    .push(TableRows {
                        schema: String::new(),
                        name: LARGE_OBJECTS.into(),
                        rows: e.objects,
                    }),
                _ => {}
            }
        }
        Ok(tables)
    }
}

fn entry_name(e: &Entry) -> String {
    match e.schema.is_empty() {
        true => format!("{} {}", e.desc, e.name),
        false => format!("{} {}.{}", e.desc, e.schema, e.name),
    }
}

/// At most five names, then how many more.
pub(crate) fn abbreviate(names: &[String]) -> String {
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut b = vec![u8::from(v < 0)];
        b.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        b
    }

    fn string(s: Option<&str>) -> Vec<u8> {
        match s {
            None => int(-1),
            Some(s) => [int(s.len() as i64), s.as_bytes().to_vec()].concat(),
        }
    }

    fn entry(id: i64, data: bool, tag: &str, desc: &str) -> Vec<u8> {
        let mut b = [int(id), int(data as i64)].concat();
        for s in [Some("0"), Some("0"), Some(tag), Some(desc)] {
            b.extend(string(s));
        }
        b.extend(int(4));
        for s in [
            Some(""),
            Some(""),
            None,
            Some("public"),
            None,
            None,
            Some("root"),
            Some("false"),
            Some("1"),
            None,
        ] {
            b.extend(string(s));
        }
        b.push(if data { 1 } else { 3 });
        b.extend([0u8; 8]);
        b
    }

    /// An archive as pg_dump 15 writes it to a pipe: two tables, one of two
    /// rows, and one large object.
    fn archive() -> Vec<u8> {
        let mut b = b"PGDMP\x01\x0e\x00\x04\x08\x01".to_vec();
        b.extend(int(0));
        for _ in 0..7 {
            b.extend(int(1));
        }
        for s in ["db", "15.20", "15.20"] {
            b.extend(string(Some(s)));
        }
        b.extend(int(4));
        b.extend(entry(10, false, "t", "TABLE"));
        b.extend(entry(11, true, "t", "TABLE DATA"));
        b.extend(entry(12, true, "e", "TABLE DATA"));
        b.extend(entry(13, true, "BLOBS", "BLOBS"));
        for (id, rows) in [(11, &b"1\tx\\ny\n2\t\\N\n"[..]), (12, &b""[..])] {
            b.push(1);
            b.extend(int(id));
            for piece in [rows, COPY_END] {
                if !piece.is_empty() {
                    b.extend(int(piece.len() as i64));
                    b.extend(piece);
                }
            }
            b.extend(int(0));
        }
        b.push(3);
        b.extend(int(13));
        b.extend(int(16397));
        b.extend(int(5));
        b.extend(b"hello");
        b.extend([int(0), int(0)].concat());
        b
    }

    fn check(bytes: &[u8], piece: usize) -> Result<Vec<TableRows>, String> {
        let mut c = PgArchiveCheck::new();
        for p in bytes.chunks(piece) {
            c.feed(p);
        }
        c.finish()
    }

    #[test]
    fn counts_rows_whatever_the_read_sizes() {
        let a = archive();
        for piece in [1, 3, 7, 64, a.len()] {
            let tables = check(&a, piece).unwrap();
            let got: Vec<(&str, u64)> = tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
            assert_eq!(
                got,
                [("t", 2), ("e", 0), (LARGE_OBJECTS, 1)],
                "piece {piece}"
            );
        }
        let mut c = PgArchiveCheck::new();
        c.feed(&a[..a.len() - 80]);
        assert_eq!(c.announced().unwrap().len(), 2);
    }

    #[test]
    fn every_cut_is_caught() {
        let a = archive();
        for cut in 0..a.len() {
            assert!(check(&a[..cut], 5).is_err(), "cut at {cut} of {}", a.len());
        }
    }

    #[test]
    fn refuses_other_archives() {
        let mut a = archive();
        a[6] = 0x11; // version 1.17
        assert!(check(&a, 100).unwrap_err().contains("1.17"));
        assert!(check(b"-- plain SQL\n", 100).unwrap_err().contains("PGDMP"));
        let mut z = archive();
        z[12] = 6; // compression level 6
        assert!(check(&z, 100).unwrap_err().contains("compressed"));
    }
}

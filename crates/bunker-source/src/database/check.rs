//! The completeness guard's view of a dump as it streams by.

use bunker_format::snapshot::TableRows;

/// Reads a dump's bytes as they stream past and says at the end whether the
/// dump is whole, and how many rows each table holds in it.
pub trait DumpCheck: Send {
    /// The next bytes of the dump.
    fn feed(&mut self, bytes: &[u8]);
    /// The tables whose data the dump announces before it holds them (a
    /// PostgreSQL archive's table of contents), once known.
    fn announced(&self) -> Option<Vec<(String, String)>> {
        None
    }
    /// After the last byte: the rows per table, or why the dump is not whole.
    fn finish(&mut self) -> Result<Vec<TableRows>, String>;
}

/// Accepts anything but nothing: for a command's output (`backup
/// --stdin-from-command`), whose format Bunker does not know.
pub struct NonEmpty {
    bytes: u64,
    allow_empty: bool,
}

impl NonEmpty {
    /// A check that fails on empty output unless `allow_empty`.
    pub fn new(allow_empty: bool) -> Self {
        NonEmpty {
            bytes: 0,
            allow_empty,
        }
    }
}

impl DumpCheck for NonEmpty {
    fn feed(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
    }

    fn finish(&mut self) -> Result<Vec<TableRows>, String> {
        match self.bytes == 0 && !self.allow_empty {
            true => Err("it printed nothing (give --allow-empty if that is expected)".into()),
            false => Ok(Vec::new()),
        }
    }
}

/// Checks that an SQL script ends with the line its program writes last
/// (`pg_dumpall`'s "dump complete" comment, `mysqldump`'s "Dump completed").
pub struct Trailer {
    expected: &'static str,
    tail: Vec<u8>,
}

impl Trailer {
    /// A check for a script whose last non-blank line starts with `expected`.
    pub fn new(expected: &'static str) -> Self {
        Trailer {
            expected,
            tail: Vec::new(),
        }
    }

    /// True when the bytes seen so far end with the expected line.
    pub(crate) fn is_complete(&self) -> bool {
        let text = String::from_utf8_lossy(&self.tail);
        let last = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && *l != "--");
        last.is_some_and(|l| l.starts_with(self.expected))
    }
}

/// Bytes of the stream's end kept for the trailer check.
const TAIL: usize = 512;

impl DumpCheck for Trailer {
    fn feed(&mut self, bytes: &[u8]) {
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    fn finish(&mut self) -> Result<Vec<TableRows>, String> {
        match self.is_complete() {
            true => Ok(Vec::new()),
            false => Err(format!(
                "the output does not end with {:?}: it was cut short",
                self.expected
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_must_be_the_last_line() {
        let mut t = Trailer::new("-- PostgreSQL database cluster dump complete");
        t.feed(b"CREATE ROLE x;\n--\n-- PostgreSQL database cluster dump complete\n--\n\n");
        assert!(t.finish().is_ok());
        let mut cut = Trailer::new("-- Dump completed");
        cut.feed(b"-- Dump completed on 2026\nINSERT INTO t VALUES (1);\n");
        assert!(cut.finish().is_err());
        let mut long = Trailer::new("-- Dump completed");
        long.feed(&vec![b'x'; 10_000]);
        long.feed(b"\n-- Dump completed on 2026-11-26 10:00:00\n");
        assert!(long.finish().is_ok());
        assert!(NonEmpty::new(false).finish().is_err());
        assert!(NonEmpty::new(true).finish().is_ok());
    }
}

//! A streaming reader of `mysqldump`/`mariadb-dump` SQL output: counts the
//! rows of every table's `INSERT` statements and checks the "Dump
//! completed" line that the program writes last.
//!
//! Rows are counted as the top-level parenthesised tuples after `VALUES`,
//! skipping quoted strings (with backslash escapes) and identifiers. Only
//! statements at the top level count: inside a `DELIMITER ;;` section
//! (routine and trigger bodies) an `INSERT` is code, not data.

use bunker_format::snapshot::TableRows;

use super::check::{DumpCheck, Trailer};

/// The line both programs end a complete dump with.
pub const DUMP_COMPLETED: &str = "-- Dump completed";

/// Longest line start kept to recognise a statement.
const HEAD: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line, collecting its first bytes.
    LineStart,
    /// In a line that is not a counted statement: skip to its end.
    SkipLine,
    /// In an `INSERT` before `VALUES`.
    InsertHead,
    /// After `VALUES`: counting tuples.
    Values,
}

/// The guard's reader of a MySQL/MariaDB SQL dump.
pub struct MysqlDumpCheck {
    state: State,
    head: Vec<u8>,
    tables: Vec<TableRows>,
    schema: String,
    /// Index in `tables` of the table the current `INSERT` fills.
    current: Option<usize>,
    depth: u32,
    quote: Option<u8>,
    escaped: bool,
    /// Recent bytes, to find `VALUES` in an insert's head.
    recent: Vec<u8>,
    delimiter_is_semicolon: bool,
    trailer: Trailer,
    total: u64,
}

impl MysqlDumpCheck {
    /// A reader for a dump of database `schema`.
    pub fn new(schema: &str) -> Self {
        MysqlDumpCheck {
            state: State::LineStart,
            head: Vec::new(),
            tables: Vec::new(),
            schema: schema.to_string(),
            current: None,
            depth: 0,
            quote: None,
            escaped: false,
            recent: Vec::new(),
            delimiter_is_semicolon: true,
            trailer: Trailer::new(DUMP_COMPLETED),
            total: 0,
        }
    }

    fn table_index(&mut self, name: String) -> usize {
        match self.tables.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                self.tables.push(TableRows {
                    schema: self.schema.clone(),
                    name,
                    rows: 0,
                });
                self.tables.len() - 1
            }
        }
    }

    /// Classifies a line by its start (called at its end, or once `HEAD`
    /// bytes of it are known).
    fn classify(&mut self) -> State {
        let head = std::mem::take(&mut self.head);
        if let Some(rest) = head.strip_prefix(b"DELIMITER ") {
            self.delimiter_is_semicolon = rest.trim_ascii() == b";";
            return State::SkipLine;
        }
        if let Some(rest) = head.strip_prefix(b"-- Dumping data for table ") {
            if let Some((name, _)) = backquoted(rest) {
                self.table_index(name);
            }
            return State::SkipLine;
        }
        if self.delimiter_is_semicolon {
            for prefix in [
                &b"INSERT INTO "[..],
                b"INSERT IGNORE INTO ",
                b"REPLACE INTO ",
            ] {
                if let Some(rest) = head.strip_prefix(prefix) {
                    if let Some((name, used)) = backquoted(rest) {
                        let index = self.table_index(name);
                        self.current = Some(index);
                        self.depth = 0;
                        self.quote = None;
                        self.escaped = false;
                        self.recent.clear();
                        // Re-read what follows the name as statement bytes.
                        let after = rest[used..].to_vec();
                        self.state = State::InsertHead;
                        self.statement(&after);
                        return self.state;
                    }
                }
            }
        }
        State::SkipLine
    }

    /// Reads bytes of an `INSERT` statement; returns how many it used (all,
    /// or up to and including the `;` that ends it).
    fn statement(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            if let Some(q) = self.quote {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Most of a dump is string content: jump to its end.
                let rest = &bytes[i..];
                let found = match q {
                    b'\'' => memchr::memchr2(b'\\', q, rest),
                    _ => memchr::memchr(q, rest),
                };
                let Some(p) = found else {
                    return bytes.len();
                };
                if rest[p] == b'\\' {
                    self.escaped = true;
                } else {
                    self.quote = None;
                }
                i += p + 1;
                continue;
            }
            let b = bytes[i];
            i += 1;
            match b {
                b'\'' | b'"' | b'`' => self.quote = Some(b),
                b'(' if self.state == State::Values => {
                    if self.depth == 0 {
                        let index = self.current.expect("an insert has a table");
                        self.tables[index].rows += 1;
                    }
                    self.depth += 1;
                }
                b'(' => self.depth += 1,
                b')' => self.depth = self.depth.saturating_sub(1),
                b';' if self.depth == 0 => {
                    self.state = State::SkipLine;
                    self.current = None;
                    return i;
                }
                _ if self.state == State::InsertHead && self.depth == 0 => {
                    self.recent.push(b.to_ascii_uppercase());
                    if self.recent.len() > 6 {
                        self.recent.remove(0);
                    }
                    if self.recent == b"VALUES" {
                        self.state = State::Values;
                    }
                }
                _ => {}
            }
        }
        bytes.len()
    }
}

/// A backquoted identifier at the start of `text` (`` ` `` doubled inside),
/// and the bytes it took.
fn backquoted(text: &[u8]) -> Option<(String, usize)> {
    let mut name = Vec::new();
    let mut i = 1;
    if text.first() != Some(&b'`') {
        return None;
    }
    while i < text.len() {
        if text[i] == b'`' {
            if text.get(i + 1) == Some(&b'`') {
                name.push(b'`');
                i += 2;
                continue;
            }
            return Some((String::from_utf8_lossy(&name).into_owned(), i + 1));
        }
        name.push(text[i]);
        i += 1;
    }
    None
}

impl DumpCheck for MysqlDumpCheck {
    fn feed(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.trailer.feed(bytes);
        while !bytes.is_empty() {
            match self.state {
                State::LineStart => {
                    let end = bytes.iter().position(|b| *b == b'\n');
                    let take = end.unwrap_or(bytes.len()).min(HEAD - self.head.len());
                    self.head.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if end.is_some_and(|e| e == take) || self.head.len() >= HEAD {
                        let complete_line = end.is_some_and(|e| e == take);
                        self.state = self.classify();
                        if complete_line && self.state == State::SkipLine {
                            bytes = &bytes[1..];
                            self.state = State::LineStart;
                        }
                    }
                }
                State::SkipLine => match memchr::memchr(b'\n', bytes) {
                    Some(e) => {
                        bytes = &bytes[e + 1..];
                        self.state = State::LineStart;
                    }
                    None => bytes = &[],
                },
                State::InsertHead | State::Values => {
                    let used = self.statement(bytes);
                    bytes = &bytes[used..];
                }
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<TableRows>, String> {
        if self.total == 0 {
            return Err("the dump is empty".into());
        }
        if self.state == State::InsertHead || self.state == State::Values {
            return Err("the dump ends inside an INSERT statement".into());
        }
        if !self.trailer.is_complete() {
            return Err(format!(
                "the dump does not end with {DUMP_COMPLETED:?}: it was cut short"
            ));
        }
        Ok(std::mem::take(&mut self.tables))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "/*M!999999\\- enable the sandbox mode */ \n\
-- Dumping data for table `e`\n\
--\n\
LOCK TABLES `e` WRITE;\n\
UNLOCK TABLES;\n\
-- Dumping data for table `t``q`\n\
INSERT INTO `t``q` VALUES\n\
(1,'x\\ny\\'(z);',0x00FF),\n\
(2,NULL,'a\"b(');\n\
INSERT INTO `t``q` (`a`,`(b`) VALUES (3,'));'),(4,'');\n\
DELIMITER ;;\n\
CREATE PROCEDURE p() BEGIN\n\
INSERT INTO `t``q` VALUES (9,'no');\n\
END ;;\n\
DELIMITER ;\n\
-- Dump completed on 2026-11-26 10:00:00\n";

    fn run(text: &[u8], piece: usize) -> Result<Vec<TableRows>, String> {
        let mut c = MysqlDumpCheck::new("db");
        for p in text.chunks(piece) {
            c.feed(p);
        }
        c.finish()
    }

    #[test]
    fn counts_tuples_not_parentheses_in_strings() {
        for piece in [1, 2, 5, 17, DUMP.len()] {
            let tables = run(DUMP.as_bytes(), piece).unwrap();
            let got: Vec<(&str, u64)> = tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
            assert_eq!(got, [("e", 0), ("t`q", 4)], "piece {piece}");
        }
    }

    #[test]
    fn a_cut_dump_fails() {
        let cut = DUMP.rfind("-- Dump completed").unwrap();
        for end in [0, 40, DUMP.find("(2,").unwrap(), cut] {
            assert!(run(&DUMP.as_bytes()[..end], 7).is_err(), "cut at {end}");
        }
    }
}

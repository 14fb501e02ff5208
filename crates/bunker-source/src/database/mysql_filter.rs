//! Restoring some tables of a MySQL dump: the script is passed through with
//! only the session settings at its start and end and the sections of the
//! chosen tables (structure, data, triggers).

use std::io::{self, Write};

/// A writer that keeps, of a `mysqldump` script written through it, the
/// parts that restore `tables`.
pub struct MysqlTableFilter<W: Write> {
    out: io::BufWriter<W>,
    tables: Vec<String>,
    line: Vec<u8>,
    keep: bool,
}

/// Comment lines that open a section, with the table or view they belong to.
const SECTIONS: [&str; 4] = [
    "-- Table structure for table ",
    "-- Dumping data for table ",
    "-- Temporary view structure for view ",
    "-- Final view structure for view ",
];

impl<W: Write> MysqlTableFilter<W> {
    /// A filter keeping `tables` (and views of those names).
    pub fn new(out: W, tables: Vec<String>) -> Self {
        MysqlTableFilter {
            out: io::BufWriter::with_capacity(1 << 20, out),
            tables,
            line: Vec::new(),
            keep: true,
        }
    }

    fn end_line(&mut self) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end();
        if let Some(name) = SECTIONS.iter().find_map(|s| text.strip_prefix(s)) {
            let name = name.trim_matches('`').replace("``", "`");
            self.keep = self.tables.contains(&name);
        } else if text.starts_with("-- Dumping events for database")
            || text.starts_with("-- Dumping routines for database")
        {
            self.keep = false;
        } else if text.starts_with("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */") {
            // The closing session settings.
            self.keep = true;
        }
        if self.keep {
            self.out.write_all(&self.line)?;
        }
        self.line.clear();
        Ok(())
    }

    /// Writes what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.line.is_empty() {
            self.end_line()?;
        }
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> Write for MysqlTableFilter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..=i]);
            self.end_line()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_chosen_tables_and_the_settings() {
        let dump = "/*!40101 SET NAMES utf8mb4 */;\n--\n-- Table structure for table `a`\n--\nCREATE TABLE `a` (x int);\n\
            --\n-- Dumping data for table `a`\n--\nINSERT INTO `a` VALUES (1);\n\
            --\n-- Table structure for table `b`\n--\nCREATE TABLE `b` (x int);\nINSERT INTO `b` VALUES (2);\n\
            --\n-- Dumping routines for database 'd'\n--\nCREATE PROCEDURE p() SELECT 1;\n\
            /*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n-- Dump completed\n";
        let mut f = MysqlTableFilter::new(Vec::new(), vec!["b".into()]);
        for piece in dump.as_bytes().chunks(7) {
            f.write_all(piece).unwrap();
        }
        let out = String::from_utf8(f.finish().unwrap()).unwrap();
        assert!(out.starts_with("/*!40101 SET NAMES utf8mb4 */;"), "{out}");
        assert!(
            out.contains("CREATE TABLE `b`") && out.contains("VALUES (2)"),
            "{out}"
        );
        assert!(!out.contains("`a`") && !out.contains("PROCEDURE"), "{out}");
        assert!(out.contains("SET TIME_ZONE=@OLD_TIME_ZONE"), "{out}");
    }
}

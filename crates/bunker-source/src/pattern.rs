//! Path patterns (for excludes and restore selection), with restic's meaning: a pattern without `/` matches a
//! file or directory name at any depth; a pattern with `/` matches an absolute
//! path from the root. `*` stays within one name, `**` spans directories.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {message}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it is invalid.
    pub message: String,
}

/// A compiled set of patterns.
#[derive(Clone, Debug)]
pub struct PatternSet {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Default for PatternSet {
    fn default() -> Self {
        PatternSet {
            set: GlobSet::empty(),
            patterns: Vec::new(),
        }
    }
}

impl PatternSet {
    /// Compiles patterns; blank lines and lines starting with `#` are ignored
    /// (the `--exclude-file` format).
    pub fn new<I: IntoIterator<Item = String>>(patterns: I) -> Result<Self, PatternError> {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for raw in patterns {
            let p = raw.trim_end_matches(['\r', '\n']).trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let p = p.trim_end_matches('/');
            let full = if p.contains('/') {
                p.to_string()
            } else {
                format!("**/{p}")
            };
            let glob = GlobBuilder::new(&full)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: raw.clone(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
            kept.push(p.to_string());
        }
        let set = builder.build().map_err(|e| PatternError {
            pattern: kept.join(", "),
            message: e.to_string(),
        })?;
        Ok(PatternSet {
            set,
            patterns: kept,
        })
    }

    /// True if the absolute `path` is excluded.
    pub fn matches(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }

    /// A pattern matching exactly this absolute path (and so everything below it).
    pub fn literal(path: &Path) -> Option<String> {
        path.to_str().map(globset::escape)
    }

    /// The patterns, as recorded in the snapshot.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_semantics() {
        let ex = PatternSet::new([
            "*.tmp".to_string(),
            "/data/cache".into(),
            "# comment".into(),
            "".into(),
            "node_modules/".into(),
        ])
        .unwrap();
        assert!(ex.matches(Path::new("/a/b/x.tmp")));
        assert!(!ex.matches(Path::new("/a/b/x.tmpl")));
        assert!(ex.matches(Path::new("/data/cache")));
        assert!(!ex.matches(Path::new("/other/data/cache")));
        assert!(ex.matches(Path::new("/p/node_modules")));
        assert_eq!(ex.patterns().len(), 3);
        assert!(PatternSet::new(["a[".to_string()]).is_err());
        assert!(!PatternSet::default().matches(Path::new("/x")));
        let lit = PatternSet::new([PatternSet::literal(Path::new("/a/[b]*")).unwrap()]).unwrap();
        assert!(lit.matches(Path::new("/a/[b]*")));
        assert!(!lit.matches(Path::new("/a/bc")));
    }
}

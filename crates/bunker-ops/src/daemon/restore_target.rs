//! Where the dashboard may restore to: only inside `[daemon] restore-roots`,
//! judged on the real path, so neither `..` nor a symlink can lead out.

use std::path::{Component, Path, PathBuf};

/// The real path to restore into, when `target` lies inside one of
/// `roots`; otherwise why not. The existing part of `target` is resolved
/// (symlinks followed); the part that does not exist yet is taken as
/// written, which is safe because it holds no `..` and no links.
pub(crate) fn check_restore_target(roots: &[PathBuf], target: &Path) -> Result<PathBuf, String> {
    if roots.is_empty() {
        return Err(
            "restoring from the dashboard is off: list the folders it may write in [daemon] restore-roots"
                .into(),
        );
    }
    if !target.is_absolute() {
        return Err(format!("{} is not an absolute path", target.display()));
    }
    if target.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} contains \"..\"", target.display()));
    }
    let real = resolve(target)?;
    for root in roots {
        let Ok(root) = root.canonicalize() else {
            continue;
        };
        if real.starts_with(&root) {
            return Ok(real);
        }
    }
    let listed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(if real == target {
        format!(
            "{} is outside the restore roots ({})",
            target.display(),
            listed.join(", ")
        )
    } else {
        format!(
            "{} leads to {}, outside the restore roots ({})",
            target.display(),
            real.display(),
            listed.join(", ")
        )
    })
}

/// `path` with its longest existing ancestor canonicalized.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if existing.symlink_metadata().is_ok() {
            let real = existing
                .canonicalize()
                .map_err(|e| format!("{}: {e}", existing.display()))?;
            return Ok(rest.iter().rev().fold(real, |p, part| p.join(part)));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Err(format!("{}: no such place", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_paths_inside_the_roots_pass() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("restores");
        let outside = base.join("etc");
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("www"), base.join("inward")).unwrap();
        let roots = vec![root.clone()];

        assert_eq!(check_restore_target(&roots, &root).unwrap(), root);
        assert_eq!(
            check_restore_target(&roots, &root.join("www/new/deeper")).unwrap(),
            root.join("www/new/deeper")
        );
        // A link from outside into a root is judged by where it leads.
        assert_eq!(
            check_restore_target(&roots, &base.join("inward/x")).unwrap(),
            root.join("www/x")
        );

        let refused = |p: PathBuf| check_restore_target(&roots, &p).unwrap_err();
        assert!(refused(outside.clone()).contains("outside the restore roots"));
        assert!(refused(root.join("../etc")).contains("\"..\""));
        assert!(refused(root.join("www/../../etc")).contains("\"..\""));
        let e = refused(root.join("escape/passwd"));
        assert!(e.contains("leads to") && e.contains("etc"), "{e}");
        assert!(refused(PathBuf::from("relative/path")).contains("not an absolute path"));
        // A sibling whose name starts like the root is not inside it.
        assert!(refused(base.join("restores-evil")).contains("outside"));
        assert!(check_restore_target(&[], &root)
            .unwrap_err()
            .contains("restore-roots"));
    }
}

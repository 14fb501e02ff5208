//! rsync's `--itemize-changes` lines: an 11-character `YXcstpoguax` code,
//! a space, and the path (directories end in `/`), so that parsers written
//! for rsync's log read Bunker's.

use bunker_format::tree::NodeKind;

/// What changed about one entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Content differs (`c`, only when compared by checksum).
    pub checksum: bool,
    /// Size differs.
    pub size: bool,
    /// Modification time differs.
    pub time: bool,
    /// Permissions differ.
    pub perms: bool,
    /// Owner differs.
    pub owner: bool,
    /// Group differs.
    pub group: bool,
    /// POSIX ACLs differ.
    pub acl: bool,
    /// Other extended attributes differ.
    pub xattrs: bool,
}

impl Attrs {
    /// True when nothing differs.
    pub fn none(&self) -> bool {
        *self == Attrs::default()
    }
}

/// How an entry was brought up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Its content was copied (`>`).
    Sent,
    /// Created or replaced locally: directories, links, special files (`c`).
    Created,
    /// Made a hard link to another entry (`h`).
    HardLink,
    /// Only its attributes changed (`.`).
    Attributes,
}

/// The type letter.
fn kind_letter(kind: NodeKind) -> char {
    match kind {
        NodeKind::File => 'f',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'L',
        NodeKind::CharDevice | NodeKind::BlockDevice => 'D',
        NodeKind::Fifo | NodeKind::Socket => 'S',
    }
}

/// The line for an entry; `new` when DEST had nothing of its kind there.
pub fn line(update: Update, kind: NodeKind, new: bool, a: Attrs, path: &str) -> String {
    let y = match update {
        Update::Sent => '>',
        Update::Created => 'c',
        Update::HardLink => 'h',
        Update::Attributes => '.',
    };
    let mut code = String::with_capacity(11);
    code.push(y);
    code.push(kind_letter(kind));
    if new {
        code.push_str("+++++++++");
    } else {
        let flag = |on: bool, c: char| if on { c } else { '.' };
        code.push(flag(a.checksum, 'c'));
        code.push(flag(a.size, 's'));
        code.push(flag(a.time, 't'));
        code.push(flag(a.perms, 'p'));
        code.push(flag(a.owner, 'o'));
        code.push(flag(a.group, 'g'));
        code.push('.');
        code.push(flag(a.acl, 'a'));
        code.push(flag(a.xattrs, 'x'));
    }
    format!("{code} {path}")
}

/// The line for an entry of DEST that SRC lacks.
pub fn deleting(path: &str) -> String {
    format!("*deleting   {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_rsyncs() {
        let a = Attrs::default();
        assert_eq!(
            line(Update::Sent, NodeKind::File, true, a, "f"),
            ">f+++++++++ f"
        );
        assert_eq!(
            line(Update::Created, NodeKind::Dir, true, a, "d/"),
            "cd+++++++++ d/"
        );
        let st = Attrs {
            size: true,
            time: true,
            ..a
        };
        assert_eq!(
            line(Update::Sent, NodeKind::File, false, st, "f"),
            ">f.st...... f"
        );
        let p = Attrs { perms: true, ..a };
        assert_eq!(
            line(Update::Attributes, NodeKind::File, false, p, "f"),
            ".f...p..... f"
        );
        assert_eq!(deleting("old"), "*deleting   old");
        assert_eq!(
            line(Update::Created, NodeKind::Symlink, true, a, "l -> t"),
            "cL+++++++++ l -> t"
        );
    }
}

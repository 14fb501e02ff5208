//! Mirroring into a folder on an SSH host. SRC is scanned as for a local
//! mirror; the remote folder is listed once; then, in order, what must go
//! is removed (deepest first), folders are made, files uploaded (beside
//! their name, then renamed over it) and links made, many requests at once,
//! and folders get their attributes last, deepest first.
//!
//! SFTP keeps content, permissions, times in whole seconds, symlinks, hard
//! links (when the server offers OpenSSH's extension) and, as root,
//! owners: a file whose size and time (to the second) match is left alone.
//! Extended attributes, ACLs, special files and holes are not kept; special
//! files are counted and named once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bunker_backend::{RemoteAttrs, RemoteEntry, RemoteKind, RemoteOp, SftpFolder};
use bunker_format::tree::{Node, NodeKind};

use super::itemize::{deleting, line, Attrs, Update};
use super::scan::Scanned;
use super::{scan_source, shown, source_folder, MirrorOptions, MirrorSummary};
use crate::restore::metadata::is_root;
use crate::{Cancel, EngineError, Result};

/// Requests in flight at once: enough to hide the round trip.
const IN_FLIGHT: usize = 32;

pub(super) fn remote_kind(kind: NodeKind) -> RemoteKind {
    match kind {
        NodeKind::File => RemoteKind::File,
        NodeKind::Dir => RemoteKind::Dir,
        NodeKind::Symlink => RemoteKind::Symlink,
        _ => RemoteKind::Other,
    }
}

fn attrs_for(node: &Node) -> RemoteAttrs {
    RemoteAttrs {
        mode: node.mode & 0o7777,
        mtime: node.mtime_sec,
        owner: is_root().then_some((node.uid, node.gid)),
    }
}

/// What differs between a remote entry and a node, as SFTP keeps it.
fn differs(there: &RemoteEntry, node: &Node) -> Attrs {
    let root = is_root();
    Attrs {
        size: node.kind == NodeKind::File && there.size != node.size,
        time: node.kind != NodeKind::Symlink && there.mtime != node.mtime_sec,
        perms: node.kind != NodeKind::Symlink && there.mode != node.mode & 0o7777,
        owner: root && node.kind != NodeKind::Symlink && there.owner.0 != node.uid,
        group: root && node.kind != NodeKind::Symlink && there.owner.1 != node.gid,
        ..Default::default()
    }
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Mirrors `src` into the remote `folder` (see the module's text).
pub fn mirror_to_sftp(
    src: &Path,
    folder: &SftpFolder,
    options: &MirrorOptions,
    cancel: &Cancel,
) -> Result<MirrorSummary> {
    let started = Instant::now();
    if options.checksum {
        return Err(EngineError::Invalid(
            "--checksum is not offered for sftp:// mirrors: it would read the whole mirror back over the network".into(),
        ));
    }
    let src = source_folder(src)?;
    let (
        _pool,
        Scanned {
            root,
            entries,
            errors,
        },
        mut summary,
    ) = scan_source(&src, options, cancel)?;
    let listed = folder.list()?;
    let remote: HashMap<&Path, &RemoteEntry> =
        listed.iter().map(|e| (e.rel.as_path(), e)).collect();
    let wanted: HashMap<&Path, &Node> =
        entries.iter().map(|e| (e.rel.as_path(), &e.node)).collect();

    // What goes: entries SRC lacks or holds as another type, except below
    // a folder with an unreadable entry, and what the excludes cover.
    let mut doomed: Vec<&RemoteEntry> = Vec::new();
    let mut held_back = HashSet::new();
    let mut replaced = HashSet::new();
    // The listing is in component order: what a doomed folder holds
    // follows it directly.
    let mut doomed_dir: Option<&Path> = None;
    for there in &listed {
        if doomed_dir.is_some_and(|d| there.rel.starts_with(d)) {
            doomed.push(there);
            continue;
        }
        doomed_dir = None;
        let keep = match wanted.get(there.rel.as_path()) {
            Some(node) if remote_kind(node.kind) == there.kind => true,
            Some(_) => {
                replaced.insert(there.rel.as_path());
                false
            }
            None => !options.delete,
        };
        let is_replaced = replaced.contains(there.rel.as_path());
        if keep || (!is_replaced && options.selection.excludes.matches(&src.join(&there.rel))) {
            continue;
        }
        let parent = there.rel.parent().unwrap_or(Path::new(""));
        if !is_replaced && errors.iter().any(|(p, _)| p.starts_with(parent)) {
            held_back.insert(parent.to_path_buf());
            continue;
        }
        if there.kind == RemoteKind::Dir {
            doomed_dir = Some(&there.rel);
        }
        doomed.push(there);
    }
    summary.deletions_held_back = held_back.len() as u64;
    let deleting_count = doomed
        .iter()
        .filter(|d| !replaced.contains(d.rel.as_path()))
        .count() as u64;
    if let Some(max) = options.max_delete {
        if deleting_count > max {
            return Err(EngineError::Invalid(format!(
                "the mirror would delete {deleting_count} entries from {}, over --max-delete {max}: nothing was changed (is the source empty or not mounted?)",
                folder.location()
            )));
        }
    }

    // The changes, in batches that may each run concurrently.
    let mut removals: Removals = BTreeMap::new();
    for d in &doomed {
        if options.itemize {
            summary
                .changes
                .push(deleting(&shown(&d.rel, node_kind(d.kind))));
        }
        let op = RemoteOp::Remove {
            rel: d.rel.clone(),
            dir: d.kind == RemoteKind::Dir,
        };
        removals
            .entry(std::cmp::Reverse(depth(&d.rel)))
            .or_default()
            .push(op);
    }
    summary.deleted = deleting_count;
    let gone: HashSet<&Path> = doomed.iter().map(|d| d.rel.as_path()).collect();
    let present = |rel: &Path| remote.get(rel).filter(|_| !gone.contains(rel)).copied();

    let mut mkdirs: BTreeMap<usize, Vec<RemoteOp>> = BTreeMap::new();
    let mut content = Vec::new();
    let mut links = Vec::new();
    let mut dirs_differing: HashSet<&Path> = HashSet::new();
    let mut leaders: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut special = Vec::new();
    let change = |summary: &mut MirrorSummary, update, kind, new, a: Attrs, rel: &Path| {
        if options.itemize {
            summary
                .changes
                .push(line(update, kind, new, a, &shown(rel, kind)));
        }
    };
    let hard_links = folder.supports_hard_links();
    for entry in &entries {
        summary.entries_checked += 1;
        let (rel, node) = (&entry.rel, &entry.node);
        let there = present(rel);
        match node.kind {
            NodeKind::Dir => {
                match there {
                    None => {
                        summary.created += 1;
                        change(
                            &mut summary,
                            Update::Created,
                            NodeKind::Dir,
                            true,
                            Attrs::default(),
                            rel,
                        );
                        mkdirs
                            .entry(depth(rel))
                            .or_default()
                            .push(RemoteOp::Mkdir(rel.clone()));
                    }
                    Some(t) if !differs(t, node).none() => {
                        summary.attributes_updated += 1;
                        change(
                            &mut summary,
                            Update::Attributes,
                            NodeKind::Dir,
                            false,
                            differs(t, node),
                            rel,
                        );
                    }
                    Some(_) => continue,
                }
                dirs_differing.insert(rel);
            }
            NodeKind::File => {
                summary.bytes_checked += node.size;
                if hard_links && node.links > 1 {
                    let key = (node.device, node.inode);
                    if let Some(leader) = leaders.get(&key) {
                        if there.is_none_or(|t| !differs(t, node).none()) {
                            summary.hard_links += 1;
                            change(
                                &mut summary,
                                Update::HardLink,
                                NodeKind::File,
                                there.is_none(),
                                Attrs::default(),
                                rel,
                            );
                            if there.is_some() {
                                remove_first(&mut removals, rel);
                            }
                            links.push(RemoteOp::HardLink {
                                rel: rel.clone(),
                                existing: leader.clone(),
                            });
                        }
                        continue;
                    }
                    leaders.insert(key, rel.clone());
                }
                match there {
                    Some(t) if t.size == node.size && t.mtime == node.mtime_sec => {
                        let a = differs(t, node);
                        if !a.none() {
                            summary.attributes_updated += 1;
                            change(
                                &mut summary,
                                Update::Attributes,
                                NodeKind::File,
                                false,
                                a,
                                rel,
                            );
                            content.push(RemoteOp::SetAttrs {
                                rel: rel.clone(),
                                attrs: attrs_for(node),
                            });
                        }
                    }
                    _ => {
                        summary.files_copied += 1;
                        summary.bytes_copied += node.size;
                        let a = there.map(|t| differs(t, node)).unwrap_or_default();
                        change(
                            &mut summary,
                            Update::Sent,
                            NodeKind::File,
                            there.is_none(),
                            a,
                            rel,
                        );
                        content.push(RemoteOp::Upload {
                            rel: rel.clone(),
                            local: src.join(rel),
                            attrs: attrs_for(node),
                        });
                    }
                }
            }
            NodeKind::Symlink => {
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(&node.link_target));
                if !there.is_some_and(|t| links_to(t, node)) {
                    if there.is_some() {
                        remove_first(&mut removals, rel);
                    }
                    summary.created += 1;
                    change(
                        &mut summary,
                        Update::Created,
                        NodeKind::Symlink,
                        there.is_none(),
                        Attrs::default(),
                        rel,
                    );
                    content.push(RemoteOp::Symlink {
                        rel: rel.clone(),
                        target,
                    });
                }
            }
            _ => special.push(rel.clone()),
        }
    }
    if !special.is_empty() {
        summary.warnings.push(format!(
            "{} special file(s) (devices, FIFOs, sockets) cannot be kept over SFTP and were left out; first: {}",
            special.len(),
            src.join(&special[0]).display()
        ));
    }
    if options.dry_run {
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }
    // Folders get their attributes after everything inside: those that
    // differ, and those whose entries changed (which moved their time).
    let mut touched: HashSet<&Path> = dirs_differing;
    for op in removals
        .values()
        .chain(mkdirs.values())
        .flatten()
        .chain(&content)
        .chain(&links)
    {
        touched.insert(op.rel().parent().unwrap_or(Path::new("")));
    }
    let mut dir_attrs: BTreeMap<std::cmp::Reverse<usize>, Vec<RemoteOp>> = BTreeMap::new();
    let nodes = std::iter::once((Path::new(""), &root)).chain(
        entries
            .iter()
            .filter(|e| e.node.kind == NodeKind::Dir)
            .map(|e| (e.rel.as_path(), &e.node)),
    );
    for (rel, node) in nodes {
        if touched.contains(rel) {
            let op = RemoteOp::SetAttrs {
                rel: rel.to_path_buf(),
                attrs: attrs_for(node),
            };
            dir_attrs
                .entry(std::cmp::Reverse(depth(rel)))
                .or_default()
                .push(op);
        }
    }

    let run = |ops: Vec<RemoteOp>, summary: &mut MirrorSummary| -> Result<()> {
        if cancel.is_cancelled() {
            return Err(EngineError::Interrupted("the mirror was interrupted"));
        }
        for (op, result) in ops.iter().zip(folder.run(ops.clone(), IN_FLIGHT)) {
            if let Err(e) = result {
                summary
                    .errors
                    .push(format!("{}: {e}", remote_name(folder, op.rel())));
            }
        }
        Ok(())
    };
    // Replaced links and files go first (not deepest: they hold nothing).
    for (_, ops) in removals {
        run(ops, &mut summary)?;
    }
    for (_, ops) in mkdirs {
        run(ops, &mut summary)?;
    }
    run(content, &mut summary)?;
    run(links, &mut summary)?;
    for (_, ops) in dir_attrs {
        run(ops, &mut summary)?;
    }
    if options.verify {
        let (verified, problems) = verify_listing(folder, &entries, options)?;
        summary.verified = verified;
        summary.verify_problems = problems;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// True when the remote symlink `t` points where `node` does.
pub(super) fn links_to(t: &RemoteEntry, node: &Node) -> bool {
    t.link_target.as_deref().map(|p| p.as_os_str().as_bytes()) == Some(node.link_target.as_slice())
}

/// Removals by depth, deepest first.
type Removals = BTreeMap<std::cmp::Reverse<usize>, Vec<RemoteOp>>;

/// Removes the file or link `rel` before anything else (it is replaced).
fn remove_first(removals: &mut Removals, rel: &Path) {
    removals
        .entry(std::cmp::Reverse(usize::MAX))
        .or_default()
        .push(RemoteOp::Remove {
            rel: rel.to_path_buf(),
            dir: false,
        });
}

fn node_kind(kind: RemoteKind) -> NodeKind {
    match kind {
        RemoteKind::Dir => NodeKind::Dir,
        RemoteKind::Symlink => NodeKind::Symlink,
        _ => NodeKind::File,
    }
}

fn remote_name(folder: &SftpFolder, rel: &Path) -> String {
    format!(
        "{}/{}",
        folder.location().trim_end_matches('/'),
        rel.display()
    )
}

/// Lists the folder again and compares every entry with SRC's as SFTP
/// keeps it: type, size, time, permissions, link target; nothing extra.
fn verify_listing(
    folder: &SftpFolder,
    entries: &[super::Entry],
    options: &MirrorOptions,
) -> Result<(u64, Vec<String>)> {
    let listed = folder.list()?;
    let remote: HashMap<&Path, &RemoteEntry> =
        listed.iter().map(|e| (e.rel.as_path(), e)).collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut seen = HashSet::new();
    for e in entries
        .iter()
        .filter(|e| remote_kind(e.node.kind) != RemoteKind::Other)
    {
        checked += 1;
        seen.insert(e.rel.as_path());
        let name = remote_name(folder, &e.rel);
        match remote.get(e.rel.as_path()) {
            None => problems.push(format!("{name}: missing")),
            Some(t) if t.kind != remote_kind(e.node.kind) => {
                problems.push(format!("{name}: not a {}", e.node.kind.name()))
            }
            Some(t) if !differs(t, &e.node).none() => problems.push(format!(
                "{name}: attributes differ ({:?})",
                differs(t, &e.node)
            )),
            Some(t) if e.node.kind == NodeKind::Symlink && !links_to(t, &e.node) => {
                problems.push(format!("{name}: the link points elsewhere"))
            }
            Some(_) => {}
        }
    }
    if options.delete {
        for t in &listed {
            if !seen.contains(t.rel.as_path())
                && !options.selection.excludes.matches(Path::new(&t.rel))
            {
                problems.push(format!(
                    "{}: not in the source",
                    remote_name(folder, &t.rel)
                ));
            }
        }
    }
    problems.sort();
    Ok((checked, problems))
}

use std::os::unix::ffi::OsStrExt;

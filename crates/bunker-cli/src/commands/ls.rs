//! `bunker ls`

use anyhow::Result;
use bunker_engine::find::find_snapshot;
use bunker_engine::format::tree::{Node, NodeKind};
use bunker_engine::walk_tree::{find_node, visit_tree};
use serde_json::{json, Value};

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// List the contents of a snapshot.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, or "latest"
    snapshot: String,
    /// Directory (or file) inside the snapshot to list
    #[arg(default_value = "/")]
    path: String,
    /// Show type, mode, size and modification time
    #[arg(short, long)]
    long: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn node_json(path: &str, n: &Node) -> Value {
    json!({
        "path": path,
        "type": n.kind.name(),
        "size": n.size,
        "mode": format!("{:o}", n.mode),
        "uid": n.uid,
        "gid": n.gid,
        "mtime": format::time_rfc3339(n.mtime_sec.saturating_mul(1_000_000_000).saturating_add(n.mtime_nsec as i64)),
        "link_target": (n.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&n.link_target).into_owned()),
    })
}

fn long_line(path: &str, n: &Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let ns = n
        .mtime_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(n.mtime_nsec as i64);
    let mut line = format!(
        "{t}{:04o} {:>6} {:>6} {:>12} {} {path}",
        n.mode,
        n.uid,
        n.gid,
        n.size,
        format::time(ns)
    );
    if n.kind == NodeKind::Symlink {
        line.push_str(&format!(" -> {}", String::from_utf8_lossy(&n.link_target)));
    }
    line
}

/// Prints every path below `path` in the snapshot.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open_indexed(global)?;
    let entry = find_snapshot(&repo.snapshots()?, &args.snapshot, &args.filter.filter())?;
    let start = find_node(&repo, &entry.snapshot.tree, &args.path)?;
    let base = format!("/{}", args.path.trim_matches('/'));
    let mut items = Vec::new();
    let mut emit = |path: &[u8], node: &Node| -> bunker_engine::Result<()> {
        let path = String::from_utf8_lossy(path);
        let path = path.as_ref();
        if global.json {
            items.push(node_json(path, node));
        } else if args.long {
            crate::outln!("{}", long_line(path, node));
        } else {
            crate::outln!("{path}");
        }
        Ok(())
    };
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(sub)) => visit_tree(&repo, &sub, base.as_bytes(), &mut emit)?,
        _ => emit(base.as_bytes(), &start)?,
    }
    if global.json {
        super::print_json(&json!({ "snapshot": entry.id.to_hex(), "nodes": items }));
    }
    Ok(exit::OK)
}

//! What repositories hold: snapshots (filtered), a snapshot's tree one
//! folder at a time, a file's bytes, a restore into an allowed folder, and
//! the differences between two snapshots.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bunker_engine::diff::diff as diff_trees;
use bunker_engine::find::{find_snapshot, SnapshotFilter};
use bunker_engine::format::tree::NodeKind;
use bunker_engine::restore::{restore as restore_tree, RestoreOptions};
use bunker_engine::source::ProtectedPaths;
use bunker_engine::walk_tree::find_node;
use bunker_engine::{Cancel, Indexed, Repository, SnapshotEntry};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, Failure};
use crate::daemon::restore_target::check_restore_target;
use crate::daemon::Shared;
use crate::records::{snapshot_json, time_ns_rfc3339};
use crate::{Operations, OpsError};

/// Which snapshots to list.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SnapshotQuery {
    /// Only the plan's (snapshots carry their plan's name as a tag).
    pub plan: Option<String>,
    /// Only this host's.
    pub host: Option<String>,
    /// Only those with this tag.
    pub tag: Option<String>,
    /// `files`, `postgres`, `mysql`.
    pub kind: Option<String>,
}

impl SnapshotQuery {
    fn filter(&self) -> SnapshotFilter {
        let some = |v: &Option<String>| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        let mut tags: Vec<String> = some(&self.tag);
        tags.extend(some(&self.plan));
        SnapshotFilter {
            hosts: some(&self.host),
            tags,
            paths: Vec::new(),
            kinds: some(&self.kind),
        }
    }
}

/// A path inside a snapshot.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PathQuery {
    /// Absolute, `/`-separated; the root when absent.
    #[serde(default)]
    pub path: String,
}

/// Two snapshots to compare.
#[derive(Clone, Debug, Deserialize)]
pub struct DiffQuery {
    /// The older one (id or prefix).
    pub a: String,
    /// The newer one.
    pub b: String,
}

/// What to restore and where.
#[derive(Clone, Debug, Deserialize)]
pub struct RestoreRequest {
    /// The file or folder in the snapshot.
    #[serde(default)]
    pub path: String,
    /// The folder on the daemon's host to restore into (inside a restore root).
    pub target: PathBuf,
    /// Replace existing files that differ (without it, a restore that
    /// would is refused and says which).
    #[serde(default, deserialize_with = "flag")]
    pub overwrite: bool,
    /// Say what would be done; do nothing.
    #[serde(default, deserialize_with = "flag")]
    pub dry_run: bool,
}

/// A boolean from JSON, or from a form's `on`/`true`/`1`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(t) => matches!(t.as_str(), "on" | "true" | "1" | "yes"),
    })
}

/// Opens repository `name` with its index, on the calling (blocking) thread.
fn open_indexed(ops: &Operations, name: &str) -> Result<Repository<Indexed>, OpsError> {
    ops.open_repository(name)?
        .load_index()
        .map_err(|source| OpsError::Repository {
            repository: name.to_string(),
            source,
        })
}

fn engine(repo: &str) -> impl Fn(bunker_engine::EngineError) -> Failure + '_ {
    move |source| {
        Failure::from(OpsError::Repository {
            repository: repo.to_string(),
            source,
        })
    }
}

fn find(repo: &Repository<Indexed>, name: &str, id: &str) -> Result<SnapshotEntry, Failure> {
    let entries = repo.snapshots().map_err(engine(name))?;
    find_snapshot(&entries, id, &SnapshotFilter::default()).map_err(engine(name))
}

/// Runs `work` on the blocking pool with repository `repo` open.
async fn with_repository<T: Send + 'static>(
    shared: Arc<Shared>,
    repo: String,
    work: impl FnOnce(&Operations, Repository<Indexed>, &str) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    blocking(move || {
        let config = shared.config();
        let ops = shared.operations(&config, Cancel::new());
        let r = open_indexed(&ops, &repo)?;
        work(&ops, r, &repo)
    })
    .await
}

/// The snapshots of `repo` that pass `query`, newest first.
pub(crate) async fn list_snapshots(
    shared: Arc<Shared>,
    repo: String,
    query: SnapshotQuery,
) -> Result<Vec<Value>, Failure> {
    blocking(move || {
        let config = shared.config();
        let ops = shared.operations(&config, Cancel::new());
        let r = ops.open_repository(&repo)?;
        let entries = r.snapshots().map_err(engine(&repo))?;
        Ok(query
            .filter()
            .apply(entries)
            .iter()
            .rev()
            .map(snapshot_json)
            .collect())
    })
    .await
}

pub(super) async fn list_json(
    State(shared): State<Arc<Shared>>,
    Path(repo): Path<String>,
    Query(query): Query<SnapshotQuery>,
) -> Response {
    match list_snapshots(shared, repo, query).await {
        Ok(list) => Json(json!({ "snapshots": list })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// One folder of a snapshot: the snapshot, the path, and its entries in
/// name order (a file's path gives that file alone).
pub(crate) async fn tree(
    shared: Arc<Shared>,
    repo: String,
    id: String,
    path: String,
) -> Result<Value, Failure> {
    with_repository(shared, repo, move |_, r, name| {
        let entry = find(&r, name, &id)?;
        let node = find_node(&r, &entry.snapshot.tree, &path).map_err(engine(name))?;
        let base = format!("/{}", path.trim_matches('/'));
        let child = |n: &bunker_engine::format::tree::Node, path: String| {
            let ns = n
                .mtime_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(n.mtime_nsec as i64);
            json!({
                "name": String::from_utf8_lossy(&n.name),
                "path": path,
                "type": n.kind.name(),
                "size": n.size,
                "mode": format!("{:o}", n.mode),
                "mtime": time_ns_rfc3339(ns),
                "link_target": (n.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&n.link_target).into_owned()),
            })
        };
        let entries: Vec<Value> = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => r
                .load_tree(&sub)
                .map_err(engine(name))?
                .nodes
                .iter()
                .map(|n| {
                    let p = format!(
                        "{}/{}",
                        base.trim_end_matches('/'),
                        String::from_utf8_lossy(&n.name)
                    );
                    child(n, p)
                })
                .collect(),
            _ => vec![child(&node, base.clone())],
        };
        Ok(json!({
            "snapshot": snapshot_json(&entry),
            "path": base,
            "type": node.kind.name(),
            "entries": entries,
        }))
    })
    .await
}

pub(super) async fn tree_json(
    State(shared): State<Arc<Shared>>,
    Path((repo, id)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Response {
    match tree(shared, repo, id, q.path).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What RFC 5987 lets a `filename*` value carry unencoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Sends what is written to it as body chunks.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file's bytes (a folder as a tar stream), streamed as they are read.
async fn dump_file(shared: Arc<Shared>, repo: String, id: String, path: String) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let (kind_tx, kind_rx) = tokio::sync::oneshot::channel::<Result<(NodeKind, String), Failure>>();
    tokio::task::spawn_blocking(move || {
        let config = shared.config();
        let ops = shared.operations(&config, Cancel::new());
        let found = open_indexed(&ops, &repo)
            .map_err(Failure::from)
            .and_then(|r| {
                let entry = find(&r, &repo, &id)?;
                let node = find_node(&r, &entry.snapshot.tree, &path).map_err(engine(&repo))?;
                Ok((r, entry, node))
            });
        let (r, entry, node) = match found {
            Ok(v) => v,
            Err(e) => {
                let _ = kind_tx.send(Err(e));
                return;
            }
        };
        if !matches!(node.kind, NodeKind::File | NodeKind::Dir) {
            let _ = kind_tx.send(Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{path} is a {}, not a file or folder", node.kind.name()),
            )));
            return;
        }
        let name = String::from_utf8_lossy(&node.name).into_owned();
        let _ = kind_tx.send(Ok((node.kind, name)));
        let mut out = ChunkWriter { tx: tx.clone() };
        if let Err(e) = bunker_engine::dump::dump(&r, &entry.snapshot.tree, &path, &mut out) {
            // Cut the body short, so the client sees the download fail.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let (kind, name) = match kind_rx.await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            return Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "the reader stopped")
                .into_response()
        }
    };
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let (content_type, file_name) = match kind {
        NodeKind::Dir => (
            "application/x-tar",
            format!("{}.tar", if name.is_empty() { "snapshot" } else { &name }),
        ),
        _ => ("application/octet-stream", name),
    };
    // The name goes out percent-encoded (RFC 6266), whatever its bytes.
    let encoded = percent_encoding::utf8_percent_encode(&file_name, ATTR_CHAR);
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename*=UTF-8''{encoded}"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

pub(super) async fn file(
    State(shared): State<Arc<Shared>>,
    Path((repo, id)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Response {
    dump_file(shared, repo, id, q.path).await
}

/// Restores `request.path` of snapshot `id` into `request.target`, which
/// must lie inside `[daemon] restore-roots`. A restore that would replace
/// existing files that differ is refused (409, naming them) unless
/// `overwrite`; the restored files are verified.
pub(crate) async fn restore(
    shared: Arc<Shared>,
    repo: String,
    id: String,
    request: RestoreRequest,
) -> Result<Value, Failure> {
    with_repository(shared, repo, move |ops, r, name| {
        let target = check_restore_target(&ops.config.daemon.restore_roots, &request.target)
            .map_err(|why| Failure::new(StatusCode::FORBIDDEN, why))?;
        let entry = find(&r, name, &id)?;
        let r = Arc::new(r);
        let options = |dry_run: bool| RestoreOptions {
            target: target.clone(),
            subpath: request.path.clone(),
            verify: !dry_run,
            dry_run,
            protected: ProtectedPaths::new(ops.own_paths(name)),
            ..Default::default()
        };
        let plan = restore_tree(
            Arc::clone(&r),
            &entry.snapshot.tree,
            &options(true),
            Arc::new(bunker_engine::NoProgress),
        )
        .map_err(engine(name))?;
        let overwrites: Vec<&String> = plan
            .changes
            .iter()
            .filter(|(mark, _)| *mark == 'M')
            .map(|(_, p)| p)
            .collect();
        let creates = plan.changes.iter().filter(|(m, _)| *m == '+').count();
        let planned = json!({
            "snapshot": entry.id.to_hex(),
            "path": request.path,
            "target": target,
            "creates": creates,
            "overwrites": overwrites.len(),
            "overwritten": overwrites.iter().take(20).collect::<Vec<_>>(),
            "unchanged": plan.unchanged,
        });
        if request.dry_run {
            return Ok(planned);
        }
        if !overwrites.is_empty() && !request.overwrite {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                format!(
                    "the restore would overwrite {} existing file(s) in {}, first {}: ask again with overwrite",
                    overwrites.len(),
                    target.display(),
                    overwrites[0]
                ),
            ));
        }
        let done = restore_tree(
            Arc::clone(&r),
            &entry.snapshot.tree,
            &options(false),
            Arc::new(bunker_engine::NoProgress),
        )
        .map_err(engine(name))?;
        Ok(json!({
            "snapshot": entry.id.to_hex(),
            "path": request.path,
            "target": target,
            "files": done.files,
            "unchanged": done.unchanged,
            "dirs": done.dirs,
            "bytes": done.bytes,
            "verified": done.verified,
            "errors": done.errors,
            "warnings": done.warnings,
        }))
    })
    .await
}

pub(super) async fn restore_json(
    State(shared): State<Arc<Shared>>,
    Path((repo, id)): Path<(String, String)>,
    Json(request): Json<RestoreRequest>,
) -> Response {
    match restore(shared, repo, id, request).await {
        Ok(v) if v["errors"].as_array().is_some_and(|e| !e.is_empty()) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(v)).into_response()
        }
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What differs between snapshots `a` and `b`, in path order.
pub(crate) async fn diff(
    shared: Arc<Shared>,
    repo: String,
    q: DiffQuery,
) -> Result<Value, Failure> {
    with_repository(shared, repo, move |_, r, name| {
        let a = find(&r, name, &q.a)?;
        let b = find(&r, name, &q.b)?;
        let changes = diff_trees(&r, &a.snapshot.tree, &b.snapshot.tree).map_err(engine(name))?;
        Ok(json!({
            "a": snapshot_json(&a),
            "b": snapshot_json(&b),
            "changes": changes.iter().map(|c| json!({
                "path": c.path,
                "change": c.change.name(),
                "mark": c.change.mark().to_string(),
                "type": c.kind.name(),
            })).collect::<Vec<_>>(),
        }))
    })
    .await
}

pub(super) async fn diff_json(
    State(shared): State<Arc<Shared>>,
    Path(repo): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    match diff(shared, repo, q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

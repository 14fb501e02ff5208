//! `GET /api/events`: server-sent events for the dashboard's live view.
//! Every second, and within half a second of a run starting, ending or
//! being asked for, one `state` event: a generation number that changes
//! with each of those, and every running operation's progress.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;

use super::plans::plan_views;
use crate::daemon::Shared;

pub(super) async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (shared, None::<(u64, Instant)>);
    let events = futures_util::stream::unfold(start, |(shared, last)| async move {
        loop {
            if let Some((generation, sent)) = last {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if shared.generation() == generation && sent.elapsed() < Duration::from_secs(1) {
                    continue;
                }
            }
            let generation = shared.generation();
            let running: Vec<_> = plan_views(&shared)
                .into_iter()
                .filter(|p| p.running.is_some() || !p.queued.is_empty())
                .map(|p| json!({ "plan": p.name, "running": p.running, "queued": p.queued }))
                .collect();
            let event = Event::default()
                .event("state")
                .json_data(json!({ "generation": generation, "plans": running }))
                .unwrap_or_default();
            return Some((Ok(event), (shared, Some((generation, Instant::now())))));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

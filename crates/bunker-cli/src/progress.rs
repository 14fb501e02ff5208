//! Progress renderers: a bar on a terminal, JSON lines with `--json`,
//! nothing otherwise. Warnings always go to stderr, one line each.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bunker_engine::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::context::GlobalArgs;

/// Picks the renderer for `global` and the operation named `verb`.
pub fn for_operation(global: &GlobalArgs, verb: &'static str) -> Arc<Reporter> {
    let mode = if global.json {
        Mode::Json
    } else if !global.quiet && std::io::stdout().is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(verb);
        Mode::Bar(bar)
    } else {
        Mode::Silent
    };
    Arc::new(Reporter {
        mode,
        verb,
        items: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        totals: Mutex::new((0, 0)),
        stored: Mutex::new(Vec::new()),
        started: Instant::now(),
        last_json: Mutex::new(Instant::now()),
    })
}

enum Mode {
    Bar(ProgressBar),
    Json,
    Silent,
}

/// The binary's [`Progress`].
pub struct Reporter {
    mode: Mode,
    verb: &'static str,
    items: AtomicU64,
    bytes: AtomicU64,
    totals: Mutex<(u64, u64)>,
    /// Bytes stored in each repository, when a backup writes several.
    stored: Mutex<Vec<u64>>,
    started: Instant,
    last_json: Mutex<Instant>,
}

impl Reporter {
    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }

    fn json_status(&self) {
        let mut last = self.last_json.lock().expect("lock");
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let (total_items, total_bytes) = *self.totals.lock().expect("lock");
        let line = serde_json::json!({
            "message_type": "status",
            "operation": self.verb,
            "seconds_elapsed": self.started.elapsed().as_secs_f64(),
            "items_done": self.items.load(Ordering::Relaxed),
            "bytes_done": self.bytes.load(Ordering::Relaxed),
            "total_items": total_items,
            "total_bytes": total_bytes,
            "stored_bytes": *self.stored.lock().expect("lock"),
        });
        crate::outln!("{line}");
    }
}

impl Progress for Reporter {
    fn set_total(&self, items: u64, bytes: u64) {
        *self.totals.lock().expect("lock") = (items, bytes);
        if let Mode::Bar(bar) = &self.mode {
            bar.set_length(bytes);
        }
    }

    fn advance(&self, items: u64, bytes: u64) {
        let done = self.items.fetch_add(items, Ordering::Relaxed) + items;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        match &self.mode {
            Mode::Bar(bar) => {
                bar.inc(bytes);
                if items > 0 {
                    let total = self.totals.lock().expect("lock").0;
                    bar.set_message(format!("{done}/{total} files"));
                }
            }
            Mode::Json => self.json_status(),
            Mode::Silent => {}
        }
    }

    fn stored(&self, target: usize, bytes: u64) {
        let shown = {
            let mut stored = self.stored.lock().expect("lock");
            if stored.len() <= target {
                stored.resize(target + 1, 0);
            }
            stored[target] += bytes;
            stored
                .iter()
                .map(|b| crate::format::bytes(*b))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Mode::Bar(bar) = &self.mode {
            bar.set_prefix(format!("{} (stored: {shown})", self.verb));
        }
    }

    fn warning(&self, message: &str) {
        let line = format!("bunker: warning: {message}");
        match &self.mode {
            Mode::Bar(bar) => bar.suspend(|| crate::errln!("{line}")),
            _ => crate::errln!("{line}"),
        }
    }
}

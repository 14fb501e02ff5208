//! Problems an operation met and went past — a damaged snapshot file, an
//! unreadable index file, a stray file — so that one bad object never blocks
//! the rest. Each is told once per repository handle: to the sink the caller
//! set (the command line prints a warning line), or kept until taken.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Where notices go as they arrive.
pub type NoticeSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The notices of one repository handle (shared by its clones and states).
#[derive(Default)]
pub struct Notices {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<String>,
    pending: Vec<String>,
    sink: Option<NoticeSink>,
}

impl Notices {
    /// Records a problem; a message already told is not told again.
    pub fn add(&self, message: impl Into<String>) {
        let message = message.into();
        let sink = {
            let mut inner = self.inner.lock().expect("notices lock");
            if !inner.seen.insert(message.clone()) {
                return;
            }
            match &inner.sink {
                Some(sink) => sink.clone(),
                None => return inner.pending.push(message),
            }
        };
        sink(&message);
    }

    /// Sends every later notice, and those kept so far, to `sink`.
    pub fn set_sink(&self, sink: NoticeSink) {
        let pending = {
            let mut inner = self.inner.lock().expect("notices lock");
            inner.sink = Some(sink.clone());
            std::mem::take(&mut inner.pending)
        };
        for message in pending {
            sink(&message);
        }
    }

    /// The notices kept (not yet sent to a sink), oldest first.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().expect("notices lock").pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_notice_is_told_once_and_kept_until_a_sink_takes_it() {
        let n = Notices::default();
        n.add("a");
        n.add("a");
        n.add("b");
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        n.set_sink(Arc::new(move |m| t.lock().unwrap().push(m.to_string())));
        n.add("c");
        n.add("b");
        assert_eq!(*told.lock().unwrap(), ["a", "b", "c"]);
        assert!(n.take().is_empty());
    }
}

//! The async runtime under the synchronous [`Backend`](crate::Backend) calls.

use std::future::Future;

use crate::BackendError;

/// A small tokio runtime owned by one backend. The engine is synchronous
/// and multi-threaded; OpenDAL is async: each call runs its future here and
/// the calling thread waits for the answer. Safe from any thread, including
/// a thread of another runtime (a daemon's task), where blocking on a
/// runtime handle would panic.
pub(crate) struct IoRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl IoRuntime {
    pub(crate) fn new() -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bunker-io")
            .enable_all()
            .build()
            .map_err(|e| BackendError::from(("start storage runtime", e)))?;
        Ok(IoRuntime {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until dropped")
    }

    /// Enters the runtime's context (some clients must be built inside one).
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime().enter()
    }

    /// Runs `future` to completion and returns its output.
    pub(crate) fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime().block_on(future);
        }
        // Inside some runtime: hand the future to ours and wait on a plain
        // channel instead.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .expect("the storage runtime runs until its backend is dropped")
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside
        // another runtime; nothing of ours is left running by now.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_a_plain_thread_and_from_inside_another_runtime() {
        let io = IoRuntime::new().unwrap();
        assert_eq!(io.run(async { 1 + 1 }), 2);
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = outer.block_on(async move {
            let v = io.run(async { 40 + 2 });
            drop(io);
            v
        });
        assert_eq!(got, 42);
    }
}

//! Tokio time that moves only when the test moves it.
//!
//! For tests of timeouts (the Stripe client's, the invocation deadline's budget): run them with
//! `#[tokio::test(start_paused = true)]` and create a [`Frozen`] first thing. A paused clock
//! alone still auto-advances to the next timer whenever the runtime looks idle, and a runtime
//! waiting on real I/O (dynoxide, the Stripe stand-in on loopback) can look idle for a moment
//! on a loaded machine: a timeout would then fire early, at random. While a `spawn_blocking`
//! task runs, tokio does not auto-advance (documented under `tokio::time::pause`), so `Frozen`
//! keeps one running: the clock then moves only by `tokio::time::advance`, and a timeout fires
//! exactly when the test says, however slow the machine is.
use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long [`Frozen::finish`] waits, in real time, before calling the test hung. Nothing in a
/// healthy run comes near it: it only turns a hang into a failure that names what hung.
pub const HANG: Duration = Duration::from_secs(120);

/// Keeps the paused tokio clock still until dropped (see the module documentation).
pub struct Frozen {
    stop: Option<mpsc::Sender<()>>,
    watchdog: JoinHandle<()>,
}

impl Frozen {
    /// Call first in a `start_paused` test, before any I/O: from here on only
    /// `tokio::time::advance` moves the clock.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Frozen {
        let (stop, stopped) = mpsc::channel::<()>();
        let watchdog = tokio::task::spawn_blocking(move || {
            // Ends when the guard is dropped, or after HANG.
            let _ = stopped.recv_timeout(HANG);
        });
        Frozen {
            stop: Some(stop),
            watchdog,
        }
    }

    /// Awaits `fut`, which must finish without the clock moving; panics naming `what` if it is
    /// still pending after [`HANG`] of real time (e.g. a timeout that never fires because the
    /// code under test waits for a later one).
    pub async fn finish<F: Future>(&mut self, what: &str, fut: F) -> F::Output {
        tokio::select! {
            out = fut => out,
            _ = &mut self.watchdog => panic!("{what}: still pending after {HANG:?} of real time"),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // The blocking task returns at once; the runtime shuts down without waiting for HANG.
        self.stop.take();
    }
}

//! A pool of pre-started workers, so creating a context does not wait for an
//! interpreter to start. A pooled worker is handed to exactly one instance and never
//! comes back: the pool only ever holds workers that have run nothing.

use crate::worker::{Worker, WorkerCommand, WorkerError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Ready workers, refilled in the background up to `size`.
pub struct WorkerPool {
    command: WorkerCommand,
    size: usize,
    state: Mutex<PoolState>,
    closed: AtomicBool,
}

#[derive(Default)]
struct PoolState {
    idle: VecDeque<Worker>,
    /// Workers being started for the pool.
    starting: usize,
}

impl WorkerPool {
    /// A pool of `size` workers started with `command`; empty until [`WorkerPool::refill`].
    pub fn new(command: WorkerCommand, size: usize) -> Arc<WorkerPool> {
        Arc::new(WorkerPool {
            command,
            size,
            state: Mutex::new(PoolState::default()),
            closed: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many workers are ready now.
    pub fn ready(&self) -> usize {
        self.state().idle.len()
    }

    /// A ready worker if there is one (skipping any that died while waiting), else
    /// `None`; either way the pool starts refilling.
    pub fn take(self: &Arc<Self>) -> Option<Worker> {
        let worker = {
            let mut state = self.state();
            loop {
                match state.idle.pop_front() {
                    Some(worker) if worker.exited().is_some() => {
                        log::warn!(
                            "a pooled worker had ended ({:?}); discarding it",
                            worker.exited()
                        );
                    }
                    other => break other,
                }
            }
        };
        self.refill();
        worker
    }

    /// Starts workers in the background until the pool is full. Needs a tokio runtime:
    /// the workers' pipes belong to it, so it must outlive them (a server's runtime).
    pub fn refill(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        loop {
            {
                let mut state = self.state();
                if self.closed.load(Ordering::SeqCst)
                    || state.idle.len() + state.starting >= self.size
                {
                    return;
                }
                state.starting += 1;
            }
            let pool = self.clone();
            tokio::spawn(async move {
                let started = Worker::spawn(&pool.command).await;
                let mut state = pool.state();
                state.starting -= 1;
                match started {
                    // A worker started after `close` is dropped, which kills it.
                    Ok(worker) if !pool.closed.load(Ordering::SeqCst) => {
                        state.idle.push_back(worker)
                    }
                    Ok(_) => {}
                    Err(error) => log::warn!("could not start a worker for the pool: {error}"),
                }
            });
        }
    }

    /// Starts one worker now, bypassing the pool (when it is empty).
    pub async fn spawn_cold(&self) -> Result<Worker, WorkerError> {
        Worker::spawn(&self.command).await
    }

    /// Ends every idle worker; no more are started.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let idle: Vec<Worker> = self.state().idle.drain(..).collect();
        for worker in idle {
            worker.kill().await;
        }
    }
}

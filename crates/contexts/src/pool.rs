//! A pool of pre-started workers, so creating a context does not wait for an
//! interpreter to start. A pooled worker is handed to exactly one instance and never
//! comes back: the pool only ever holds workers that have run nothing.
//!
//! With a zygote ([`WorkerPool::set_zygote`]), every worker, pooled or cold, is forked
//! by it, and spawned the plain way only when the zygote cannot fork.

use crate::worker::{
    Owner, Worker, WorkerCommand, WorkerError, WorkerLimits, Zygote, ZygoteSpawnError,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Ready workers, refilled in the background up to `size`.
pub struct WorkerPool {
    command: WorkerCommand,
    size: usize,
    state: Mutex<PoolState>,
    closed: AtomicBool,
    /// Forks the workers when set; taken at `close`.
    zygote: Mutex<Option<Arc<Zygote>>>,
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
            zygote: Mutex::new(None),
        })
    }

    /// Has `zygote` fork the workers from now on.
    pub fn set_zygote(&self, zygote: Arc<Zygote>) {
        *self.zygote.lock().unwrap_or_else(PoisonError::into_inner) = Some(zygote);
    }

    /// The zygote, if the workers are forked.
    pub fn zygote(&self) -> Option<Arc<Zygote>> {
        self.zygote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A fresh worker: forked by the zygote if there is one and it can, else spawned.
    /// Its owning task goes to the runtime of its first call (the request thread that
    /// uses it: no hop between threads per call), as contexts are called from
    /// runtimes that run as long as the host.
    async fn launch(&self) -> Result<Worker, WorkerError> {
        let limits = WorkerLimits {
            owner: Owner::FirstCaller,
            ..WorkerLimits::default()
        };
        if let Some(zygote) = self.zygote() {
            match zygote.spawn(limits).await {
                Ok(worker) => return Ok(worker),
                Err(ZygoteSpawnError::Worker(error)) => return Err(error),
                Err(error @ ZygoteSpawnError::NoFork(_)) => {
                    log::warn!("{error}; spawning it instead");
                }
            }
        }
        Worker::spawn_with(&self.command, limits).await
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
                let started = pool.launch().await;
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

    /// Starts one worker now, bypassing the pool (when it is empty): forked by the
    /// zygote when there is one.
    pub async fn spawn_cold(&self) -> Result<Worker, WorkerError> {
        self.launch().await
    }

    /// Ends every idle worker; no more are started. The zygote ends once the last
    /// worker it forked is gone.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.zygote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let idle: Vec<Worker> = self.state().idle.drain(..).collect();
        for worker in idle {
            worker.kill().await;
        }
    }
}

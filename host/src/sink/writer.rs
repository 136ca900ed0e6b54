//! Drives a pipeline's sink and dead-letter sink on their own task, so that
//! encoding and writing output overlaps with the plugins working on the next
//! batch (two cores: one runs WebAssembly, one writes Parquet).
//!
//! Order is kept: batches are written in the order they were sent. A record
//! the sink refuses goes to the dead-letter sink; if the dead-letter sink
//! refuses a record too, the writer stops with an error rather than lose it.
//! The channel is bounded, so a slow sink slows the pipeline (back-pressure)
//! instead of filling memory.

use super::{Error, Result, Sink};
use crate::Record;
use crate::pipeline::{Stats, tag_dead_letter};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Batches that may wait for the writer before the pipeline blocks.
const QUEUE: usize = 4;

enum Command {
    Write {
        outputs: Vec<Record>,
        dead: Vec<Record>,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task.
pub struct SinkWriter {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl SinkWriter {
    /// Starts the writer; `origin` names the source for dead letters the
    /// sink causes.
    pub fn spawn(
        sink: Box<dyn Sink>,
        dead_letter: Box<dyn Sink>,
        stats: Arc<Stats>,
        origin: String,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(drive(rx, sink, dead_letter, stats, origin));
        SinkWriter {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Queues outputs and dead letters; waits only when the queue is full.
    pub async fn write(&mut self, outputs: Vec<Record>, dead: Vec<Record>) -> Result<()> {
        if outputs.is_empty() && dead.is_empty() {
            return Ok(());
        }
        self.send(Command::Write { outputs, dead }).await
    }

    /// Makes everything queued so far durable; returns when it is.
    pub async fn flush(&mut self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Flush(ack)).await?;
        match done.await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure().await),
        }
    }

    /// Writes what is queued, closes both sinks and reports the first error.
    pub async fn close(mut self) -> Result<()> {
        self.tx.take();
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(Error::Stopped(format!("panicked: {e}")))),
            None => Ok(()),
        }
    }

    async fn send(&mut self, command: Command) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(command).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.failure().await)
        }
    }

    /// The writer task ended early: its error.
    async fn failure(&mut self) -> Error {
        self.tx.take();
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => Error::Stopped("ended without an error".into()),
                Err(e) => Error::Stopped(format!("panicked: {e}")),
            },
            None => Error::Stopped("already closed".into()),
        }
    }
}

async fn drive(
    mut rx: mpsc::Receiver<Command>,
    mut sink: Box<dyn Sink>,
    mut dead_letter: Box<dyn Sink>,
    stats: Arc<Stats>,
    origin: String,
) -> Result<()> {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Write { outputs, mut dead } => {
                let count = outputs.len() as u64;
                let rejected = sink.write(outputs).await?;
                stats
                    .written
                    .fetch_add(count - rejected.len() as u64, Ordering::Relaxed);
                for r in rejected {
                    dead.push(tag_dead_letter(r.record, &r.reason, "sink", &origin));
                }
                if dead.is_empty() {
                    continue;
                }
                let count = dead.len() as u64;
                let refused = dead_letter.write(dead).await?;
                if let Some(r) = refused.first() {
                    // The last resort refused a record: stop rather than lose it.
                    return Err(Error::Format {
                        sink: dead_letter.describe(),
                        action: "write dead letter".into(),
                        reason: format!("{} record(s) refused, first: {}", refused.len(), r.reason),
                    });
                }
                stats.dead_lettered.fetch_add(count, Ordering::Relaxed);
            }
            Command::Flush(ack) => {
                sink.flush().await?;
                dead_letter.flush().await?;
                let _ = ack.send(());
            }
        }
    }
    sink.close().await?;
    dead_letter.close().await
}

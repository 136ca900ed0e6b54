//! Drives a pipeline's sink and dead-letter sink on their own task, so that
//! encoding and writing output overlaps with the plugins working on the next
//! batch (two cores: one runs WebAssembly, one writes Parquet).
//!
//! Order is kept: batches are written in the order they were sent. A record
//! the sink refuses goes to the dead-letter sink; if the dead-letter sink
//! refuses a record too, the writer stops with an error rather than lose it.
//! The channel is bounded, so a slow sink slows the pipeline (back-pressure)
//! instead of filling memory.
//!
//! Between batches the pipeline sends checkpoints. The writer makes the
//! dead letters durable, then commits the checkpoint: through the sink
//! itself (exactly-once: the sink stores it atomically with the epoch's
//! data) or, after flushing the sink, to a [`CheckpointStore`]
//! (at-least-once). Only then is the checkpoint published back to the
//! pipeline, which may then tell the source (Kafka: the group's offsets, for
//! monitoring). So a position is never recorded ahead of its data.

use super::{Error, Result, Sink, envelope};
use crate::Record;
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::record::tag_dead_letter;
use crate::stats::Stats;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Who stores checkpoints.
pub enum Committer {
    /// The sink, with its data (exactly-once).
    Sink,
    /// A separate store, after the sink is flushed (at-least-once).
    Store(Box<dyn CheckpointStore>),
}

enum Command {
    Write {
        outputs: Vec<Record>,
        dead: Vec<Record>,
        origin: Option<String>,
    },
    Checkpoint {
        checkpoint: Checkpoint,
        last: bool,
    },
}

/// Handle to the writer task.
pub struct SinkWriter {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
    committed: watch::Receiver<Option<Checkpoint>>,
    /// The epoch of the last checkpoint handed out by [`SinkWriter::take_committed`].
    taken: u64,
}

impl SinkWriter {
    /// Starts the writer; `origin` names the source for dead letters the
    /// sink causes. Up to `depth` batches wait for it before the pipeline
    /// blocks.
    pub fn spawn(
        sink: Box<dyn Sink>,
        dead_letter: Box<dyn Sink>,
        committer: Committer,
        stats: Arc<Stats>,
        origin: String,
        depth: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let (committed_tx, committed) = watch::channel(None);
        let task = tokio::spawn(drive(
            rx,
            Sinks {
                sink,
                dead_letter,
                committer,
                stats,
                origin,
            },
            committed_tx,
        ));
        SinkWriter {
            tx: Some(tx),
            task: Some(task),
            committed,
            taken: 0,
        }
    }

    /// Queues outputs and dead letters, with where their batch came from
    /// (for records the sink refuses); waits only when the queue is full.
    pub async fn write(
        &mut self,
        outputs: Vec<Record>,
        dead: Vec<Record>,
        origin: Option<String>,
    ) -> Result<()> {
        if outputs.is_empty() && dead.is_empty() {
            return Ok(());
        }
        self.send(Command::Write {
            outputs,
            dead,
            origin,
        })
        .await
    }

    /// Queues a checkpoint covering everything written before it.
    pub async fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<()> {
        self.send(Command::Checkpoint {
            checkpoint,
            last: false,
        })
        .await
    }

    /// The newest committed checkpoint, if it changed since the last call.
    pub fn take_committed(&mut self) -> Option<Checkpoint> {
        // After the writer task ended, `has_changed` reports an error
        // whatever the value; compare epochs instead.
        let latest = self.committed.borrow_and_update().clone()?;
        (latest.epoch > self.taken).then(|| {
            self.taken = latest.epoch;
            latest
        })
    }

    /// Commits `last` (forcing any deferred commit), closes both sinks and
    /// reports the first error; on success, the final checkpoint if it was
    /// not handed out yet.
    pub async fn close(mut self, last: Checkpoint) -> Result<Option<Checkpoint>> {
        self.send(Command::Checkpoint {
            checkpoint: last,
            last: true,
        })
        .await?;
        self.tx.take();
        if let Some(task) = self.task.take() {
            task.await
                .unwrap_or_else(|e| Err(Error::Stopped(format!("panicked: {e}"))))?;
        }
        Ok(self.take_committed())
    }

    /// Stops the writer without committing anything more (the pipeline is
    /// recovering from an error and will replay from its last checkpoint).
    pub async fn abandon(mut self) {
        self.tx.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
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

/// What the writer task owns.
struct Sinks {
    sink: Box<dyn Sink>,
    dead_letter: Box<dyn Sink>,
    committer: Committer,
    stats: Arc<Stats>,
    origin: String,
}

impl Sinks {
    async fn write(
        &mut self,
        outputs: Vec<Record>,
        mut dead: Vec<Record>,
        batch_origin: Option<String>,
    ) -> Result<()> {
        let count = outputs.len() as u64;
        let rejected = self.sink.write(outputs).await?;
        self.stats
            .written
            .fetch_add(count - rejected.len() as u64, Ordering::Relaxed);
        for r in rejected {
            let from = batch_origin.as_deref().unwrap_or(&self.origin);
            dead.push(tag_dead_letter(r.record, &r.reason, "sink", from));
        }
        if dead.is_empty() {
            return Ok(());
        }
        if !self.dead_letter.keeps_headers() {
            for record in &mut dead {
                record.value =
                    serde_json::to_vec(&envelope(record)).expect("a JSON value serialises");
            }
        }
        let count = dead.len() as u64;
        let refused = self.dead_letter.write(dead).await?;
        if let Some(r) = refused.first() {
            // The last resort refused a record: stop rather than lose it.
            return Err(Error::Format {
                sink: self.dead_letter.describe(),
                action: "write dead letter".into(),
                reason: format!("{} record(s) refused, first: {}", refused.len(), r.reason),
            });
        }
        self.stats.dead_lettered.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// Commits `checkpoint`; whether it was (a sink may defer). A commit
    /// made is timed in `weir_commit_seconds`.
    async fn commit(&mut self, checkpoint: &Checkpoint, last: bool) -> Result<bool> {
        let started = std::time::Instant::now();
        let committed = self.commit_now(checkpoint, last).await?;
        if committed {
            self.stats
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(committed)
    }

    async fn commit_now(&mut self, checkpoint: &Checkpoint, last: bool) -> Result<bool> {
        // Dead letters are at-least-once: durable before the epoch commits.
        if last {
            self.dead_letter.close().await?;
        } else {
            self.dead_letter.flush().await?;
        }
        match &mut self.committer {
            Committer::Sink => {
                super::epoch_store(self.sink.as_mut())?
                    .commit(checkpoint, last)
                    .await
            }
            Committer::Store(store) => {
                if last {
                    self.sink.close().await?;
                } else {
                    self.sink.flush().await?;
                    if !(self.sink.is_durable() && self.dead_letter.is_durable()) {
                        return Ok(false);
                    }
                }
                crate::crash::point("before-checkpoint-save");
                store.save(checkpoint).await?;
                Ok(true)
            }
        }
    }
}

async fn drive(
    mut rx: mpsc::Receiver<Command>,
    mut sinks: Sinks,
    committed: watch::Sender<Option<Checkpoint>>,
) -> Result<()> {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Write {
                outputs,
                dead,
                origin,
            } => sinks.write(outputs, dead, origin).await?,
            Command::Checkpoint { checkpoint, last } => {
                if sinks.commit(&checkpoint, last).await? {
                    tracing::debug!(pipeline = %checkpoint.pipeline, epoch = checkpoint.epoch, "Checkpoint committed.");
                    committed.send_replace(Some(checkpoint));
                }
                if last {
                    if let Committer::Sink = sinks.committer {
                        sinks.sink.close().await?;
                    }
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// A sink that buffers until flushed: durable only after a flush —
    /// or, when `stuck`, only after it is closed.
    #[derive(Default)]
    struct Buffering {
        buffered: usize,
        stuck: bool,
    }

    #[async_trait]
    impl Sink for Buffering {
        fn describe(&self) -> String {
            "buffering".into()
        }
        async fn write(&mut self, records: Vec<Record>) -> Result<Vec<super::super::Rejected>> {
            self.buffered += records.len();
            Ok(Vec::new())
        }
        async fn flush(&mut self) -> Result<()> {
            if !self.stuck {
                self.buffered = 0;
            }
            Ok(())
        }
        fn is_durable(&self) -> bool {
            self.buffered == 0
        }
        async fn close(&mut self) -> Result<()> {
            self.buffered = 0;
            Ok(())
        }
    }

    /// Saved checkpoints, in memory.
    #[derive(Clone, Default)]
    struct Saved(Arc<std::sync::Mutex<Vec<u64>>>);

    #[async_trait]
    impl CheckpointStore for Saved {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn load(&mut self) -> crate::checkpoint::Result<Option<Checkpoint>> {
            Ok(None)
        }
        async fn save(&mut self, checkpoint: &Checkpoint) -> crate::checkpoint::Result<()> {
            self.0.lock().unwrap().push(checkpoint.epoch);
            Ok(())
        }
    }

    fn record() -> Record {
        Record {
            key: None,
            value: b"{}".to_vec(),
            timestamp_ms: 0,
            headers: Vec::new(),
        }
    }

    /// A writer over `sink`, saving checkpoints to `saved`, with one
    /// record written.
    async fn writer_with_a_record(sink: Buffering, saved: &Saved) -> SinkWriter {
        let mut writer = SinkWriter::spawn(
            Box::new(sink),
            Box::new(Buffering::default()),
            Committer::Store(Box::new(saved.clone())),
            Arc::default(),
            "test".into(),
            2,
        );
        writer
            .write(vec![record()], Vec::new(), None)
            .await
            .unwrap();
        writer
    }

    fn checkpoint(epoch: u64) -> Checkpoint {
        Checkpoint {
            pipeline: "p".into(),
            epoch,
            ..Checkpoint::default()
        }
    }

    #[tokio::test]
    async fn a_checkpoint_is_saved_only_after_the_sink_flushed_what_it_covers() {
        let saved = Saved::default();
        let mut writer = writer_with_a_record(Buffering::default(), &saved).await;
        writer.checkpoint(checkpoint(1)).await.unwrap();
        writer
            .write(vec![record()], Vec::new(), None)
            .await
            .unwrap();
        let last = writer.close(checkpoint(2)).await.unwrap();
        assert_eq!(*saved.0.lock().unwrap(), [1, 2]);
        assert_eq!(last.map(|c| c.epoch), Some(2));
    }

    #[tokio::test]
    async fn a_checkpoint_waits_while_the_sink_is_not_durable_and_commits_at_close() {
        let saved = Saved::default();
        let stuck = Buffering {
            stuck: true,
            ..Buffering::default()
        };
        let mut writer = writer_with_a_record(stuck, &saved).await;
        writer.checkpoint(checkpoint(1)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(writer.take_committed(), None);
        assert!(saved.0.lock().unwrap().is_empty());
        let last = writer.close(checkpoint(2)).await.unwrap();
        assert_eq!(
            last.map(|c| c.epoch),
            Some(2),
            "closing makes the rest durable"
        );
        assert_eq!(*saved.0.lock().unwrap(), [2]);
    }
}

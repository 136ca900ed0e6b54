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
//! Each write carries the source's [`Mark`] after that batch. Once both
//! sinks report everything written as durable, the writer publishes the
//! latest such mark; the pipeline commits it to the source. So a position
//! is committed only after the records it covers are durable.

use super::{Error, Result, Sink, envelope};
use crate::Record;
use crate::pipeline::{Stats, tag_dead_letter};
use crate::source::Mark;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Batches that may wait for the writer before the pipeline blocks.
const QUEUE: usize = 4;

enum Command {
    Write {
        outputs: Vec<Record>,
        dead: Vec<Record>,
        mark: Option<Mark>,
        origin: Option<String>,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task.
pub struct SinkWriter {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
    durable: watch::Receiver<Option<Mark>>,
    /// The last mark handed out by [`SinkWriter::take_durable`].
    taken: Option<Mark>,
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
        let (durable_tx, durable) = watch::channel(None);
        let task = tokio::spawn(drive(rx, sink, dead_letter, stats, origin, durable_tx));
        SinkWriter {
            tx: Some(tx),
            task: Some(task),
            durable,
            taken: None,
        }
    }

    /// Queues outputs and dead letters, the source's mark after the batch
    /// they came from, and where that batch came from (for records the
    /// sink refuses); waits only when the queue is full.
    pub async fn write(
        &mut self,
        outputs: Vec<Record>,
        dead: Vec<Record>,
        mark: Option<Mark>,
        origin: Option<String>,
    ) -> Result<()> {
        if outputs.is_empty() && dead.is_empty() && mark.is_none() {
            return Ok(());
        }
        self.send(Command::Write {
            outputs,
            dead,
            mark,
            origin,
        })
        .await
    }

    /// The newest mark whose records are all durable, if it changed since
    /// the last call.
    pub fn take_durable(&mut self) -> Option<Mark> {
        // After the writer task ended, `has_changed` reports an error
        // whatever the value; compare with what was taken instead.
        let latest = self.durable.borrow_and_update().clone();
        if latest.is_some() && latest != self.taken {
            self.taken.clone_from(&latest);
            latest
        } else {
            None
        }
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

    /// Writes what is queued, closes both sinks and reports the first
    /// error; on success, the final durable mark if it changed.
    pub async fn close(mut self) -> Result<Option<Mark>> {
        self.tx.take();
        if let Some(task) = self.task.take() {
            task.await
                .unwrap_or_else(|e| Err(Error::Stopped(format!("panicked: {e}"))))?;
        }
        Ok(self.take_durable())
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
    durable: watch::Sender<Option<Mark>>,
) -> Result<()> {
    let mut pending: Option<Mark> = None;
    while let Some(command) = rx.recv().await {
        match command {
            Command::Write {
                outputs,
                mut dead,
                mark,
                origin: batch_origin,
            } => {
                if mark.is_some() {
                    pending = mark;
                }
                let count = outputs.len() as u64;
                let rejected = sink.write(outputs).await?;
                stats
                    .written
                    .fetch_add(count - rejected.len() as u64, Ordering::Relaxed);
                for r in rejected {
                    let from = batch_origin.as_deref().unwrap_or(&origin);
                    dead.push(tag_dead_letter(r.record, &r.reason, "sink", from));
                }
                if dead.is_empty() {
                    publish(&mut pending, &*sink, &*dead_letter, &durable);
                    continue;
                }
                if !dead_letter.keeps_headers() {
                    for record in &mut dead {
                        record.value =
                            serde_json::to_vec(&envelope(record)).expect("a JSON value serialises");
                    }
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
                publish(&mut pending, &*sink, &*dead_letter, &durable);
            }
            Command::Flush(ack) => {
                sink.flush().await?;
                dead_letter.flush().await?;
                publish(&mut pending, &*sink, &*dead_letter, &durable);
                let _ = ack.send(());
            }
        }
    }
    sink.close().await?;
    dead_letter.close().await?;
    publish(&mut pending, &*sink, &*dead_letter, &durable);
    Ok(())
}

/// Hands the pending mark to the pipeline once both sinks are durable.
fn publish(
    pending: &mut Option<Mark>,
    sink: &dyn Sink,
    dead_letter: &dyn Sink,
    durable: &watch::Sender<Option<Mark>>,
) {
    if pending.is_some() && sink.is_durable() && dead_letter.is_durable() {
        durable.send_replace(pending.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// A sink that buffers until flushed: durable only after a flush.
    #[derive(Default)]
    struct Buffering {
        buffered: usize,
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
            self.buffered = 0;
            Ok(())
        }
        fn is_durable(&self) -> bool {
            self.buffered == 0
        }
        async fn close(&mut self) -> Result<()> {
            self.flush().await
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

    #[tokio::test]
    async fn a_mark_is_released_only_once_the_sink_made_its_records_durable() {
        let mut writer = SinkWriter::spawn(
            Box::new(Buffering::default()),
            Box::new(Buffering::default()),
            Arc::default(),
            "test".into(),
        );
        let mark = Mark::from([("t/0".to_owned(), 10)]);
        writer
            .write(vec![record()], Vec::new(), Some(mark.clone()), None)
            .await
            .unwrap();
        // Let the writer task process the batch; still buffered.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(writer.take_durable(), None);
        writer.flush().await.unwrap();
        assert_eq!(writer.take_durable(), Some(mark));
        assert_eq!(writer.take_durable(), None, "a mark is released once");
        let later = Mark::from([("t/0".to_owned(), 20)]);
        writer
            .write(vec![record()], Vec::new(), Some(later.clone()), None)
            .await
            .unwrap();
        assert_eq!(
            writer.close().await.unwrap(),
            Some(later),
            "closing makes the rest durable"
        );
    }
}

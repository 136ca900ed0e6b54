//! A Kafka consumer that assigns itself every partition of its topics and
//! resumes from the pipeline's checkpoint.
//!
//! As in Flink's Kafka source, the checkpoint is the source of truth for
//! offsets ("storing offsets outside Kafka" in the KafkaConsumer docs):
//! each partition starts at the checkpoint's offset, else at the group's
//! committed offset, else at `start`. The group's offsets are committed
//! after each checkpoint commits, so lag monitoring works, but a restart
//! never trusts them over the checkpoint. Keys, headers and timestamps are
//! kept. A batch ends at `max` records or after `max-wait`, whichever comes
//! first, so an idle topic still lets the pipeline tick and checkpoint.
//!
//! A task reads one batch ahead: while the plugins work on batch n, batch
//! n+1 is copied out of librdkafka's queue on the other core. The mark moves
//! only when a batch is handed to the pipeline, so a batch read ahead and
//! dropped (at a stop) is read again on the restart.

use super::{Error, Mark, Position, Result, Source, SourceBatch};
use crate::kafka::{Connection, Context};
use crate::{Header, Record};
use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// `type = "kafka"` as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group: its offsets show progress to monitoring tools and are
    /// where a pipeline without a checkpoint starts.
    pub group: String,
    /// Where a group without committed offsets starts.
    #[serde(default)]
    pub start: Start,
    /// Longest a batch waits to fill up.
    #[serde(
        default = "default_max_wait",
        deserialize_with = "crate::config::duration"
    )]
    pub max_wait: Duration,
    /// How partitions are divided: `"all"` (this process reads every
    /// partition; a second process of the pipeline is refused), or one of
    /// librdkafka's group assignors — `"cooperative-sticky"`, `"range"`,
    /// `"roundrobin"` — to share the topic with every process that runs the
    /// same configuration (see [`crate::group`]).
    #[serde(default)]
    pub assignment: Assignment,
    /// Group mode: how long the broker waits for a silent member before
    /// giving its partitions to the others. Short, so that a dead process is
    /// replaced quickly; heartbeats go every sixth of it.
    #[serde(
        default = "default_session_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub session_timeout: Duration,
    /// Most fetched records librdkafka holds ahead of the pipeline, in
    /// bytes (`queued.max.messages.kbytes`, for the consumer as a whole).
    /// It bounds the source's memory; librdkafka's own default, 64 MiB,
    /// costs memory without adding speed, and it counts compressed bytes,
    /// so well-compressed records take several times as much once
    /// decompressed (BENCHMARKS.md).
    #[serde(
        default = "default_prefetch",
        deserialize_with = "crate::config::byte_size"
    )]
    pub prefetch: u64,
    /// librdkafka properties (TLS, SASL, …), passed through.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_max_wait() -> Duration {
    Duration::from_millis(200)
}

fn default_prefetch() -> u64 {
    PREFETCH
}

/// The default `prefetch`.
pub const PREFETCH: u64 = 1 << 20;

/// librdkafka's upper limit of `queued.max.messages.kbytes`.
const MAX_PREFETCH_KB: u64 = 2_097_151;

/// `fetch.queue.backoff.ms`, see [`KafkaConfig::fetch_settings`].
const FETCH_BACKOFF_MS: u32 = 10;

fn default_session_timeout() -> Duration {
    Duration::from_secs(6)
}

/// `assignment = "…"`: who reads which partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// One process reads every partition.
    #[default]
    All,
    /// Group mode, KIP-429 incremental rebalancing: only moved partitions
    /// stop.
    CooperativeSticky,
    /// Group mode, librdkafka's range assignor (eager).
    Range,
    /// Group mode, librdkafka's round-robin assignor (eager).
    #[serde(rename = "roundrobin")]
    RoundRobin,
}

impl Assignment {
    /// librdkafka's `partition.assignment.strategy`, in group mode.
    pub fn strategy(self) -> Option<&'static str> {
        match self {
            Assignment::All => None,
            Assignment::CooperativeSticky => Some("cooperative-sticky"),
            Assignment::Range => Some("range"),
            Assignment::RoundRobin => Some("roundrobin"),
        }
    }
}

/// Start position of a group that has no committed offset yet.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// The oldest record still in the topic.
    #[default]
    Earliest,
    /// Only records produced after the consumer joined.
    Latest,
}

impl Start {
    /// librdkafka's `auto.offset.reset`.
    pub(crate) fn reset(self) -> &'static str {
        match self {
            Start::Earliest => "earliest",
            Start::Latest => "latest",
        }
    }
}

impl KafkaConfig {
    pub(crate) fn connection(&self) -> Connection {
        Connection {
            brokers: self.brokers.clone(),
            options: self.options.clone(),
        }
    }

    /// What both consumers (one process, group mode) set for fetching:
    /// the bound of [`KafkaConfig::prefetch`], and how soon librdkafka
    /// fetches again once the pipeline has taken from a full queue. Its own
    /// default waits a whole second (`fetch.queue.backoff.ms` = 1000), which
    /// held the source to a third of what the broker here delivers
    /// (BENCHMARKS.md); a bounded queue drains in tens of milliseconds.
    pub(crate) fn fetch_settings(&self) -> [(&'static str, String); 2] {
        [
            (
                "queued.max.messages.kbytes",
                (self.prefetch / 1024).clamp(1, MAX_PREFETCH_KB).to_string(),
            ),
            ("fetch.queue.backoff.ms", FETCH_BACKOFF_MS.to_string()),
        ]
    }

    /// Problems found without connecting.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = self.connection().check();
        if !(1024..=MAX_PREFETCH_KB * 1024).contains(&self.prefetch) {
            problems.push((
                "prefetch",
                "must be between 1KiB and 2GiB (librdkafka's queued.max.messages.kbytes)".into(),
            ));
        }
        if self.topics.is_empty() {
            problems.push(("topics", "is empty: name at least one topic".into()));
        }
        if self.group.trim().is_empty() {
            problems.push(("group", "is empty: name the consumer group".into()));
        }
        if self.assignment != Assignment::All && self.session_timeout < Duration::from_secs(1) {
            problems.push((
                "session-timeout",
                "must be at least 1s (heartbeats go every sixth of it)".into(),
            ));
        }
        problems
    }
}

/// The source.
pub struct KafkaSource {
    name: String,
    topics: Vec<String>,
    consumer: Arc<StreamConsumer<Context>>,
    context: Context,
    max_wait: Duration,
    next: Mark,
    committed: TopicPartitionList,
    assigned: bool,
    /// The task reading ahead, once the partitions are assigned.
    ahead: Option<(mpsc::Receiver<SourceBatch>, JoinHandle<()>)>,
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.ahead {
            task.abort();
        }
    }
}

impl KafkaSource {
    /// Creates the consumer; partitions are assigned on the first read.
    pub fn open(config: &KafkaConfig) -> Result<Self> {
        let name = format!("kafka {}", config.topics.join(","));
        let fail = |action: &str, e: rdkafka::error::KafkaError| Error::Client {
            source_name: name.clone(),
            action: action.into(),
            reason: e.to_string(),
            hint: "check source.brokers, source.topics and source.options",
            retryable: false,
        };
        let reset = config.start.reset();
        let context = Context::default();
        let fetch = config.fetch_settings();
        let mut settings = vec![
            ("group.id", config.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            ("enable.partition.eof", "false"),
            ("statistics.interval.ms", "5000"),
        ];
        settings.extend(fetch.iter().map(|(k, v)| (*k, v.as_str())));
        let consumer: StreamConsumer<Context> = config
            .connection()
            .client_config(&settings)
            .create_with_context(context.clone())
            .map_err(|e| fail("create consumer", e))?;
        Ok(KafkaSource {
            name,
            topics: config.topics.clone(),
            consumer: Arc::new(consumer),
            context,
            max_wait: config.max_wait,
            next: Mark::new(),
            committed: TopicPartitionList::new(),
            assigned: false,
            ahead: None,
        })
    }

    /// Assigns every partition of the topics, each at its resume offset.
    fn assign(&mut self) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for topic in &self.topics {
            let unavailable = |reason: String| Error::Client {
                source_name: self.name.clone(),
                action: format!("read the partitions of topic {topic}"),
                reason,
                hint: "check the broker is up and the topic exists (weir gen --partitions creates one)",
                retryable: true,
            };
            let metadata = self
                .consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .map_err(|e| unavailable(e.to_string()))?;
            let partitions = metadata
                .topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<i32>>())
                .unwrap_or_default();
            if partitions.is_empty() {
                return Err(unavailable("the topic has no partitions".into()));
            }
            for partition in partitions {
                let offset = self
                    .next
                    .get(&format!("{topic}/{partition}"))
                    .map_or(Offset::Stored, |o| Offset::Offset(*o));
                list.add_partition_offset(topic, partition, offset)
                    .map_err(|e| unavailable(e.to_string()))?;
            }
        }
        self.consumer.assign(&list).map_err(|e| Error::Client {
            source_name: self.name.clone(),
            action: "assign partitions".into(),
            reason: e.to_string(),
            hint: "check source.options",
            retryable: true,
        })?;
        tracing::info!(source = %self.name, partitions = list.count(), resume = ?self.next, "Partitions assigned.");
        self.assigned = true;
        Ok(())
    }
}

/// Reads batches of up to `max` records (or what `max_wait` brings) into
/// `batches`, one ahead of the pipeline, until the receiver is gone.
async fn read_ahead(
    name: String,
    consumer: Arc<StreamConsumer<Context>>,
    topics: Vec<String>,
    max: usize,
    max_wait: Duration,
    batches: mpsc::Sender<SourceBatch>,
) {
    loop {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut batch = SourceBatch::default();
        while batch.records.len() < max {
            let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(message)) => message,
                Ok(Err(e)) => {
                    // librdkafka retries transport problems by itself; what
                    // reaches here is worth a warning, not a stop.
                    tracing::warn!(source = %name, error = %e, "Kafka consumer error; retrying.");
                    continue;
                }
            };
            let position = Position::Kafka {
                topic: topics
                    .iter()
                    .position(|t| t == message.topic())
                    .unwrap_or(0) as u16,
                partition: message.partition(),
                offset: message.offset(),
            };
            push(&mut batch, position, &message);
        }
        if batches.send(batch).await.is_err() {
            return;
        }
    }
}

/// What a tombstone's dead letter says.
const TOMBSTONE: &str = "Kafka tombstone (null value): there is no payload to transform; weir does not forward deletes, the key is kept here";

/// Adds a consumed message to `batch` with its key, headers and timestamp;
/// a tombstone (no value) goes to the batch's refused records.
pub(crate) fn push<M: Message>(batch: &mut SourceBatch, position: Position, message: &M) {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    name: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let timestamp_ms = message
        .timestamp()
        .to_millis()
        .unwrap_or_else(crate::record::now_ms);
    let record = |value: Vec<u8>| Record {
        key: message.key().map(<[u8]>::to_vec),
        value,
        timestamp_ms,
        headers,
    };
    match message.payload() {
        Some(payload) => {
            batch.records.push(record(payload.to_vec()));
            batch.positions.push(position);
        }
        None => batch
            .refused
            .push((position, record(Vec::new()), TOMBSTONE.into())),
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn resume(&mut self, positions: &Mark) -> Result<()> {
        self.next.clone_from(positions);
        Ok(())
    }

    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>> {
        if !self.assigned {
            tokio::task::block_in_place(|| self.assign())?;
        }
        let (batches, _) = self.ahead.get_or_insert_with(|| {
            // One batch waits while the next is being read.
            let (tx, rx) = mpsc::channel(1);
            let task = tokio::spawn(read_ahead(
                self.name.clone(),
                self.consumer.clone(),
                self.topics.clone(),
                max,
                self.max_wait,
                tx,
            ));
            (rx, task)
        });
        // Receiving is cancel-safe: a stop between batches loses nothing.
        let batch = batches.recv().await.ok_or_else(|| Error::Client {
            source_name: self.name.clone(),
            action: "read ahead".into(),
            reason: "the task reading the topic ended".into(),
            hint: "report this with the log: the reader task failed",
            retryable: true,
        })?;
        // The mark moves once per partition and batch, not per record.
        let mut last: Vec<(u16, i32, i64)> = Vec::new();
        let refused = batch.refused.iter().map(|(p, _, _)| p);
        for position in batch.positions.iter().chain(refused) {
            if let Position::Kafka {
                topic,
                partition,
                offset,
            } = *position
            {
                match last
                    .iter_mut()
                    .find(|(t, p, _)| (*t, *p) == (topic, partition))
                {
                    Some(entry) => entry.2 = entry.2.max(offset),
                    None => last.push((topic, partition, offset)),
                }
            }
        }
        for (topic, partition, offset) in last {
            let key = format!("{}/{partition}", self.topics[topic as usize]);
            self.next.insert(key, offset + 1);
        }
        Ok(Some(batch))
    }

    fn locate(&self, position: Position) -> String {
        match position {
            Position::Kafka {
                topic,
                partition,
                offset,
            } => format!(
                "kafka topic={} partition={partition} offset={offset}",
                self.topics.get(topic as usize).map_or("?", String::as_str)
            ),
            _ => self.describe(),
        }
    }

    fn mark(&self) -> Mark {
        self.next.clone()
    }

    async fn commit(&mut self, mark: &Mark) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for (key, offset) in mark {
            let Some((topic, partition)) = key.rsplit_once('/') else {
                continue;
            };
            let Ok(partition) = partition.parse() else {
                continue;
            };
            list.add_partition_offset(topic, partition, Offset::Offset(*offset))
                .map_err(|e| Error::Client {
                    source_name: self.name.clone(),
                    action: format!("commit {key}@{offset}"),
                    reason: e.to_string(),
                    hint: "report this: the offset list could not be built",
                    retryable: false,
                })?;
        }
        if list.count() == 0 {
            return Ok(());
        }
        // The group's offsets are for monitoring only: warn, never stop.
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(source = %self.name, error = %e, "Group offset commit failed; lag metrics may lag behind.");
        }
        self.committed = list;
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        if self.committed.count() == 0 {
            return Ok(());
        }
        // The last commit went out asynchronously; repeat it synchronously
        // so it is not lost when the consumer closes.
        let result =
            tokio::task::block_in_place(|| self.consumer.commit(&self.committed, CommitMode::Sync));
        if let Err(e) = result {
            tracing::warn!(source = %self.name, error = %e, "Final group offset commit failed; lag metrics may lag behind.");
        }
        Ok(())
    }

    fn lag(&self) -> Vec<(String, i64)> {
        crate::kafka::lag_of(&self.context.lag)
    }
}

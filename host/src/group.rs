//! Scale-out and failover through the Kafka consumer group
//! (`source.assignment` other than `"all"`).
//!
//! Every process of a pipeline runs the same configuration and subscribes
//! with its `group`; librdkafka's assignor divides the partitions. The
//! partition is the unit of ownership, as a task is in Kafka Streams: each
//! assigned partition gets its own task — its own plugin instances, its
//! own sink transaction and its own checkpoint, stored under
//! `pipeline@topic.partition` — so a partition's offset and plugin state
//! move with it. A keyed aggregation is therefore exact when the topic is
//! keyed by the aggregation's key (every record of a key is in one
//! partition).
//!
//! One thread polls the consumer and hands each record to its partition's
//! task. librdkafka calls the rebalance callback on that thread; the
//! callback hands the event to the pipeline's task here and blocks until
//! it is dealt with, so nothing waits for itself:
//!
//! - **assign**: a task per new partition claims the partition's
//!   checkpoint in the sink (a new owner epoch), restores its plugins from
//!   it, and the callback assigns the partition at the checkpoint's offset
//!   (set in the assignment itself; a seek right after assign is racy);
//! - **revoke**: the partition's task stops reading, its writer commits the
//!   rows it holds with their checkpoint, and only then does the callback
//!   return and librdkafka give the partition up. A partition **lost**
//!   (this process was evicted) is dropped without a commit.
//!
//! Fencing: the broker's group generation cannot stop a PostgreSQL
//! transaction, so every commit checks, in its own transaction and under
//! the owner row's lock, that the owner epoch this process claimed is still
//! the newest ([`crate::sink::Sink::claim`]). A process that was paused past
//! the session timeout finds a newer epoch, rolls back, logs it, drops that
//! partition's uncommitted work and keeps its other partitions. A claim
//! that waits for the owner row more than 2 s ends the session holding it
//! (a previous owner paused inside its commit), so a stuck process cannot
//! hold a partition. Parquet sinks fence with the manifest chain instead:
//! a claim and every commit are conditional puts of the chain's next slot
//! (see [`crate::sink::parquet`]).
//!
//! A stop (SIGTERM) commits every partition, then closes the consumer,
//! which leaves the group at once: the others take over without waiting
//! for the session timeout.

use crate::Record;
use crate::kafka::Context;
use crate::pipeline::{Blueprint, Pipeline, Result};
use crate::sink::{Rejected, Sink};
use crate::source::kafka::KafkaConfig;
use crate::source::{self, Mark, Position, Source, SourceBatch};
use crate::swap::{Candidate, Offer};
use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A topic and partition.
type Partition = (String, i32);

/// The shortest rebalance timeout (`max.poll.interval.ms`).
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `/readyz`'s list of every partition's owner is read again
/// from the checkpoint store.
const OWNERS_REFRESH: Duration = Duration::from_secs(2);

/// Records polled for a partition that its task has not taken yet; the
/// poller waits when a task is this far behind (back-pressure).
const FEED: usize = 8192;

/// Where the poller hands each partition's records: topic → partition →
/// the channel of the partition's task. Looked up per record by the
/// message's borrowed topic, so the hot path allocates nothing.
#[derive(Clone, Default)]
struct Feeds(Arc<Mutex<HashMap<String, TopicFeeds>>>);

/// One topic's partitions and their tasks' channels.
type TopicFeeds = HashMap<i32, mpsc::Sender<OwnedMessage>>;

impl Feeds {
    fn get(&self, topic: &str, partition: i32) -> Option<mpsc::Sender<OwnedMessage>> {
        let feeds = self.0.lock().expect("feeds lock");
        feeds.get(topic)?.get(&partition).cloned()
    }

    fn insert(&self, (topic, partition): &Partition, feed: mpsc::Sender<OwnedMessage>) {
        let mut feeds = self.0.lock().expect("feeds lock");
        feeds
            .entry(topic.clone())
            .or_default()
            .insert(*partition, feed);
    }

    fn remove(&self, (topic, partition): &Partition) {
        let mut feeds = self.0.lock().expect("feeds lock");
        if let Some(partitions) = feeds.get_mut(topic) {
            partitions.remove(partition);
        }
    }
}

/// A rebalance, handed from librdkafka's callback to the pipeline.
enum Event {
    /// These partitions are ours: start them; the answer is where each
    /// starts.
    Assign {
        partitions: Vec<Partition>,
        reply: std::sync::mpsc::SyncSender<Vec<(Partition, Offset)>>,
    },
    /// These partitions go: commit them (or, `lost`, drop them); the answer
    /// says it is done.
    Revoke {
        partitions: Vec<Partition>,
        lost: bool,
        reply: std::sync::mpsc::SyncSender<()>,
    },
}

/// The consumer's context: statistics and logs as for every Kafka client,
/// and the rebalance callback that hands events to the pipeline.
struct GroupContext {
    inner: Context,
    events: mpsc::UnboundedSender<Event>,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.inner.stats(statistics);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.inner.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let (reply, answer) = std::sync::mpsc::sync_channel(1);
                let event = Event::Assign { partitions, reply };
                // No answer: the pipeline is closing; nobody reads them.
                if self.events.send(event).is_ok()
                    && let Ok(offsets) = answer.recv()
                {
                    for ((topic, partition), offset) in offsets {
                        if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                            tracing::warn!(topic, partition, error = %e, "Could not set a start offset; the partition starts at the group's offset.");
                        }
                    }
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                let (reply, answer) = std::sync::mpsc::sync_channel(1);
                let event = Event::Revoke {
                    partitions,
                    lost,
                    reply,
                };
                if self.events.send(event).is_ok() {
                    let _ = answer.recv();
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "Kafka rebalance error; librdkafka retries.");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "Kafka rebalance: applying the assignment failed.");
        }
    }
}

/// The thread that polls the consumer: rebalance callbacks run on it, and
/// it hands records to the partitions' tasks and sends their group offset
/// commits (for monitoring).
struct Poller {
    closing: Arc<AtomicBool>,
    commits: std::sync::mpsc::Sender<TopicPartitionList>,
    done: oneshot::Receiver<()>,
}

impl Poller {
    fn spawn(consumer: BaseConsumer<GroupContext>, feeds: Feeds, name: String) -> Poller {
        let closing = Arc::new(AtomicBool::new(false));
        let (commits, pending) = std::sync::mpsc::channel::<TopicPartitionList>();
        let (finished, done) = oneshot::channel();
        let stop = closing.clone();
        std::thread::Builder::new()
            .name("weir-kafka-group".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    while let Ok(list) = pending.try_recv() {
                        // The group's offsets are for monitoring only; a
                        // revoked partition's commit is refused: warn only.
                        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
                            tracing::debug!(source = %name, error = %e, "Group offset commit failed; lag metrics may lag behind.");
                        }
                    }
                    let message = match consumer.poll(Duration::from_millis(100)) {
                        None => continue,
                        Some(Err(e)) => {
                            tracing::warn!(source = %name, error = %e, "Kafka consumer error; retrying.");
                            continue;
                        }
                        Some(Ok(message)) => message,
                    };
                    // No task: the partition was fenced or is closing; its
                    // owner's checkpoint decides where it is read again.
                    if let Some(feed) = feeds.get(message.topic(), message.partition()) {
                        let _ = feed.blocking_send(message.detach());
                    }
                }
                // Closing revokes every partition (the callback runs here)
                // and leaves the group.
                drop(consumer);
                let _ = finished.send(());
            })
            .expect("spawn the Kafka group thread");
        Poller {
            closing,
            commits,
            done,
        }
    }
}

/// One partition's records as a [`Source`] for its task.
struct Feed {
    name: String,
    topic: String,
    topic_index: u16,
    partition: i32,
    records: mpsc::Receiver<OwnedMessage>,
    max_wait: Duration,
    next: Option<i64>,
    commits: std::sync::mpsc::Sender<TopicPartitionList>,
    lag: crate::kafka::Lag,
}

impl Feed {
    fn mark_key(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

#[async_trait]
impl Source for Feed {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn resume(&mut self, positions: &Mark) -> source::Result<()> {
        // The assignment already starts at this offset.
        self.next = positions.get(&self.mark_key()).copied();
        Ok(())
    }

    async fn next_batch(&mut self, max: usize) -> source::Result<Option<SourceBatch>> {
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let mut batch = SourceBatch::default();
        // The mark moves only when the batch is returned: a read cancelled
        // by a stop drops what it took, and the mark does not cover it.
        let mut next = self.next;
        while batch.records.len() + batch.refused.len() < max {
            let message = match tokio::time::timeout_at(deadline, self.records.recv()).await {
                Err(_elapsed) => break,
                Ok(Some(message)) => message,
                Ok(None) => {
                    // The poller has stopped: the pipeline is closing.
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
            };
            let offset = message.offset();
            let position = Position::Kafka {
                topic: self.topic_index,
                partition: self.partition,
                offset,
            };
            crate::source::kafka::push(&mut batch, position, &message);
            next = Some(offset + 1);
        }
        self.next = next;
        Ok(Some(batch))
    }

    fn locate(&self, position: Position) -> String {
        match position {
            Position::Kafka { offset, .. } => format!(
                "kafka topic={} partition={} offset={offset}",
                self.topic, self.partition
            ),
            _ => self.describe(),
        }
    }

    fn mark(&self) -> Mark {
        self.next
            .map(|next| Mark::from([(self.mark_key(), next)]))
            .unwrap_or_default()
    }

    async fn commit(&mut self, mark: &Mark) -> source::Result<()> {
        let Some(next) = mark.get(&self.mark_key()) else {
            return Ok(());
        };
        let mut list = TopicPartitionList::new();
        if list
            .add_partition_offset(&self.topic, self.partition, Offset::Offset(*next))
            .is_ok()
        {
            let _ = self.commits.send(list);
        }
        Ok(())
    }

    fn lag(&self) -> Vec<(String, i64)> {
        crate::kafka::lag_of(&self.lag)
    }
}

/// The dead-letter sink every partition's task of a process writes to.
/// The process closes it once, at the end; a task's close only flushes.
#[derive(Clone)]
struct SharedSink {
    sink: Arc<tokio::sync::Mutex<Box<dyn Sink>>>,
    name: String,
    keeps_headers: bool,
}

impl SharedSink {
    fn new(sink: Box<dyn Sink>) -> Self {
        SharedSink {
            name: sink.describe(),
            keeps_headers: sink.keeps_headers(),
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
        }
    }
}

#[async_trait]
impl Sink for SharedSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, records: Vec<Record>) -> crate::sink::Result<Vec<Rejected>> {
        self.sink.lock().await.write(records).await
    }

    async fn flush(&mut self) -> crate::sink::Result<()> {
        self.sink.lock().await.flush().await
    }

    fn is_durable(&self) -> bool {
        self.sink.try_lock().is_ok_and(|s| s.is_durable())
    }

    fn keeps_headers(&self) -> bool {
        self.keeps_headers
    }

    async fn close(&mut self) -> crate::sink::Result<()> {
        self.flush().await
    }
}

/// A running partition.
struct Task {
    stop: watch::Sender<bool>,
    offers: mpsc::UnboundedSender<Offer>,
    handle: tokio::task::JoinHandle<()>,
}

/// What a task reports when it ends.
type Ended = (Partition, Result<()>);

/// One membership of the group: from joining until a stop, an error or an
/// outage (then [`Pipeline::run`] backs off and joins again).
pub(crate) async fn attempt(
    pipeline: &mut Pipeline,
    kafka: &KafkaConfig,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    let name = format!("kafka {}", kafka.topics.join(","));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let context = GroupContext {
        inner: Context::default(),
        events: events_tx,
    };
    let lag = context.inner.lag.clone();
    let consumer = open(kafka, &name, context)?;
    let feeds = Feeds::default();
    let mut poller = Poller::spawn(consumer, feeds.clone(), name.clone());
    let blueprint = pipeline.blueprint();
    let mut group = Group {
        kafka,
        name,
        owner: crate::owner::this_process(),
        feeds,
        commits: poller.commits.clone(),
        lag,
        dead_letter: SharedSink::new(blueprint.dead_letter().await?),
        tasks: BTreeMap::new(),
        ended: mpsc::unbounded_channel(),
        closing: false,
        fenced: BTreeMap::new(),
    };
    let mut offers = pipeline.take_offer_receiver();
    let template = &blueprint;
    // Ready once in the group, even while it owns no partition (a standby).
    template.stats().ready.store(true, Ordering::Relaxed);
    let mut board = template.sink_config().owners_board(template.base_dir());
    let mut refresh = tokio::time::interval(OWNERS_REFRESH);
    let mut fences = tokio::time::interval(Duration::from_secs(1));
    tracing::info!(pipeline = %template.name(), group = %kafka.group, assignment = ?kafka.assignment, owner = %group.owner, "Joining the consumer group.");
    let result: Result<()> = loop {
        tokio::select! {
            Some(event) = events.recv() => {
                if let Err(e) = group.handle(template, event).await {
                    break Err(e);
                }
            }
            Some((partition, result)) = group.ended.1.recv() => {
                if let Err(e) = group.task_ended(template, partition, result) {
                    break Err(e);
                }
            }
            Some(offer) = async { match offers.as_mut() { Some(o) => o.recv().await, None => std::future::pending().await } } => {
                group.fan_out(template, offer);
            }
            _ = refresh.tick(), if board.is_some() => {
                let board = board.as_mut().expect("checked by the guard");
                match board.owners(template.name()).await {
                    Ok(owners) => *template.stats().partition_owners.lock().expect("owners lock") = owners,
                    Err(e) => tracing::debug!(pipeline = %template.name(), error = %e, "Could not read the partition owners."),
                }
            }
            _ = fences.tick() => {
                if let Some(partition) = group.stale_fence() {
                    break Err(crate::pipeline::Error::Rejoin {
                        pipeline: template.name().to_owned(),
                        partition: key(template.name(), partition),
                    });
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    tracing::info!(pipeline = %template.name(), "Stopping on request: committing every partition, then leaving the group.");
                    break Ok(());
                }
            }
        }
    };
    // Commit what every task holds (unless an error ended the membership:
    // then each resumes from its last commit), then close the consumer
    // while still answering its callbacks, so it leaves the group.
    group.closing = true;
    let partitions: Vec<Partition> = group.tasks.keys().cloned().collect();
    let closed = group
        .stop_tasks(template, &partitions, result.is_ok())
        .await;
    poller.closing.store(true, Ordering::Relaxed);
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                let _ = group.handle(template, event).await;
            }
            _ = &mut poller.done => break,
        }
    }
    blueprint
        .stats()
        .partitions_owned
        .lock()
        .expect("partitions lock")
        .clear();
    let dead_letter = group.dead_letter.sink.lock().await.close().await;
    pipeline.put_offer_receiver(offers);
    result?;
    closed?;
    dead_letter?;
    Ok(())
}

/// The consumer, subscribed with the pipeline's group.
fn open(
    kafka: &KafkaConfig,
    name: &str,
    context: GroupContext,
) -> Result<BaseConsumer<GroupContext>> {
    let fail = |action: &str, e: rdkafka::error::KafkaError| source::Error::Client {
        source_name: name.to_owned(),
        action: action.into(),
        reason: e.to_string(),
        hint: "check source.brokers, source.topics, source.group and source.options",
        retryable: true,
    };
    let session = kafka.session_timeout.as_millis().to_string();
    let heartbeat = (kafka.session_timeout.as_millis() / 6).max(100).to_string();
    // Also the rebalance timeout: how long a rebalance waits for a member
    // that does not rejoin (one paused or stopped) before going on without
    // it. librdkafka's default, 5 min, would hold every partition that
    // long; this process polls every 100 ms, and a rebalance callback
    // (claims, each waiting at most 2 s for a stuck owner) stays well under.
    let rebalance = REBALANCE_TIMEOUT
        .max(kafka.session_timeout * 2)
        .as_millis()
        .to_string();
    let strategy = kafka
        .assignment
        .strategy()
        .expect("group mode has an assignor");
    let fetch = kafka.fetch_settings();
    let mut settings = vec![
        ("group.id", kafka.group.as_str()),
        ("partition.assignment.strategy", strategy),
        ("session.timeout.ms", &session),
        ("heartbeat.interval.ms", &heartbeat),
        ("max.poll.interval.ms", &rebalance),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", kafka.start.reset()),
        ("enable.partition.eof", "false"),
        ("statistics.interval.ms", "5000"),
    ];
    settings.extend(fetch.iter().map(|(k, v)| (*k, v.as_str())));
    let consumer: BaseConsumer<GroupContext> = kafka
        .connection()
        .client_config(&settings)
        .create_with_context(context)
        .map_err(|e| fail("create consumer", e))?;
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| fail("subscribe", e))?;
    Ok(consumer)
}

/// The checkpoint key of a partition.
fn key(pipeline: &str, (topic, partition): &Partition) -> String {
    format!("{pipeline}@{topic}.{partition}")
}

/// The partitions this process owns and what they share.
struct Group<'a> {
    kafka: &'a KafkaConfig,
    name: String,
    owner: String,
    feeds: Feeds,
    commits: std::sync::mpsc::Sender<TopicPartitionList>,
    lag: crate::kafka::Lag,
    dead_letter: SharedSink,
    tasks: BTreeMap<Partition, Task>,
    ended: (mpsc::UnboundedSender<Ended>, mpsc::UnboundedReceiver<Ended>),
    /// Set once the membership ends: partitions assigned while the consumer
    /// closes are not started.
    closing: bool,
    /// Partitions whose commit was fenced, and when, while the consumer
    /// still assigns them here (see [`Group::stale_fence`]).
    fenced: BTreeMap<Partition, std::time::Instant>,
}

impl Group<'_> {
    async fn handle(&mut self, template: &Blueprint, event: Event) -> Result<()> {
        let stats = template.stats();
        match event {
            Event::Assign { partitions, reply } => {
                stats.rebalances.assign.fetch_add(1, Ordering::Relaxed);
                for partition in &partitions {
                    self.fenced.remove(partition);
                }
                let mut offsets = Vec::new();
                let mut failed = None;
                for partition in partitions {
                    if self.closing || self.tasks.contains_key(&partition) {
                        continue;
                    }
                    match self.start(template, &partition).await {
                        Ok(offset) => offsets.push((partition, offset)),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                let _ = reply.send(offsets);
                self.owned_changed(template);
                failed.map_or(Ok(()), Err)
            }
            Event::Revoke {
                partitions,
                lost,
                reply,
            } => {
                let kind = if lost {
                    &stats.rebalances.lost
                } else {
                    &stats.rebalances.revoke
                };
                kind.fetch_add(1, Ordering::Relaxed);
                for partition in &partitions {
                    self.fenced.remove(partition);
                }
                if lost {
                    tracing::warn!(pipeline = %template.name(), partitions = ?partitions, "Partitions lost: this process was out of the group (paused or cut off past the session timeout); it drops them without committing and rejoins.");
                }
                let result = self.stop_tasks(template, &partitions, !lost).await;
                let _ = reply.send(());
                self.owned_changed(template);
                result
            }
        }
    }

    /// Opens a task for `partition`: claims its checkpoint, restores its
    /// plugins; returns where the partition starts.
    async fn start(&mut self, template: &Blueprint, partition: &Partition) -> Result<Offset> {
        let key = key(template.name(), partition);
        let (offers, offer_receiver) = mpsc::unbounded_channel();
        let mut task = template.replica(key.clone(), offer_receiver)?;
        let (feed, records) = mpsc::channel(FEED);
        let source = Feed {
            name: self.name.clone(),
            topic: partition.0.clone(),
            topic_index: self
                .kafka
                .topics
                .iter()
                .position(|t| *t == partition.0)
                .unwrap_or(0) as u16,
            partition: partition.1,
            records,
            max_wait: self.kafka.max_wait,
            next: None,
            commits: self.commits.clone(),
            lag: self.lag.clone(),
        };
        let parts = task
            .open_with(
                Box::new(source),
                Box::new(self.dead_letter.clone()),
                Some(&self.owner),
            )
            .await?;
        let offset = parts
            .recovered
            .as_ref()
            .filter(|c| c.source == self.name)
            .and_then(|c| c.positions.get(&format!("{}/{}", partition.0, partition.1)))
            .map_or(Offset::Stored, |next| Offset::Offset(*next));
        tracing::info!(pipeline = %template.name(), partition = %key, start = ?offset, owner = %self.owner, "Partition assigned and claimed.");
        self.feeds.insert(partition, feed);
        let (stop, mut stopped) = watch::channel(false);
        let ended = self.ended.0.clone();
        let id = partition.clone();
        let handle = tokio::spawn(async move {
            let result = task.drive(parts, &mut stopped).await;
            let _ = ended.send((id, result));
        });
        self.tasks.insert(
            partition.clone(),
            Task {
                stop,
                offers,
                handle,
            },
        );
        Ok(offset)
    }

    /// Stops the tasks of `partitions`: with `commit`, each commits what it
    /// holds first; without, each is dropped (its open transaction rolls
    /// back). Reports the first error.
    async fn stop_tasks(
        &mut self,
        template: &Blueprint,
        partitions: &[Partition],
        commit: bool,
    ) -> Result<()> {
        let mut waiting = Vec::new();
        for partition in partitions {
            let Some(task) = self.tasks.get(partition) else {
                continue;
            };
            if commit {
                let _ = task.stop.send(true);
                waiting.push(partition.clone());
            } else if let Some(task) = self.forget(partition) {
                task.handle.abort();
                tracing::warn!(pipeline = %template.name(), partition = %key(template.name(), partition), "Partition dropped without a commit: its uncommitted work is discarded; its next owner resumes from the last commit.");
            }
        }
        let mut first = Ok(());
        while !waiting.is_empty() {
            let Some((partition, result)) = self.ended.1.recv().await else {
                break;
            };
            waiting.retain(|p| *p != partition);
            let outcome = self.task_ended(template, partition, result);
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    /// A partition fenced more than a session timeout ago that the consumer
    /// still assigns here. Normally the group takes a fenced partition away
    /// within a heartbeat (this process was the one paused); when it does
    /// not, the claim that fenced it came from a process that no longer
    /// owns it (it woke up inside a stale rebalance), and this process —
    /// the owner the group knows — must claim it again.
    fn stale_fence(&self) -> Option<&Partition> {
        self.fenced
            .iter()
            .find(|(_, at)| at.elapsed() > self.kafka.session_timeout)
            .map(|(partition, _)| partition)
    }

    /// Stops handing `partition` records; returns its task, if any.
    fn forget(&mut self, partition: &Partition) -> Option<Task> {
        self.feeds.remove(partition);
        self.tasks.remove(partition)
    }

    /// A task ended: a fenced partition is dropped (the others go on);
    /// any other error ends the membership.
    fn task_ended(
        &mut self,
        template: &Blueprint,
        partition: Partition,
        result: Result<()>,
    ) -> Result<()> {
        self.forget(&partition);
        self.owned_changed(template);
        match result {
            Ok(()) => {
                tracing::info!(pipeline = %template.name(), partition = %key(template.name(), &partition), "Partition committed and released.");
                Ok(())
            }
            Err(crate::pipeline::Error::Sink(error @ crate::sink::Error::Fenced { .. })) => {
                template
                    .stats()
                    .fenced_commits
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(pipeline = %template.name(), %error, "Commit fenced.");
                if !self.closing {
                    self.fenced.insert(partition, std::time::Instant::now());
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Hands a new plugin version to every partition's task: each gets its
    /// own instance of the prepared component.
    fn fan_out(&mut self, template: &Blueprint, offer: Offer) {
        let Offer::Ready(candidate) = offer else {
            for task in self.tasks.values() {
                if let Some(copy) = offer.refusal_copy() {
                    let _ = task.offers.send(copy);
                }
            }
            return;
        };
        let mut tasks = self.tasks.values();
        let first = tasks.next();
        for task in tasks {
            let plugin = tokio::task::block_in_place(|| {
                template
                    .engine()
                    .instantiate(&candidate.spec, &candidate.loaded)
            });
            match plugin {
                Ok(plugin) => {
                    let _ = task.offers.send(Offer::Ready(Box::new(Candidate {
                        stage: candidate.stage,
                        spec: candidate.spec.clone(),
                        policy: candidate.policy,
                        loaded: candidate.loaded.clone(),
                        plugin,
                        noticed: candidate.noticed,
                    })));
                }
                Err(e) => {
                    tracing::error!(pipeline = %template.name(), plugin = %candidate.spec.name, error = %e, "A partition could not start the new version; it keeps the old one.");
                }
            }
        }
        if let Some(task) = first {
            let _ = task.offers.send(Offer::Ready(candidate));
        }
    }

    /// Publishes the owned partitions for `/metrics` and `/readyz`.
    fn owned_changed(&self, template: &Blueprint) {
        let owned = self
            .tasks
            .keys()
            .map(|(topic, partition)| format!("{topic}/{partition}"))
            .collect();
        *template
            .stats()
            .partitions_owned
            .lock()
            .expect("partitions lock") = owned;
    }
}

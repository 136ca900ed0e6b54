//! Records to a Kafka topic. A batch counts as written only when the broker
//! has confirmed delivery of every record in it (`acks=all`); keys, headers
//! and timestamps go with each record.
//!
//! Delivery is at-least-once: the producer is idempotent (no duplicates
//! from its own retries), but broker transactions are not used, so a crash
//! after a batch was delivered and before its checkpoint repeats that
//! epoch. Every record carries a `weir.id` header — a hash of its key and
//! value — that is the same when a replay produces it again, so consumers
//! can deduplicate. (Two records with the same key and value share an id.)
//!
//! A record the broker refuses for itself (too large, invalid) is returned
//! as rejected, for the dead letter; any other delivery failure (broker
//! unreachable past `delivery.timeout.ms`) stops the pipeline, since
//! nothing downstream can be trusted then.

use super::{Error, Rejected, Result, Sink};
use crate::Record;
use crate::kafka::{Connection, Context};
use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `type = "kafka"` as a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Destination topic.
    pub topic: String,
    /// librdkafka properties (TLS, SASL, compression, …), passed through.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The sink.
pub struct KafkaSink {
    name: String,
    topic: String,
    producer: FutureProducer<Context>,
}

impl KafkaSink {
    /// Creates the producer (connections are made on first send).
    pub fn open(config: &KafkaSinkConfig) -> Result<Self> {
        let name = format!("kafka {}", config.topic);
        let connection = Connection {
            brokers: config.brokers.clone(),
            options: config.options.clone(),
        };
        let producer = connection
            .client_config(&[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("linger.ms", "5"),
                ("compression.type", "lz4"),
            ])
            .create_with_context(Context::default())
            .map_err(|e| Error::Client {
                sink: name.clone(),
                action: "create producer".into(),
                reason: e.to_string(),
                hint: "check sink.brokers and sink.options",
            })?;
        Ok(KafkaSink {
            name,
            topic: config.topic.clone(),
            producer,
        })
    }
}

/// Header holding a record's stable id.
pub const RECORD_ID: &str = "weir.id";

/// 32 hex digits of SHA-256 over the key and the value: the same whenever
/// a replay produces the same record again.
pub fn record_id(record: &Record) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    match &record.key {
        Some(key) => {
            hash.update((key.len() as u64).to_be_bytes());
            hash.update(key);
        }
        None => hash.update(u64::MAX.to_be_bytes()),
    }
    hash.update(&record.value);
    hex::encode(&hash.finalize()[..16])
}

/// Errors that belong to one record, not to the connection.
fn is_record_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

#[async_trait]
impl Sink for KafkaSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>> {
        let mut deliveries = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 1);
            for h in &record.headers {
                headers = headers.insert(Header {
                    key: &h.name,
                    value: Some(&h.value),
                });
            }
            if !record.headers.iter().any(|h| h.name == RECORD_ID) {
                headers = headers.insert(Header {
                    key: RECORD_ID,
                    value: Some(&record_id(record)),
                });
            }
            let mut message = FutureRecord::<[u8], [u8]>::to(&self.topic)
                .payload(&record.value)
                .headers(headers)
                .timestamp(record.timestamp_ms);
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push((i, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                        // librdkafka's queue is full: let it drain.
                        message = m;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) if is_record_error(&e) => {
                        rejected.push((i, format!("refused by Kafka: {e}")));
                        break;
                    }
                    Err((e, _)) => {
                        return Err(Error::Client {
                            sink: self.name.clone(),
                            action: "send".into(),
                            reason: e.to_string(),
                            hint: "check the broker is reachable and the topic exists",
                        });
                    }
                }
            }
        }
        for (i, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) if is_record_error(&e) => {
                    rejected.push((i, format!("refused by Kafka: {e}")));
                }
                Ok(Err((e, _))) => {
                    // Past delivery.timeout.ms: the broker is unreachable.
                    return Err(Error::Unavailable {
                        sink: self.name.clone(),
                        action: "deliver".into(),
                        reason: e.to_string(),
                    });
                }
                Err(_canceled) => {
                    return Err(Error::Stopped(format!(
                        "{}: the producer went away before confirming delivery",
                        self.name
                    )));
                }
            }
        }
        let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
        Ok(rejected
            .into_iter()
            .filter_map(|(i, reason)| records[i].take().map(|record| Rejected { record, reason }))
            .collect())
    }

    /// Every batch is confirmed before `write` returns.
    fn is_durable(&self) -> bool {
        true
    }

    fn keeps_headers(&self) -> bool {
        true
    }

    async fn close(&mut self) -> Result<()> {
        use rdkafka::producer::Producer;
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| Error::Stopped(e.to_string()))?
            .map_err(|e| Error::Client {
                sink: self.name.clone(),
                action: "flush on close".into(),
                reason: e.to_string(),
                hint: "check the broker is reachable",
            })
    }
}

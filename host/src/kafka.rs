//! What the Kafka source and sink share: connection settings handed to
//! librdkafka, and a client context that keeps per-partition consumer lag
//! from librdkafka's statistics for `/metrics`.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Connection settings, flattened into `source`/`sink` tables:
/// `brokers = "host:9092"`, `options = { "security.protocol" = "SASL_SSL", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Connection {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Any librdkafka property (TLS, SASL, timeouts, …), passed through
    /// unchanged. See librdkafka's CONFIGURATION.md.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Connection {
    /// A librdkafka configuration: the defaults weir needs, then `options`
    /// (which win, so an operator can override any of them).
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }

    /// Problems found without connecting: `(key, message)`.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        if self.brokers.trim().is_empty() {
            vec![("brokers", "is empty: give host:port[,host:port…]".into())]
        } else {
            vec![]
        }
    }
}

/// Consumer lag per `topic/partition`, as librdkafka last reported it.
pub type Lag = Arc<Mutex<BTreeMap<String, i64>>>;

/// The lag as [`crate::source::Source::lag`] reports it.
pub(crate) fn lag_of(lag: &Lag) -> Vec<(String, i64)> {
    let lag = lag.lock().expect("lag lock");
    lag.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// Client context that records consumer lag from statistics callbacks and
/// routes librdkafka's log lines through `tracing`.
#[derive(Default, Clone)]
pub struct Context {
    /// Shared with the source, read by `/metrics`.
    pub lag: Lag,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let mut lag = self.lag.lock().expect("lag lock");
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka lists an internal partition -1 and reports
                // -1 lag where it does not know yet.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert(format!("{topic}/{partition}"), p.consumer_lag);
                }
            }
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{log_message}"),
            L::Notice | L::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            L::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for Context {}

/// Creates `topic` with `partitions` partitions unless it exists. Brokers
/// used by weir's tests do not auto-create topics, and production ones
/// should not.
pub async fn ensure_topic(
    connection: &Connection,
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<Context> = connection
        .client_config(&[])
        .create_with_context(Context::default())
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10)));
    let results = admin.create_topics([&new], &options).await.map_err(|e| {
        format!(
            "cannot create topic {topic}: {e} (is the broker at {} up?)",
            connection.brokers
        )
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
        }
    }
    Ok(())
}

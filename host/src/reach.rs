//! `weir validate --connect`: does every network endpoint of the pipelines
//! answer? A TCP connect per address, with a short time-out; nothing is
//! sent. Only host and port are ever printed (URLs may carry passwords).

use crate::config::{Config, PipelineConfig};
use crate::sink::SinkConfig;
use crate::source::SourceConfig;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One address a pipeline needs, and the configuration key it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Dotted key, e.g. `pipelines.taxi.source.brokers`.
    pub key: String,
    /// `host:port`.
    pub address: String,
}

/// Every endpoint of every pipeline, in configuration order.
pub fn endpoints(config: &Config) -> Vec<Endpoint> {
    let mut all = Vec::new();
    for (name, plugin) in &config.plugins {
        if let Some(address) = plugin
            .url()
            .and_then(|url| s3_endpoint(url, &plugin.options))
        {
            all.push(Endpoint {
                key: format!("plugins.{name}.options.endpoint"),
                address,
            });
        }
    }
    for (name, pipeline) in &config.pipelines {
        pipeline_endpoints(name, pipeline, &mut all);
    }
    all.dedup();
    all
}

fn pipeline_endpoints(name: &str, pc: &PipelineConfig, out: &mut Vec<Endpoint>) {
    let mut add = |key: String, address: Option<String>| {
        if let Some(address) = address {
            out.push(Endpoint { key, address });
        }
    };
    match &pc.source {
        SourceConfig::Kafka(k) => {
            for broker in brokers(&k.brokers) {
                add(format!("pipelines.{name}.source.brokers"), Some(broker));
            }
        }
        SourceConfig::ObjectStore(o) => add(
            format!("pipelines.{name}.source.options.endpoint"),
            s3_endpoint(&o.url, &o.options),
        ),
        SourceConfig::File { .. } | SourceConfig::Stdin => {}
    }
    let sinks = [
        ("sink", Some(&pc.sink)),
        ("dead-letter", pc.dead_letter.as_ref()),
    ];
    for (table, sink) in sinks {
        match sink {
            Some(SinkConfig::Kafka(k)) => {
                for broker in brokers(&k.brokers) {
                    add(format!("pipelines.{name}.{table}.brokers"), Some(broker));
                }
            }
            Some(SinkConfig::Postgres(p)) => {
                add(
                    format!("pipelines.{name}.{table}.url"),
                    url_address(&p.url, 5432),
                );
            }
            Some(SinkConfig::Parquet(p)) => add(
                format!("pipelines.{name}.{table}.options.endpoint"),
                s3_endpoint(&p.path.to_string_lossy(), &p.options),
            ),
            Some(SinkConfig::Ndjson(_)) | None => {}
        }
    }
}

fn brokers(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.trim_start_matches("PLAINTEXT://")
                .trim_start_matches("SSL://")
                .to_owned()
        })
}

/// `host:port` of a URL, without its user or password.
fn url_address(url: &str, default_port: u16) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port().unwrap_or(default_port)
    ))
}

/// The S3 endpoint of an `s3://` location: its `endpoint` option, else
/// `AWS_ENDPOINT`; none for AWS itself or local paths.
fn s3_endpoint(
    location: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    if !location.starts_with("s3://") {
        return None;
    }
    let endpoint = options
        .get("endpoint")
        .cloned()
        .or_else(|| std::env::var("AWS_ENDPOINT").ok())?;
    let default_port = if endpoint.starts_with("https") {
        443
    } else {
        80
    };
    url_address(&endpoint, default_port)
}

/// Whether `address` accepts a TCP connection within `timeout`.
pub fn check(address: &str, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot reach {address} ({addr}): {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port_and_never_the_password() {
        assert_eq!(
            url_address(
                "postgres://weir:s3cret@db.internal/trips?sslmode=require",
                5432
            ),
            Some("db.internal:5432".into())
        );
        assert_eq!(
            url_address("http://127.0.0.1:8014", 80),
            Some("127.0.0.1:8014".into())
        );
        assert_eq!(
            brokers("a:9092, PLAINTEXT://b:9093").collect::<Vec<_>>(),
            ["a:9092", "b:9093"]
        );
    }

    #[test]
    fn a_published_plugin_location_is_an_endpoint_of_its_plugin() {
        let text = r#"
[plugins.t]
path = "s3://b/plugins/t.wasm"
options = { endpoint = "http://10.1.2.3:9000" }

[pipelines.p]
plugins = ["t"]
source = { type = "stdin" }
sink = { type = "ndjson", path = "-" }
"#;
        let config = Config::parse(text, std::path::Path::new("."), &|_| None).unwrap();
        assert_eq!(
            endpoints(&config),
            [Endpoint {
                key: "plugins.t.options.endpoint".into(),
                address: "10.1.2.3:9000".into(),
            }]
        );
    }
}

//! The operations endpoint: `/metrics` (Prometheus text format),
//! `/livez` and `/readyz`, on `[server] listen` (127.0.0.1 by default).
//!
//! A deliberately small HTTP/1.1 responder on tokio: one request per
//! connection, GET only, no request bodies. It serves scrapers and probes,
//! not browsers, and keeps hyper out of the dependency tree.

use crate::stats::Stats;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The pipelines the endpoint reports on.
pub type Pipelines = Arc<Vec<(String, Arc<Stats>)>>;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The `/metrics` body.
pub fn render_metrics(pipelines: &[(String, Arc<Stats>)]) -> String {
    let mut out = String::new();
    // One value per pipeline: name, Prometheus type, help, value.
    type Scalar = (&'static str, &'static str, &'static str, fn(&Stats) -> u64);
    let scalars: [Scalar; 11] = [
        (
            "weir_records_in_total",
            "counter",
            "Records read from the source.",
            |s| s.read.load(Ordering::Relaxed),
        ),
        (
            "weir_records_out_total",
            "counter",
            "Records written to the sink.",
            |s| s.written.load(Ordering::Relaxed),
        ),
        (
            "weir_records_failed_total",
            "counter",
            "Records sent to the dead-letter sink.",
            |s| s.dead_lettered.load(Ordering::Relaxed),
        ),
        (
            "weir_records_skipped_total",
            "counter",
            "Failed records dropped by on-error = \"skip\" (each one logged).",
            |s| s.skipped.load(Ordering::Relaxed),
        ),
        (
            "weir_plugin_restarts_total",
            "counter",
            "Plugin instances replaced after a trap.",
            |s| s.restarts.load(Ordering::Relaxed),
        ),
        (
            "weir_plugin_recycles_total",
            "counter",
            "Plugin instances replaced, state kept, because their linear memory passed recycle-memory.",
            |s| s.recycles.load(Ordering::Relaxed),
        ),
        (
            "weir_checkpoints_total",
            "counter",
            "Checkpoints committed (epochs made durable with their source positions).",
            |s| s.checkpoints.load(Ordering::Relaxed),
        ),
        (
            "weir_pipeline_recoveries_total",
            "counter",
            "Times the pipeline resumed from its checkpoint after an outage.",
            |s| s.recoveries.load(Ordering::Relaxed),
        ),
        (
            "weir_partitions_owned",
            "gauge",
            "Group mode: source partitions this process owns.",
            |s| s.partitions_owned.lock().expect("partitions lock").len() as u64,
        ),
        (
            "weir_fenced_commits_total",
            "counter",
            "Group mode: commits refused because another process had claimed the partition since (its uncommitted work dropped).",
            |s| s.fenced_commits.load(Ordering::Relaxed),
        ),
        (
            "weir_pipeline_ready",
            "gauge",
            "1 while the pipeline runs.",
            |s| u64::from(s.ready.load(Ordering::Relaxed)),
        ),
    ];
    for (name, kind, help, value) in scalars {
        header(&mut out, name, kind, help);
        for (pipeline, stats) in pipelines {
            let _ = writeln!(
                out,
                "{name}{{pipeline=\"{}\"}} {}",
                label(pipeline),
                value(stats)
            );
        }
    }
    header(
        &mut out,
        "weir_rebalances_total",
        "counter",
        "Group mode: consumer-group rebalances by kind (assign, revoke after a commit, lost without one).",
    );
    for (pipeline, stats) in pipelines {
        let r = &stats.rebalances;
        for (kind, count) in [
            ("assign", &r.assign),
            ("revoke", &r.revoke),
            ("lost", &r.lost),
        ] {
            let _ = writeln!(
                out,
                "weir_rebalances_total{{pipeline=\"{}\",kind=\"{kind}\"}} {}",
                label(pipeline),
                count.load(Ordering::Relaxed)
            );
        }
    }
    type Durations = fn(&Stats) -> &crate::stats::Histogram;
    let histograms: [(&str, &str, Durations); 2] = [
        (
            "weir_batch_seconds",
            "Time from pulling a batch to handing its output to the sink.",
            |stats| &stats.batch_seconds,
        ),
        (
            "weir_commit_seconds",
            "Time a checkpoint commit took (data and checkpoint durable), deferred commits left out.",
            |stats| &stats.commit_seconds,
        ),
    ];
    for (name, help, histogram) in histograms {
        header(&mut out, name, "histogram", help);
        for (pipeline, stats) in pipelines {
            let labels = format!("pipeline=\"{}\"", label(pipeline));
            histogram(stats).render(&mut out, name, &labels);
        }
    }
    header(
        &mut out,
        "weir_batch_gap_max_seconds",
        "gauge",
        "Largest time between two consecutive batches handed to the sink; during=\"swap\" for those across a plugin swap.",
    );
    for (pipeline, stats) in pipelines {
        for (during, max) in [
            ("steady", &stats.gap_max_ns),
            ("swap", &stats.swap_gap_max_ns),
        ] {
            let _ = writeln!(
                out,
                "weir_batch_gap_max_seconds{{pipeline=\"{}\",during=\"{during}\"}} {}",
                label(pipeline),
                max.load(Ordering::Relaxed) as f64 / 1e9
            );
        }
    }
    header(
        &mut out,
        "weir_plugin_live_info",
        "gauge",
        "The live version of each plugin (1): its name@version and the first 12 hex digits of its SHA-256.",
    );
    for (pipeline, stats) in pipelines {
        let board = stats.swaps.lock().expect("swap board lock");
        for (plugin, live) in &board.live {
            let (version, digest) = live.rsplit_once('+').unwrap_or((live, ""));
            let _ = writeln!(
                out,
                "weir_plugin_live_info{{pipeline=\"{}\",plugin=\"{}\",version=\"{}\",digest=\"{}\"}} 1",
                label(pipeline),
                label(plugin),
                label(version),
                label(digest)
            );
        }
    }
    header(
        &mut out,
        "weir_plugin_swaps_total",
        "counter",
        "Attempts to replace a running plugin, by result (swapped, promoted, compile_error, wrong_world, init_failed, state_version, restore_failed, rolled_back, canary_rejected).",
    );
    for (pipeline, stats) in pipelines {
        let board = stats.swaps.lock().expect("swap board lock");
        for plugin in board.live.keys() {
            for outcome in crate::swap::Outcome::ALL {
                let count = board
                    .counts
                    .get(&(plugin.clone(), outcome))
                    .copied()
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "weir_plugin_swaps_total{{pipeline=\"{}\",plugin=\"{}\",result=\"{}\"}} {count}",
                    label(pipeline),
                    label(plugin),
                    outcome.label()
                );
            }
        }
    }
    header(
        &mut out,
        "weir_consumer_lag",
        "gauge",
        "Records not yet read, per source partition.",
    );
    for (pipeline, stats) in pipelines {
        for (partition, lag) in stats.lag.lock().expect("lag lock").iter() {
            let _ = writeln!(
                out,
                "weir_consumer_lag{{pipeline=\"{}\",partition=\"{}\"}} {lag}",
                label(pipeline),
                label(partition)
            );
        }
    }
    out
}

fn respond(path: &str, pipelines: &[(String, Arc<Stats>)]) -> (u16, &'static str, String) {
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            render_metrics(pipelines),
        ),
        "/livez" => (200, "text/plain", "ok\n".into()),
        "/readyz" => {
            let mut body = String::new();
            let mut ready = true;
            for (name, stats) in pipelines {
                let agrees = stats
                    .swaps
                    .lock()
                    .expect("swap board lock")
                    .fleet
                    .is_empty();
                let up = stats.ready.load(Ordering::Relaxed) && agrees;
                ready &= up;
                let _ = writeln!(body, "{name}: {}", if up { "ready" } else { "not ready" });
                let owned = stats.partitions_owned.lock().expect("partitions lock");
                if !owned.is_empty() {
                    let _ = writeln!(body, "  partitions owned: {}", owned.join(", "));
                }
                drop(owned);
                let owners = stats.partition_owners.lock().expect("owners lock");
                if !owners.is_empty() {
                    let list: Vec<String> =
                        owners.iter().map(|(p, o)| format!("{p} {o}")).collect();
                    let _ = writeln!(body, "  owners (checkpoint store): {}", list.join(", "));
                }
                drop(owners);
                let board = stats.swaps.lock().expect("swap board lock");
                for (plugin, live) in &board.live {
                    let _ = writeln!(body, "  plugin {plugin}: {live}");
                    if let Some(last) = board.last.get(plugin) {
                        let _ = writeln!(body, "    last swap: {last}");
                    }
                    if let Some(problem) = board.location.get(plugin) {
                        let _ = writeln!(body, "    location: {problem}");
                    }
                    if let Some(problem) = board.fleet.get(plugin) {
                        let _ = writeln!(body, "    not the fleet's version: {problem}");
                    }
                }
            }
            (if ready { 200 } else { 503 }, "text/plain", body)
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

/// Binds `addr` and serves until the process ends.
pub async fn serve(addr: SocketAddr, pipelines: Pipelines) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "Serving /metrics, /livez and /readyz.");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let pipelines = pipelines.clone();
            tokio::spawn(async move {
                let mut request = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                // Headers end with an empty line; refuse anything larger
                // than a probe or a scraper sends.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        stream.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line);
                let mut parts = line.split_whitespace();
                let (status, kind, body) = match (parts.next(), parts.next()) {
                    (Some("GET"), Some(target)) => {
                        respond(target.split('?').next().unwrap_or(target), &pipelines)
                    }
                    _ => (405, "text/plain", "only GET is served\n".into()),
                };
                let reason = match status {
                    200 => "OK",
                    404 => "Not Found",
                    405 => "Method Not Allowed",
                    _ => "Service Unavailable",
                };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_counters_histogram_and_lag_per_pipeline() {
        let stats = Arc::new(Stats::default());
        stats.read.store(5, Ordering::Relaxed);
        stats.batch_seconds.observe(0.003);
        stats.batch_seconds.observe(3.0);
        stats.commit_seconds.observe(0.2);
        *stats.lag.lock().unwrap() = vec![("weather/0".into(), 12)];
        let text = render_metrics(&[("a\"b".into(), stats)]);
        assert!(
            text.contains("weir_records_in_total{pipeline=\"a\\\"b\"} 5"),
            "{text}"
        );
        assert!(text.contains("weir_batch_seconds_bucket{pipeline=\"a\\\"b\",le=\"0.005\"} 1"));
        assert!(text.contains("weir_batch_seconds_bucket{pipeline=\"a\\\"b\",le=\"+Inf\"} 2"));
        assert!(text.contains("weir_commit_seconds_bucket{pipeline=\"a\\\"b\",le=\"0.25\"} 1"));
        assert!(text.contains("weir_commit_seconds_count{pipeline=\"a\\\"b\"} 1"));
        assert!(text.contains("weir_consumer_lag{pipeline=\"a\\\"b\",partition=\"weather/0\"} 12"));
    }

    #[test]
    fn swaps_are_counted_per_result_and_shown_in_readyz() {
        let stats = Arc::new(Stats::default());
        stats.ready.store(true, Ordering::Relaxed);
        {
            let mut board = stats.swaps.lock().unwrap();
            board
                .live
                .insert("taxi".into(), "taxi-enrich@2.0.0+0123456789ab".into());
            board.record(
                "taxi",
                crate::swap::Outcome::CompileError,
                "garbage refused".into(),
            );
            board
                .location
                .insert("taxi".into(), "cannot be read: unreachable".into());
        }
        let pipelines = vec![("p".to_owned(), stats)];
        let text = render_metrics(&pipelines);
        assert!(text.contains(
            "weir_plugin_swaps_total{pipeline=\"p\",plugin=\"taxi\",result=\"compile_error\"} 1"
        ));
        assert!(text.contains(
            "weir_plugin_live_info{pipeline=\"p\",plugin=\"taxi\",version=\"taxi-enrich@2.0.0\",digest=\"0123456789ab\"} 1"
        ));
        assert!(text.contains(
            "weir_plugin_swaps_total{pipeline=\"p\",plugin=\"taxi\",result=\"swapped\"} 0"
        ));
        let (status, _, body) = respond("/readyz", &pipelines);
        assert_eq!(status, 200);
        assert!(
            body.contains("plugin taxi: taxi-enrich@2.0.0+0123456789ab"),
            "{body}"
        );
        assert!(
            body.contains("last swap: compile_error: garbage refused"),
            "{body}"
        );
        assert!(
            body.contains("    location: cannot be read: unreachable"),
            "{body}"
        );
    }

    #[test]
    fn readyz_is_503_while_a_plugin_is_not_the_fleet_s_version() {
        let stats = Arc::new(Stats::default());
        stats.ready.store(true, Ordering::Relaxed);
        stats.swaps.lock().unwrap().fleet.insert(
            "taxi".into(),
            "runs taxi-enrich@1+aaaaaaaaaaaa, the fleet runs bbbbbbbbbbbb (for 5 s)".into(),
        );
        stats
            .swaps
            .lock()
            .unwrap()
            .live
            .insert("taxi".into(), "taxi-enrich@1+aaaaaaaaaaaa".into());
        let pipelines = vec![("p".to_owned(), stats.clone())];
        let (status, _, body) = respond("/readyz", &pipelines);
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("p: not ready")
                && body.contains("not the fleet's version: runs taxi-enrich@1+aaaaaaaaaaaa"),
            "{body}"
        );
        stats.swaps.lock().unwrap().fleet.clear();
        assert_eq!(respond("/readyz", &pipelines).0, 200);
    }

    #[test]
    fn readyz_is_503_until_every_pipeline_runs() {
        let a = Arc::new(Stats::default());
        let pipelines = vec![("a".to_owned(), a.clone())];
        assert_eq!(respond("/readyz", &pipelines).0, 503);
        a.ready.store(true, Ordering::Relaxed);
        assert_eq!(respond("/readyz", &pipelines).0, 200);
        assert_eq!(respond("/nope", &pipelines).0, 404);
    }
}

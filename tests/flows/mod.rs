//! Pipelines over the real services that several test files run: producing
//! input, writing configs, waiting for progress, reading results.
#![allow(dead_code)]

use super::common;
use super::services::{self, Running, pg_checkpoint, weir, weir_env};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub async fn pg_pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&services::pg())
        .await
        .expect("PostgreSQL from WEIR_TEST_PG")
}

pub fn produce(kind: &str, count: usize, seed: u64, topic: &str, partitions: u32) {
    weir(
        &[
            "gen",
            kind,
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
            "--topic",
            topic,
            "--brokers",
            &services::kafka(),
            "--partitions",
            &partitions.to_string(),
        ],
        &weir_env(),
    );
}

/// Polls `done` every 200 ms while `run` is alive (a hang guard of 100 s,
/// below nextest's 180 s limit so that the log is shown; not a performance
/// assertion).
pub async fn until<F: std::future::Future<Output = bool>>(
    run: &mut Running,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let started = Instant::now();
    // A poll that stalls (a request the S3 server never answers) counts as
    // "not yet", so the guard below still fires and shows weir's log.
    let poll = |future: F| async {
        let answer = tokio::time::timeout(Duration::from_secs(15), future).await;
        answer.unwrap_or_else(|_| {
            eprintln!("a poll for {what} stalled for 15 s; polling again");
            false
        })
    };
    while !poll(done()).await {
        assert!(
            run.alive(),
            "weir exited while waiting for {what}:\n{}",
            run.log_text()
        );
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "gave up waiting for {what}:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pipeline Kafka `topic` → `plugin` → `sink`, dead letters to a local
/// file, written to `<dir>/<pipeline>.toml`. `plugin_config` and `settings`
/// are TOML lines for the plugin and the pipeline tables; `sink` the body of
/// the sink table.
pub fn kafka_pipeline(
    dir: &Path,
    pipeline: &str,
    topic: &str,
    plugin: (&str, &str),
    settings: &str,
    sink: &str,
) -> std::path::PathBuf {
    let (plugin, plugin_config) = plugin;
    let config = dir.join(format!("{pipeline}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.{plugin}]
path = "${{WEIR_PLUGINS}}/{plugin}.wasm"
{plugin_config}

[pipelines.{pipeline}]
plugins = ["{plugin}"]
{settings}

[pipelines.{pipeline}.source]
type = "kafka"
brokers = "${{WEIR_KAFKA}}"
topics = ["{topic}"]
group = "{pipeline}"

[pipelines.{pipeline}.sink]
{sink}

[pipelines.{pipeline}.dead-letter]
type = "ndjson"
path = "dead-letter.ndjson"
"#
        ),
    )
    .unwrap();
    config
}

/// The services, with the taxi sink writing to PostgreSQL directly.
pub fn taxi_env() -> Vec<(String, String)> {
    let mut env = weir_env();
    env.push(("WEIR_PG_SINK".into(), services::pg()));
    env
}

pub async fn checkpoint_at_end(pool: &sqlx::PgPool, pipeline: &str, topic: &str) -> bool {
    services::at_end(
        &pg_checkpoint(pool, pipeline).await,
        &services::end_offsets(topic),
    )
}

/// Waits (with `until`'s hang guard) until `pipeline`'s committed
/// checkpoint has reached the end of every partition of `topic`.
pub async fn until_checkpointed(
    run: &mut Running,
    pool: &sqlx::PgPool,
    pipeline: &str,
    topic: &str,
) {
    until(run, "the checkpoint to reach the end offsets", || {
        checkpoint_at_end(pool, pipeline, topic)
    })
    .await;
}

/// Kafka `topic` → weather-window (60 s event-time windows) → PostgreSQL
/// `table`; `settings` and `columns` are added to the pipeline table and
/// the column list.
pub fn weather_config(
    dir: &Path,
    pipeline: &str,
    topic: &str,
    table: &str,
    settings: &str,
    columns: &str,
) -> std::path::PathBuf {
    kafka_pipeline(
        dir,
        pipeline,
        topic,
        (
            "weather-window",
            r#"config = { window = "60s", time = "event", watermark-delay = "5s" }"#,
        ),
        &format!("batch-size = 200\ncheckpoint-interval = \"200ms\"\n{settings}"),
        &postgres_sink(
            "WEIR_PG",
            table,
            &[
                r#"{ name = "city", type = "text" }"#,
                r#"{ name = "window_start", type = "timestamptz" }"#,
                r#"{ name = "avg_temperature", type = "double precision" }"#,
                r#"{ name = "count", type = "bigint" }"#,
                columns,
            ],
        ),
    )
}

/// The body of a sink table: PostgreSQL at `${url_var}`, `table` created
/// when missing, with `columns` (TOML inline tables; empty ones skipped).
pub fn postgres_sink(url_var: &str, table: &str, columns: &[&str]) -> String {
    let columns: Vec<&str> = columns
        .iter()
        .map(|c| c.trim().trim_end_matches(','))
        .filter(|c| !c.is_empty())
        .collect();
    format!(
        "type = \"postgres\"\nurl = \"${{{url_var}}}\"\ntable = \"{table}\"\ncreate-table = true\ncolumns = [\n  {},\n]",
        columns.join(",\n  ")
    )
}

/// Per (city, window start) count and sum of temperatures of the sample
/// weather readings, for the 60 s windows the watermark (largest timestamp
/// − 5 s) has passed.
pub fn weather_reference(count: usize, seed: u64) -> BTreeMap<(String, i64), (i64, f64)> {
    let readings = weather_readings(count, seed);
    let watermark = readings.iter().map(|r| r.1).max().unwrap() - 5_000;
    closed_windows(&readings, |_| watermark)
}

/// Group mode: each partition's instance of weather-window has its own
/// watermark (its largest timestamp − 5 s), so the windows emitted are,
/// per partition, those that partition's watermark has passed.
/// `partition_of` says which partition each city (the key) went to.
pub fn weather_reference_per_partition(
    count: usize,
    seed: u64,
    partition_of: &std::collections::HashMap<String, i32>,
) -> BTreeMap<(String, i64), (i64, f64)> {
    let readings = weather_readings(count, seed);
    let mut watermarks: BTreeMap<i32, i64> = BTreeMap::new();
    for (city, ts, _) in &readings {
        let partition = partition_of[city];
        let mark = watermarks.entry(partition).or_insert(i64::MIN);
        *mark = (*mark).max(ts - 5_000);
    }
    closed_windows(&readings, |city| watermarks[&partition_of[city]])
}

/// The valid sample readings: (city, epoch ms, temperature).
fn weather_readings(count: usize, seed: u64) -> Vec<(String, i64, f64)> {
    let lines = weir::sample::weather(count, seed, 1_546_300_800_000, 1000, 2.0);
    common::valid_json(&lines)
        .iter()
        .map(|v| {
            let ts = weir_plugin_kit::time::parse(v["timestamp"].as_str().unwrap())
                .unwrap()
                .epoch_ms;
            (
                v["city"].as_str().unwrap().to_owned(),
                ts,
                v["temperature"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Count and sum per (city, 60 s window start) of the windows the city's
/// watermark has passed.
fn closed_windows(
    readings: &[(String, i64, f64)],
    watermark: impl Fn(&str) -> i64,
) -> BTreeMap<(String, i64), (i64, f64)> {
    let mut reference: BTreeMap<(String, i64), (i64, f64)> = BTreeMap::new();
    for (city, ts, t) in readings {
        let start = ts - ts.rem_euclid(60_000);
        if start + 60_000 <= watermark(city) {
            let entry = reference.entry((city.clone(), start)).or_default();
            entry.0 += 1;
            entry.1 += t;
        }
    }
    reference
}

/// The windows in `table` are exactly `reference`: each once, with its
/// count and mean.
pub async fn assert_windows(
    pool: &sqlx::PgPool,
    table: &str,
    reference: &BTreeMap<(String, i64), (i64, f64)>,
) {
    let rows: Vec<(String, i64, i64, f64)> = sqlx::query_as(&format!(
        "SELECT city, (extract(epoch FROM window_start) * 1000)::bigint, count, avg_temperature FROM {table}"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        reference.len(),
        "windows emitted (duplicates or losses)"
    );
    for (city, start, n, avg) in rows {
        let (want_n, sum) = reference
            .get(&(city.clone(), start))
            .unwrap_or_else(|| panic!("unexpected window {city} {start}"));
        assert_eq!(n, *want_n, "{city} {start}");
        assert!(
            (avg - sum / *want_n as f64).abs() < 1e-9,
            "{city} {start}: {avg}"
        );
    }
}

/// Kafka `topic` → taxi-enrich → the PostgreSQL `table`, checkpointing
/// every 300 ms; `extra` adds pipeline settings.
pub fn taxi_config(
    dir: &Path,
    pipeline: &str,
    topic: &str,
    table: &str,
    extra: &str,
) -> std::path::PathBuf {
    kafka_pipeline(
        dir,
        pipeline,
        topic,
        ("taxi-enrich", ""),
        &format!("batch-size = 2048\ncheckpoint-interval = \"300ms\"\n{extra}"),
        &postgres_sink("WEIR_PG_SINK", table, TAXI_COLUMNS),
    )
}

/// The columns of the taxi tests' table, as [`table_trips`] reads them.
pub const TAXI_COLUMNS: &[&str] = &[
    r#"{ name = "pickup_at", type = "timestamptz" }"#,
    r#"{ name = "pu_location_id", type = "integer", path = "PULocationID" }"#,
    r#"{ name = "do_location_id", type = "integer", path = "DOLocationID" }"#,
    r#"{ name = "total_amount", type = "double precision" }"#,
    r#"{ name = "trip_duration_min", type = "double precision" }"#,
];

/// The identity of a trip: pickup second, zones, total in cents.
pub type Trip = (i64, i64, i64, i64);

pub fn expected_trips(count: usize, seed: u64) -> Vec<Trip> {
    let mut trips: Vec<Trip> = common::valid_json(&weir::sample::taxi(count, seed, 2.0))
        .iter()
        .map(|v| {
            let pickup = weir_plugin_kit::time::parse(v["tpep_pickup_datetime"].as_str().unwrap())
                .unwrap()
                .epoch_ms;
            (
                pickup / 1000,
                v["PULocationID"].as_i64().unwrap(),
                v["DOLocationID"].as_i64().unwrap(),
                (v["total_amount"].as_f64().unwrap() * 100.0).round() as i64,
            )
        })
        .collect();
    trips.sort_unstable();
    trips
}

pub async fn table_trips(pool: &sqlx::PgPool, table: &str) -> Vec<Trip> {
    let mut trips: Vec<Trip> = sqlx::query_as(&format!(
        "SELECT extract(epoch FROM pickup_at)::bigint, pu_location_id::bigint, do_location_id::bigint,
                round(total_amount * 100)::bigint FROM {table}"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    trips.sort_unstable();
    trips
}

/// Waits until every partition checkpoint of `pipeline` is at the end of
/// `topic`, while `run` keeps running.
pub async fn until_group_checkpointed(
    run: &mut Running,
    pool: &sqlx::PgPool,
    pipeline: &str,
    topic: &str,
) {
    until(
        run,
        "every partition checkpoint at the end offsets",
        || async {
            services::at_end(
                &services::pg_group_checkpoint(pool, pipeline).await,
                &services::end_offsets(topic),
            )
        },
    )
    .await;
}

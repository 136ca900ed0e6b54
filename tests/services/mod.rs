//! The real services of the connector tests: where they are, and helpers
//! to talk to them. Every accessor fails the test loudly when its service
//! is not configured or not reachable; nothing is ever skipped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW: &str = "start them with `scripts/services.sh up` and export their addresses with `eval \"$(scripts/services.sh env)\"` (scripts/test.sh does both)";

fn reachable(name: &str, var: &str, host_port: &str) {
    let addr = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("{var}={host_port} is not host:port"));
    if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_err() {
        panic!("{name} is not reachable at {host_port} ({var}): {HOW}");
    }
}

fn var(name: &str, var_name: &str) -> String {
    std::env::var(var_name)
        .unwrap_or_else(|_| panic!("{var_name} is not set, so {name} cannot be found: {HOW}"))
}

/// Kafka bootstrap address.
pub fn kafka() -> String {
    let brokers = var("the Kafka broker", "WEIR_TEST_KAFKA");
    reachable("the Kafka broker", "WEIR_TEST_KAFKA", &brokers);
    brokers
}

/// S3 endpoint URL.
pub fn s3() -> String {
    let endpoint = var("the S3 server", "WEIR_TEST_S3");
    let host_port = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    reachable("the S3 server", "WEIR_TEST_S3", &host_port);
    endpoint
}

/// PostgreSQL URL.
pub fn pg() -> String {
    let url = var("PostgreSQL", "WEIR_TEST_PG");
    let host_port = url
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    reachable("PostgreSQL", "WEIR_TEST_PG", &host_port);
    url
}

/// S3 options for object_store (and the AWS_* variables for the CLI).
pub fn s3_options() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("endpoint".into(), s3()),
        (
            "access_key_id".into(),
            var("the S3 server", "WEIR_TEST_S3_KEY"),
        ),
        (
            "secret_access_key".into(),
            var("the S3 server", "WEIR_TEST_S3_SECRET"),
        ),
        ("region".into(), "us-east-1".into()),
        ("allow_http".into(), "true".into()),
    ])
}

/// A name no other test or earlier run uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Environment for a weir process that points every example at the test
/// services (the same variables docker-compose.yml sets).
pub fn weir_env() -> Vec<(String, String)> {
    let options = s3_options();
    vec![
        ("WEIR_KAFKA".into(), kafka()),
        ("WEIR_S3_ENDPOINT".into(), options["endpoint"].clone()),
        ("WEIR_S3_KEY".into(), options["access_key_id"].clone()),
        (
            "WEIR_S3_SECRET".into(),
            options["secret_access_key"].clone(),
        ),
        ("WEIR_PG".into(), pg()),
        (
            "WEIR_PLUGINS".into(),
            super::common::root()
                .join("plugins/dist")
                .display()
                .to_string(),
        ),
        ("AWS_ENDPOINT".into(), options["endpoint"].clone()),
        ("AWS_ACCESS_KEY_ID".into(), options["access_key_id"].clone()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            options["secret_access_key"].clone(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("WEIR_LOG".into(), "info".into()),
    ]
}

/// Runs the weir binary to completion (no standard input); returns its exit
/// status and its stdout followed by its stderr.
pub fn weir_output(args: &[&str], env: &[(String, String)]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Runs the weir binary to completion; panics with its output on failure.
pub fn weir(args: &[&str], env: &[(String, String)]) -> String {
    let (status, text) = weir_output(args, env);
    assert!(status.success(), "weir {args:?} failed:\n{text}");
    text
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `weir run` with its metrics endpoint.
pub struct Running {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Running {
    /// Starts `weir run <config> --listen 127.0.0.1:<free port>`.
    pub fn start(config: &Path, env: &[(String, String)], log_dir: &Path) -> Running {
        Running::start_with(config, env, log_dir, &[])
    }

    /// `start` with more arguments for `weir run` (e.g. `--watch-config`).
    pub fn start_with(
        config: &Path,
        env: &[(String, String)],
        log_dir: &Path,
        args: &[&str],
    ) -> Running {
        let port = free_port();
        // One log per run, so a restarted weir does not overwrite the last.
        let mut log = log_dir.join("weir.log");
        for n in 1.. {
            if !log.exists() {
                break;
            }
            log = log_dir.join(format!("weir-{n}.log"));
        }
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--quiet", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running { child, port, log }
    }

    /// The process id (as the process names itself in claims: `host:pid`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs a path of the operations endpoint; `None` while it is not up.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    /// A metric's value for one pipeline, 0 when not reported yet.
    pub fn metric(&self, name: &str, pipeline: &str) -> u64 {
        let Some((_, body)) = self.get("/metrics") else {
            return 0;
        };
        let prefix = format!("{name}{{pipeline=\"{pipeline}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `done` holds, checking every 100 ms; panics with the
    /// log after `limit` (a hang guard, not a performance assertion).
    pub fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Running) -> bool,
    ) {
        let started = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "weir exited early with {status} while waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            if started.elapsed() > limit {
                panic!(
                    "gave up waiting for {what} after {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every record read by `pipeline` is accounted for
    /// (written or dead-lettered) and at least `count` were read.
    pub fn wait_for_records(&mut self, pipeline: &str, count: u64) {
        self.wait_until(
            &format!("{count} records through {pipeline}"),
            Duration::from_secs(120),
            |r| {
                let read = r.metric("weir_records_in_total", pipeline);
                read >= count
                    && r.metric("weir_records_out_total", pipeline)
                        + r.metric("weir_records_failed_total", pipeline)
                        >= read
            },
        );
    }

    /// Waits until `pipeline` read at least `count` records (for pipelines
    /// whose output is not one record per input, such as windows).
    pub fn wait_for_input(&mut self, pipeline: &str, count: u64) {
        self.wait_until(
            &format!("{count} records into {pipeline}"),
            Duration::from_secs(120),
            |r| r.metric("weir_records_in_total", pipeline) >= count,
        );
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to end by itself (e.g. at a forced crash
    /// point); returns its exit status and log.
    pub fn wait_for_exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log_text());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("weir did not exit within {limit:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// `kill -9`: no drain, no flush, no final checkpoint.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_text()
    }

    /// SIGTERM, then waits for a clean exit (status 0) and returns the log.
    pub fn stop(mut self) -> String {
        // A SIGTERM before weir installed its handler would kill it outright:
        // wait for the operations endpoint, which starts after the handler.
        self.wait_until("the operations endpoint", Duration::from_secs(60), |r| {
            r.get("/livez").is_some()
        });
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log_text();
                assert!(
                    status.success(),
                    "weir did not exit cleanly on SIGTERM ({status}):\n{log}"
                );
                return log;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!(
                    "weir did not stop within 60 s of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Every Parquet row under `prefix` of an S3 bucket, as JSON objects, and
/// the object paths they came from.
pub async fn parquet_rows(url: &str) -> (Vec<serde_json::Value>, Vec<String>) {
    use futures::TryStreamExt;
    let location = weir::store::open(url, &s3_options(), Path::new(".")).unwrap();
    let mut objects: Vec<_> = location
        .store
        .list(Some(&location.prefix))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    // Manifests and other `_`-folders are not data.
    objects.retain(|m| !m.location.parts().any(|p| p.as_ref().starts_with('_')));
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    for meta in objects {
        paths.push(meta.location.to_string());
        rows.extend(object_rows(&location, &meta.location).await);
    }
    (rows, paths)
}

/// The rows of one Parquet object, as JSON objects.
pub async fn object_rows(
    location: &weir::store::Location,
    path: &object_store::path::Path,
) -> Vec<serde_json::Value> {
    use object_store::ObjectStoreExt;
    let bytes = location
        .store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(&batch.unwrap()).unwrap();
        writer.finish().unwrap();
        rows.extend(
            serde_json::from_slice::<Vec<serde_json::Value>>(&writer.into_inner()).unwrap(),
        );
    }
    rows
}

/// Every record on a topic (all partitions, from the start), read by a
/// fresh consumer until `count` arrived.
pub async fn consume(topic: &str, count: usize) -> Vec<weir::Record> {
    use weir::source::Source;
    let config: weir::source::kafka::KafkaConfig = toml::from_str(&format!(
        "brokers = {:?}\ntopics = [{topic:?}]\ngroup = {:?}",
        kafka(),
        unique("reader")
    ))
    .unwrap();
    let mut source = weir::source::kafka::KafkaSource::open(&config).unwrap();
    let mut records = Vec::new();
    let started = Instant::now();
    while records.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} of {count} records arrived on {topic}",
            records.len()
        );
        records.extend(source.next_batch(1000).await.unwrap().unwrap().records);
    }
    records
}

/// The end offset of every partition of `topic`, as `topic/partition`.
pub fn end_offsets(topic: &str) -> BTreeMap<String, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            (format!("{topic}/{}", p.id()), high)
        })
        .collect()
}

/// Whether stored positions (a checkpoint's, a group's) are at the end
/// offsets: a partition that never held a record may be missing (0).
pub fn at_end(stored: &BTreeMap<String, i64>, end: &BTreeMap<String, i64>) -> bool {
    stored.keys().all(|k| end.contains_key(k))
        && end
            .iter()
            .all(|(k, v)| stored.get(k).copied().unwrap_or(0) == *v)
}

/// The offsets a consumer group committed for `topic`.
pub fn group_offsets(group: &str, topic: &str) -> BTreeMap<String, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for key in end_offsets(topic).keys() {
        let partition = key.rsplit_once('/').unwrap().1.parse().unwrap();
        list.add_partition(topic, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((format!("{}/{}", e.topic(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// The positions of `pipeline`'s exactly-once checkpoint in PostgreSQL.
pub async fn pg_checkpoint(pool: &sqlx::PgPool, pipeline: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT partition, next_position FROM weir_checkpoints WHERE pipeline = $1",
    )
    .bind(pipeline)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .collect()
}

/// Group mode: the positions of every partition checkpoint of `pipeline`
/// (stored as `pipeline@topic.partition`), merged.
pub async fn pg_group_checkpoint(pool: &sqlx::PgPool, pipeline: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT partition, next_position FROM weir_checkpoints WHERE starts_with(pipeline, $1)",
    )
    .bind(format!("{pipeline}@"))
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .collect()
}

/// A small deterministic random sequence (xorshift), for kill times.
pub struct Dice(u64);

impl Dice {
    /// Seeded from the clock; the seed is printed so a run can be repeated.
    pub fn new() -> Dice {
        let seed = std::env::var("WEIR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("kill times from WEIR_TEST_SEED={seed}");
        Dice(seed)
    }

    /// A number in `low..high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low).max(1)
    }
}

/// Which partition of `topic` each key went to, read back from the topic
/// (its first `count` records).
pub fn partitions_by_key(topic: &str, count: usize) -> std::collections::HashMap<String, i32> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("enable.partition.eof", "false")
        .set("group.id", unique("keys"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for key in end_offsets(topic).keys() {
        let partition = key.rsplit_once('/').unwrap().1.parse().unwrap();
        list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut partitions = std::collections::HashMap::new();
    let started = Instant::now();
    let mut seen = 0;
    while seen < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {seen} of {count} records arrived on {topic}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.unwrap();
            seen += 1;
            if let Some(key) = message.key() {
                partitions.insert(
                    String::from_utf8_lossy(key).into_owned(),
                    message.partition(),
                );
            }
        }
    }
    partitions
}

/// Produces `values` to `topic`, keyless, in one batch.
pub async fn produce<'a>(topic: &str, values: impl IntoIterator<Item = &'a str>) {
    use weir::sink::Sink;
    let mut sink = weir::sink::kafka::KafkaSink::open(&weir::sink::kafka::KafkaSinkConfig {
        brokers: kafka(),
        topic: topic.to_owned(),
        options: BTreeMap::new(),
    })
    .unwrap();
    let records = values
        .into_iter()
        .map(|v| weir::Record {
            key: None,
            value: v.as_bytes().to_vec(),
            timestamp_ms: weir::pipeline::now_ms(),
            headers: vec![],
        })
        .collect();
    assert!(sink.write(records).await.unwrap().is_empty());
    sink.close().await.unwrap();
}

/// The committed rows of a Parquet location as weir reads them (a Delta
/// table's newest version, with the partition values from its log; or
/// weir's manifests and rewrite log), each with its file's path.
pub async fn committed_rows(url: &str) -> Vec<(String, serde_json::Value)> {
    let location = weir::store::open(url, &s3_options(), Path::new(".")).unwrap();
    let mut delta = weir::table::delta::DeltaTable::open(&location, 100).unwrap();
    if delta.exists().await.unwrap() {
        let (files, _) = delta.files().await.unwrap();
        let mut rows = Vec::new();
        for file in files {
            for mut row in object_rows(&location, &location.child(&file.path)).await {
                let object = row.as_object_mut().unwrap();
                for (column, value) in &file.partition {
                    object.insert(column.clone(), serde_json::json!(value));
                }
                rows.push((file.path.clone(), row));
            }
        }
        return rows;
    }
    let snapshot = weir::table::snapshot(&location).await.unwrap();
    let mut rows = Vec::new();
    for file in snapshot.files {
        let path = location.child(&file.name);
        for row in object_rows(&location, &path).await {
            rows.push((file.name.clone(), row));
        }
    }
    rows
}

/// The Python of the toolchains (`scripts/toolchains.sh install`), which
/// has pyarrow.
pub fn toolchain_python() -> std::path::PathBuf {
    let cache = std::env::var("WEIR_TOOLCHAINS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/weir"));
    let python = cache.join("python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/toolchains.sh install (scripts/test.sh does)",
        python.display()
    );
    python
}

/// The committed rows of a Parquet location as pyarrow reads them, going
/// by `_weir/committed` alone (tests/readers/committed_rows.py), each with
/// its file's path.
pub fn pyarrow_rows(url: &str) -> Vec<(String, serde_json::Value)> {
    reader_rows("committed_rows.py", &[url], "pyarrow")
        .into_iter()
        .map(|mut row| {
            let file = row
                .as_object_mut()
                .unwrap()
                .remove("_file")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            (file, row)
        })
        .collect()
}

/// The rows of the Delta table at `url` as delta-rs reads it
/// (tests/readers/delta_rows.py). The reader also fails if a file the log
/// names is missing or an epoch is in the log twice.
pub fn delta_rows(url: &str) -> Vec<serde_json::Value> {
    reader_rows("delta_rows.py", &[url], "deltalake")
}

/// Time travel: the rows of version `version` of the Delta table at `url`
/// as delta-rs reads them.
pub fn delta_rows_at(url: &str, version: u64) -> Vec<serde_json::Value> {
    reader_rows("delta_rows.py", &[url, &version.to_string()], "deltalake")
}

/// The rows of the Delta table at `url` whose columns equal `filters`
/// (`column=value`), as Polars' `scan_delta` reads them with that filter.
pub fn polars_rows(url: &str, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![url];
    args.extend_from_slice(filters);
    reader_rows("polars_rows.py", &args, "polars")
}

/// Runs a reader that is not weir (tests/readers/`script`, the location
/// first in `args`) and parses the JSON row it prints per line; its
/// failure fails the test.
fn reader_rows(script: &str, args: &[&str], reader: &str) -> Vec<serde_json::Value> {
    let url = args[0];
    let out = Command::new(toolchain_python())
        .arg(super::common::root().join("tests/readers").join(script))
        .args(args)
        .envs(weir_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{reader} could not read {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The source positions of the last commit of `app_id` (a pipeline, or
/// `pipeline@topic.partition`) in the Delta table at `url`; empty while
/// there is none.
pub async fn delta_checkpoint(url: &str, app_id: &str) -> BTreeMap<String, i64> {
    let location = weir::store::open(url, &s3_options(), Path::new(".")).unwrap();
    let mut table = weir::table::delta::DeltaTable::open(&location, 100).unwrap();
    match table.recover(app_id).await {
        Ok(Some((_, checkpoint, _))) => {
            serde_json::from_value(serde_json::to_value(&checkpoint.positions).unwrap()).unwrap()
        }
        _ => BTreeMap::new(),
    }
}

/// Group mode on Delta: the committed positions of every partition of
/// `topic` (`partitions` of them) for `pipeline`, merged.
pub async fn delta_group_checkpoint(
    url: &str,
    pipeline: &str,
    topic: &str,
    partitions: u32,
) -> BTreeMap<String, i64> {
    let mut positions = BTreeMap::new();
    for partition in 0..partitions {
        positions.extend(delta_checkpoint(url, &format!("{pipeline}@{topic}.{partition}")).await);
    }
    positions
}

/// Waits until the committed rows of `url` (weir's view) number `count`;
/// more than `count` fails at once.
pub async fn wait_for_committed_rows(url: &str, count: usize) {
    let started = Instant::now();
    loop {
        let rows = committed_rows(url).await.len();
        if rows == count {
            return;
        }
        assert!(rows < count, "{rows} rows committed, only {count} expected");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{rows} of {count} rows committed after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The files `weir files <args…>` prints (its log lines left out).
pub fn weir_files(args: &[&str], env: &[(String, String)]) -> Vec<String> {
    let mut all = vec!["files"];
    all.extend_from_slice(args);
    weir(&all, env)
        .lines()
        .filter(|l| l.ends_with(".parquet"))
        .map(str::to_owned)
        .collect()
}

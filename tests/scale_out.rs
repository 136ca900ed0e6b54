//! Several weir processes share a topic through the Kafka consumer group
//! (`source.assignment = "cooperative-sticky"`), against the real broker,
//! PostgreSQL and the S3 server: partitions move when a process dies,
//! leaves or is paused, and every row is in the table (or the committed
//! Parquet files) exactly once.

mod common;
mod flows;
mod services;

use flows::{
    Trip, expected_trips, pg_pool, table_trips, taxi_config, taxi_env, until_group_checkpointed,
};
use services::{Running, unique, weir_env};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 12;

/// The taxi pipeline in group mode: Kafka `topic` → taxi-enrich → `table`.
fn group_config(dir: &Path, pipeline: &str, topic: &str, table: &str, extra: &str) -> PathBuf {
    let config = taxi_config(dir, pipeline, topic, table, extra);
    join_group(&config, pipeline);
    config
}

/// Turns the Kafka source of a `flows` config into group mode.
fn join_group(config: &Path, pipeline: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        &format!("group = \"{pipeline}\"\n"),
        &format!(
            "group = \"{pipeline}\"\nassignment = \"cooperative-sticky\"\nsession-timeout = \"6s\"\n"
        ),
    );
    assert!(text.contains("cooperative-sticky"), "{text}");
    std::fs::write(config, text).unwrap();
}

/// Produces `count` trips made with `seed` into `topic`.
fn produce(topic: &str, count: usize, seed: u64) {
    flows::produce("taxi", count, seed, topic, PARTITIONS);
}

/// What the table must hold after the trips of every `(count, seed)`.
fn expected(batches: &[(usize, u64)]) -> Vec<Trip> {
    let mut trips: Vec<Trip> = batches
        .iter()
        .flat_map(|&(count, seed)| expected_trips(count, seed))
        .collect();
    trips.sort_unstable();
    trips
}

fn owned(run: &Running, pipeline: &str) -> u64 {
    run.metric("weir_partitions_owned", pipeline)
}

/// Waits until the processes own every partition between them, each at
/// least one (a hang guard, not a timing assertion).
fn wait_shared(runs: &mut [&mut Running], pipeline: &str) {
    let started = Instant::now();
    loop {
        let counts: Vec<u64> = runs.iter().map(|r| owned(r, pipeline)).collect();
        if counts.iter().sum::<u64>() == u64::from(PARTITIONS) && counts.iter().all(|&c| c > 0) {
            eprintln!("partitions owned: {counts:?} after {:?}", started.elapsed());
            return;
        }
        for run in runs.iter_mut() {
            assert!(run.alive(), "a weir process exited:\n{}", run.log_text());
        }
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "the group did not share the partitions (owned: {counts:?}); logs:\n{}",
            runs.iter()
                .map(|r| r.log_text())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `run`'s /readyz lists, from the checkpoint store, an owner
/// for every partition, `processes` different ones.
fn wait_owners_listed(run: &mut Running, processes: usize) {
    run.wait_until(
        "readyz to list the owner of every partition",
        Duration::from_secs(60),
        |r| {
            r.get("/readyz").is_some_and(|(_, body)| {
                body.lines()
                    .find_map(|l| l.trim().strip_prefix("owners (checkpoint store): "))
                    .is_some_and(|list| {
                        let owners: std::collections::BTreeSet<&str> = list
                            .split(", ")
                            .filter_map(|entry| entry.split_once(' ').map(|(_, o)| o))
                            .collect();
                        list.split(", ").count() == PARTITIONS as usize && owners.len() == processes
                    })
            })
        },
    );
}

async fn assert_exactly_once(pool: &sqlx::PgPool, table: &str, batches: &[(usize, u64)]) {
    let want = expected(batches);
    let got = table_trips(pool, table).await;
    common::assert_rows_exactly(&got, &want, "valid input trips");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_share_twelve_partitions_through_a_kill_9_a_fourth_joining_and_a_sigterm_with_every_row_once()
 {
    let pipeline = unique("group-pg");
    let topic = unique("group-pg");
    let table = pipeline.replace('-', "_");
    let batches = [(20_000, 1), (20_000, 2), (20_000, 3), (20_000, 4)];
    produce(&topic, batches[0].0, batches[0].1);
    let dir = tempfile::tempdir().unwrap();
    let config = group_config(dir.path(), &pipeline, &topic, &table, "");
    let env = taxi_env();
    let pool = pg_pool().await;

    let mut a = Running::start(&config, &env, dir.path());
    let mut b = Running::start(&config, &env, dir.path());
    let mut c = Running::start(&config, &env, dir.path());
    wait_shared(&mut [&mut a, &mut b, &mut c], &pipeline);
    wait_owners_listed(&mut a, 3);

    // The producer keeps writing while B dies without a word.
    produce(&topic, batches[1].0, batches[1].1);
    b.wait_until("B to read records", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", &pipeline) > 0
    });
    let killed = Instant::now();
    b.kill9();
    wait_shared(&mut [&mut a, &mut c], &pipeline);
    eprintln!(
        "kill -9: the survivors own every partition {:?} after the kill",
        killed.elapsed()
    );
    produce(&topic, batches[2].0, batches[2].1);

    // A fourth process joins later and takes its share.
    let mut d = Running::start(&config, &env, dir.path());
    wait_shared(&mut [&mut a, &mut c, &mut d], &pipeline);

    // C leaves on SIGTERM: it commits, then leaves the group at once.
    let stopping = Instant::now();
    let log = c.stop();
    assert!(
        log.contains("committing every partition, then leaving the group"),
        "{log}"
    );
    wait_shared(&mut [&mut a, &mut d], &pipeline);
    eprintln!(
        "SIGTERM: A and D own every partition {:?} after the signal",
        stopping.elapsed()
    );
    produce(&topic, batches[3].0, batches[3].1);
    until_group_checkpointed(&mut a, &pool, &pipeline, &topic).await;
    d.stop();
    let metrics = a.get("/metrics").unwrap().1;
    a.stop();
    assert_exactly_once(&pool, &table, &batches).await;
    assert!(
        metrics.contains(&format!(
            "weir_rebalances_total{{pipeline=\"{pipeline}\",kind=\"assign\"}}"
        )),
        "{metrics}"
    );
    // Every partition has one owner row, claimed more than once (it moved).
    let owners: Vec<(String, i64)> = sqlx::query_as(
        "SELECT pipeline, owner_epoch FROM weir_owners WHERE starts_with(pipeline, $1)",
    )
    .bind(format!("{pipeline}@"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(owners.len(), PARTITIONS as usize, "{owners:?}");
    assert!(owners.iter().any(|(_, epoch)| *epoch > 1), "{owners:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_paused_past_the_session_timeout_is_fenced_or_loses_its_partitions_and_duplicates_nothing()
 {
    let pipeline = unique("group-fence");
    let topic = unique("group-fence");
    let table = pipeline.replace('-', "_");
    let batches = [(20_000, 11), (20_000, 12)];
    produce(&topic, batches[0].0, batches[0].1);
    let dir = tempfile::tempdir().unwrap();
    // Long epochs: the paused process holds uncommitted rows.
    let config = group_config(dir.path(), &pipeline, &topic, &table, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "checkpoint-interval = \"300ms\"",
        "checkpoint-interval = \"4s\"",
    );
    std::fs::write(&config, text).unwrap();
    let env = taxi_env();
    let pool = pg_pool().await;

    let mut a = Running::start(&config, &env, dir.path());
    let mut b = Running::start(&config, &env, dir.path());
    wait_shared(&mut [&mut a, &mut b], &pipeline);
    produce(&topic, batches[1].0, batches[1].1);
    b.wait_until("B to read records", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", &pipeline) > 0
    });
    b.signal(libc::SIGSTOP);
    a.wait_until(
        "A to take every partition from the paused B",
        Duration::from_secs(60),
        |r| owned(r, &pipeline) == u64::from(PARTITIONS),
    );
    until_group_checkpointed(&mut a, &pool, &pipeline, &topic).await;
    assert_exactly_once(&pool, &table, &batches).await;

    // B wakes up holding rows of partitions that are A's now: its commit is
    // fenced (or librdkafka tells it first that it lost them); either way
    // nothing of it lands, and it rejoins.
    b.signal(libc::SIGCONT);
    b.wait_until(
        "B to notice it lost its partitions",
        Duration::from_secs(60),
        |r| {
            let text = r.log_text();
            text.contains("Commit fenced") || text.contains("Partitions lost")
        },
    );
    wait_shared(&mut [&mut a, &mut b], &pipeline);
    let log = b.log_text();
    eprintln!(
        "B after SIGCONT: fenced commits {}, lost: {}",
        b.metric("weir_fenced_commits_total", &pipeline),
        log.contains("Partitions lost")
    );
    until_group_checkpointed(&mut a, &pool, &pipeline, &topic).await;
    b.stop();
    a.stop();
    assert_exactly_once(&pool, &table, &batches).await;
}

#[test]
fn group_mode_with_a_sink_that_cannot_fence_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("group.toml");
    std::fs::write(
        &config,
        r#"
[pipelines.p]
source = { type = "kafka", brokers = "127.0.0.1:9092", topics = ["t"], group = "p", assignment = "range" }
sink = { type = "ndjson", path = "out.ndjson" }
"#,
    )
    .unwrap();
    let (status, output) =
        services::weir_output(&["validate", config.to_str().unwrap()], &weir_env());
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("pipelines.p.source.assignment") && output.contains("postgres"),
        "{output}"
    );
}

/// Seed 003 in group mode: logs → log-extract → one Delta table on S3,
/// three processes: one killed, one paused past the session timeout (its
/// partitions move; when it wakes, its commits are refused) and then
/// stopped. delta-rs reads every valid log line once.
#[tokio::test(flavor = "multi_thread")]
async fn three_processes_write_one_delta_table_through_kill_9_sigstop_and_sigterm_with_every_row_once()
 {
    let topic = unique("group-logs");
    let bucket = unique("group-logs");
    let group = unique("group-logs");
    let env: Vec<(String, String)> = weir_env()
        .into_iter()
        .chain([
            ("LOGS_TOPIC".to_owned(), topic.clone()),
            ("LOGS_BUCKET".to_owned(), bucket.clone()),
        ])
        .collect();
    services::weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    let batches = [
        (4_000, 31),
        (4_000, 32),
        (4_000, 33),
        (4_000, 34),
        (4_000, 35),
    ];
    let produce_logs = |(count, seed): (usize, u64)| {
        flows::produce("logs", count, seed, &topic, PARTITIONS);
    };
    produce_logs(batches[0]);
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/logs.toml"),
    )
    .unwrap();
    let text = example
        .replace(
            "group = \"weir-logs\"\n",
            &format!(
                "group = \"{group}\"\nassignment = \"cooperative-sticky\"\nsession-timeout = \"6s\"\n"
            ),
        )
        .replace("rollover-interval = \"10s\"", "rollover-interval = \"2s\"");
    assert!(
        text.contains("cooperative-sticky") && text.contains("\"2s\""),
        "{text}"
    );
    let config = dir.path().join("logs.toml");
    std::fs::write(&config, text).unwrap();
    let url = format!("s3://{bucket}/extracted");
    let committed = || services::delta_group_checkpoint(&url, "logs", &topic, PARTITIONS);

    let mut a = Running::start(&config, &env, dir.path());
    let mut b = Running::start(&config, &env, dir.path());
    let mut c = Running::start(&config, &env, dir.path());
    wait_shared(&mut [&mut a, &mut b, &mut c], "logs");
    wait_owners_listed(&mut a, 3);

    produce_logs(batches[1]);
    b.wait_until("B to read records", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", "logs") > 0
    });
    b.kill9();
    wait_shared(&mut [&mut a, &mut c], "logs");
    produce_logs(batches[2]);
    c.wait_until("C to read records", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", "logs") > 0
    });
    // C pauses holding uncommitted rows; A takes its partitions.
    c.signal(libc::SIGSTOP);
    a.wait_until(
        "A to take every partition from the paused C",
        Duration::from_secs(60),
        |r| owned(r, "logs") == u64::from(PARTITIONS),
    );
    produce_logs(batches[3]);
    flows::until(&mut a, "every partition committed to the end", || async {
        services::at_end(&committed().await, &services::end_offsets(&topic))
    })
    .await;
    // C wakes: what it held is A's now; its commits are refused (fenced),
    // or librdkafka tells it first that it lost them.
    c.signal(libc::SIGCONT);
    c.wait_until(
        "C to notice it lost its partitions",
        Duration::from_secs(60),
        |r| {
            let text = r.log_text();
            text.contains("Commit fenced") || text.contains("Partitions lost")
        },
    );
    eprintln!(
        "C after SIGCONT: fenced commits {}, lost: {}",
        c.metric("weir_fenced_commits_total", "logs"),
        c.log_text().contains("Partitions lost")
    );
    c.stop();
    produce_logs(batches[4]);
    flows::until(&mut a, "every partition committed to the end", || async {
        services::at_end(&committed().await, &services::end_offsets(&topic))
    })
    .await;
    a.stop();

    let rows = services::delta_rows(&url);
    let lines: Vec<weir::sample::Line> = batches
        .iter()
        .flat_map(|&(count, seed)| weir::sample::logs(count, seed, 1_546_300_800_000, 2.0))
        .collect();
    let expected = common::expected_logs(&lines);
    let got = common::log_rows(&rows);
    common::assert_rows_exactly(&got, &expected, "valid input lines");
}

/// Weather keyed by city, three processes, one killed with windows open:
/// each partition's windows move with it (its plugin state is in its own
/// checkpoint), so every window is emitted once with the exact mean.
#[tokio::test(flavor = "multi_thread")]
async fn keyed_weather_windows_stay_exact_across_three_processes_and_a_kill_9() {
    let pipeline = unique("group-weather");
    let topic = unique("group-weather");
    let table = pipeline.replace('-', "_");
    let (count, seed) = (20_000, 41);
    flows::produce("weather", count, seed, &topic, PARTITIONS);
    let partition_of = services::partitions_by_key(&topic, count);
    let reference = flows::weather_reference_per_partition(count, seed, &partition_of);
    let dir = tempfile::tempdir().unwrap();
    let config = flows::weather_config(dir.path(), &pipeline, &topic, &table, "", "");
    join_group(&config, &pipeline);
    let env = weir_env();
    let pool = pg_pool().await;

    let mut a = Running::start(&config, &env, dir.path());
    let mut b = Running::start(&config, &env, dir.path());
    let mut c = Running::start(&config, &env, dir.path());
    wait_shared(&mut [&mut a, &mut b, &mut c], &pipeline);
    b.wait_until("B to read readings", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", &pipeline) > 0
    });
    b.kill9();
    wait_shared(&mut [&mut a, &mut c], &pipeline);
    until_group_checkpointed(&mut a, &pool, &pipeline, &topic).await;
    a.stop();
    c.stop();
    flows::assert_windows(&pool, &table, &reference).await;
}

/// A pipeline that cannot be split (an object-store source) runs in one
/// process: a second one is refused before it writes, naming the holder; a
/// standby waits, and when the holder is killed takes over from its last
/// commit, every row once.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_of_an_object_store_pipeline_is_refused_and_a_standby_takes_over_after_a_kill()
 {
    let bucket = unique("standby");
    let pipeline = unique("standby");
    let table = pipeline.replace('-', "_");
    let env = taxi_env();
    services::weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    let objects = [(4_000, 51), (4_000, 52), (4_000, 53), (4_000, 54)];
    let inbox = weir::store::open(
        &format!("s3://{bucket}/in"),
        &services::s3_options(),
        Path::new("."),
    )
    .unwrap();
    let put = |n: usize| {
        let (count, seed) = objects[n];
        let text: String = weir::sample::taxi(count, seed, 2.0)
            .into_iter()
            .map(|l| l.text + "\n")
            .collect();
        let path = inbox.child(&format!("trips-{n:03}.ndjson"));
        let store = inbox.store.clone();
        async move {
            use object_store::ObjectStoreExt;
            store.put(&path, text.into_bytes().into()).await.unwrap();
        }
    };
    put(0).await;
    put(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, standby: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"
[plugins.taxi-enrich]
path = "${{WEIR_PLUGINS}}/taxi-enrich.wasm"

[pipelines.{pipeline}]
plugins = ["taxi-enrich"]
batch-size = 500
checkpoint-interval = "300ms"
{standby}

[pipelines.{pipeline}.source]
type = "object-store"
url = "s3://{bucket}/in"
watch = "300ms"

[pipelines.{pipeline}.sink]
{}

[pipelines.{pipeline}.dead-letter]
type = "ndjson"
path = "dead-letter.ndjson"
"#,
                flows::postgres_sink("WEIR_PG_SINK", &table, flows::TAXI_COLUMNS)
            ),
        )
        .unwrap();
        path
    };
    let active = config("active.toml", "");
    let standby = config("standby.toml", "standby = true");
    let pool = pg_pool().await;

    let mut a = Running::start(&active, &env, dir.path());
    a.wait_until("A to read trips", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", &pipeline) > 0
    });
    // A second process is refused before it writes, naming A.
    let second = Running::start(&active, &env, dir.path());
    let (status, log) = second.wait_for_exit(Duration::from_secs(60));
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("is run by") && log.contains(&format!(":{} ", a.pid())),
        "{log}"
    );
    assert!(!log.contains("Pipeline started"), "{log}");

    // A standby waits while A runs, then takes over from A's last commit.
    let mut b = Running::start(&standby, &env, dir.path());
    b.wait_until("B to stand by", Duration::from_secs(60), |r| {
        r.log_text().contains("Standing by")
    });
    put(2).await;
    a.wait_until("A to read the third object", Duration::from_secs(60), |r| {
        r.metric("weir_records_in_total", &pipeline) > 8_000
    });
    a.kill9();
    put(3).await;
    let want: Vec<Trip> = {
        let mut all: Vec<Trip> = objects
            .iter()
            .flat_map(|&(count, seed)| expected_trips(count, seed))
            .collect();
        all.sort_unstable();
        all
    };
    flows::until(&mut b, "the standby to write every trip", || async {
        table_trips(&pool, &table).await.len() >= want.len()
    })
    .await;
    let log = b.stop();
    assert!(log.contains("taking over"), "{log}");
    let got = table_trips(&pool, &table).await;
    common::assert_rows_exactly(&got, &want, "valid input trips");
}

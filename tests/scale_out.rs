//! Several weir processes share a topic through the Kafka consumer group
//! (`source.assignment = "cooperative-sticky"`), against the real broker and
//! PostgreSQL: partitions move when a process dies, leaves or is paused,
//! and every row is in the table exactly once.

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
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("group = \"{pipeline}\"\n"),
        &format!(
            "group = \"{pipeline}\"\nassignment = \"cooperative-sticky\"\nsession-timeout = \"6s\"\n"
        ),
    );
    assert!(text.contains("cooperative-sticky"), "{text}");
    std::fs::write(&config, text).unwrap();
    config
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

async fn assert_exactly_once(pool: &sqlx::PgPool, table: &str, batches: &[(usize, u64)]) {
    let want = expected(batches);
    let got = table_trips(pool, table).await;
    assert_eq!(got.len(), want.len(), "row count (duplicates or losses)");
    assert!(got == want, "the rows differ from the valid input trips");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_share_twelve_partitions_and_survive_a_kill_9_and_a_sigterm_with_every_row_once()
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
    // Any process shows every partition's owner, from the checkpoint store.
    a.wait_until(
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
                        list.split(", ").count() == PARTITIONS as usize && owners.len() == 3
                    })
            })
        },
    );

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

    // C leaves on SIGTERM: it commits, then leaves the group at once.
    let stopping = Instant::now();
    let log = c.stop();
    assert!(
        log.contains("committing every partition, then leaving the group"),
        "{log}"
    );
    a.wait_until("A to own every partition", Duration::from_secs(60), |r| {
        owned(r, &pipeline) == u64::from(PARTITIONS)
    });
    eprintln!(
        "SIGTERM: A owns every partition {:?} after the signal",
        stopping.elapsed()
    );
    produce(&topic, batches[3].0, batches[3].1);
    until_group_checkpointed(&mut a, &pool, &pipeline, &topic).await;
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

//! Hot swap against the real services: a plugin's `.wasm` is replaced while
//! weir reads from Kafka and writes to PostgreSQL, and every input record
//! must still come out exactly once, tagged with the one version that made
//! it; bad versions are refused or rolled back with nothing lost.

mod common;
mod flows;
mod services;

use flows::{kafka_pipeline, pg_pool, taxi_env};
use services::{Running, unique, weir};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir::plugin::cache::ComponentCache;

/// How a test replaces a plugin file: the ways users and their tools do.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// Truncate and write the same file (`cp new.wasm plugin.wasm`).
    InPlace,
    /// Write beside it and rename over it (`weir plugin build`, `mv`).
    RenameOver,
    /// Delete it and create it again (a linker writing its output anew).
    Recreate,
    /// Point a symlink at another file (`ln -sfn v2.wasm plugin.wasm`).
    Symlink,
}

fn replace(style: Style, with: &Path, path: &Path) {
    let bytes = std::fs::read(with).unwrap();
    let beside = path.with_extension("incoming");
    match style {
        Style::InPlace => std::fs::write(path, &bytes).unwrap(),
        Style::RenameOver => {
            std::fs::write(&beside, &bytes).unwrap();
            std::fs::rename(&beside, path).unwrap();
        }
        Style::Recreate => {
            std::fs::remove_file(path).unwrap();
            std::fs::write(path, &bytes).unwrap();
        }
        Style::Symlink => {
            let _ = std::fs::remove_file(&beside);
            std::os::unix::fs::symlink(with, &beside).unwrap();
            std::fs::rename(&beside, path).unwrap();
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    common::root().join("tests/fixtures/dist").join(name)
}

/// `name@version+hash12`, as weir tags outputs.
fn label(name_version: &str, file: &Path) -> String {
    let hash = ComponentCache::content_hash(&std::fs::read(file).unwrap());
    format!("{name_version}+{}", &hash[..12])
}

/// `weir_plugin_swaps_total` of one plugin and result.
fn swaps(run: &Running, pipeline: &str, result: &str) -> u64 {
    let Some((_, body)) = run.get("/metrics") else {
        return 0;
    };
    let labels = format!("pipeline=\"{pipeline}\",plugin=");
    let result = format!(",result=\"{result}\"}} ");
    body.lines()
        .filter(|l| l.starts_with("weir_plugin_swaps_total{") && l.contains(&labels))
        .filter_map(|l| l.split_once(&result))
        .map(|(_, n)| n.trim().parse::<u64>().unwrap())
        .sum()
}

fn wait_swaps(run: &mut Running, pipeline: &str, result: &str, count: u64) {
    run.wait_until(
        &format!("{count} swap(s) with result {result}"),
        Duration::from_secs(60),
        |r| swaps(r, pipeline, result) >= count,
    );
}

/// Waits until `/readyz` names `version` as the live taxi-enrich: the
/// watcher has compiled it (seconds on a busy machine with a cold cache)
/// and the pipeline has switched to it.
fn wait_live(run: &mut Running, version: &str) {
    let line = format!("plugin taxi-enrich: {version}\n");
    run.wait_until(
        &format!("{version} to go live"),
        Duration::from_secs(60),
        |r| {
            r.get("/readyz")
                .is_some_and(|(_, body)| body.contains(&line))
        },
    );
}

/// Taxi lines with a `seq` field (their index) first, so the output can be
/// put back in input order.
fn numbered_taxi(count: usize, seed: u64) -> (Vec<String>, BTreeSet<i64>) {
    let lines = weir::sample::taxi(count, seed, 2.0);
    let invalid: BTreeSet<i64> = common::defects(&lines)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    let texts = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{{\"seq\":{i},{}", &l.text[1..]))
        .collect();
    (texts, invalid)
}

/// Produces `lines` to `topic` (one partition, so that topic order is
/// input order).
async fn produce_lines(topic: &str, lines: &[String]) {
    let connection = weir::kafka::Connection {
        brokers: services::kafka(),
        options: Default::default(),
    };
    weir::kafka::ensure_topic(&connection, topic, 1)
        .await
        .unwrap();
    services::produce(topic, lines.iter().map(String::as_str)).await;
}

/// Produces `lines` in chunks of 500 until `stop` turns true (or the lines
/// run out); returns how many it produced.
fn produce_continuously(
    topic: String,
    lines: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut sent = 0;
        while sent < lines.len() && !stop.load(Ordering::Relaxed) {
            let end = (sent + 500).min(lines.len());
            produce_lines(&topic, &lines[sent..end]).await;
            sent = end;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    })
}

/// One hot-swap case: a Kafka → taxi-enrich → PostgreSQL pipeline (names
/// from `prefix`) whose plugin file is a copy in `dir/plugins`; every row
/// carries `seq`, the version that made it and v2's extra field.
struct TaxiSwap {
    pipeline: String,
    topic: String,
    table: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The configured plugin file, the one a swap replaces.
    plugin: PathBuf,
}

fn taxi_swap(prefix: &str, plugin_settings: &str) -> TaxiSwap {
    let (pipeline, topic) = (unique(prefix), unique(prefix));
    let table = pipeline.replace('-', "_");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let plugin = plugins.join("taxi-enrich.wasm");
    std::fs::copy(common::reference("taxi-enrich"), &plugin).unwrap();
    let config = kafka_pipeline(
        dir.path(),
        &pipeline,
        &topic,
        ("taxi-enrich", plugin_settings),
        "batch-size = 500\ncheckpoint-interval = \"300ms\"\nplugin-version = \"field\"",
        &flows::postgres_sink(
            "WEIR_PG_SINK",
            &table,
            &[
                r#"{ name = "seq", type = "bigint" }"#,
                r#"{ name = "weir_version", type = "text" }"#,
                r#"{ name = "fare_per_minute", type = "double precision" }"#,
                r#"{ name = "trip_category", type = "text" }"#,
            ],
        ),
    );
    TaxiSwap {
        pipeline,
        topic,
        table,
        dir,
        config,
        plugin,
    }
}

fn swap_env(dir: &Path) -> Vec<(String, String)> {
    let mut env = taxi_env();
    env.retain(|(k, _)| k != "WEIR_PLUGINS");
    env.push((
        "WEIR_PLUGINS".into(),
        dir.join("plugins").display().to_string(),
    ));
    env
}

/// Rows `(seq, version, has fare_per_minute, category)` in input order.
async fn rows_by_seq(
    pool: &sqlx::PgPool,
    table: &str,
) -> Vec<(i64, Option<String>, bool, Option<String>)> {
    sqlx::query_as(&format!(
        "SELECT seq, weir_version, fare_per_minute IS NOT NULL, trip_category FROM {table} ORDER BY seq"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every valid `seq` below `produced` is in `rows` once; the dead-letter
/// file holds exactly the invalid ones.
fn assert_exactly_once(
    rows: &[(i64, Option<String>, bool, Option<String>)],
    produced: usize,
    invalid: &BTreeSet<i64>,
    dir: &Path,
) {
    let expected: Vec<i64> = (0..produced as i64)
        .filter(|i| !invalid.contains(i))
        .collect();
    let got: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "row count (duplicates or losses)"
    );
    assert!(got == expected, "the rows' seq differ from the valid input");
    let dead = std::fs::read_to_string(dir.join("dead-letter.ndjson")).unwrap_or_default();
    let dead_invalid = invalid.iter().filter(|i| **i < produced as i64).count();
    assert_eq!(
        dead.lines().count(),
        dead_invalid,
        "dead letters: only the invalid inputs, once each"
    );
}

/// Version changes along the input order.
fn changes(rows: &[(i64, Option<String>, bool, Option<String>)]) -> usize {
    rows.windows(2).filter(|w| w[0].1 != w[1].1).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_swaps_under_load_leave_every_record_once_tagged_with_one_version_changing_at_batch_boundaries()
 {
    let TaxiSwap {
        pipeline,
        topic,
        table,
        dir,
        config,
        plugin,
    } = taxi_swap("swap-load", "");
    let (lines, invalid) = numbered_taxi(200_000, 61);
    let v1 = dir.path().join("v1.wasm");
    let v2 = dir.path().join("v2.wasm");
    std::fs::copy(common::reference("taxi-enrich"), &v1).unwrap();
    std::fs::copy(fixture("taxi-enrich-v2.wasm"), &v2).unwrap();
    let (label1, label2) = (
        label("taxi-enrich@0.1.0", &v1),
        label("taxi-enrich@2.0.0", &v2),
    );

    let mut run = Running::start(&config, &swap_env(dir.path()), dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce_continuously(topic.clone(), Arc::new(lines), stop.clone());
    run.wait_for_input(&pipeline, 1000);
    let styles = [Style::InPlace, Style::RenameOver, Style::Recreate];
    for n in 1..=10u64 {
        let to = if n % 2 == 1 { &v2 } else { &v1 };
        let before = run.metric("weir_records_in_total", &pipeline);
        replace(styles[n as usize % styles.len()], to, &plugin);
        wait_swaps(&mut run, &pipeline, "swapped", n);
        // Let the new version process some load before the next swap.
        run.wait_for_input(&pipeline, before + 2000);
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producer.await.unwrap();
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &pipeline, &topic).await;
    let readyz = run.get("/readyz").unwrap().1;
    let log = run.stop();

    let rows = rows_by_seq(&pool, &table).await;
    eprintln!("{produced} produced, {} rows", rows.len());
    assert_exactly_once(&rows, produced, &invalid, dir.path());
    for (seq, version, extra, _) in &rows {
        let version = version.as_deref().unwrap_or("untagged");
        assert!(
            version == label1 || version == label2,
            "seq {seq}: version {version}"
        );
        assert_eq!(
            *extra,
            version == label2,
            "seq {seq}: v2's field present iff v2 made the row"
        );
    }
    // Input order is topic order (one partition): each swap is one change,
    // so no batch was split between versions or interleaved.
    assert_eq!(changes(&rows), 10, "version changes along the input");
    assert_eq!(rows.first().unwrap().1.as_deref(), Some(label1.as_str()));
    assert_eq!(rows.last().unwrap().1.as_deref(), Some(label1.as_str()));
    assert!(
        readyz.contains(&format!("plugin taxi-enrich: {label1}")),
        "{readyz}"
    );
    assert!(log.contains("Swapped at a batch boundary"), "{log}");
}

/// Runs the event-time weather pipeline on generated readings while the
/// plugin path, a symlink, is switched to each of `versions` after the first
/// in turn, with windows open at every switch; checks every window against
/// the reference and returns the rows' version tags, counted.
async fn weather_through_swaps(name: &str, versions: &[PathBuf]) -> Vec<(String, i64)> {
    let (count, seed) = (20_000, 63);
    let pipeline = unique(name);
    let topic = unique(name);
    let table = pipeline.replace('-', "_");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let link = plugins.join("weather-window.wasm");
    std::os::unix::fs::symlink(&versions[0], &link).unwrap();
    let config = flows::weather_config(
        dir.path(),
        &pipeline,
        &topic,
        &table,
        "plugin-version = \"field\"",
        r#"{ name = "weir_version", type = "text" },"#,
    );
    let lines: Vec<String> = weir::sample::weather(count, seed, 1_546_300_800_000, 1000, 2.0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    let part = count / versions.len();
    produce_lines(&topic, &lines[..part]).await;
    let mut run = Running::start(&config, &swap_env(dir.path()), dir.path());
    for (i, version) in versions.iter().enumerate().skip(1) {
        // Every reading produced so far is in an open window or an emitted one.
        run.wait_for_input(&pipeline, (i * part) as u64);
        replace(Style::Symlink, version, &link);
        wait_swaps(&mut run, &pipeline, "swapped", i as u64);
        let end = if i + 1 == versions.len() {
            count
        } else {
            (i + 1) * part
        };
        produce_lines(&topic, &lines[i * part..end]).await;
    }
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &pipeline, &topic).await;
    run.stop();

    flows::assert_windows(&pool, &table, &flows::weather_reference(count, seed)).await;
    sqlx::query_as(&format!(
        "SELECT weir_version, count(*) FROM {table} GROUP BY 1 ORDER BY 1"
    ))
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swap_in_the_middle_of_open_windows_closes_them_with_the_reference_values() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("weather-window-v1.wasm");
    let v2 = dir.path().join("weather-window-v2.wasm");
    std::fs::copy(common::reference("weather-window"), &v1).unwrap();
    std::fs::copy(fixture("weather-window-v2.wasm"), &v2).unwrap();
    let by_version = weather_through_swaps("swap-window", &[v1.clone(), v2.clone()]).await;
    let (l1, l2) = (
        label("weather-window@0.1.0", &v1),
        label("weather-window@2.0.0", &v2),
    );
    let versions: Vec<&str> = by_version.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions, [l1.as_str(), l2.as_str()], "{by_version:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_windows_cross_from_rust_to_python_and_back_with_every_window_exact() {
    let dir = tempfile::tempdir().unwrap();
    let rust = dir.path().join("weather-window-rust.wasm");
    let python = dir.path().join("weather-window-python.wasm");
    std::fs::copy(common::reference("weather-window"), &rust).unwrap();
    std::fs::copy(common::reference("weather-window-py"), &python).unwrap();
    let by_version =
        weather_through_swaps("swap-py", &[rust.clone(), python.clone(), rust.clone()]).await;
    let (lr, lp) = (
        label("weather-window@0.1.0", &rust),
        label("weather-window@1.0.0", &python),
    );
    let versions: Vec<&str> = by_version.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions, [lr.as_str(), lp.as_str()], "{by_version:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_versions_dropped_in_are_refused_or_rolled_back_and_the_old_one_loses_nothing() {
    let TaxiSwap {
        pipeline,
        topic,
        table,
        dir,
        config,
        plugin,
    } = taxi_swap("swap-bad", "max-batch-time = \"500ms\"");
    let garbage = dir.path().join("garbage.wasm");
    let mut dice = services::Dice::new();
    std::fs::write(
        &garbage,
        (0..50_000)
            .map(|_| dice.between(0, 255) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let cases = [
        (
            garbage,
            "compile_error",
            "not a valid WebAssembly component",
        ),
        (
            fixture("other-world.wasm"),
            "wrong_world",
            "does not fit the weir:transform",
        ),
        (
            fixture("hostile-init-trap.wasm"),
            "init_failed",
            "export `init` trapped",
        ),
        (
            fixture("hostile-trap.wasm"),
            "rolled_back",
            "trapped on probation",
        ),
        (
            fixture("hostile-spin.wasm"),
            "rolled_back",
            "max-batch-time",
        ),
        // A Python version whose interpreter faults on its first batch.
        (
            fixture("python-probe.wasm"),
            "rolled_back",
            "python-probe: not a probe record",
        ),
    ];
    let (lines, invalid) = numbered_taxi(2_001 * (cases.len() + 1), 65);
    let live = label("taxi-enrich@0.1.0", &plugin);
    let original = dir.path().join("v1.wasm");
    std::fs::copy(&plugin, &original).unwrap();

    let mut run = Running::start(&config, &swap_env(dir.path()), dir.path());
    let mut produced = 0;
    let mut rolled_back = 0;
    for (file, result, reason) in &cases {
        produce_lines(&topic, &lines[produced..produced + 2000]).await;
        produced += 2000;
        run.wait_for_records(&pipeline, produced as u64);
        replace(Style::RenameOver, file, &plugin);
        if *result == "rolled_back" {
            // It goes live, then traps on its first batch. The record that
            // makes it trap is produced only once it is live: produced
            // earlier, the old version may take it while the new one is
            // still compiling, and the new one would then wait for input.
            rolled_back += 1;
            let name = if file.ends_with("python-probe.wasm") {
                "python-probe@0.1.0"
            } else {
                "hostile@0.0.1"
            };
            wait_live(&mut run, &label(name, file));
            produce_lines(&topic, &lines[produced..produced + 1]).await;
            produced += 1;
            wait_swaps(&mut run, &pipeline, result, rolled_back);
        } else {
            wait_swaps(&mut run, &pipeline, result, 1);
        }
        let readyz = run.get("/readyz").unwrap().1;
        assert!(
            readyz.contains(&format!("plugin taxi-enrich: {live}")) && readyz.contains(reason),
            "{result}: {readyz}"
        );
        assert!(
            run.get("/livez").is_some(),
            "{result}: weir stopped serving"
        );
        // Put the good file back so the next case starts from it.
        replace(Style::RenameOver, &original, &plugin);
    }
    produce_lines(&topic, &lines[produced..produced + 2000]).await;
    produced += 2000;
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &pipeline, &topic).await;
    assert_eq!(swaps(&run, &pipeline, "restore_failed"), 0);
    run.stop();

    let rows = rows_by_seq(&pool, &table).await;
    assert_exactly_once(&rows, produced, &invalid, dir.path());
    assert!(
        rows.iter().all(|r| r.1.as_deref() == Some(live.as_str())),
        "every row made by the live version"
    );
}

/// Batches the pipeline has handed on, records or not: an idle Kafka
/// topic still gives one (empty) batch per `max-wait`.
fn batches(run: &Running, pipeline: &str) -> u64 {
    run.metric("weir_batch_seconds_count", pipeline)
}

/// Waits until the pipeline has polled `count` more batches from now
/// (with nothing produced, each of them empty).
fn wait_idle_polls(run: &mut Running, pipeline: &str, count: u64) {
    let since = batches(run, pipeline);
    run.wait_until(
        &format!("{count} idle polls"),
        Duration::from_secs(60),
        |r| batches(r, pipeline) >= since + count,
    );
}

/// Produces `first` records, starts weir on `swap` and waits until they
/// are through.
async fn start_after(swap: &TaxiSwap, first: &[String]) -> Running {
    produce_lines(&swap.topic, first).await;
    let mut run = Running::start(&swap.config, &swap_env(swap.dir.path()), swap.dir.path());
    run.wait_for_records(&swap.pipeline, first.len() as u64);
    run
}

/// Waits for the checkpoint to reach the topic's end, stops weir, and
/// checks every valid record of `produced` is in the table once, made by
/// `live`.
async fn assert_all_once_by(
    mut run: Running,
    swap: &TaxiSwap,
    produced: usize,
    invalid: &BTreeSet<i64>,
    live: &str,
) {
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &swap.pipeline, &swap.topic).await;
    run.stop();
    let rows = rows_by_seq(&pool, &swap.table).await;
    assert_exactly_once(&rows, produced, invalid, swap.dir.path());
    assert!(
        rows.iter().all(|r| r.1.as_deref() == Some(live)),
        "every row made by the live version"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_trapping_on_its_first_records_is_rolled_back_even_after_idle_polls() {
    let swap = taxi_swap("swap-idle", "probation-batches = 2");
    let (pipeline, topic) = (&swap.pipeline, &swap.topic);
    let (lines, invalid) = numbered_taxi(1_000, 71);
    let live = label("taxi-enrich@0.1.0", &swap.plugin);
    let trap = fixture("hostile-trap.wasm");
    let mut run = start_after(&swap, &lines[..500]).await;

    replace(Style::RenameOver, &trap, &swap.plugin);
    wait_live(&mut run, &label("hostile@0.0.1", &trap));
    // Three times its probation in empty polls: none of them may count.
    wait_idle_polls(&mut run, pipeline, 6);
    assert_eq!(
        swaps(&run, pipeline, "rolled_back"),
        0,
        "nothing to trap on yet"
    );
    produce_lines(topic, &lines[500..]).await;
    wait_swaps(&mut run, pipeline, "rolled_back", 1);
    let readyz = run.get("/readyz").unwrap().1;
    assert!(
        readyz.contains(&format!("plugin taxi-enrich: {live}\n"))
            && readyz.contains("trapped on probation"),
        "{readyz}"
    );
    assert_all_once_by(run, &swap, lines.len(), &invalid, &live).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_judged_on_batches_that_carried_records_not_on_idle_polls() {
    let swap = taxi_swap("swap-canary-idle", "swap = \"canary\"\ncanary-batches = 3");
    let (pipeline, topic) = (&swap.pipeline, &swap.topic);
    let (lines, invalid) = numbered_taxi(3_000, 73);
    let bad = fixture("hostile-fail-half.wasm");
    let live = label("taxi-enrich@0.1.0", &swap.plugin);
    let mut run = start_after(&swap, &lines[..500]).await;

    replace(Style::RenameOver, &bad, &swap.plugin);
    let started = format!("canary={}", label("hostile@0.0.1", &bad));
    run.wait_until("the canary to start", Duration::from_secs(60), |r| {
        r.log_text().contains(&started)
    });
    wait_idle_polls(&mut run, pipeline, 9);
    assert_eq!(
        swaps(&run, pipeline, "canary_rejected") + swaps(&run, pipeline, "promoted"),
        0,
        "a canary that has seen no record is not judged"
    );
    // Batches hold at most 500 records: at least three carry records.
    produce_lines(topic, &lines[500..]).await;
    wait_swaps(&mut run, pipeline, "canary_rejected", 1);
    let readyz = run.get("/readyz").unwrap().1;
    assert!(readyz.contains("3 batches"), "{readyz}");
    assert_all_once_by(run, &swap, lines.len(), &invalid, &live).await;
}

/// Lets the producer run until `pipeline` has taken 2000 more records, stops
/// it, stops weir once everything produced is checkpointed, and checks every
/// row is in the table once; returns the rows and weir's log.
async fn finish_producing(
    mut run: Running,
    swap: &TaxiSwap,
    producer: tokio::task::JoinHandle<usize>,
    stop: Arc<AtomicBool>,
    invalid: &BTreeSet<i64>,
) -> (Vec<(i64, Option<String>, bool, Option<String>)>, String) {
    let before = run.metric("weir_records_in_total", &swap.pipeline);
    run.wait_for_input(&swap.pipeline, before + 2000);
    stop.store(true, Ordering::Relaxed);
    let produced = producer.await.unwrap();
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &swap.pipeline, &swap.topic).await;
    let log = run.stop();
    let rows = rows_by_seq(&pool, &swap.table).await;
    assert_exactly_once(&rows, produced, invalid, swap.dir.path());
    (rows, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_failing_half_its_records_is_rejected_and_one_failing_none_is_promoted() {
    let swap = taxi_swap("swap-canary", "swap = \"canary\"\ncanary-batches = 5");
    let v1 = label("taxi-enrich@0.1.0", &swap.plugin);
    let v2 = label("taxi-enrich@2.0.0", &fixture("taxi-enrich-v2.wasm"));
    let (lines, invalid) = numbered_taxi(200_000, 67);
    let mut run = Running::start(&swap.config, &swap_env(swap.dir.path()), swap.dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce_continuously(swap.topic.clone(), Arc::new(lines), stop.clone());
    run.wait_for_input(&swap.pipeline, 1000);

    replace(
        Style::RenameOver,
        &fixture("hostile-fail-half.wasm"),
        &swap.plugin,
    );
    wait_swaps(&mut run, &swap.pipeline, "canary_rejected", 1);
    let readyz = run.get("/readyz").unwrap().1;
    eprintln!("after the rejection, /readyz:\n{readyz}");
    assert!(
        readyz.contains(&format!("plugin taxi-enrich: {v1}")),
        "{readyz}"
    );
    assert!(readyz.contains("canary failed"), "{readyz}");

    replace(
        Style::RenameOver,
        &fixture("taxi-enrich-v2.wasm"),
        &swap.plugin,
    );
    wait_swaps(&mut run, &swap.pipeline, "promoted", 1);
    assert_eq!(
        swaps(&run, &swap.pipeline, "swapped"),
        0,
        "nothing went live without its canary"
    );
    let (rows, log) = finish_producing(run, &swap, producer, stop, &invalid).await;
    assert!(
        log.contains("Canary rejected") && log.contains("Canary promoted"),
        "{log}"
    );
    let versions: BTreeSet<&str> = rows.iter().filter_map(|r| r.1.as_deref()).collect();
    assert_eq!(versions, BTreeSet::from([v1.as_str(), v2.as_str()]));
    assert_eq!(changes(&rows), 1, "one switch, at the promotion");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_canary_matching_the_live_rust_version_is_promoted_with_nothing_lost() {
    let swap = taxi_swap("swap-canary-py", "swap = \"canary\"\ncanary-batches = 5");
    let rust = label("taxi-enrich@0.1.0", &swap.plugin);
    let python = label("taxi-enrich@1.0.0", &common::reference("taxi-enrich-py"));
    let (lines, invalid) = numbered_taxi(200_000, 71);
    let mut run = Running::start(&swap.config, &swap_env(swap.dir.path()), swap.dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce_continuously(swap.topic.clone(), Arc::new(lines), stop.clone());
    run.wait_for_input(&swap.pipeline, 1000);
    replace(
        Style::RenameOver,
        &common::reference("taxi-enrich-py"),
        &swap.plugin,
    );
    wait_swaps(&mut run, &swap.pipeline, "promoted", 1);
    let (rows, log) = finish_producing(run, &swap, producer, stop, &invalid).await;
    assert!(log.contains("Canary promoted"), "{log}");
    let versions: BTreeSet<&str> = rows.iter().filter_map(|r| r.1.as_deref()).collect();
    assert_eq!(versions, BTreeSet::from([rust.as_str(), python.as_str()]));
    assert_eq!(changes(&rows), 1, "one switch, at the promotion");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plugin_section_is_a_swap_with_watch_config_and_an_invalid_one_is_ignored() {
    let TaxiSwap {
        pipeline,
        topic,
        table,
        dir,
        config,
        ..
    } = taxi_swap("swap-config", "");
    let (lines, invalid) = numbered_taxi(4_000, 69);
    produce_lines(&topic, &lines[..2000]).await;
    let mut run = Running::start_with(
        &config,
        &swap_env(dir.path()),
        dir.path(),
        &["--watch-config"],
    );
    run.wait_for_records(&pipeline, 2000);
    let text = std::fs::read_to_string(&config).unwrap();
    // A wrong type is refused with its key; the running plugin stays.
    std::fs::write(
        &config,
        text.replace(
            "[plugins.taxi-enrich]",
            "[plugins.taxi-enrich]\nmax-batch-time = 5",
        ),
    )
    .unwrap();
    run.wait_until(
        "the invalid change to be refused",
        Duration::from_secs(30),
        |r| {
            r.log_text()
                .contains("The changed configuration is invalid")
        },
    );
    // Every trip of at least 0.5 miles is now `long`.
    std::fs::write(
        &config,
        text.replace(
            "[plugins.taxi-enrich]",
            "[plugins.taxi-enrich]\nconfig = { long-trip-miles = 0.5, short-trip-miles = 0.5 }",
        ),
    )
    .unwrap();
    wait_swaps(&mut run, &pipeline, "swapped", 1);
    produce_lines(&topic, &lines[2000..]).await;
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &pipeline, &topic).await;
    run.stop();

    let rows = rows_by_seq(&pool, &table).await;
    assert_exactly_once(&rows, 4000, &invalid, dir.path());
    let medium = |range: std::ops::Range<i64>| {
        rows.iter()
            .filter(|r| range.contains(&r.0) && r.3.as_deref() == Some("medium"))
            .count()
    };
    assert!(
        medium(0..2000) > 100,
        "default thresholds before the change"
    );
    assert_eq!(medium(2000..4000), 0, "new thresholds after it");
}

#[test]
fn plugin_build_places_the_crate_s_component_in_the_plugins_folder() {
    let out = tempfile::tempdir().unwrap();
    let root = common::root();
    let text = weir(
        &[
            "plugin",
            "build",
            &root.join("plugins/log-extract").display().to_string(),
            "--out",
            &out.path().display().to_string(),
        ],
        &[],
    );
    let placed = out.path().join("log-extract.wasm");
    assert!(text.contains("built"), "{text}");
    assert_eq!(
        std::fs::read(&placed).unwrap(),
        std::fs::read(common::reference("log-extract")).unwrap(),
        "the same component scripts/build-plugins.sh places"
    );
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

/// Group mode (`assignment = "cooperative-sticky"`): each of the 4
/// partitions has its own plugin instance; a new version dropped in goes
/// live in every one of them, and every record is in the table once, made
/// by the version that was live in its partition.
#[tokio::test(flavor = "multi_thread")]
async fn in_group_mode_a_swap_reaches_every_partition_and_loses_nothing() {
    let TaxiSwap {
        pipeline,
        topic,
        table,
        dir,
        config,
        plugin,
    } = taxi_swap("swap-group", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("group = \"{pipeline}\"\n"),
        &format!("group = \"{pipeline}\"\nassignment = \"cooperative-sticky\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let connection = weir::kafka::Connection {
        brokers: services::kafka(),
        options: Default::default(),
    };
    weir::kafka::ensure_topic(&connection, &topic, 4)
        .await
        .unwrap();
    let (lines, invalid) = numbered_taxi(4000, 67);
    let v2 = dir.path().join("v2.wasm");
    std::fs::copy(fixture("taxi-enrich-v2.wasm"), &v2).unwrap();
    let (label1, label2) = (
        label("taxi-enrich@0.1.0", &plugin),
        label("taxi-enrich@2.0.0", &v2),
    );

    let mut run = Running::start(&config, &swap_env(dir.path()), dir.path());
    run.wait_until("every partition owned", Duration::from_secs(60), |r| {
        r.metric("weir_partitions_owned", &pipeline) == 4
    });
    produce_lines(&topic, &lines[..2000]).await;
    run.wait_for_records(&pipeline, 2000);
    replace(Style::RenameOver, &v2, &plugin);
    // One swap per partition: each has its own instance.
    wait_swaps(&mut run, &pipeline, "swapped", 4);
    produce_lines(&topic, &lines[2000..]).await;
    let pool = pg_pool().await;
    flows::until_group_checkpointed(&mut run, &pool, &pipeline, &topic).await;
    run.stop();

    let rows = rows_by_seq(&pool, &table).await;
    assert_exactly_once(&rows, lines.len(), &invalid, dir.path());
    for (seq, version, _, _) in &rows {
        let want = if *seq < 2000 { &label1 } else { &label2 };
        assert_eq!(version.as_deref(), Some(want.as_str()), "seq {seq}");
    }
}

/// A published plugin location on the S3 server, in a bucket of its own,
/// and the environment that points a swap case's plugin path at it.
struct PublishedAt {
    location: String,
    env: Vec<(String, String)>,
}

impl PublishedAt {
    fn new(swap: &TaxiSwap) -> PublishedAt {
        let bucket = unique("plugins");
        let mut env = swap_env(swap.dir.path());
        env.retain(|(k, _)| k != "WEIR_PLUGINS");
        env.push(("WEIR_PLUGINS".into(), format!("s3://{bucket}/weir/plugins")));
        weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
        PublishedAt {
            location: format!("s3://{bucket}/weir/plugins/taxi-enrich.wasm"),
            env,
        }
    }

    /// `weir plugin deploy FILE` to it, with the case's configuration.
    fn deploy(
        &self,
        file: &Path,
        swap: &TaxiSwap,
        more: &[&str],
    ) -> (std::process::ExitStatus, String) {
        let mut args = vec![
            "plugin",
            "deploy",
            file.to_str().unwrap(),
            "--to",
            &self.location,
            "--config",
            swap.config.to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        services::weir_output(&args, &self.env)
    }
}

/// `weir plugin history`'s rows: `(seq, action, name@version, live)`.
fn history(location: &str, env: &[(String, String)]) -> Vec<(u64, String, String, bool)> {
    weir(&["plugin", "history", location], env)
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (
                cols[0].parse().unwrap(),
                cols[2].to_owned(),
                cols[3].to_owned(),
                cols.last() == Some(&"live"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_deployed_to_s3_goes_live_a_bad_one_is_never_published_and_rollback_brings_back_the_previous()
 {
    let swap = taxi_swap("swap-s3", "poll-interval = \"300ms\"");
    let at = PublishedAt::new(&swap);
    let (location, env, config) = (
        at.location.clone(),
        at.env.clone(),
        swap.config.to_str().unwrap(),
    );
    let deploy = |file: &Path| at.deploy(file, &swap, &[]);
    let (v1, v2) = (
        common::reference("taxi-enrich"),
        fixture("taxi-enrich-v2.wasm"),
    );
    let (label1, label2) = (
        label("taxi-enrich@0.1.0", &v1),
        label("taxi-enrich@2.0.0", &v2),
    );

    // Nothing published yet: weir cannot start, and says what to do.
    let (status, out) = services::weir_output(&["run", config], &env);
    assert!(
        !status.success() && out.contains("weir plugin deploy"),
        "{out}"
    );

    let (status, out) = deploy(&v1);
    assert!(status.success() && out.contains("as #1"), "{out}");
    // More lines than the steps below can use up however fast they run:
    // each waits for records under one version, the producer stops after.
    let (lines, invalid) = numbered_taxi(200_000, 67);
    produce_lines(&swap.topic, &lines[..2000]).await;
    let mut run = Running::start(&swap.config, &env, swap.dir.path());
    run.wait_for_records(&swap.pipeline, 2000);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = produce_continuously(
        swap.topic.clone(),
        Arc::new(lines[2000..].to_vec()),
        stop.clone(),
    );
    wait_live(&mut run, &label1);

    // v2, with a sample run through it first.
    let sample = swap.dir.path().join("sample.ndjson");
    std::fs::write(&sample, lines[..100].join("\n")).unwrap();
    let (status, out) = at.deploy(&v2, &swap, &["--input", sample.to_str().unwrap()]);
    assert!(
        status.success() && out.contains("sample: 100 records in"),
        "{out}"
    );
    wait_live(&mut run, &label2);
    // Some load through v2 before going back.
    let live_from = run.metric("weir_records_in_total", &swap.pipeline);
    run.wait_for_input(&swap.pipeline, live_from + 2000);

    // Bytes that are not a component, and the live version again: refused,
    // nothing published.
    let garbage = swap.dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let (status, out) = deploy(&garbage);
    assert!(
        !status.success()
            && out.contains("not published")
            && out.contains("not a valid WebAssembly component"),
        "{out}"
    );
    let (status, out) = deploy(&v2);
    assert!(
        !status.success() && out.contains("already the live version"),
        "{out}"
    );
    assert_eq!(history(&location, &env).len(), 2);

    let out = weir(&["plugin", "rollback", &location, "--config", config], &env);
    assert!(
        out.contains("taxi-enrich@0.1.0") && out.contains("again as #3"),
        "{out}"
    );
    wait_live(&mut run, &label1);
    let live_from = run.metric("weir_records_in_total", &swap.pipeline);
    run.wait_for_input(&swap.pipeline, live_from + 2000);
    assert_eq!(
        history(&location, &env),
        [
            (1, "deploy".into(), "taxi-enrich@0.1.0".into(), false),
            (2, "deploy".into(), "taxi-enrich@2.0.0".into(), false),
            (3, "rollback".into(), "taxi-enrich@0.1.0".into(), true),
        ]
    );

    stop.store(true, Ordering::Relaxed);
    let produced = 2000 + producer.await.unwrap();
    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &swap.pipeline, &swap.topic).await;
    let log = run.stop();
    let rows = rows_by_seq(&pool, &swap.table).await;
    assert_exactly_once(&rows, produced, &invalid, swap.dir.path());
    assert!(
        rows.iter()
            .all(|r| r.1.as_deref() == Some(&label1) || r.1.as_deref() == Some(&label2))
    );
    assert_eq!(changes(&rows), 2, "v1 → v2 → v1 along the input: {log}");
    assert_eq!(rows.last().unwrap().1.as_deref(), Some(label1.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_one_process_rolls_back_is_rolled_back_on_the_others_never_runs_on_a_later_process_and_its_bytes_are_refused()
 {
    let settings = "poll-interval = \"300ms\"\nprobation-batches = 2";
    // a traps on the new version; idle has no input then, so it never
    // traps and can only follow; b starts afterwards.
    let (a, idle, b) = (
        taxi_swap("fleet-a", settings),
        taxi_swap("fleet-idle", settings),
        taxi_swap("fleet-b", settings),
    );
    let at = PublishedAt::new(&a);
    let (location, env) = (at.location.clone(), at.env.clone());
    let deploy = |file: &Path| at.deploy(file, &a, &[]);
    let (v1, trap) = (
        common::reference("taxi-enrich"),
        fixture("hostile-trap.wasm"),
    );
    let live = label("taxi-enrich@0.1.0", &v1);
    assert!(deploy(&v1).0.success());

    let (lines, invalid) = numbered_taxi(1_000, 79);
    produce_lines(&a.topic, &lines[..500]).await;
    let mut run = Running::start(&a.config, &env, a.dir.path());
    run.wait_for_records(&a.pipeline, 500);
    produce_lines(&idle.topic, &lines[..100]).await;
    let mut follower = Running::start(&idle.config, &env, idle.dir.path());
    follower.wait_for_records(&idle.pipeline, 100);
    let (status, out) = deploy(&trap);
    assert!(status.success(), "{out}");
    let bad = label("hostile@0.0.1", &trap);
    wait_live(&mut run, &bad);
    wait_live(&mut follower, &bad);
    produce_lines(&a.topic, &lines[500..]).await;
    wait_swaps(&mut run, &a.pipeline, "rolled_back", 1);

    // The process that never trapped follows the fleet's decision.
    wait_live(&mut follower, &live);
    follower.wait_until(
        "/readyz to be ready on the fleet's version",
        Duration::from_secs(60),
        |r| r.get("/readyz").is_some_and(|(status, _)| status == 200),
    );
    assert_eq!(swaps(&follower, &idle.pipeline, "rolled_back"), 0);
    assert_eq!(
        swaps(&follower, &idle.pipeline, "swapped"),
        2,
        "to the bad version and back"
    );
    follower.stop();

    // The rollback is recorded for the fleet, with the deciding process.
    let mut decided = String::new();
    run.wait_until(
        "the rollback to be the fleet's decision",
        Duration::from_secs(60),
        |_| {
            decided = weir(&["plugin", "history", &location], &env);
            decided.contains("rolled_back by ")
        },
    );
    let row = decided
        .lines()
        .find(|l| l.starts_with("2\t"))
        .unwrap_or_default();
    assert!(
        row.contains("hostile@0.0.1")
            && row.contains("rolled_back by ")
            && row.contains(&format!("pid {}", run.pid()))
            && row.contains("trapped on probation")
            && row.ends_with("\tlive, rejected: the fleet runs #1"),
        "{decided}"
    );
    assert!(
        decided
            .lines()
            .any(|l| l.starts_with("1\t") && l.ends_with("\tcurrent")),
        "{decided}"
    );

    // A process that starts afterwards runs the version before, and says why.
    produce_lines(&b.topic, &lines[..100]).await;
    let mut later = Running::start(&b.config, &env, b.dir.path());
    later.wait_for_records(&b.pipeline, 100);
    wait_live(&mut later, &live);
    let later_log = later.stop();
    assert!(
        later_log.contains("The fleet rejected the live version"),
        "{later_log}"
    );

    // The same bytes again: refused with the earlier decision.
    let (status, out) = deploy(&trap);
    assert!(
        !status.success() && out.contains("the fleet rejected these bytes (rolled_back"),
        "{out}"
    );

    let pool = pg_pool().await;
    flows::until_checkpointed(&mut run, &pool, &a.pipeline, &a.topic).await;
    run.stop();
    let rows = rows_by_seq(&pool, &a.table).await;
    assert_exactly_once(&rows, lines.len(), &invalid, a.dir.path());
    assert!(
        rows.iter().all(|r| r.1.as_deref() == Some(live.as_str())),
        "every row made by v1: the trapping batch was reprocessed by it"
    );
}

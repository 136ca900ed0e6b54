//! `weir compact` and `weir files` on a real S3 server beside a running
//! writer (seed 002's shots pipeline), across a kill -9 of either: a reader
//! that goes by the manifests (weir) and one that goes by `_weir/committed`
//! (pyarrow) never see a row twice, never lose one they saw, and in the end
//! hold every row exactly once.

mod common;
mod services;

use common::root;
use serde_json::Value;
use services::{Running, unique, weir, weir_env, weir_output};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

/// Both readers' rows, checked against `expected`; `all`: every expected
/// row must be there. Each reader's shot ids must include those it saw
/// before (`seen`).
async fn check_readers(
    url: &str,
    expected: &BTreeMap<String, Value>,
    all: bool,
    seen: &mut [BTreeSet<String>; 2],
    when: &str,
) {
    let views = [
        ("weir", services::committed_rows(url).await),
        ("pyarrow", services::pyarrow_rows(url)),
    ];
    for ((reader, rows), before) in views.iter().zip(seen.iter_mut()) {
        common::check_shot_rows(rows, expected, all, &format!("{reader} {when}"));
        let now: BTreeSet<String> = rows
            .iter()
            .map(|(_, r)| r["shot_id"].as_str().unwrap().to_owned())
            .collect();
        let lost = before.difference(&now).count();
        assert_eq!(
            lost, 0,
            "{reader} {when}: {lost} rows it read before are gone"
        );
        *before = now;
    }
}

/// `weir compact` of `url`, merging folders of at least `min_files`.
fn compact_args<'a>(url: &'a str, min_files: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "compact",
        url,
        "--min-files",
        min_files,
        "--sort-by",
        "shot_id",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_beside_a_running_writer_and_across_kill_9_of_either_never_shows_a_row_twice_or_loses_one()
 {
    let topic = unique("shot_charts");
    let bucket = unique("compact");
    let env: Vec<(String, String)> = weir_env()
        .into_iter()
        .chain([
            ("SHOTS_TOPIC".to_owned(), topic.clone()),
            ("SHOTS_BUCKET".to_owned(), bucket.clone()),
            ("SHOTS_ROLLOVER".to_owned(), "0s".to_owned()),
            // Only the compactions this test runs.
            ("SHOTS_COMPACT_EVERY".to_owned(), "24h".to_owned()),
        ])
        .collect();
    let url = format!("s3://{bucket}/charts");
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    let lines = weir::sample::shots(2400, 21, 2.0);
    let rounds = 7;
    let upto = |round: usize| {
        let so_far: Vec<weir::sample::Line> = (0..=round)
            .flat_map(|r| common::round_of(&lines, rounds, r))
            .collect();
        common::expected_shots(&so_far)
    };
    let expected = upto(rounds - 1);
    let dir = tempfile::tempdir().unwrap();
    let config = root().join("examples/shots.toml");
    let mut writer = Some(Running::start(&config, &env, dir.path()));
    let mut seen: [BTreeSet<String>; 2] = Default::default();
    for round in 0..rounds {
        let part = common::round_of(&lines, rounds, round);
        // A compaction runs while the writer takes this round.
        let compaction = (round >= 2).then(|| {
            let crash = match round {
                2 => "compact-after-merge",
                3 => "compact-after-commit",
                _ => "",
            };
            Command::new(env!("CARGO_BIN_EXE_weir"))
                .args(compact_args(&url, "2", &[]))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("WEIR_CRASH_AT", crash)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        });
        services::produce(&topic, part.iter().map(|l| l.text.as_str())).await;
        if round == 4 {
            // kill -9 of the writer while it takes the round; a new one
            // replays what it had not committed.
            writer.take().unwrap().kill9();
            writer = Some(Running::start(&config, &env, dir.path()));
        }
        check_readers(
            &url,
            &expected,
            false,
            &mut seen,
            &format!("during round {round}"),
        )
        .await;
        if let Some(child) = compaction {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr);
            if round <= 3 {
                assert!(
                    !out.status.success(),
                    "round {round}: the crash point was not reached: {text}"
                );
            } else {
                assert!(out.status.success(), "round {round}: {text}");
            }
        }
        services::wait_for_committed_rows(&url, upto(round).len()).await;
        check_readers(
            &url,
            &upto(round),
            true,
            &mut seen,
            &format!("after round {round}"),
        )
        .await;
    }
    writer.take().unwrap().stop();

    // The last compaction, with no retention: replaced files and the merged
    // files of the compaction killed before its commit are deleted.
    let report = weir(&compact_args(&url, "2", &["--retention", "0s"]), &env);
    assert!(report.contains("committed as rewrite"), "{report}");
    let report = weir(&compact_args(&url, "1000", &["--retention", "0s"]), &env);
    assert!(report.contains("deleted"), "{report}");
    check_readers(&url, &expected, true, &mut seen, "at the end").await;
    let location =
        weir::store::open(&url, &services::s3_options(), std::path::Path::new(".")).unwrap();
    let snapshot = weir::table::snapshot(&location).await.unwrap();
    assert!(
        snapshot.uncommitted.is_empty() && snapshot.rewrites.replaced.is_empty(),
        "left behind: {:?} {:?}",
        snapshot.uncommitted,
        snapshot.rewrites.replaced
    );
    // One merged file per game day, its rows sorted by shot_id.
    let mut per_folder: BTreeMap<&str, usize> = BTreeMap::new();
    for file in &snapshot.files {
        *per_folder.entry(file.folder.as_str()).or_default() += 1;
        assert!(file.name.contains("/compact-"), "{}", file.name);
    }
    assert!(per_folder.values().all(|n| *n == 1), "{per_folder:?}");
    // The columns and their types are the configured schema's.
    let example: toml::Value = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let columns: Vec<weir::sink::parquet::Column> = example["pipelines"]["shots"]["sink"]["schema"]
        .clone()
        .try_into()
        .unwrap();
    let schema = weir::sink::parquet::configured_schema(&columns).unwrap();
    for file in &snapshot.files {
        use object_store::ObjectStoreExt;
        let bytes = location
            .store
            .get(&location.child(&file.name))
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes.bytes().await.unwrap(),
        )
        .unwrap();
        assert_eq!(reader.schema().fields(), schema.fields(), "{}", file.name);
        let rows = services::object_rows(&location, &location.child(&file.name)).await;
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| r["shot_id"].as_str().unwrap())
            .collect();
        assert!(ids.is_sorted(), "{} is not sorted by shot_id", file.name);
    }
    // `weir files --write` gives what `_weir/committed` holds.
    let names: Vec<String> = snapshot.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(services::weir_files(&[&url, "--write"], &env), names);
}

/// A new bucket holding `files` Parquet files of `rows` valid taxi trips
/// each, written by `weir gen` (no manifests: complete means committed);
/// their location and weir's environment.
fn small_taxi_files(name: &str, files: u64, rows: usize) -> (String, Vec<(String, String)>) {
    let bucket = unique(name);
    let env = weir_env();
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    let url = format!("s3://{bucket}/t");
    for seed in 1..=files {
        let (seed, rows) = (seed.to_string(), rows.to_string());
        weir(
            &[
                "gen",
                "taxi",
                "--count",
                &rows,
                "--seed",
                &seed,
                "--invalid-pct",
                "0",
                "--format",
                "parquet",
                "--to",
                &url,
            ],
            &env,
        );
    }
    (url, env)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing_and_a_bad_location_is_refused_with_what_to_do() {
    // Three small files written without exactly-once (complete = committed).
    let (url, env) = small_taxi_files("dry", 3, 200);
    let before = weir(&["files", &url], &env);
    assert_eq!(
        before.lines().filter(|l| l.ends_with(".parquet")).count(),
        3,
        "{before}"
    );
    let dry = weir(&["compact", &url, "--min-files", "2", "--dry-run"], &env);
    assert!(dry.contains("would merge 3 files"), "{dry}");
    assert_eq!(weir(&["files", &url], &env), before);
    let (status, text) = weir_output(&["compact", "s3://"], &env);
    assert!(!status.success() && text.contains("s3://"), "{text}");
}

/// Two compactions of the same files at once: the second to commit finds
/// its inputs replaced and backs out (or, if it merged other files, commits
/// on top); either way every row is there once, and no merged file that
/// was not committed stays committed.
#[tokio::test(flavor = "multi_thread")]
async fn two_compactions_at_once_leave_every_row_exactly_once() {
    let (url, env) = small_taxi_files("twice", 6, 300);
    let rows = |rows: Vec<(String, Value)>| {
        let mut values: Vec<String> = rows.into_iter().map(|(_, r)| r.to_string()).collect();
        values.sort();
        values
    };
    let before = rows(services::committed_rows(&url).await);
    assert_eq!(before.len(), 6 * 300);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["compact", &url, "--min-files", "2"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outcomes: Vec<(bool, String)> = [a, b]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .collect();
    assert!(outcomes.iter().any(|(ok, _)| *ok), "{outcomes:?}");
    for (ok, text) in &outcomes {
        assert!(
            *ok || text.contains("another compaction replaced"),
            "a compaction failed for another reason: {text}"
        );
    }
    assert_eq!(rows(services::committed_rows(&url).await), before);
    let location =
        weir::store::open(&url, &services::s3_options(), std::path::Path::new(".")).unwrap();
    let snapshot = weir::table::snapshot(&location).await.unwrap();
    assert_eq!(snapshot.files.len(), 1, "{:?}", snapshot.files);
}

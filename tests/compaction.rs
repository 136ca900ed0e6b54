//! `weir compact` and `weir files` on a real S3 server beside a running
//! writer (seed 002's shots pipeline), across a kill -9 of either, on a
//! Delta table and on weir's manifests: weir and a reader that is not weir
//! (deltalake; pyarrow going by `_weir/committed`) never see a row twice,
//! never lose one they saw, and in the end hold every row exactly once.

mod common;
mod services;

use common::root;
use serde_json::Value;
use services::{Running, unique, weir, weir_env, weir_output};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

/// The table format the shots example writes in a test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Delta,
    Weir,
}

/// Both readers' rows, checked against `expected`; `all`: every expected
/// row must be there. Each reader's shot ids must include those it saw
/// before (`seen`). weir reads either format; the other reader is
/// deltalake for Delta, pyarrow going by `_weir/committed` for weir's.
async fn check_readers(
    url: &str,
    format: Format,
    expected: &BTreeMap<String, Value>,
    all: bool,
    seen: &mut [BTreeSet<String>; 2],
    when: &str,
) {
    let other = match format {
        Format::Delta => (
            "deltalake",
            services::delta_rows(url)
                .into_iter()
                .map(|row| (String::new(), row))
                .collect(),
        ),
        Format::Weir => ("pyarrow", services::pyarrow_rows(url)),
    };
    let views = [("weir", services::committed_rows(url).await), other];
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

/// What [`compaction_beside_a_writer`] leaves for a test's final checks.
struct Compacted {
    url: String,
    env: Vec<(String, String)>,
    config: std::path::PathBuf,
    /// Every valid shot produced.
    expected: BTreeMap<String, Value>,
    seen: [BTreeSet<String>; 2],
    /// Delta: after each round, the table's version and the shot ids
    /// committed by then.
    versions: Vec<(u64, BTreeSet<String>)>,
}

/// Seed 002's shots example writing `format` while `weir compact` runs
/// beside it, round after round: one compaction killed after merging, one
/// after committing, the writer killed -9 mid-round. Both readers are
/// checked during and after every round (no row twice, none lost once
/// read, all there once committed); the writer is stopped at the end.
async fn compaction_beside_a_writer(format: Format) -> Compacted {
    let topic = unique("shot_charts");
    let bucket = unique("compact");
    let table = match format {
        Format::Delta => "delta",
        Format::Weir => "weir",
    };
    let env: Vec<(String, String)> = weir_env()
        .into_iter()
        .chain([
            ("SHOTS_TOPIC".to_owned(), topic.clone()),
            ("SHOTS_BUCKET".to_owned(), bucket.clone()),
            ("SHOTS_TABLE".to_owned(), table.to_owned()),
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
    let mut versions = Vec::new();
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
            format,
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
            format,
            &upto(round),
            true,
            &mut seen,
            &format!("after round {round}"),
        )
        .await;
        if format == Format::Delta {
            let version = delta_version(&url).await;
            versions.push((version, upto(round).into_keys().collect()));
        }
    }
    writer.take().unwrap().stop();
    Compacted {
        url,
        env,
        config,
        expected,
        seen,
        versions,
    }
}

/// The newest version of the Delta table at `url`.
async fn delta_version(url: &str) -> u64 {
    let location =
        weir::store::open(url, &services::s3_options(), std::path::Path::new(".")).unwrap();
    let mut table = weir::table::delta::DeltaTable::open(&location, 100).unwrap();
    table.files().await.unwrap().1.expect("the table exists")
}

/// The shot ids of rows read without their files.
fn shot_ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["shot_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks that every committed file of a shots location holds the
/// configured columns (`less` those the location keeps elsewhere: Delta's
/// partition columns), its rows sorted by shot_id, one merged file per game
/// day.
async fn check_merged_files(
    location: &weir::store::Location,
    names: &[String],
    config: &std::path::Path,
    less: &[&str],
) {
    let mut per_folder: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        let folder = &name[..name.rfind('/').unwrap()];
        *per_folder.entry(folder).or_default() += 1;
        assert!(name.contains("/compact-"), "{name}");
    }
    assert!(per_folder.values().all(|n| *n == 1), "{per_folder:?}");
    let example: toml::Value = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let columns: Vec<weir::sink::parquet::Column> = example["pipelines"]["shots"]["sink"]["schema"]
        .clone()
        .try_into()
        .unwrap();
    let columns: Vec<_> = columns
        .into_iter()
        .filter(|c| !less.contains(&c.name.as_str()))
        .collect();
    let schema = weir::sink::parquet::configured_schema(&columns).unwrap();
    for name in names {
        use object_store::ObjectStoreExt;
        let bytes = location.store.get(&location.child(name)).await.unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes.bytes().await.unwrap(),
        )
        .unwrap();
        assert_eq!(reader.schema().fields(), schema.fields(), "{name}");
        let rows = services::object_rows(location, &location.child(name)).await;
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| r["shot_id"].as_str().unwrap())
            .collect();
        assert!(ids.is_sorted(), "{name} is not sorted by shot_id");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_compaction_beside_a_live_writer_and_across_kill_9_of_either_shows_every_row_once_keeps_time_travel_within_retention_and_vacuums_after()
 {
    let Compacted {
        url,
        env,
        config,
        expected,
        mut seen,
        versions,
    } = compaction_beside_a_writer(Format::Delta).await;
    let location =
        weir::store::open(&url, &services::s3_options(), std::path::Path::new(".")).unwrap();
    let files_in_store = || async {
        use futures::TryStreamExt;
        let all: Vec<object_store::path::Path> = location
            .store
            .list(Some(&location.prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .unwrap();
        all.iter()
            .map(|path| {
                let full = path.as_ref();
                let rest = full.strip_prefix(location.prefix.as_ref()).unwrap_or(full);
                rest.trim_start_matches('/').to_owned()
            })
            .filter(|name| name.ends_with(".parquet") && !name.starts_with("_delta_log/"))
            .collect::<BTreeSet<String>>()
    };
    // A compaction within the retention (the example's hour) deletes
    // nothing a version still names: time travel to every version taken
    // after a round gives exactly that round's rows.
    let before = files_in_store().await;
    let report = weir(&compact_args(&url, "2", &[]), &env);
    assert!(report.contains("committed as rewrite"), "{report}");
    assert!(!report.contains("deleted"), "{report}");
    assert!(files_in_store().await.is_superset(&before));
    for (version, ids) in &versions {
        let rows = services::delta_rows_at(&url, *version);
        assert_eq!(rows.len(), ids.len(), "version {version}: rows twice");
        assert_eq!(&shot_ids(&rows), ids, "version {version}");
    }
    // With no retention, vacuum deletes every file the newest version does
    // not name: replaced ones, and the merged files of the compaction
    // killed before its commit.
    let report = weir(&compact_args(&url, "1000", &["--retention", "0s"]), &env);
    assert!(report.contains("deleted"), "{report}");
    let names = services::weir_files(&[&url], &env);
    assert_eq!(
        files_in_store().await,
        names.iter().cloned().collect::<BTreeSet<String>>(),
        "files no version needs are left, or files the table names are gone"
    );
    check_readers(
        &url,
        Format::Delta,
        &expected,
        true,
        &mut seen,
        "at the end",
    )
    .await;
    check_merged_files(&location, &names, &config, &["season", "game_date"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_beside_a_running_writer_and_across_kill_9_of_either_never_shows_a_row_twice_or_loses_one()
 {
    let Compacted {
        url,
        env,
        config,
        expected,
        mut seen,
        ..
    } = compaction_beside_a_writer(Format::Weir).await;
    // The last compaction, with no retention: replaced files and the merged
    // files of the compaction killed before its commit are deleted.
    let report = weir(&compact_args(&url, "2", &["--retention", "0s"]), &env);
    assert!(report.contains("committed as rewrite"), "{report}");
    let report = weir(&compact_args(&url, "1000", &["--retention", "0s"]), &env);
    assert!(report.contains("deleted"), "{report}");
    check_readers(&url, Format::Weir, &expected, true, &mut seen, "at the end").await;
    let location =
        weir::store::open(&url, &services::s3_options(), std::path::Path::new(".")).unwrap();
    let snapshot = weir::table::snapshot(&location).await.unwrap();
    assert!(
        snapshot.uncommitted.is_empty() && snapshot.rewrites.replaced.is_empty(),
        "left behind: {:?} {:?}",
        snapshot.uncommitted,
        snapshot.rewrites.replaced
    );
    let names: Vec<String> = snapshot.files.iter().map(|f| f.name.clone()).collect();
    check_merged_files(&location, &names, &config, &[]).await;
    // `weir files --write` gives what `_weir/committed` holds.
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

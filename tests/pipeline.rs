//! Whole pipelines on local files: nothing lost, every failure explained,
//! and the CLI behaves as the README says.

mod common;
mod services;

use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use weir::pipeline::Summary;

async fn run_pipeline(text: &str, base: &Path) -> Summary {
    try_run_pipeline(text, base).await.unwrap()
}

/// Runs `input` through the echoing fixture into a Parquet sink at `out/`.
async fn echo_to_parquet(dir: &Path, input: &str, batch_size: usize) -> Summary {
    std::fs::write(dir.join("in.ndjson"), input).unwrap();
    let text = pipeline_toml(
        &hostile(),
        r#"{ mode = "echo" }"#,
        batch_size,
        r#"{ type = "file", path = "in.ndjson" }"#,
        r#"{ type = "parquet", path = "out" }"#,
    );
    run_pipeline(&text, dir).await
}

fn parquet_rows(dir: &Path) -> Vec<Value> {
    // `_weir/` holds the exactly-once manifests; readers skip `_` folders.
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    files.sort();
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "only finished files: {files:?}"
    );
    let mut rows = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let mut writer = arrow_json::ArrayWriter::new(Vec::new());
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
            let values: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap();
            rows.extend(values);
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_trips_reach_parquet_and_every_defect_reaches_the_dead_letters_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let lines = weir::sample::taxi(5000, 17, 2.0);
    let input = dir.path().join("trips.ndjson");
    std::fs::write(
        &input,
        lines
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect::<String>(),
    )
    .unwrap();
    let text = pipeline_toml(
        &reference("taxi-enrich"),
        "{}",
        700,
        r#"{ type = "file", path = "trips.ndjson" }"#,
        r#"{ type = "parquet", path = "out", max-rows-per-file = 2000 }"#,
    );
    let summary = run_pipeline(&text, dir.path()).await;
    let defects: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.defect.is_some())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(summary.read, 5000);
    assert_eq!(summary.dead_lettered as usize, defects.len());
    assert_eq!(summary.written as usize, 5000 - defects.len());

    let rows = parquet_rows(&dir.path().join("out"));
    assert_eq!(rows.len(), 5000 - defects.len());
    assert!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count() >= 2,
        "rolled by max-rows-per-file"
    );
    let valid = valid_json(&lines);
    for (row, input) in rows.iter().zip(&valid) {
        assert_eq!(row["PULocationID"], input["PULocationID"]);
        let distance = input["trip_distance"].as_f64().unwrap();
        let expected = if distance < 2.0 {
            "short"
        } else if distance < 10.0 {
            "medium"
        } else {
            "long"
        };
        assert_eq!(row["trip_category"], expected);
    }

    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    let dead_lines: Vec<usize> = dead
        .iter()
        .map(|d| {
            let source = d["headers"]["weir.source"].as_str().unwrap();
            source.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(dead_lines, defects);
    for d in &dead {
        let line: usize = d["headers"]["weir.source"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            d["value"],
            lines[line - 1].text.as_str(),
            "original bytes are kept"
        );
        assert!(!d["headers"]["weir.reason"].as_str().unwrap().is_empty());
        assert_eq!(d["headers"]["weir.stage"], "taxi-enrich@0.1.0");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_that_do_not_fit_the_parquet_schema_are_dead_lettered_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let summary = echo_to_parquet(
        dir.path(),
        "{\"a\":1}\n{\"a\":2}\n{\"a\":\"three\"}\n{\"a\":4,\"b\":true}\n{\"a\":5}\n",
        2,
    )
    .await;
    assert_eq!((summary.written, summary.dead_lettered), (3, 2));
    let rows = parquet_rows(&dir.path().join("out"));
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"a":1}),
            serde_json::json!({"a":2}),
            serde_json::json!({"a":5})
        ]
    );
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    assert_eq!(dead[0]["value"], "{\"a\":\"three\"}");
    assert_eq!(dead[1]["value"], "{\"a\":4,\"b\":true}");
    assert!(dead.iter().all(|d| d["headers"]["weir.stage"] == "sink"));
    assert!(
        dead[0]["headers"]["weir.reason"]
            .as_str()
            .unwrap()
            .contains("does not fit")
    );
}

#[test]
fn cli_runs_the_quickstart_example_and_prints_a_summary() {
    let lines = weir::sample::taxi(2000, 42, 2.0);
    let shipped =
        std::fs::read_to_string(root().join("examples/data/taxi/taxi-trips.ndjson")).unwrap();
    assert_eq!(
        shipped,
        lines
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect::<String>(),
        "sample = `weir gen taxi --count 2000 --seed 42`"
    );
    let invalid = lines.iter().filter(|l| l.defect.is_some()).count();
    let out = tempfile::tempdir().unwrap();
    let quickstart = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--quiet"])
            .arg(root().join("examples/quickstart.toml"))
            .env("WEIR_OUT", out.path())
            .env("XDG_CACHE_HOME", out.path().join("cache"))
            .output()
            .unwrap()
    };
    let run = quickstart();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = format!(
        "quickstart: 2000 in, {} out, {invalid} dead-lettered, 0 plugin restarts",
        2000 - invalid
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(parquet_rows(&out.path().join("taxi")).len(), 2000 - invalid);
    assert_eq!(
        ndjson_values(&out.path().join("dead-letter.ndjson")).len(),
        invalid
    );
    // The checkpoint lives with the output: a second run resumes after the
    // last trip and reads nothing.
    let again = quickstart();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("quickstart: 0 in, 0 out"), "{stdout}");
    assert_eq!(parquet_rows(&out.path().join("taxi")).len(), 2000 - invalid);
}

/// `{"n": i}` lines.
fn numbered(range: std::ops::Range<i64>) -> String {
    range.map(|i| format!("{{\"n\":{i}}}\n")).collect()
}

/// A pipeline `copy` from `source` to `sink`, small batches and epochs of
/// 300 records, in `<dir>/p.toml`.
fn copy_config(dir: &Path, source: &str, sink: &str) -> std::path::PathBuf {
    let config = dir.join("p.toml");
    let text = format!(
        "[pipelines.copy]\nbatch-size = 100\ncheckpoint-records = 300\nsource = {source}\nsink = {sink}\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `weir run --quiet <config>`, aborting at `crash` (`WEIR_CRASH_AT`).
fn run_crashing(config: &Path, crash: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.args(["run", "--quiet"]).arg(config);
    if let Some(point) = crash {
        command.env("WEIR_CRASH_AT", point);
    }
    command.output().unwrap()
}

#[test]
fn object_store_to_parquet_crashed_mid_input_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for (name, from) in [("a.ndjson", 0), ("b.ndjson", 1000)] {
        std::fs::write(
            dir.path().join("in").join(name),
            numbered(from..from + 1000),
        )
        .unwrap();
    }
    let config = copy_config(
        dir.path(),
        r#"{ type = "object-store", url = "in" }"#,
        r#"{ type = "parquet", path = "out" }"#,
    );
    // Files of the fourth epoch are uploaded, its manifest is not.
    let crashed = run_crashing(&config, Some("after-upload@4"));
    assert!(
        !crashed.status.success(),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    let finished = run_crashing(&config, None);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let stdout = String::from_utf8_lossy(&finished.stdout);
    assert!(
        !stdout.contains("copy: 2000 in"),
        "the restart read everything again: {stdout}"
    );
    let mut seen: Vec<i64> = parquet_rows(&dir.path().join("out"))
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..2000).collect::<Vec<_>>());
}

#[test]
fn cli_validate_names_the_key_and_line_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[pipelines.p]\nsource = { type = \"stdin\" }\nsink = { type = \"ndjson\", path = \"-\" }\nplugins = [\"ghost\"]\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 4: pipelines.p.plugins: plugin \"ghost\" is not defined"),
        "{stderr}"
    );

    std::fs::write(&config, "[pipelines.p]\nsource = { type = \"stdin\" }\nsink = { type = \"ndjson\", path = \"-\", colour = \"red\" }\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 3:") && stderr.contains("colour"),
        "{stderr}"
    );
}

#[test]
fn cli_plugin_test_prints_outputs_and_failures_and_can_fail_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("w.ndjson");
    std::fs::write(&input, "{\"city\":\"Oslo\",\"temperature\":1}\n{\"city\":\"Oslo\",\"temperature\":3}\n{\"temperature\":3}\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["plugin", "test"])
        .arg(reference("weather-window"))
        .arg("--input")
        .arg(&input)
        .args([
            "--config",
            "window = \"10s\"",
            "--now",
            "1000",
            "--tick",
            "10000",
            "--fail-on-failures",
        ])
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let window: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(window["count"], 2);
    assert_eq!(window["avg_temperature"], 2.0);
    assert!(stderr.contains("w.ndjson:3: city is missing"), "{stderr}");
}

/// `weir plugin test` compiles a component once: the next call (same
/// `--cache-dir`, as `weir run` with `[engine] cache-dir`) loads it from
/// the cache, and says which on stderr.
#[test]
fn cli_plugin_test_compiles_once_then_loads_from_the_cache_dir_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.ndjson");
    std::fs::write(&input, "{\"city\":\"Oslo\",\"temperature\":1}\n").unwrap();
    let cache = dir.path().join("compiled");
    let call = || {
        let run = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["plugin", "test"])
            .arg(reference("weather-window"))
            .arg("--input")
            .arg(&input)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        String::from_utf8_lossy(&run.stderr).into_owned()
    };
    let first = call();
    assert!(first.contains("compiled "), "{first}");
    assert!(cache.read_dir().unwrap().next().is_some(), "nothing cached");
    let second = call();
    assert!(
        second.contains("loaded from the compiled-component cache"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_or_doubled_values_never_merge_into_parquet_rows() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated value followed by the rest of an object would parse as one
    // object if the sink joined them; two objects in one value would shift rows.
    let summary = echo_to_parquet(
        dir.path(),
        "{\"a\":1}\n{\"a\":\n2}\n{\"a\":3}{\"a\":4}\n{\"a\":5}\n",
        10,
    )
    .await;
    assert_eq!((summary.written, summary.dead_lettered), (2, 3));
    let rows = parquet_rows(&dir.path().join("out"));
    assert_eq!(
        rows,
        vec![serde_json::json!({"a":1}), serde_json::json!({"a":5})]
    );
    let dead: Vec<String> = ndjson_values(&dir.path().join("dead.ndjson"))
        .iter()
        .map(|d| d["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead, ["{\"a\":", "2}", "{\"a\":3}{\"a\":4}"]);
}

/// Every shipped example is a valid configuration whose plugins load
/// (`weir validate` touches no data and needs no service).
#[test]
fn every_example_configuration_validates() {
    let mut configs: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["examples", "examples/local"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                configs.push(path);
            }
        }
    }
    assert!(configs.len() >= 7, "{configs:?}");
    for config in configs {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("validate")
            .arg(&config)
            .env("WEIR_PLUGINS", root().join("plugins/dist"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn at_least_once_crash_before_the_checkpoint_file_repeats_at_most_one_epoch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.ndjson"), numbered(0..2000)).unwrap();
    let config = copy_config(
        dir.path(),
        r#"{ type = "file", path = "in.ndjson" }"#,
        r#"{ type = "ndjson", path = "out.ndjson" }"#,
    );
    // The sink is flushed for the third epoch; its checkpoint file is not written.
    let crashed = run_crashing(&config, Some("before-checkpoint-save@3"));
    assert!(
        !crashed.status.success(),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    let saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".weir/checkpoints/copy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["epoch"], 2, "{saved}");
    let finished = run_crashing(&config, None);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let mut seen: Vec<i64> = ndjson_values(&dir.path().join("out.ndjson"))
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct, (0..2000).collect::<Vec<_>>(), "nothing lost");
    let repeated = seen.len() - distinct.len();
    assert!(
        repeated <= 300,
        "only the uncheckpointed epoch repeats, not {repeated} records"
    );
}

/// Runs `input` through the echoing fixture into `sink`; the pipeline's
/// error, as the user would read it.
async fn echo_into(dir: &Path, input: &str, sink: &str) -> Result<Summary, String> {
    std::fs::write(dir.join("in.ndjson"), input).unwrap();
    let text = pipeline_toml(
        &hostile(),
        r#"{ mode = "echo" }"#,
        64,
        r#"{ type = "file", path = "in.ndjson" }"#,
        sink,
    );
    try_run_pipeline(&text, dir)
        .await
        .map_err(|e| e.to_string())
}

/// Every file under `dir`, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_table_of_another_schema_a_newer_protocol_or_a_corrupt_log_is_refused_naming_the_table_and_nothing_is_rewritten()
 {
    let dir = tempfile::tempdir().unwrap();
    // A table of {a: long}, written by an earlier run.
    echo_into(
        dir.path(),
        "{\"a\":1}\n",
        r#"{ type = "parquet", path = "out" }"#,
    )
    .await
    .unwrap();
    assert!(dir.path().join("out/_delta_log").is_dir());
    let before = tree(&dir.path().join("out"));

    // The same location with a schema where `a` is a string, and another
    // partitioning.
    let err = echo_into(
        dir.path(),
        "{\"a\":\"x\",\"b\":\"y\"}\n",
        r#"{ type = "parquet", path = "out", partition-by = "b", schema = [{ name = "a", type = "string" }, { name = "b", type = "string" }] }"#,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("parquet out")
            && err.contains(r#"column "a" is long in the table, string in the sink"#)
            && err.contains(r#"column "b" is not in the table"#)
            && err.contains("partitioned by []"),
        "{err}"
    );
    assert_eq!(
        tree(&dir.path().join("out")),
        before,
        "the table was changed"
    );

    // A table whose protocol needs a reader feature weir does not know.
    let log = dir.path().join("newer/_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    std::fs::write(
        log.join("00000000000000000000.json"),
        concat!(
            r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["weirFutureFeature"],"writerFeatures":["weirFutureFeature"]}}"#,
            "\n",
            r#"{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"createdTime":0}}"#,
            "\n"
        ),
    )
    .unwrap();
    let err = echo_into(
        dir.path(),
        "{\"a\":1}\n",
        r#"{ type = "parquet", path = "newer" }"#,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("parquet newer") && err.contains("weirFutureFeature"),
        "{err}"
    );

    // A damaged log entry: a clear error, and the entry is left as it is.
    let commits = std::fs::read_dir(dir.path().join("out/_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    let entry = dir
        .path()
        .join(format!("out/_delta_log/{commits:020}.json"));
    std::fs::write(&entry, "{\"add\": {\"path\": \n").unwrap();
    let before = tree(&dir.path().join("out"));
    let err = echo_into(
        dir.path(),
        "{\"a\":2}\n",
        r#"{ type = "parquet", path = "out" }"#,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("parquet out") && err.contains("does not repair or overwrite"),
        "{err}"
    );
    assert_eq!(tree(&dir.path().join("out")), before, "the log was changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_table_gets_a_log_checkpoint_every_n_commits_and_deltalake_reads_every_row_through_it()
 {
    let dir = tempfile::tempdir().unwrap();
    // Six runs, each reading one more line of the input (a run resumes
    // after the lines the last one committed), each a commit.
    let mut input = String::new();
    for n in 0..6 {
        input.push_str(&format!("{{\"a\":{n}}}\n"));
        echo_into(
            dir.path(),
            &input,
            r#"{ type = "parquet", path = "out", checkpoint-every = 2 }"#,
        )
        .await
        .unwrap();
    }
    let log = dir.path().join("out/_delta_log");
    let checkpoints: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".checkpoint.parquet"))
        .collect();
    assert!(
        !checkpoints.is_empty(),
        "no checkpoint in {}",
        log.display()
    );
    let last: Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    let newest = checkpoints
        .iter()
        .map(|name| name[..20].parse::<u64>().unwrap())
        .max()
        .unwrap();
    assert_eq!(last["version"], newest, "{last}");
    assert!(newest % 2 == 0, "checkpoint at version {newest}");
    // A reader starts from the checkpoint and reads every row once.
    let mut got: Vec<i64> = services::delta_rows(&dir.path().join("out").to_string_lossy())
        .iter()
        .map(|row| row["a"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..6).collect::<Vec<i64>>());
}

#[test]
fn max_open_files_of_zero_is_refused_with_its_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_toml(
        &hostile(),
        r#"{ mode = "echo" }"#,
        64,
        r#"{ type = "file", path = "in.ndjson" }"#,
        r#"{ type = "parquet", path = "out", max-open-files = 0 }"#,
    );
    let problems = weir::config::Config::parse(&text, dir.path(), &|_| None).unwrap_err();
    let problem = problems
        .iter()
        .find(|p| p.key.as_deref() == Some("pipelines.p.sink.max-open-files"))
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert!(problem.message.contains("at least 1"), "{problem:?}");
    let line = problem.line.expect("the line of the key");
    assert!(
        text.lines()
            .nth(line - 1)
            .unwrap()
            .contains("max-open-files"),
        "line {line} of\n{text}"
    );
}

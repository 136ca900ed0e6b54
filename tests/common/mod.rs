//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use weir::plugin::{Plugin, PluginEngine, PluginLimits, PluginSpec, Record};

/// Root of the repository.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A built component; fails loudly when the build step did not run.
pub fn wasm(relative: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// A reference plugin from plugins/dist.
pub fn reference(name: &str) -> PathBuf {
    wasm(&format!("plugins/dist/{name}.wasm"))
}

/// The test-only hostile plugin.
pub fn hostile() -> PathBuf {
    wasm("tests/fixtures/dist/hostile.wasm")
}

/// An engine with a private compiled cache.
pub fn engine() -> (PluginEngine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (PluginEngine::new(Some(dir.path().to_owned())).unwrap(), dir)
}

/// Builds the first pipeline of a configuration text (paths relative to
/// `base`) and runs it until its input ends.
pub async fn try_run_pipeline(
    text: &str,
    base: &std::path::Path,
) -> Result<weir::pipeline::Summary, weir::pipeline::Error> {
    let config = weir::config::Config::parse(text, base, &|_| None)
        .unwrap_or_else(|p| panic!("config refused: {p:?}"));
    let (engine, _cache) = engine();
    let name = config.pipelines.keys().next().unwrap().clone();
    let pipeline = weir::pipeline::Pipeline::build(&name, &config, &engine).await?;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    pipeline.run(stop_rx).await
}

/// Every line of an NDJSON file, parsed.
pub fn ndjson_values(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Starts a plugin with a JSON config and limits.
pub fn start(engine: &PluginEngine, path: PathBuf, config: &str, limits: PluginLimits) -> Plugin {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let spec = PluginSpec {
        name,
        path,
        published: None,
        config_json: config.into(),
        limits,
        read_only_dirs: Vec::new(),
    };
    engine
        .start(&spec)
        .unwrap_or_else(|e| panic!("plugin failed to start: {e}"))
}

/// Records from text values.
pub fn records<S: AsRef<str>>(values: &[S]) -> Vec<Record> {
    values
        .iter()
        .map(|v| Record {
            key: None,
            value: v.as_ref().as_bytes().to_vec(),
            timestamp_ms: 0,
            headers: vec![],
        })
        .collect()
}

/// Parses output values as JSON.
pub fn json(records: &[Record]) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).expect("output is JSON"))
        .collect()
}

/// Starts a plugin with default limits.
pub fn start_default(engine: &PluginEngine, path: PathBuf, config: &str) -> Plugin {
    start(engine, path, config, PluginLimits::default())
}

/// Runs generated lines through a plugin in chunks; returns the outputs as
/// JSON and the indices (into `lines`) of the failures.
pub fn run_lines(
    plugin: &mut Plugin,
    lines: &[weir::sample::Line],
    chunk: usize,
) -> (Vec<serde_json::Value>, Vec<usize>) {
    let mut outputs = Vec::new();
    let mut failed = Vec::new();
    for (c, part) in lines.chunks(chunk).enumerate() {
        let texts: Vec<&str> = part.iter().map(|l| l.text.as_str()).collect();
        let result = plugin
            .process(&records(&texts), 0)
            .expect("process succeeds");
        outputs.extend(json(&result.outputs));
        failed.extend(result.failures.iter().map(|f| c * chunk + f.index as usize));
    }
    (outputs, failed)
}

/// The lines the generator made valid, parsed.
pub fn valid_json(lines: &[weir::sample::Line]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|l| l.defect.is_none())
        .map(|l| serde_json::from_str(&l.text).expect("valid lines are JSON"))
        .collect()
}

/// Indices of the lines the generator made invalid on purpose.
pub fn defects(lines: &[weir::sample::Line]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.defect.is_some())
        .map(|(i, _)| i)
        .collect()
}

/// A one-plugin pipeline `p` in TOML; `source` and `sink` are inline tables,
/// the dead letters go to `dead.ndjson` as envelopes.
pub fn pipeline_toml(
    wasm: &std::path::Path,
    plugin_config: &str,
    batch_size: usize,
    source: &str,
    sink: &str,
) -> String {
    format!(
        "[plugins.t]\npath = \"{}\"\nconfig = {plugin_config}\n\
         [pipelines.p]\nplugins = [\"t\"]\nbatch-size = {batch_size}\nsource = {source}\nsink = {sink}\n\
         dead-letter = {{ type = \"ndjson\", path = \"dead.ndjson\", envelope = true }}\n",
        wasm.display()
    )
}

/// What log-extract makes of the valid generated log lines, sorted:
/// (timestamp, mobile from the body's `$.data.mobile`, else the
/// `attributes.mobile`, else "unknown").
pub fn expected_logs(lines: &[weir::sample::Line]) -> Vec<(String, String)> {
    let mut expected: Vec<(String, String)> = valid_json(lines)
        .iter()
        .map(|v| {
            let body: serde_json::Value =
                serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            let mobile = body["data"]["mobile"]
                .as_str()
                .or(v["attributes"]["mobile"].as_str())
                .unwrap_or("unknown");
            (
                v["timestamp"].as_str().unwrap().to_owned(),
                mobile.to_owned(),
            )
        })
        .collect();
    expected.sort();
    expected
}

/// (timestamp, mobile) of log-extract's output rows, sorted.
pub fn log_rows(rows: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["timestamp"].as_str().unwrap().to_owned(),
                r["mobile"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    got
}

/// A valid Parquet file of `count` generated taxi rows, written by weir's
/// own Parquet sink.
pub async fn taxi_parquet(count: usize) -> Vec<u8> {
    use weir::sink::Sink;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config: weir::sink::parquet::ParquetConfig =
        toml::from_str(&format!("path = {:?}", out.display().to_string())).unwrap();
    let mut sink = weir::sink::parquet::ParquetSink::open(&config, dir.path()).unwrap();
    let records = weir::sample::taxi(count, 1, 0.0)
        .into_iter()
        .map(|l| weir::Record {
            key: None,
            value: l.text.into_bytes(),
            timestamp_ms: 0,
            headers: vec![],
        })
        .collect();
    assert!(sink.write(records).await.unwrap().is_empty());
    sink.close().await.unwrap();
    let file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::read(file).unwrap()
}

/// `got` holds exactly `want` (both sorted): no row lost, none twice.
pub fn assert_rows_exactly<T: PartialEq>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "row count (duplicates or losses)");
    assert!(got == want, "the rows differ from the {what}");
}

/// What shot-clean makes of the valid generated shots, by `shot_id`,
/// recomputed here from the court's geometry and the game clock.
pub fn expected_shots(
    lines: &[weir::sample::Line],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    valid_json(lines)
        .into_iter()
        .map(|shot| {
            let (x, y) = (shot["x"].as_f64().unwrap(), shot["y"].as_f64().unwrap());
            let distance = x.hypot(y);
            let zone = if y > 41.75 {
                "Backcourt"
            } else if distance <= 4.0 {
                "Restricted Area"
            } else if x.abs() >= 22.0 && y <= 8.75 {
                "Corner 3"
            } else if distance >= 23.75 {
                "Above the Break 3"
            } else if x.abs() <= 8.0 && y <= 13.75 {
                "In The Paint (Non-RA)"
            } else {
                "Mid-Range"
            };
            let clock = shot["clock"].as_str().unwrap();
            let left = clock[..2].parse::<i64>().unwrap() * 60 + clock[3..].parse::<i64>().unwrap();
            let period = shot["period"].as_i64().unwrap();
            let three = shot["shot_type"] == "3PT Field Goal";
            let made = shot["made"].as_bool().unwrap();
            let row = serde_json::json!({
                "shot_id": shot["shot_id"], "game_id": shot["game_id"],
                "game_date": shot["game_date"], "season": shot["season"],
                "team": shot["team"], "opponent": shot["opponent"],
                "player_id": shot["player_id"], "player": shot["player"],
                "period": period, "clock_seconds": left,
                "game_seconds": (period - 1) * 720 + 720 - left,
                "x": x, "y": y, "distance_ft": (distance * 10.0).round() / 10.0,
                "zone": zone, "shot_type": shot["shot_type"], "action": shot["action"],
                "made": made, "points": if !made { 0 } else if three { 3 } else { 2 },
            });
            (shot["shot_id"].as_str().unwrap().to_owned(), row)
        })
        .collect()
}

/// Checks rows read from a shots location (each with its file) against
/// `expected`: every row once, equal to its expected row, in the folder
/// of its season and game date (unless its file is `""`: a reader that does
/// not tell files). `all`: every expected row is there.
pub fn check_shot_rows(
    rows: &[(String, serde_json::Value)],
    expected: &std::collections::BTreeMap<String, serde_json::Value>,
    all: bool,
    reader: &str,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (file, row) in rows {
        let id = row["shot_id"].as_str().unwrap();
        assert!(seen.insert(id.to_owned()), "{reader}: shot {id} read twice");
        let want = expected
            .get(id)
            .unwrap_or_else(|| panic!("{reader}: shot {id} was never produced"));
        assert_eq!(row, want, "{reader}: shot {id} in {file}");
        if file.is_empty() {
            // A reader that does not tell the files (deltalake, Polars).
            continue;
        }
        let folder = format!(
            "season={}/game_date={}/",
            want["season"].as_str().unwrap(),
            want["game_date"].as_str().unwrap()
        );
        assert!(
            file.starts_with(&folder),
            "{reader}: shot {id} is in {file}, not under {folder}"
        );
    }
    if all {
        assert_eq!(seen.len(), expected.len(), "{reader}: rows missing");
    }
}

/// The lines of round `round` of `rounds`: every `rounds`-th line, so that
/// each round touches every game day (or any other grouping by position).
pub fn round_of(
    lines: &[weir::sample::Line],
    rounds: usize,
    round: usize,
) -> Vec<weir::sample::Line> {
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| i % rounds == round)
        .map(|(_, l)| l.clone())
        .collect()
}

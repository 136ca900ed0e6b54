//! Plugins written in Python and JavaScript, through the same host as the
//! Rust ones: the reference twins give the Rust plugins' outputs record by
//! record, the sandbox and the memory cap hold for them, and `weir plugin
//! new` writes a project per language that `weir plugin build` turns into a
//! component `weir plugin test` runs.
//!
//! The components are built by `scripts/test.sh` (`weir plugin build` with the
//! toolchains `scripts/toolchains.sh` installs) into plugins/dist/.

mod common;

use std::path::Path;
use std::process::Command;
use weir::plugin::{BatchResult, PluginLimits};

/// Both results of one batch are the same: outputs byte for byte, the same
/// records failed for the same reasons. A JSON syntax error's detail comes
/// from each language's own parser, so there only the reason's prefix (what
/// the plugin says before the parser speaks) must match.
fn assert_same_results(rust: &BatchResult, other: &BatchResult, parser_prefix: &str, at: usize) {
    assert_eq!(
        rust.outputs.len(),
        other.outputs.len(),
        "batch at {at}: {} outputs from Rust, {} from the twin",
        rust.outputs.len(),
        other.outputs.len()
    );
    for (i, (a, b)) in rust.outputs.iter().zip(&other.outputs).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&a.value),
            String::from_utf8_lossy(&b.value),
            "output {i} of the batch at {at}"
        );
        assert_eq!(a.key, b.key, "key of output {i} of the batch at {at}");
        assert_eq!(a.timestamp_ms, b.timestamp_ms);
    }
    let failures = |r: &BatchResult| -> Vec<(u32, String)> {
        r.failures
            .iter()
            .map(|f| match f.reason.find(parser_prefix) {
                Some(0) => (f.index, parser_prefix.to_owned()),
                _ => (f.index, f.reason.clone()),
            })
            .collect()
    };
    assert_eq!(failures(rust), failures(other), "batch at {at}");
}

fn texts(lines: &[weir::sample::Line]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

#[test]
fn python_taxi_enrich_gives_the_rust_plugins_outputs_and_reasons_record_by_record() {
    let (engine, _cache) = common::engine();
    let mut rust = common::start_default(&engine, common::reference("taxi-enrich"), "{}");
    let mut python = common::start_default(&engine, common::reference("taxi-enrich-py"), "{}");
    assert_eq!(python.info().name, "taxi-enrich");
    // Every defect the generator makes, about 75 of each.
    let lines = weir::sample::taxi(4000, 11, 12.0);
    let mut failed = 0;
    for (c, chunk) in texts(&lines).chunks(512).enumerate() {
        let batch = common::records(chunk);
        let a = rust.process(&batch, 0).unwrap();
        let b = python.process(&batch, 0).unwrap();
        assert_same_results(&a, &b, "invalid JSON: ", c * 512);
        failed += a.failures.len();
    }
    assert_eq!(failed, common::defects(&lines).len());
    assert!(failed > 300, "{failed}");
    // Thresholds come from the same configuration keys.
    let config = r#"{"max-speed-mph": 14, "long-trip-miles": 3}"#;
    let mut rust = common::start_default(&engine, common::reference("taxi-enrich"), config);
    let mut python = common::start_default(&engine, common::reference("taxi-enrich-py"), config);
    let batch = common::records(&texts(&lines[..512]));
    let (a, b) = (
        rust.process(&batch, 0).unwrap(),
        python.process(&batch, 0).unwrap(),
    );
    assert!(a.failures.len() > common::defects(&lines[..512]).len() + 50);
    assert_same_results(&a, &b, "invalid JSON: ", 0);
}

#[test]
fn python_weather_window_closes_the_rust_plugins_windows_and_reads_its_snapshots() {
    let (engine, _cache) = common::engine();
    let mut rust = common::start_default(&engine, common::reference("weather-window"), "{}");
    let mut python = common::start_default(&engine, common::reference("weather-window-py"), "{}");
    assert_eq!(python.info().state_version, rust.info().state_version);
    let lines = weir::sample::weather(6000, 5, 1_546_300_800_000, 1000, 3.0);
    let mut now = 1_546_300_800_000;
    for (c, chunk) in texts(&lines).chunks(300).enumerate() {
        let batch = common::records(chunk);
        now += 7_000;
        let a = rust.process(&batch, now).unwrap();
        let b = python.process(&batch, now).unwrap();
        assert_same_results(&a, &b, "invalid JSON: ", c * 300);
        if c == 9 {
            // Hand the open windows across, both ways, in the middle.
            let (from_rust, from_python) = (rust.snapshot().unwrap(), python.snapshot().unwrap());
            python.restore(&from_rust).unwrap();
            rust.restore(&from_python).unwrap();
        }
    }
    let (a, b) = (
        rust.on_tick(i64::MAX).unwrap(),
        python.on_tick(i64::MAX).unwrap(),
    );
    assert!(!a.is_empty());
    let values = |r: &[weir::plugin::Record]| -> Vec<String> {
        r.iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    };
    assert_eq!(values(&a), values(&b));
}

#[test]
fn javascript_log_extract_gives_the_rust_plugins_fields() {
    let (engine, _cache) = common::engine();
    let mut rust = common::start_default(&engine, common::reference("log-extract"), "{}");
    let mut js = common::start_default(&engine, common::reference("log-extract-js"), "{}");
    assert_eq!(js.info().name, "log-extract");
    let lines = weir::sample::logs(3000, 9, 1_546_300_800_000, 5.0);
    let mut failed = 0;
    for chunk in texts(&lines).chunks(500) {
        let batch = common::records(chunk);
        let a = rust.process(&batch, 0).unwrap();
        let b = js.process(&batch, 0).unwrap();
        // Rust's serde_json writes nested objects with sorted keys and floats
        // with a ".0"; compare values, not spellings.
        assert_eq!(common::json(&a.outputs), common::json(&b.outputs));
        let reasons = |r: &BatchResult| -> Vec<(u32, bool)> {
            r.failures
                .iter()
                .map(|f| {
                    (
                        f.index,
                        f.reason.starts_with("record is not a JSON object: "),
                    )
                })
                .collect()
        };
        assert_eq!(reasons(&a), reasons(&b));
        failed += a.failures.len();
    }
    assert_eq!(failed, common::defects(&lines).len());
    let config = r#"{"fields":[{"name":"host","from":["resources.host.name"]},{"name":"trace","from":["attributes.trace"],"required":true}]}"#;
    let mut rust = common::start_default(&engine, common::reference("log-extract"), config);
    let mut js = common::start_default(&engine, common::reference("log-extract-js"), config);
    let batch = common::records(&texts(&lines[..50]));
    let (a, b) = (
        rust.process(&batch, 0).unwrap(),
        js.process(&batch, 0).unwrap(),
    );
    assert_same_results(&a, &b, "record is not a JSON object: ", 0);
}

#[test]
fn a_python_plugin_over_its_memory_cap_is_refused_naming_the_cap_and_the_key() {
    let (engine, _cache) = common::engine();
    let limits = PluginLimits {
        max_memory: 8 << 20,
        ..PluginLimits::default()
    };
    let spec = weir::plugin::PluginSpec {
        name: "taxi-py".into(),
        path: common::reference("taxi-enrich-py"),
        published: None,
        config_json: "{}".into(),
        limits,
        read_only_dirs: Vec::new(),
    };
    let error = engine.start(&spec).expect_err("8 MiB cannot hold CPython");
    let text = error.to_string();
    assert!(text.contains("memory cap of 8 MiB"), "{text}");
    assert!(
        text.contains("raise [plugins.taxi-py] max-memory"),
        "{text}"
    );
    // The default cap fits CPython with room for batches.
    common::start_default(&engine, common::reference("taxi-enrich-py"), "{}");
}

#[test]
fn a_looping_or_hoarding_python_plugin_is_stopped_by_the_cpu_and_memory_caps() {
    let (engine, _cache) = common::engine();
    let limits = PluginLimits {
        max_batch_time: std::time::Duration::from_millis(300),
        max_memory: 64 << 20,
        recycle_memory: 0,
    };
    let probe = common::wasm("tests/fixtures/dist/python-probe.wasm");
    for (attempt, cap) in [
        (r#"{"try":"spin"}"#, "max-batch-time 300 ms"),
        (
            r#"{"try":"alloc","arg":"200000000"}"#,
            "memory cap of 64 MiB",
        ),
    ] {
        let mut plugin = common::start(&engine, probe.clone(), "{}", limits);
        let error = plugin
            .process(&common::records(&[attempt]), 0)
            .expect_err("the cap stops the call");
        assert!(error.to_string().contains(cap), "{attempt}: {error}");
        assert!(
            plugin.is_poisoned(),
            "a trapped instance is never called again"
        );
    }
}

/// Runs `weir` with the toolchains on PATH (scripts/test.sh puts them there).
fn weir(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "weir {args:?} failed:\n{text}");
    text
}

/// `weir plugin build` of the project `name` in `dir` into `dir/dist`, then
/// `weir plugin test` of it on `dir/in.ndjson`; returns what the test printed.
fn build_and_test(dir: &Path, name: &str) -> String {
    let placed = weir(&["plugin", "build", name, "--out", "dist"], dir);
    assert!(placed.contains(&format!("dist/{name}.wasm")), "{placed}");
    let cache = dir.join("cache").display().to_string();
    let wasm = format!("dist/{name}.wasm");
    weir(
        &[
            "plugin",
            "test",
            &wasm,
            "--input",
            "in.ndjson",
            "--cache-dir",
            &cache,
        ],
        dir,
    )
}

/// Replaces `from` (which must be there) by `to` in a file.
fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// `weir plugin new` → `weir plugin build` → `weir plugin test` for one
/// language: the template's transform upper-cases `message`.
fn template_builds_and_runs(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("shout-{lang}");
    weir(&["plugin", "new", &name, "--lang", lang], dir.path());
    std::fs::write(
        dir.path().join("in.ndjson"),
        "{\"message\":\"hello\"}\n{\"other\":1}\n",
    )
    .unwrap();
    let out = build_and_test(dir.path(), &name);
    assert!(out.contains("HELLO"), "{out}");
    assert!(out.contains("message is missing"), "{out}");
}

#[test]
fn a_python_template_builds_and_runs() {
    template_builds_and_runs("python");
}

#[test]
fn a_javascript_template_builds_and_runs() {
    template_builds_and_runs("js");
}

#[test]
fn a_rust_template_builds_and_runs() {
    template_builds_and_runs("rust");
}

#[test]
fn a_python_plugin_cannot_read_host_files_env_network_or_the_clock_but_has_its_stdlib() {
    let (engine, _cache) = common::engine();
    let mut probe = common::start_default(
        &engine,
        common::wasm("tests/fixtures/dist/python-probe.wasm"),
        "{}",
    );
    // A variable every process of this test run has, and a file every host has.
    let home = std::env::var("HOME").expect("HOME is set");
    let root = common::root().display().to_string();
    let list_root = format!(r#"{{"try":"list","arg":"{root}"}}"#);
    let tries = [
        r#"{"try":"read","arg":"/etc/passwd"}"#,
        &list_root,
        r#"{"try":"list","arg":"/"}"#,
        r#"{"try":"env","arg":"HOME"}"#,
        r#"{"try":"connect","arg":"127.0.0.1:5432"}"#,
        r#"{"try":"clock"}"#,
        r#"{"try":"strptime","arg":"2019-01-01 00:46:40"}"#,
        r#"{"try":"encode","arg":"é"}"#,
    ];
    let out = probe.process(&common::records(&tries), 0).unwrap();
    let answers = common::json(&out.outputs);
    let by_try =
        |what: &str| -> &serde_json::Value { answers.iter().find(|a| a["try"] == what).unwrap() };
    for (what, answer) in [("read", by_try("read")), ("connect", by_try("connect"))] {
        assert_eq!(answer["ok"], false, "{what} must be refused: {answer}");
    }
    let listed: Vec<&serde_json::Value> = answers.iter().filter(|a| a["try"] == "list").collect();
    for answer in listed {
        // No directory is preopened: nothing of the host is visible.
        assert!(
            answer["ok"] == false || answer["got"] == "listed 0 entries",
            "{answer}"
        );
    }
    let env = by_try("env")["got"].as_str().unwrap_or_default();
    assert!(!env.contains(&home), "the host's HOME leaked: {env}");
    assert!(env.ends_with("0 variables"), "{env}");
    // The only clock is the one the host passes in: WASI's is stopped at the epoch.
    let clock = by_try("clock")["got"].as_str().unwrap_or_default();
    assert!(clock.starts_with("time.time() = 0"), "{clock}");
    // What the standard library loads lazily is in the component anyway.
    assert_eq!(by_try("strptime")["got"], "2019-01-01T00:46:40");
    assert_eq!(by_try("encode")["got"], "e900");
}

/// Runs a command in `dir`; panics with its output when it fails.
fn sh(program: &str, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A folder with the input file `build_and_test` reads.
fn dependency_test_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.ndjson"), "{\"message\":\"42\"}\n").unwrap();
    dir
}

#[test]
fn listed_python_dependencies_are_bundled_and_native_ones_refused_by_name() {
    let dir = dependency_test_folder();
    // A pure-Python package from PyPI goes into the component.
    weir(&["plugin", "new", "py-dep", "--lang", "python"], dir.path());
    let project = dir.path().join("py-dep");
    let pyproject = project.join("pyproject.toml");
    rewrite(
        &pyproject,
        "dependencies = []",
        "dependencies = [\"six==1.16.0\"]",
    );
    let module = project.join("py_dep.py");
    rewrite(
        &module,
        "import weir_sdk\n",
        "import six\nimport weir_sdk\n",
    );
    rewrite(
        &module,
        ".upper()",
        ".upper() + \" six \" + six.__version__",
    );
    let out = build_and_test(dir.path(), "py-dep");
    assert!(out.contains("42 six 1.16.0"), "{out}");

    // One with native code cannot run inside a component: refused by name.
    rewrite(&pyproject, "six==1.16.0", "PyYAML==6.0.2");
    let refused = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["plugin", "build", "py-dep", "--out", "dist"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("yaml") && text.contains("contains native code"),
        "{text}"
    );
}

#[test]
fn listed_npm_dependencies_are_bundled() {
    let dir = dependency_test_folder();
    weir(&["plugin", "new", "js-dep", "--lang", "js"], dir.path());
    let project = dir.path().join("js-dep");
    rewrite(
        &project.join("package.json"),
        "\"devDependencies\"",
        "\"dependencies\": { \"is-number\": \"7.0.0\" },\n  \"devDependencies\"",
    );
    sh(
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            "--silent",
        ],
        &project,
    );
    let transform = project.join("src/transform.js");
    rewrite(
        &transform,
        "import { Invalid",
        "import isNumber from \"is-number\";\nimport { Invalid",
    );
    rewrite(
        &transform,
        ".toUpperCase();",
        ".toUpperCase() + ` number ${isNumber(doc[field])}`;",
    );
    let out = build_and_test(dir.path(), "js-dep");
    assert!(out.contains("42 number true"), "{out}");
}

/// Runs generated taxi trips, file → plugin → NDJSON, and returns the
/// output lines and the run's summary.
async fn taxi_file_run(
    wasm: &Path,
    plugin_settings: &str,
) -> (Vec<String>, weir::pipeline::Summary) {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = weir::sample::taxi(30_000, 3, 2.0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n") + "\n").unwrap();
    let text = common::pipeline_toml(
        wasm,
        "{}",
        1024,
        "{ type = \"file\", path = \"in.ndjson\" }",
        "{ type = \"ndjson\", path = \"out.ndjson\" }",
    )
    .replace(
        "[pipelines.p]",
        &format!("{plugin_settings}\n[pipelines.p]"),
    );
    let summary = common::try_run_pipeline(&text, dir.path()).await.unwrap();
    let out = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    (out.lines().map(str::to_owned).collect(), summary)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_instance_past_recycle_memory_is_replaced_between_batches_with_nothing_lost() {
    // componentize-py 0.25 keeps the memory of each call's results, so the
    // instance grows by about its output bytes per batch: with a low
    // threshold it is recycled several times.
    let python = common::reference("taxi-enrich-py");
    let (recycled, summary) = taxi_file_run(&python, "recycle-memory = \"20MiB\"").await;
    assert!(summary.recycles >= 2, "{summary:?}");
    let (rust, summary) = taxi_file_run(&common::reference("taxi-enrich"), "").await;
    assert_eq!(summary.recycles, 0, "the Rust instance stays small");
    assert!(rust.len() > 29_000, "{}", rust.len());
    assert_eq!(recycled, rust, "every output once, the same bytes");
}

//! The sandbox and the limits: a plugin cannot reach files, environment or
//! the clock; a looping or memory-hungry plugin is stopped cleanly; a
//! trapped instance is never reused; the host keeps serving other plugins.

mod common;

use common::*;
use std::time::{Duration, Instant};
use weir::plugin::cache::Origin;
use weir::plugin::{Error, PluginLimits, TrapKind};

fn hostile_with(config: &str, limits: PluginLimits) -> weir::plugin::Plugin {
    let (engine, _cache) = engine();
    start(&engine, hostile(), config, limits)
}

fn only_output(plugin: &mut weir::plugin::Plugin) -> String {
    let result = plugin.process(&records(&["x"]), 0).expect("call succeeds");
    assert_eq!(result.outputs.len(), 1);
    String::from_utf8(result.outputs[0].value.clone()).unwrap()
}

#[test]
fn plugin_cannot_read_a_host_file_through_wasi() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let config = serde_json::json!({"mode": "read-file", "path": secret}).to_string();
    let mut plugin = hostile_with(&config, PluginLimits::default());
    let seen = only_output(&mut plugin);
    assert!(seen.starts_with("read failed:"), "{seen}");
    assert!(!seen.contains("top secret"));
    let mut root = hostile_with(
        r#"{"mode":"read-file","path":"/etc/passwd"}"#,
        PluginLimits::default(),
    );
    assert!(only_output(&mut root).starts_with("read failed:"));
}

#[test]
fn a_granted_folder_is_readable_and_nothing_else_nor_writable() {
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("zones.csv"), "1,Newark").unwrap();
    let (engine, _cache) = engine();
    let plugin = |config: serde_json::Value| {
        let spec = weir::plugin::PluginSpec {
            name: "granted".into(),
            path: hostile(),
            published: None,
            config_json: config.to_string(),
            limits: PluginLimits::default(),
            read_only_dirs: vec![("/ref".into(), granted.path().to_owned())],
        };
        engine.start(&spec).unwrap()
    };
    let mut read = plugin(serde_json::json!({"mode": "read-file", "path": "/ref/zones.csv"}));
    assert_eq!(only_output(&mut read), "read ok: 1,Newark");
    let mut write = plugin(serde_json::json!({"mode": "write-file", "path": "/ref/new.txt"}));
    assert!(only_output(&mut write).starts_with("write failed:"));
    assert!(!granted.path().join("new.txt").exists());
    let mut outside = plugin(serde_json::json!({"mode": "read-file", "path": "/etc/hostname"}));
    assert!(only_output(&mut outside).starts_with("read failed:"));
    let mut escape =
        plugin(serde_json::json!({"mode": "read-file", "path": "/ref/../../etc/hostname"}));
    assert!(only_output(&mut escape).starts_with("read failed:"));
}

#[test]
fn plugin_cannot_open_a_network_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = serde_json::json!({"mode": "connect", "name": address}).to_string();
    let mut plugin = hostile_with(&config, PluginLimits::default());
    let seen = only_output(&mut plugin);
    assert!(seen.starts_with("connect failed:"), "{seen}");
    assert!(listener.accept().is_err(), "nobody connected");
}

#[test]
fn plugin_cannot_read_the_host_environment() {
    let name = ["PATH", "HOME", "CARGO_MANIFEST_DIR"]
        .into_iter()
        .find(|n| std::env::var_os(n).is_some())
        .expect("the test process has some environment");
    let config = serde_json::json!({"mode": "read-env", "name": name}).to_string();
    let mut plugin = hostile_with(&config, PluginLimits::default());
    let seen = only_output(&mut plugin);
    assert!(seen.starts_with("env failed:"), "{seen}");
    assert!(seen.ends_with("vars visible: 0"), "{seen}");
}

#[test]
fn plugin_clock_is_stopped_at_the_epoch() {
    let mut plugin = hostile_with(r#"{"mode":"clock"}"#, PluginLimits::default());
    assert_eq!(only_output(&mut plugin), "clock 0");
}

#[test]
fn looping_plugin_is_interrupted_at_its_deadline_and_never_reused() {
    let limits = PluginLimits {
        max_batch_time: Duration::from_millis(200),
        ..PluginLimits::default()
    };
    let mut plugin = hostile_with(r#"{"mode":"spin"}"#, limits);
    let started = Instant::now();
    let error = plugin.process(&records(&["x"]), 0).unwrap_err();
    // Proves the call returned at all (no hang); the bound is generous on purpose.
    assert!(started.elapsed() < Duration::from_secs(30));
    match &error {
        Error::Trap {
            kind,
            export,
            reason,
            ..
        } => {
            assert_eq!(*kind, TrapKind::Deadline);
            assert_eq!(*export, "process");
            assert!(reason.contains("max-batch-time 200 ms"), "{reason}");
        }
        other => panic!("expected a deadline trap, got {other}"),
    }
    assert!(plugin.is_poisoned());
    let again = plugin.process(&records(&["x"]), 0).unwrap_err();
    assert!(matches!(again, Error::Poisoned { .. }), "{again}");
}

#[test]
fn memory_hungry_plugin_fails_cleanly_at_its_cap() {
    let limits = PluginLimits {
        max_memory: 32 << 20,
        ..PluginLimits::default()
    };
    let mut plugin = hostile_with(r#"{"mode":"hog"}"#, limits);
    let error = plugin.process(&records(&["x"]), 0).unwrap_err();
    match &error {
        Error::Trap { kind, reason, .. } => {
            assert_eq!(*kind, TrapKind::Memory, "{reason}");
            assert!(reason.contains("memory cap of 32 MiB"), "{reason}");
        }
        other => panic!("expected a memory trap, got {other}"),
    }
    assert!(plugin.is_poisoned());
}

#[test]
fn host_keeps_serving_other_plugins_after_traps() {
    let (engine, _cache) = engine();
    let mut healthy = start(
        &engine,
        reference("taxi-enrich"),
        "{}",
        PluginLimits::default(),
    );
    let mut echo = start(
        &engine,
        hostile(),
        r#"{"mode":"echo"}"#,
        PluginLimits::default(),
    );
    let trip = r#"{"tpep_pickup_datetime":"2019-01-01 00:00:00","tpep_dropoff_datetime":"2019-01-01 00:30:00","trip_distance":5,"fare_amount":20}"#;
    let short = PluginLimits {
        max_batch_time: Duration::from_millis(100),
        max_memory: 16 << 20,
        recycle_memory: 0,
    };
    for mode in ["spin", "hog", "panic"] {
        let mut bad = start(
            &engine,
            hostile(),
            &format!(r#"{{"mode":"{mode}"}}"#),
            short,
        );
        let error = bad.process(&records(&["boom"]), 0).unwrap_err();
        assert!(matches!(error, Error::Trap { .. }), "{mode}: {error}");
        let ok = healthy.process(&records(&[trip]), 0).unwrap();
        assert_eq!(ok.outputs.len(), 1, "taxi-enrich still works after {mode}");
        assert_eq!(
            echo.process(&records(&["a", "b"]), 0)
                .unwrap()
                .outputs
                .len(),
            2
        );
    }
    let panicked = start(&engine, hostile(), r#"{"mode":"panic"}"#, short)
        .process(&records(&["boom"]), 0)
        .unwrap_err();
    assert!(
        matches!(
            panicked,
            Error::Trap {
                kind: TrapKind::Fault,
                ..
            }
        ),
        "{panicked}"
    );
}

#[test]
fn second_load_comes_from_the_compiled_cache() {
    let (engine, cache) = engine();
    let first = engine.load(&reference("taxi-enrich")).unwrap();
    assert_eq!(first.origin, Origin::Compiled);
    let second = engine.load(&reference("taxi-enrich")).unwrap();
    assert_eq!(second.origin, Origin::Cached);
    assert_eq!(first.hash, second.hash);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

#[test]
fn garbage_and_missing_files_are_refused_with_a_hint() {
    let (engine, _cache) = engine();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let error = engine.load(&garbage).unwrap_err();
    assert!(matches!(error, Error::Compile { .. }), "{error}");
    assert!(
        error.to_string().contains("cargo component build"),
        "{error}"
    );
    let missing = engine.load(&dir.path().join("nope.wasm")).unwrap_err();
    assert!(matches!(missing, Error::Read { .. }), "{missing}");
}

#[test]
fn init_refusing_its_config_is_reported_with_the_plugin_name() {
    let (engine, _cache) = engine();
    let spec = weir::plugin::PluginSpec {
        name: "taxi".into(),
        path: reference("taxi-enrich"),
        published: None,
        config_json: r#"{"max-sped-mph": 3}"#.into(),
        limits: PluginLimits::default(),
        read_only_dirs: Vec::new(),
    };
    let error = engine.start(&spec).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Init { .. }), "{text}");
    assert!(
        text.contains("plugins.taxi.config") && text.contains("max-sped-mph"),
        "{text}"
    );
}

/// Collects formatted log lines in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn guest_stdout_stderr_and_log_calls_become_log_events_tagged_with_the_plugin() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let (engine, _cache) = engine();
        let spec = weir::plugin::PluginSpec {
            name: "noisy".into(),
            path: hostile(),
            published: None,
            config_json: r#"{"mode":"chatty"}"#.into(),
            limits: PluginLimits::default(),
            read_only_dirs: Vec::new(),
        };
        let mut plugin = engine.start(&spec).unwrap();
        let out = plugin.process(&records(&["x"]), 0).unwrap();
        assert_eq!(out.outputs.len(), 1);
        drop(plugin);
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let stdout = line("hello from stdout");
    assert!(
        stdout.contains("INFO")
            && stdout.contains("plugin=\"noisy\"")
            && stdout.contains("stream=\"stdout\""),
        "{stdout}"
    );
    let stderr = line("hello from stderr");
    assert!(
        stderr.contains("WARN") && stderr.contains("stream=\"stderr\""),
        "{stderr}"
    );
    let logged = line("hello from the log import");
    assert!(
        logged.contains("WARN") && logged.contains("plugin=\"noisy\""),
        "{logged}"
    );
}

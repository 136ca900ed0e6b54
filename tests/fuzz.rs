//! Property-based fuzzing (proptest) of what the host reads from untrusted
//! bytes: the configuration loader and the object-store record decoders
//! (NDJSON, CSV, Parquet). Neither may panic, whatever the input. (The
//! reference plugins' logic is fuzzed in each plugin crate's
//! `tests/fuzz.rs`, with `weir_plugin_kit::fuzz`.)
//!
//! CI runs `WEIR_FUZZ_CASES` cases per target (default 256, seconds); run
//! longer by hand, e.g. `WEIR_FUZZ_CASES=100000 cargo test -p weir --test
//! fuzz --release`. A failing input is shrunk and saved by proptest under
//! `host/proptest-regressions/`; keep it there as a regression test.

mod common;

use proptest::prelude::*;
use std::path::Path;
use weir_plugin_kit::fuzz;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: fuzz::cases(),
        ..ProptestConfig::default()
    }
}

/// A valid configuration to mutate.
const CONFIG: &str = r#"
[engine]
cache-dir = ".weir/cache"

[plugins.taxi-enrich]
path = "plugins/dist/taxi-enrich.wasm"
max-batch-time = "2s"
max-memory = "64MiB"
swap = "canary"
config = { max-speed-mph = 80 }

[pipelines.p]
plugins = ["taxi-enrich"]
batch-size = 512
checkpoint-interval = "${INTERVAL:-1s}"
source = { type = "kafka", brokers = "localhost:9092", topics = ["t"], group = "g" }
sink = { type = "postgres", url = "postgres://u:${PW}@h/db", table = "t", columns = [{ name = "a", type = "bigint" }] }
"#;

/// Text mutations of `base` (bytes replaced, inserted, deleted).
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    fuzz::mutated(base).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn env(name: &str) -> Option<String> {
    (name == "PW").then(|| "secret".to_owned())
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn the_config_loader_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = weir::config::Config::parse(&text, Path::new("."), &env);
    }

    #[test]
    fn the_config_loader_never_panics_on_a_mutated_valid_config(text in mutated(CONFIG)) {
        if let Err(problems) = weir::config::Config::parse(&text, Path::new("."), &env) {
            // A refusal always says what is wrong.
            prop_assert!(problems.iter().all(|p| !p.message.is_empty()));
        }
    }

    #[test]
    fn the_object_store_decoders_never_panic_on_arbitrary_files(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            // A real Parquet file, truncated or with bytes flipped.
            (any::<usize>(), proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4))
                .prop_map(|(cut, flips)| {
                    let mut bytes = parquet_sample().clone();
                    for (at, byte) in flips {
                        let at = at % bytes.len();
                        bytes[at] = byte;
                    }
                    bytes.truncate(cut % (bytes.len() + 1));
                    bytes
                }),
        ],
        extension in prop_oneof![Just("csv"), Just("ndjson"), Just("parquet")],
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("x.{extension}")), &bytes).unwrap();
        runtime().block_on(async {
            use weir::source::Source;
            let config: weir::source::object::ObjectStoreConfig =
                toml::from_str(&format!("url = {:?}", dir.path().display().to_string())).unwrap();
            let Ok(mut source) = weir::source::object::ObjectSource::open(&config, dir.path()).await else {
                return;
            };
            // Until the end or an error, a bounded number of batches.
            for _ in 0..10_000 {
                match source.next_batch(64).await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        });
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A small valid Parquet file of taxi rows, made once.
fn parquet_sample() -> &'static Vec<u8> {
    static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SAMPLE.get_or_init(|| runtime().block_on(common::taxi_parquet(50)))
}

//! Property-based fuzzing of a transform's logic, run natively in the
//! plugin's own tests (`features = ["fuzz"]` on the dev-dependency): any
//! bytes, and valid samples with bytes replaced, inserted and deleted.
//!
//! `WEIR_FUZZ_CASES` sets the cases per target (default 256: seconds in CI).

use crate::{Record, Transform};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Byte-level mutations of `base`: replace, insert and delete at random
/// places.
pub fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..12).prop_map(move |edits| {
        let mut bytes = base.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    })
}

/// Cases per target: `WEIR_FUZZ_CASES`, default 256.
pub fn cases() -> u32 {
    std::env::var("WEIR_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// Feeds `T` (configured with `config`) batches of arbitrary records and
/// mutations of `sample`: it must not panic, must report each failed index
/// once and only indices of its batch, and, when `one_to_one`, must emit or
/// fail every record exactly once.
pub fn check_transform<T: Transform>(config: &str, sample: &'static str, one_to_one: bool) {
    let record = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        mutated(sample)
    ];
    let batches = proptest::collection::vec(record, 0..20);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    runner
        .run(&batches, |values| {
            let n = values.len();
            let batch: Vec<Record> = values
                .into_iter()
                .map(|value| Record {
                    key: None,
                    value,
                    timestamp_ms: 0,
                    headers: vec![],
                })
                .collect();
            let mut transform = T::new(config).expect("the config is valid");
            let result = transform.process(batch, 0);
            let _ = transform.on_tick(i64::MAX);
            let state = transform.snapshot();
            let mut fresh = T::new(config).expect("the config is valid");
            prop_assert!(fresh.restore(&state).is_ok(), "its own snapshot restores");
            let mut indices: Vec<u32> = result.failures.iter().map(|f| f.index).collect();
            indices.sort_unstable();
            indices.dedup();
            prop_assert_eq!(indices.len(), result.failures.len());
            prop_assert!(indices.iter().all(|i| (*i as usize) < n));
            prop_assert!(result.failures.iter().all(|f| !f.reason.is_empty()));
            if one_to_one {
                prop_assert_eq!(result.outputs.len() + result.failures.len(), n);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{} failed: {e}", T::info().name));
}

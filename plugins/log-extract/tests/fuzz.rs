//! log-extract on arbitrary and mutated records: no panic, every record
//! accounted for (see `weir_plugin_kit::fuzz`).

#[test]
fn arbitrary_and_mutated_records_never_panic_and_are_accounted_for() {
    weir_plugin_kit::fuzz::check_transform::<log_extract::LogExtract>(
        r#"{}"#,
        r#"{"timestamp":"2019-01-01T00:00:00Z","level":"info","body":"{\"data\":{\"mobile\":\"123\"}}","attributes":{"mobile":"456"}}"#,
        true,
    );
}

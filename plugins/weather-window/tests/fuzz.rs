//! weather-window on arbitrary and mutated records: no panic, every record
//! accounted for (see `weir_plugin_kit::fuzz`).

#[test]
fn arbitrary_and_mutated_records_never_panic_and_are_accounted_for() {
    weir_plugin_kit::fuzz::check_transform::<weather_window::WeatherWindow>(
        r#"{"time": "event"}"#,
        r#"{"city":"Oslo","timestamp":"2019-01-01T00:00:10Z","temperature":3.5,"humidity":80}"#,
        false,
    );
}

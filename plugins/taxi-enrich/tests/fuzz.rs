//! taxi-enrich on arbitrary and mutated records: no panic, every record
//! accounted for (see `weir_plugin_kit::fuzz`).

#[test]
fn arbitrary_and_mutated_records_never_panic_and_are_accounted_for() {
    weir_plugin_kit::fuzz::check_transform::<taxi_enrich::TaxiEnrich>(
        r#"{}"#,
        r#"{"tpep_pickup_datetime":"2019-01-01 00:00:00","tpep_dropoff_datetime":"2019-01-01 00:10:00","trip_distance":2.5,"fare_amount":9.5,"tip_amount":1.0,"total_amount":11.3}"#,
        true,
    );
}

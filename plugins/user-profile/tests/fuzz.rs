//! user-profile on arbitrary and mutated records: no panic, every record
//! accounted for (see `weir_plugin_kit::fuzz`).

#[test]
fn arbitrary_and_mutated_records_never_panic_and_are_accounted_for() {
    weir_plugin_kit::fuzz::check_transform::<user_profile::UserProfile>(
        r#"{}"#,
        r#"{"user_id":7,"name":"Ada","email":"ada@example.com","created_at":"2019-01-01T00:00:00Z"}"#,
        false,
    );
}

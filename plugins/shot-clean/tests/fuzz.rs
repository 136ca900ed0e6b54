//! shot-clean on arbitrary and mutated records: no panic, every record
//! accounted for (see `weir_plugin_kit::fuzz`).

#[test]
fn arbitrary_and_mutated_records_never_panic_and_are_accounted_for() {
    weir_plugin_kit::fuzz::check_transform::<shot_clean::ShotClean>(
        r#"{}"#,
        r#"{"shot_id":"0022300001-0001","game_id":"0022300001","game_date":"2023-10-24","season":"2023-24","team":"BOS","opponent":"MIA","player_id":1626037,"player":"Jalen Brown","period":1,"clock":"11:42","x":-22.4,"y":3.1,"made":true,"shot_type":"3PT Field Goal","action":"Jump Shot"}"#,
        true,
    );
}

//! The three reference plugins, as built `.wasm` components loaded through
//! the host, checked field by field against values the tests compute
//! themselves from the input (never copied from a plugin's output).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use weir::plugin::PluginLimits;
use weir::sample;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Minutes since 2019-01-01 00:00 of a TLC timestamp in January or
/// February 2019, computed without any date library.
fn minutes_2019(text: &str) -> f64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<f64>().unwrap();
    let day = n(8..10) + if &text[5..7] == "02" { 31.0 } else { 0.0 };
    (day - 1.0) * 1440.0 + n(11..13) * 60.0 + n(14..16) + n(17..19) / 60.0
}

#[test]
fn taxi_enrich_metrics_match_an_independent_computation_and_failures_match_the_defects() {
    let (engine, _cache) = engine();
    let mut plugin = start_default(&engine, reference("taxi-enrich"), "{}");
    let lines = sample::taxi(3000, 9, 3.0);
    let input: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let mut outputs = Vec::new();
    let mut failures = BTreeMap::new();
    for (c, chunk) in input.chunks(500).enumerate() {
        let result = plugin.process(&records(chunk), 0).unwrap();
        outputs.extend(json(&result.outputs));
        for f in result.failures {
            failures.insert(c * 500 + f.index as usize, f.reason);
        }
    }
    let expected_failures: BTreeMap<usize, &str> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.defect.map(|d| (i, d)))
        .collect();
    assert!(
        expected_failures.len() > 50,
        "the sample should carry defects"
    );
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        expected_failures.keys().collect::<Vec<_>>()
    );
    for (i, defect) in &expected_failures {
        let needle = match *defect {
            "dropoff-before-pickup" => "not after",
            "zero-distance" => "not positive",
            "negative-fare" => "negative",
            "unparseable-timestamp" => "unparseable timestamp",
            "impossible-speed" => "max-speed-mph",
            "truncated-json" => "invalid JSON",
            other => panic!("unknown defect {other}"),
        };
        assert!(
            failures[i].contains(needle),
            "line {i} ({defect}): {}",
            failures[i]
        );
    }

    let valid = valid_json(&lines);
    assert_eq!(outputs.len(), valid.len());
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    for (input, out) in valid.iter().zip(&outputs) {
        for (k, v) in input.as_object().unwrap() {
            assert_eq!(&out[k], v, "input field {k} must pass through unchanged");
        }
        let pickup = input["tpep_pickup_datetime"].as_str().unwrap();
        let dropoff = input["tpep_dropoff_datetime"].as_str().unwrap();
        let minutes = minutes_2019(dropoff) - minutes_2019(pickup);
        let distance = input["trip_distance"].as_f64().unwrap();
        let fare = input["fare_amount"].as_f64().unwrap();
        let tip = input["tip_amount"].as_f64().unwrap();
        assert!(
            close(out["trip_duration_min"].as_f64().unwrap(), minutes),
            "{out}"
        );
        assert!(
            close(
                out["avg_speed_mph"].as_f64().unwrap(),
                distance / (minutes / 60.0)
            ),
            "{out}"
        );
        assert!(
            close(out["fare_per_mile"].as_f64().unwrap(), fare / distance),
            "{out}"
        );
        if fare > 0.0 {
            assert!(
                close(out["tip_pct"].as_f64().unwrap(), tip / fare * 100.0),
                "{out}"
            );
        } else {
            assert_eq!(out["tip_pct"], Value::Null);
        }
        assert_eq!(
            out["pickup_hour"].as_f64().unwrap(),
            pickup[11..13].parse::<f64>().unwrap()
        );
        // 2019-01-01 was a Tuesday.
        let day: usize = pickup[8..10].parse().unwrap();
        assert_eq!(out["pickup_day_of_week"], DAYS[day % 7]);
        let category = if distance < 2.0 {
            "short"
        } else if distance < 10.0 {
            "medium"
        } else {
            "long"
        };
        assert_eq!(out["trip_category"], category);
        assert_eq!(
            out["pickup_at"],
            format!("{}T{}Z", &pickup[..10], &pickup[11..])
        );
    }
}

#[test]
fn taxi_enrich_reads_rfc3339_offsets_and_epoch_millis() {
    let (engine, _cache) = engine();
    let mut plugin = start_default(
        &engine,
        reference("taxi-enrich"),
        r#"{"long-trip-miles": 5}"#,
    );
    // 22:50 at UTC-05:00 is 03:50Z the next day; drop-off 45 minutes later as epoch ms.
    let pickup_ms: i64 = 1_546_660_200_000; // 2019-01-05T03:50:00Z
    let trip = format!(
        r#"{{"tpep_pickup_datetime":"2019-01-04T22:50:00-05:00","tpep_dropoff_datetime":{},"trip_distance":9,"fare_amount":30,"tip_amount":6}}"#,
        pickup_ms + 45 * 60_000
    );
    let result = plugin.process(&records(&[trip]), 0).unwrap();
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    let out = &json(&result.outputs)[0];
    assert_eq!(out["trip_duration_min"], 45.0);
    assert_eq!(out["avg_speed_mph"], 12.0);
    assert_eq!(out["fare_per_mile"], 30.0 / 9.0);
    assert_eq!(out["tip_pct"], 20.0);
    assert_eq!(out["pickup_hour"], 22.0, "hour on the writer's wall clock");
    assert_eq!(out["pickup_day_of_week"], "Friday");
    assert_eq!(out["pickup_at"], "2019-01-05T03:50:00Z");
    assert_eq!(
        out["trip_category"], "long",
        "long-trip-miles comes from the config"
    );
}

#[test]
fn weather_window_averages_match_a_reference_computed_from_the_input() {
    let (engine, _cache) = engine();
    let config = r#"{"time":"event","window":"60s","watermark-delay":"5s"}"#;
    let mut plugin = start_default(&engine, reference("weather-window"), config);
    let start_ms = 1_546_300_800_000;
    let lines = sample::weather(1500, 5, start_ms, 997, 2.0);
    let mut expected: BTreeMap<(i64, String), (u64, f64, f64, f64)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.defect.is_none()) {
        let v: Value = serde_json::from_str(&line.text).unwrap();
        let t = v["temperature"].as_f64().unwrap();
        let i = i as i64;
        let window = (start_ms + i * 997) / 60_000 * 60_000;
        let e = expected
            .entry((window, v["city"].as_str().unwrap().to_owned()))
            .or_insert((0, 0.0, f64::MAX, f64::MIN));
        e.0 += 1;
        e.1 += t;
        e.2 = e.2.min(t);
        e.3 = e.3.max(t);
    }
    let (mut outputs, failed) = run_lines(&mut plugin, &lines, 100);
    outputs.extend(json(&plugin.on_tick(i64::MAX).unwrap()));
    assert_eq!(failed, defects(&lines));
    assert_eq!(
        outputs.len(),
        expected.len(),
        "one output per (window, city)"
    );
    for out in &outputs {
        let start = weir_plugin_kit::time::parse(out["window_start"].as_str().unwrap())
            .unwrap()
            .epoch_ms;
        let key = (start, out["city"].as_str().unwrap().to_owned());
        let (count, sum, min, max) = expected[&key];
        assert_eq!(out["count"], count, "{out}");
        assert!(
            close(out["avg_temperature"].as_f64().unwrap(), sum / count as f64),
            "{out}"
        );
        assert_eq!(out["min_temperature"].as_f64().unwrap(), min);
        assert_eq!(out["max_temperature"].as_f64().unwrap(), max);
        let end = weir_plugin_kit::time::parse(out["window_end"].as_str().unwrap())
            .unwrap()
            .epoch_ms;
        assert_eq!(end - start, 60_000);
    }
}

#[test]
fn weather_window_state_moves_to_a_new_instance_through_snapshot_and_restore() {
    let (engine, _cache) = engine();
    let mut old = start_default(&engine, reference("weather-window"), "{}");
    old.process(&records(&[r#"{"city":"Oslo","temperature":1.5}"#]), 60_000)
        .unwrap();
    let state = old.snapshot().unwrap();
    let mut new = start_default(&engine, reference("weather-window"), "{}");
    new.restore(&state).unwrap();
    new.process(&records(&[r#"{"city":"Oslo","temperature":2.5}"#]), 61_000)
        .unwrap();
    assert!(
        new.on_tick(119_999).unwrap().is_empty(),
        "the window is still open"
    );
    let closed = json(&new.on_tick(120_000).unwrap());
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["count"], 2);
    assert_eq!(closed[0]["avg_temperature"], 2.0);
    let refused = new.restore(b"not a snapshot").unwrap_err();
    assert!(refused.to_string().contains("restore refused"), "{refused}");
}

#[test]
fn log_extract_falls_back_from_body_path_to_attribute_to_default() {
    let (engine, _cache) = engine();
    let config = r#"{"fields":[
        {"name":"service","from":["serviceName"]},
        {"name":"host","from":["resources.host.name"]},
        {"name":"mobile","from":["$.data.mobile","attributes.mobile"],"default":"unknown"}]}"#;
    let mut plugin = start_default(&engine, reference("log-extract"), config);
    let lines = sample::logs(800, 11, 0, 2.0);
    let (outputs, failed) = run_lines(&mut plugin, &lines, lines.len());
    assert_eq!(failed, defects(&lines));
    let valid = valid_json(&lines);
    assert_eq!(outputs.len(), valid.len());
    let mut seen = BTreeMap::new();
    for (input, out) in valid.iter().zip(&outputs) {
        let body: Value = serde_json::from_str(input["body"].as_str().unwrap()).unwrap();
        let (mobile, from) = match (&body["data"]["mobile"], &input["attributes"]["mobile"]) {
            (Value::String(m), _) => (m.clone(), "body"),
            (_, Value::String(m)) => (m.clone(), "attribute"),
            _ => ("unknown".to_owned(), "default"),
        };
        *seen.entry(from).or_insert(0) += 1;
        assert_eq!(out["mobile"], mobile.as_str());
        assert_eq!(out["service"], input["serviceName"]);
        assert_eq!(out["host"], input["resources"]["host.name"]);
        assert_eq!(out.as_object().unwrap().len(), 3);
    }
    assert_eq!(
        seen.len(),
        3,
        "every fallback branch is exercised: {seen:?}"
    );
}

#[test]
fn plugin_built_by_cargo_component_behaves_like_the_wasip2_build() {
    let (engine, _cache) = engine();
    let lines = sample::taxi(1000, 3, 5.0);
    let input: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let mut results = Vec::new();
    for path in [
        reference("taxi-enrich"),
        wasm("plugins/dist/component/taxi-enrich.wasm"),
    ] {
        let mut plugin = start(&engine, path, "{}", PluginLimits::default());
        let r = plugin.process(&records(&input), 0).unwrap();
        results.push((
            r.outputs
                .into_iter()
                .map(|o| String::from_utf8(o.value).unwrap())
                .collect::<Vec<_>>(),
            r.failures.len(),
        ));
    }
    assert!(results[0].1 > 0);
    assert_eq!(results[0], results[1]);
}

fn spec_of(path: std::path::PathBuf) -> weir::plugin::PluginSpec {
    weir::plugin::PluginSpec {
        name: "taxi-enrich".into(),
        path,
        published: None,
        config_json: "{}".into(),
        limits: PluginLimits::default(),
        read_only_dirs: Vec::new(),
    }
}

#[test]
fn plugin_diff_names_the_field_v2_adds_on_every_output_and_finds_the_python_twin_identical() {
    let (engine, _cache) = engine();
    let lines: Vec<Vec<u8>> = sample::taxi(500, 83, 2.0)
        .into_iter()
        .map(|l| l.text.into_bytes())
        .collect();
    let v1 = spec_of(reference("taxi-enrich"));
    let report = weir::diff::diff(
        &engine,
        &v1,
        &spec_of(wasm("tests/fixtures/dist/taxi-enrich-v2.wasm")),
        &lines,
        128,
        3,
    )
    .unwrap();
    assert!(!report.same());
    assert_eq!(report.records, 500);
    assert_eq!(report.old.outputs, report.new.outputs);
    assert_eq!(
        report.differing, report.old.outputs,
        "v2 adds a field to every output"
    );
    assert_eq!(report.failed_differently, 0);
    assert_eq!(report.first.len(), 3);
    assert!(
        report
            .first
            .iter()
            .all(|d| d.fields.len() == 1 && d.fields[0].starts_with("fare_per_minute: - → ")),
        "{report}"
    );
    assert_eq!(report.state, None, "v2 takes v1's state");

    let twin = weir::diff::diff(
        &engine,
        &v1,
        &spec_of(reference("taxi-enrich-py")),
        &lines,
        128,
        3,
    )
    .unwrap();
    assert!(twin.same(), "{twin}");
    assert!(
        // The same inputs fail (the reasons' wording may differ: JSON
        // errors come from each language's parser).
        twin.old.failed > 0 && twin.old.failed == twin.new.failed,
        "{twin}"
    );
}

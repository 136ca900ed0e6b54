//! The seed pipelines end to end on real services: a Kafka-API broker
//! (nisshi), an S3 server (s3s-fs) and PostgreSQL, started by
//! `scripts/services.sh`. Each test runs an example configuration from
//! `examples/` as a `weir run` process, stops it with SIGTERM, and checks
//! the destination's content against values the test computes itself from
//! the generated input.

mod common;
mod services;

use common::root;
use serde_json::Value;
use services::{Running, unique, weir, weir_env};
use sqlx::Row;
use std::collections::BTreeMap;

fn env_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = weir_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn pg_pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&services::pg())
        .await
        .expect("connect to the test PostgreSQL")
}

fn count_label(lines: &[weir::sample::Line], defect: Option<&str>) -> usize {
    lines.iter().filter(|l| l.defect == defect).count()
}

/// Seed 000: Parquet on S3 → (weir) → Kafka → (weir, taxi-enrich) →
/// PostgreSQL. Checks every row's metrics against the input, and that a
/// record that is not JSON, one taxi-enrich refuses, one whose type does
/// not fit its column and one PostgreSQL's CHECK refuses all land in the
/// dead-letter table with their reason while the rest flows.
#[tokio::test(flavor = "multi_thread")]
async fn taxi_example_s3_parquet_through_kafka_to_postgres_with_recomputed_metrics() {
    let bucket = unique("taxi");
    let topic = unique("s3-taxi-trips");
    let table = unique("taxi_trips").replace('-', "_");
    let env = env_with(&[
        ("TAXI_BUCKET", &bucket),
        ("TAXI_TOPIC", &topic),
        ("TAXI_TABLE", &table),
    ]);
    let count = 3000;
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    weir(
        &[
            "gen",
            "taxi",
            "--count",
            &count.to_string(),
            "--seed",
            "7",
            "--format",
            "parquet",
            "--to",
            &format!("s3://{bucket}/trips"),
        ],
        &env,
    );
    weir(
        &[
            "gen",
            "taxi",
            "--count",
            "0",
            "--topic",
            &topic,
            "--brokers",
            &services::kafka(),
            "--partitions",
            "3",
        ],
        &env,
    );
    // Parquet holds JSON objects only: generated lines that are not JSON
    // (a defect on purpose) cannot be written there and never reach S3.
    let lines: Vec<weir::sample::Line> = weir::sample::taxi(count, 7, 2.0)
        .into_iter()
        .filter(|l| serde_json::from_str::<Value>(&l.text).is_ok())
        .collect();
    let count = lines.len();

    // The table exists beforehand with a CHECK that only PostgreSQL knows.
    let pool = pg_pool().await;
    sqlx::query(&format!(
        "CREATE TABLE {table} (vendor_id integer, pickup_at timestamptz, dropoff_at timestamptz,
         passenger_count integer CHECK (passenger_count <= 9), trip_distance double precision,
         pu_location_id integer, do_location_id integer, fare_amount double precision,
         tip_amount double precision, total_amount double precision, trip_duration_min double precision,
         avg_speed_mph double precision, fare_per_mile double precision, tip_pct double precision,
         pickup_hour smallint, pickup_day_of_week text, trip_category text)"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&root().join("examples/taxi.toml"), &env, dir.path());
    run.wait_for_records("taxi-producer", count as u64);
    // Hostile records straight onto the topic, next to the producer's.
    let valid = &lines.iter().find(|l| l.defect.is_none()).unwrap().text;
    let mut crowded: Value = serde_json::from_str(valid).unwrap();
    crowded["passenger_count"] = 42.into();
    let mut wrong_type: Value = serde_json::from_str(valid).unwrap();
    wrong_type["VendorID"] = "two".into();
    let hostile = dir.path().join("hostile.ndjson");
    std::fs::write(
        &hostile,
        format!("this is not json\n{{\"VendorID\":1}}\n{crowded}\n{wrong_type}\n"),
    )
    .unwrap();
    produce_file(&hostile, &topic, &env).await;
    run.wait_for_records("taxi-dashboard", count as u64 + 4);
    let log = run.stop();
    assert!(log.contains("Pipeline finished"), "{log}");

    // Exactly the valid trips, each with metrics recomputed here.
    let expected: Vec<Value> = common::valid_json(&lines);
    let rows = sqlx::query(&format!(
        "SELECT count(*)::bigint AS n, coalesce(sum(total_amount), 0) AS total,
           count(*) FILTER (WHERE abs(trip_duration_min - extract(epoch FROM dropoff_at - pickup_at) / 60) > 0.01) AS bad_duration,
           count(*) FILTER (WHERE abs(avg_speed_mph - trip_distance / (extract(epoch FROM dropoff_at - pickup_at) / 3600)) > 0.01) AS bad_speed,
           count(*) FILTER (WHERE pickup_hour <> extract(hour FROM pickup_at AT TIME ZONE 'UTC')) AS bad_hour
         FROM {table}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let n: i64 = rows.get("n");
    assert_eq!(n as usize, expected.len());
    let total: f64 = rows.get("total");
    let expected_total: f64 = expected
        .iter()
        .map(|v| v["total_amount"].as_f64().unwrap())
        .sum();
    assert!(
        (total - expected_total).abs() < 1e-6,
        "{total} vs {expected_total}"
    );
    for bad in ["bad_duration", "bad_speed", "bad_hour"] {
        assert_eq!(rows.get::<i64, _>(bad), 0, "{bad}");
    }

    // Every refused record is in the dead-letter table, with a reason.
    let dead = sqlx::query(&format!(
        "SELECT reason, stage, source, value FROM {table}_dead_letter"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let reasons: Vec<(String, String, String, Option<String>)> = dead
        .iter()
        .map(|r| {
            (
                r.get("reason"),
                r.get("stage"),
                r.get("source"),
                r.get("value"),
            )
        })
        .collect();
    assert_eq!(
        reasons.len(),
        count_label(&lines, None).abs_diff(count) + 4,
        "{reasons:#?}"
    );
    let find = |needle: &str| {
        reasons
            .iter()
            .find(|r| {
                r.3.as_deref().is_some_and(|v| v.contains(needle)) || r.3.as_deref() == Some(needle)
            })
            .unwrap_or_else(|| panic!("no dead letter for {needle}: {reasons:#?}"))
    };
    let not_json = find("this is not json");
    assert!(not_json.1.starts_with("taxi-enrich@"), "{not_json:?}");
    assert!(
        not_json
            .2
            .starts_with(&format!("kafka topic={topic} partition=")),
        "{not_json:?}"
    );
    let crowded_dead = find("\"passenger_count\":42");
    assert_eq!(crowded_dead.1, "sink");
    assert!(
        crowded_dead.0.contains("refused by PostgreSQL")
            && crowded_dead.0.contains("check constraint"),
        "{crowded_dead:?}"
    );
    let typed = find("\"VendorID\":\"two\"");
    assert!(
        typed.0.contains("column vendor_id (expected an integer)"),
        "{typed:?}"
    );
    check_dashboard(&pool, "taxi_trips_dashboard", &table).await;
    sqlx::query(&format!("DROP TABLE {table}, {table}_dead_letter"))
        .execute(&pool)
        .await
        .unwrap();
}

/// Produces every line of a file to a topic with the sink weir uses.
async fn produce_file(path: &std::path::Path, topic: &str, _env: &[(String, String)]) {
    let text = std::fs::read_to_string(path).unwrap();
    services::produce(topic, text.lines()).await;
}

/// Seed 004: readings on a topic → 60 s windows → PostgreSQL. Every
/// window's count and average equal a reference computed here; invalid
/// readings reach the dead-letter topic with their reason header.
#[tokio::test(flavor = "multi_thread")]
async fn weather_example_windows_in_postgres_equal_a_reference_computed_from_the_input() {
    let topic = unique("weather");
    let table = unique("weather").replace('-', "_");
    let env = env_with(&[("WEATHER_TOPIC", &topic), ("WEATHER_TABLE", &table)]);
    let count = 2000;
    weir(
        &[
            "gen",
            "weather",
            "--count",
            &count.to_string(),
            "--seed",
            "11",
            "--topic",
            &topic,
            "--brokers",
            &services::kafka(),
        ],
        &env,
    );
    let lines = weir::sample::weather(count, 11, 1_546_300_800_000, 1000, 2.0);
    let dir = tempfile::tempdir().unwrap();
    // A stream has no end: a reading an hour later moves the watermark past
    // every window of the sample, so they all close (its own stays open,
    // kept in the checkpoint when weir stops).
    let later = dir.path().join("later.ndjson");
    std::fs::write(
        &later,
        "{\"city\":\"Oslo\",\"temperature\":1.0,\"timestamp\":\"2019-01-01T02:00:00Z\"}\n",
    )
    .unwrap();
    produce_file(&later, &topic, &env).await;
    let mut run = Running::start(&root().join("examples/weather.toml"), &env, dir.path());
    run.wait_for_input("weather", count as u64 + 1);
    run.stop();

    // Reference: per (city, minute) count and mean.
    let mut reference: BTreeMap<(String, i64), (u64, f64)> = BTreeMap::new();
    for v in common::valid_json(&lines) {
        let ts = weir_plugin_kit::time::parse(v["timestamp"].as_str().unwrap())
            .unwrap()
            .epoch_ms;
        let entry = reference
            .entry((
                v["city"].as_str().unwrap().to_owned(),
                ts - ts.rem_euclid(60_000),
            ))
            .or_default();
        entry.0 += 1;
        entry.1 += v["temperature"].as_f64().unwrap();
    }
    let pool = pg_pool().await;
    let rows = sqlx::query(&format!(
        "SELECT city, (extract(epoch FROM window_start) * 1000)::bigint AS start_ms,
                (extract(epoch FROM window_end - window_start))::bigint AS secs, count, avg_temperature
         FROM {table}"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), reference.len());
    for row in &rows {
        let key = (row.get::<String, _>("city"), row.get::<i64, _>("start_ms"));
        let (n, sum) = reference
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected window {key:?}"));
        assert_eq!(row.get::<i64, _>("secs"), 60);
        assert_eq!(row.get::<i64, _>("count") as u64, *n, "{key:?}");
        let avg: f64 = row.get("avg_temperature");
        assert!(
            (avg - sum / *n as f64).abs() < 1e-9,
            "{key:?}: {avg} vs {}",
            sum / *n as f64
        );
    }
    let invalid = lines.len() - common::valid_json(&lines).len();
    let dead = services::consume(&format!("{topic}-dead-letter"), invalid).await;
    assert_eq!(dead.len(), invalid);
    for record in &dead {
        let reason = record
            .headers
            .iter()
            .find(|h| h.name == "weir.reason")
            .expect("reason header");
        assert!(!reason.value.is_empty());
        let source = record
            .headers
            .iter()
            .find(|h| h.name == "weir.source")
            .unwrap();
        assert!(String::from_utf8_lossy(&source.value).contains(&format!("topic={topic}")));
    }
    check_dashboard(&pool, "weather", &table).await;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
}

/// Seed 001: users on a topic → user-profile → Parquet on S3 under
/// `date=<today>/`. Rows equal the valid users, flattened and with the zip
/// code replaced by its salted hash, recomputed here.
#[tokio::test(flavor = "multi_thread")]
async fn users_example_writes_flattened_users_with_hashed_zips_under_a_date_partition() {
    use sha2::Digest;
    let topic = unique("created_users");
    let bucket = unique("users");
    let env = env_with(&[
        ("USERS_TOPIC", &topic),
        ("USERS_BUCKET", &bucket),
        ("USERS_ZIP_SALT", "pepper"),
    ]);
    let count = 1500;
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    weir(
        &[
            "gen",
            "users",
            "--count",
            &count.to_string(),
            "--seed",
            "5",
            "--topic",
            &topic,
            "--brokers",
            &services::kafka(),
            "--partitions",
            "2",
        ],
        &env,
    );
    let lines = weir::sample::users(count, 5, 2.0);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&root().join("examples/users.toml"), &env, dir.path());
    run.wait_for_records("users", count as u64);
    run.stop();

    let (rows, paths) = services::parquet_rows(&format!("s3://{bucket}/profiles")).await;
    let today = {
        let (y, m, d) =
            weir_plugin_kit::time::civil_from_days(weir::pipeline::now_ms() / 86_400_000);
        format!("date={y:04}-{m:02}-{d:02}/")
    };
    assert!(
        !paths.is_empty() && paths.iter().all(|p| p.contains(&today)),
        "{paths:?}"
    );
    let valid = common::valid_json(&lines);
    assert_eq!(rows.len(), valid.len());
    let by_email: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["email"].as_str().unwrap(), r))
        .collect();
    for user in &valid {
        let row = by_email[user["email"].as_str().unwrap()];
        let name = &user["name"];
        assert_eq!(
            row["name"],
            format!(
                "{}. {} {}",
                name["title"].as_str().unwrap(),
                name["first"].as_str().unwrap(),
                name["last"].as_str().unwrap()
            )
        );
        let postcode = match &user["location"]["postcode"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let hash: String = sha2::Sha256::new()
            .chain_update(b"pepper")
            .chain_update(postcode.as_bytes())
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(row["zip_hash"], hash);
        assert!(
            row.get("postcode").is_none() && row.get("zip").is_none(),
            "{row}"
        );
    }
}

/// Seed 003: logs on a topic → log-extract → Parquet on S3, rolled by
/// time. The `mobile` of each row is the JSON path's value, else the
/// attribute's, else "unknown", recomputed here from the input.
#[tokio::test(flavor = "multi_thread")]
async fn logs_example_extracts_fields_with_fallback_into_rolled_parquet_on_s3() {
    let topic = unique("logs");
    let bucket = unique("logs");
    let env = env_with(&[("LOGS_TOPIC", &topic), ("LOGS_BUCKET", &bucket)]);
    let count = 5000;
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    weir(
        &[
            "gen",
            "logs",
            "--count",
            &count.to_string(),
            "--seed",
            "3",
            "--topic",
            &topic,
            "--brokers",
            &services::kafka(),
        ],
        &env,
    );
    let lines = weir::sample::logs(count, 3, 1_546_300_800_000, 2.0);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&root().join("examples/logs.toml"), &env, dir.path());
    run.wait_for_records("logs", count as u64);
    run.stop();

    let (rows, paths) = services::parquet_rows(&format!("s3://{bucket}/extracted")).await;
    assert!(paths.iter().all(|p| p.ends_with(".parquet")), "{paths:?}");
    let expected = common::expected_logs(&lines);
    let got = common::log_rows(&rows);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

/// Seed 002: shot charts on a topic → shot-clean → a Delta table on S3
/// partitioned by season and game date (`season=…/game_date=…/`), with the
/// sink compacting beside the writer. Produced in rounds that each touch
/// every game day, so each day gets small files; every row is recomputed
/// here, and weir, deltalake and Polars (filtering one game day by its
/// partition columns) read every valid shot once after the compaction.
#[tokio::test(flavor = "multi_thread")]
async fn shots_example_is_a_delta_table_by_season_and_game_date_that_polars_filters_by_partition_and_its_compaction_keeps_each_row_once()
 {
    let topic = unique("shot_charts");
    let bucket = unique("shots");
    let env = env_with(&[
        ("SHOTS_TOPIC", &topic),
        ("SHOTS_BUCKET", &bucket),
        // Every checkpoint commits; compact at every commit with 5 small
        // files in a folder (no other compaction running).
        ("SHOTS_ROLLOVER", "0s"),
        ("SHOTS_COMPACT_EVERY", "0s"),
    ]);
    let url = format!("s3://{bucket}/charts");
    weir(&["bucket", "create", &format!("s3://{bucket}")], &env);
    let lines = weir::sample::shots(3000, 11, 2.0);
    let expected = common::expected_shots(&lines);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&root().join("examples/shots.toml"), &env, dir.path());
    let rounds = 6;
    let mut produced = 0;
    let mut want = 0;
    for round in 0..rounds {
        let part = common::round_of(&lines, rounds, round);
        produced += part.len();
        want += part.iter().filter(|l| l.defect.is_none()).count();
        services::produce(&topic, part.iter().map(|l| l.text.as_str())).await;
        run.wait_for_records("shots", produced as u64);
        // The round's rows are committed before the next round starts, so
        // each round writes its own files.
        services::wait_for_committed_rows(&url, want).await;
    }
    // Five rounds gave every game day five small files: the sink compacts.
    // Its log line comes after the compaction's Delta commit: stopping
    // earlier could cut it short.
    run.wait_until(
        "a scheduled compaction",
        std::time::Duration::from_secs(120),
        |r| r.log_text().contains("Scheduled compaction done"),
    );
    let log = run.stop();
    assert!(log.contains("Scheduled compaction done"), "{log}");

    // The table's newest version, as weir lists it: merged files, in the
    // season and game-date folders.
    let names = services::weir_files(&[&url], &env);
    assert!(names.iter().any(|f| f.contains("/compact-")), "{names:?}");
    let folders: std::collections::BTreeSet<&str> = names
        .iter()
        .map(|name| &name[..name.rfind('/').unwrap()])
        .collect();
    assert!(
        folders.len() > 1
            && folders
                .iter()
                .all(|f| f.starts_with("season=2023-24/game_date=2023-1")),
        "{folders:?}"
    );
    let committed = services::committed_rows(&url).await;
    common::check_shot_rows(&committed, &expected, true, "weir");
    let files: std::collections::BTreeSet<&str> =
        committed.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(
        files,
        names.iter().map(String::as_str).collect(),
        "weir files lists other files than the table's"
    );
    // deltalake reads every valid shot once.
    let rows: Vec<(String, Value)> = services::delta_rows(&url)
        .into_iter()
        .map(|row| (String::new(), row))
        .collect();
    common::check_shot_rows(&rows, &expected, true, "deltalake");
    // Polars with a filter on both partition columns reads that game day.
    let day = expected.values().next().unwrap()["game_date"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_day: std::collections::BTreeMap<String, Value> = expected
        .iter()
        .filter(|(_, row)| row["game_date"] == day.as_str())
        .map(|(id, row)| (id.clone(), row.clone()))
        .collect();
    let rows: Vec<(String, Value)> =
        services::polars_rows(&url, &["season=2023-24", &format!("game_date={day}")])
            .into_iter()
            .map(|row| (String::new(), row))
            .collect();
    assert!(!of_day.is_empty());
    common::check_shot_rows(&rows, &of_day, true, &format!("polars, game_date={day}"));
    // Invalid shots are dead letters with their reason.
    let dead = services::consume(
        &format!("{topic}-dead-letter"),
        common::defects(&lines).len(),
    )
    .await;
    assert_eq!(dead.len(), common::defects(&lines).len());
}

/// One query of a dashboard panel.
struct PanelQuery {
    title: String,
    sql: String,
    /// `time_series` or `table`.
    format: String,
}

/// The SQL of every panel of the provisioned Grafana dashboard, and the
/// dashboard's time range.
fn dashboard() -> (Vec<PanelQuery>, (String, String)) {
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/weir.json")).unwrap();
    let board: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(PanelQuery {
                title: panel["title"].as_str().unwrap().to_owned(),
                sql: target["rawSql"].as_str().unwrap().to_owned(),
                format: target["format"]
                    .as_str()
                    .unwrap_or("time_series")
                    .to_owned(),
            });
        }
    }
    let range = |k: &str| board["time"][k].as_str().unwrap().to_owned();
    (queries, (range("from"), range("to")))
}

/// The table a dashboard query reads (its first `FROM`).
fn table_of(sql: &str) -> &str {
    let rest = &sql[sql.find("FROM ").expect("a FROM") + 5..];
    rest.split_whitespace().next().unwrap()
}

/// Runs every dashboard query that reads `table` (or its dead letters) on
/// the test's own `actual` table, with Grafana's `$__timeFilter` expanded
/// to the dashboard's time range as its PostgreSQL data source does, and
/// checks the shape the panel draws: a time series gives a `time`
/// timestamp and numeric values (a text `metric` names a series), a table
/// gives rows.
async fn check_dashboard(pool: &sqlx::PgPool, table: &str, actual: &str) {
    use sqlx::{Column, TypeInfo};
    let (queries, (from, to)) = dashboard();
    let mut ran = 0;
    for PanelQuery { title, sql, format } in queries {
        let reads = table_of(&sql);
        if reads != table && reads != format!("{table}_dead_letter") {
            continue;
        }
        let mut sql = sql.replacen(&format!("FROM {table}"), &format!("FROM {actual}"), 1);
        while let Some(at) = sql.find("$__timeFilter(") {
            let end = at + sql[at..].find(')').unwrap();
            let column = &sql[at + "$__timeFilter(".len()..end];
            let expanded = format!("{column} BETWEEN '{from}' AND '{to}'");
            sql.replace_range(at..=end, &expanded);
        }
        let rows = sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("panel {title:?}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "panel {title:?} shows nothing:\n{sql}");
        if format == "time_series" {
            for column in rows[0].columns() {
                let kind = column.type_info().name();
                match column.name() {
                    "time" => assert!(
                        kind.starts_with("TIMESTAMP"),
                        "panel {title:?}: time is {kind}"
                    ),
                    "metric" => assert_eq!(kind, "TEXT", "panel {title:?}: metric"),
                    other => assert!(
                        ["INT2", "INT4", "INT8", "FLOAT4", "FLOAT8", "NUMERIC"].contains(&kind),
                        "panel {title:?}: value column {other} is {kind}, not a number"
                    ),
                }
            }
            assert!(
                rows[0].columns().iter().any(|c| c.name() == "time"),
                "panel {title:?} has no time column"
            );
        }
        ran += 1;
    }
    assert!(ran > 0, "no dashboard panel reads {table}");
}

#[test]
fn every_dashboard_panel_reads_a_table_a_seed_test_fills() {
    let (queries, _) = dashboard();
    assert!(queries.len() >= 5);
    for PanelQuery { title, sql, .. } in &queries {
        assert!(
            [
                "taxi_trips_dashboard",
                "taxi_trips_dashboard_dead_letter",
                "weather"
            ]
            .contains(&table_of(sql)),
            "panel {title:?} reads {}, which no test checks",
            table_of(sql)
        );
    }
}

/// The object-store source reads NDJSON, CSV and Parquet objects in path
/// order from a local folder (file://), with each row's position in its
/// dead letters.
#[tokio::test(flavor = "multi_thread")]
async fn object_store_source_reads_ndjson_csv_and_parquet_objects_in_path_order() {
    use weir::source::Source;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), "{\"n\":1}\n\n{\"n\":2}\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "n,city\n3,Oslo\n4,Lima\n").unwrap();
    std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    {
        use weir::sink::Sink;
        let config: weir::sink::parquet::ParquetConfig = toml::from_str("path = \"c\"").unwrap();
        let mut sink = weir::sink::parquet::ParquetSink::open(&config, dir.path()).unwrap();
        let records = common::records(&["{\"n\":5}", "{\"n\":6}"]);
        assert!(sink.write(records).await.unwrap().is_empty());
        sink.close().await.unwrap();
    }
    let config: weir::source::object::ObjectStoreConfig = toml::from_str(&format!(
        "url = {:?}",
        format!("file://{}", dir.path().display())
    ))
    .unwrap();
    let mut source = weir::source::object::ObjectSource::open(&config, dir.path())
        .await
        .unwrap();
    let mut values = Vec::new();
    let mut places = Vec::new();
    while let Some(batch) = source.next_batch(3).await.unwrap() {
        for (r, p) in batch.records.iter().zip(&batch.positions) {
            values.push(
                serde_json::from_slice::<Value>(&r.value).unwrap()["n"]
                    .as_i64()
                    .unwrap(),
            );
            places.push(source.locate(*p));
        }
    }
    assert_eq!(values, [1, 2, 3, 4, 5, 6]);
    assert!(places[1].ends_with("object=a.ndjson row=3"), "{places:?}");
    assert!(places[3].ends_with("object=b.csv row=2"), "{places:?}");
}

/// Offsets are committed only for records the sink has made durable: a
/// second run of the same group reads nothing again, and a run whose sink
/// never became durable commits nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_after_a_graceful_stop_reads_nothing_again_and_the_group_offsets_show_the_end() {
    let topic = unique("commit");
    let env = weir_env();
    weir(
        &[
            "gen",
            "weather",
            "--count",
            "300",
            "--invalid-pct",
            "0",
            "--topic",
            &topic,
            "--brokers",
            &services::kafka(),
            "--partitions",
            "2",
        ],
        &env,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[pipelines.copy]\nsource = {{ type = \"kafka\", brokers = {:?}, topics = [{topic:?}], group = \"g-{topic}\" }}\nsink = {{ type = \"ndjson\", path = \"out.ndjson\" }}\n",
            services::kafka()
        ),
    )
    .unwrap();
    let mut first = Running::start(&config, &env, dir.path());
    first.wait_for_records("copy", 300);
    first.stop();
    // The checkpoint (an at-least-once file here) is where a restart
    // resumes; the group's offsets follow it for monitoring.
    assert!(dir.path().join(".weir/checkpoints/copy.json").is_file());
    let (group, end) = (
        services::group_offsets(&format!("g-{topic}"), &topic),
        services::end_offsets(&topic),
    );
    assert!(services::at_end(&group, &end), "{group:?} vs {end:?}");
    let mut second = Running::start(&config, &env, dir.path());
    second.wait_until(
        "the consumer to settle",
        std::time::Duration::from_secs(30),
        |r| r.get("/readyz").is_some_and(|(s, _)| s == 200),
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(second.metric("weir_records_in_total", "copy"), 0);
    second.stop();
    let written = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    assert_eq!(written.lines().count(), 300);
}

/// docker-compose.yml gives weir every variable the examples read, and
/// names the services those variables point at.
#[test]
fn compose_file_sets_every_variable_the_examples_read() {
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    for var in [
        "WEIR_KAFKA",
        "WEIR_S3_ENDPOINT",
        "WEIR_S3_KEY",
        "WEIR_S3_SECRET",
        "WEIR_PG",
        "WEIR_PLUGINS",
    ] {
        assert!(
            compose.contains(&format!("{var}:")),
            "docker-compose.yml lacks {var}"
        );
        for example in ["taxi", "users", "logs", "weather", "shots"] {
            let text =
                std::fs::read_to_string(root().join(format!("examples/{example}.toml"))).unwrap();
            let reads = text.contains(&format!("${{{var}"));
            if var == "WEIR_PLUGINS" || var == "WEIR_KAFKA" {
                assert!(reads, "examples/{example}.toml does not read {var}");
            }
        }
    }
    for service in ["kafka:", "s3:", "postgres:", "grafana:", "weir:"] {
        assert!(
            compose.contains(&format!("\n  {service}")),
            "no service {service}"
        );
    }
    assert!(compose.contains("WEIR_KAFKA: kafka:9092"));
    assert!(compose.contains("@postgres:5432"));
    assert!(compose.contains("http://s3:9000"));
    assert!(compose.contains("examples/taxi.toml"));
}

/// A PostgreSQL sink on the test database that creates `table`; `rest` is
/// more TOML (the columns at least).
fn pg_sink_config(table: &str, rest: &str) -> weir::sink::postgres::PostgresConfig {
    let text = format!(
        "url = \"{}\"\ntable = \"{table}\"\ncreate-table = true\n{rest}\n",
        services::pg()
    );
    toml::from_str(&text).unwrap()
}

/// Several weir processes of one pipeline starting together each open the
/// sink with `create-table = true`; PostgreSQL's `CREATE TABLE IF NOT
/// EXISTS` is not atomic, so unserialised they collide in its catalog.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_sinks_opened_at_the_same_moment_all_open_and_create_the_table_once() {
    let table = unique("pg_race").replace('-', "_");
    let config = pg_sink_config(
        &table,
        r#"pool-size = 1
columns = [{ name = "id", type = "bigint" }, { name = "city", type = "text" }]"#,
    );
    let opens = 8;
    let together = std::sync::Arc::new(tokio::sync::Barrier::new(opens));
    let tasks: Vec<_> = (0..opens)
        .map(|_| {
            let (config, together) = (config.clone(), together.clone());
            tokio::spawn(async move {
                together.wait().await;
                weir::sink::postgres::PostgresSink::open(&config)
                    .await
                    .map(drop)
            })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            panic!("a sink opened at the same moment as others failed: {e}");
        }
    }
    let pool = pg_pool().await;
    let (tables,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM information_schema.tables WHERE table_name = $1")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 1);
}

/// A previous owner stopped inside its commit (between its ownership
/// check, which locks the owner row, and COMMIT) cannot hold the partition:
/// the new owner's claim waits 2 s, ends that session and goes on; the
/// stuck transaction is rolled back and its connection is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_ends_the_session_of_a_previous_owner_stuck_inside_its_commit() {
    use weir::sink::EpochStore;
    let table = unique("pg_stuck").replace('-', "_");
    let config = pg_sink_config(&table, r#"columns = [{ name = "id", type = "bigint" }]"#);
    let key = format!("{table}@trips.5");
    let mut first = weir::sink::postgres::PostgresSink::open(&config)
        .await
        .unwrap();
    assert!(first.claim(&key, "stuck:1").await.unwrap().is_none());
    // The stuck owner, as its commit leaves the row: locked by an open
    // transaction whose process does nothing more.
    let pool = sqlx::PgPool::connect(&services::pg()).await.unwrap();
    let mut stuck = pool.begin().await.unwrap();
    sqlx::query("UPDATE weir_owners SET renewed_at = clock_timestamp() WHERE pipeline = $1")
        .bind(&key)
        .execute(&mut *stuck)
        .await
        .unwrap();
    let mut next = weir::sink::postgres::PostgresSink::open(&config)
        .await
        .unwrap();
    let claimed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        next.claim(&key, "next:2"),
    )
    .await
    .expect("the claim waits for the stuck owner's session no longer than its patience");
    assert!(claimed.unwrap().is_none());
    let (owner, epoch): (String, i64) =
        sqlx::query_as("SELECT owner, owner_epoch FROM weir_owners WHERE pipeline = $1")
            .bind(&key)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((owner.as_str(), epoch), ("next:2", 2));
    // The stuck transaction's session was ended: it can neither go on nor
    // commit.
    let after = sqlx::query("SELECT 1").execute(&mut *stuck).await;
    assert!(after.is_err(), "the stuck session still works");
}

/// Group mode's fence, on the real database: a process that claimed a
/// partition and then lost it to another (which claimed it since) cannot
/// commit for it — its rows and checkpoint roll back — while the new owner
/// commits and a third claim resumes from the new owner's checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_commit_by_an_owner_whose_partition_was_claimed_since_is_fenced_and_rolled_back()
{
    use weir::sink::{EpochStore, Sink};
    let table = unique("pg_fence").replace('-', "_");
    let config = pg_sink_config(&table, r#"columns = [{ name = "id", type = "bigint" }]"#);
    let key = format!("{table}@trips.3");
    let record = |id: i64| weir::Record {
        key: None,
        value: format!("{{\"id\":{id}}}").into_bytes(),
        timestamp_ms: 0,
        headers: vec![],
    };
    let checkpoint = |epoch: u64, next: i64| weir::checkpoint::Checkpoint {
        pipeline: key.clone(),
        source: "kafka trips".into(),
        epoch,
        positions: BTreeMap::from([("trips/3".to_owned(), next)]),
        state: BTreeMap::new(),
    };
    let mut zombie = weir::sink::postgres::PostgresSink::open(&config)
        .await
        .unwrap();
    assert!(zombie.claim(&key, "zombie:1").await.unwrap().is_none());
    assert!(
        zombie
            .write(vec![record(1), record(2)])
            .await
            .unwrap()
            .is_empty()
    );

    // Another process takes the partition over while the zombie holds rows.
    let mut owner = weir::sink::postgres::PostgresSink::open(&config)
        .await
        .unwrap();
    assert!(owner.claim(&key, "owner:2").await.unwrap().is_none());
    let refused = zombie.commit(&checkpoint(1, 2), true).await.unwrap_err();
    assert!(
        matches!(refused, weir::sink::Error::Fenced { .. }),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("belongs to another weir process"),
        "{refused}"
    );
    assert!(
        owner
            .write(vec![record(1), record(2), record(3)])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(owner.commit(&checkpoint(1, 3), true).await.unwrap());

    let pool = pg_pool().await;
    let ids: Vec<(i64,)> = sqlx::query_as(&format!("SELECT id FROM {table} ORDER BY id"))
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![(1,), (2,), (3,)], "only the owner's rows");
    let mut next = weir::sink::postgres::PostgresSink::open(&config)
        .await
        .unwrap();
    let resumed = next.claim(&key, "next:3").await.unwrap().unwrap();
    assert_eq!(resumed.positions["trips/3"], 3);
    let (epoch, holder): (i64, String) =
        sqlx::query_as("SELECT owner_epoch, owner FROM weir_owners WHERE pipeline = $1")
            .bind(&key)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((epoch, holder.as_str()), (3, "next:3"));
}

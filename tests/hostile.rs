//! Plugins that misbehave and records that fail, through whole pipelines
//! (file in, NDJSON out; no services): the host keeps going, keeps state
//! exact, and accounts for every record — in = out + dead-lettered
//! (+ skipped).

mod common;

use common::{hostile, ndjson_values, pipeline_toml, try_run_pipeline};
use std::path::Path;

/// `values` as the input file `in.txt`, one per line, through the hostile
/// fixture with `plugin` (its config, then more `[plugins.t]` lines) in
/// batches of `batch`; `pipeline` adds lines to `[pipelines.p]`.
async fn run(
    dir: &Path,
    values: &[&str],
    plugin: &str,
    batch: usize,
    pipeline: &str,
) -> Result<weir::pipeline::Summary, weir::pipeline::Error> {
    let input = values.join("\n");
    run_file(dir, &hostile(), input.as_bytes(), plugin, batch, pipeline).await
}

/// `input` as the file `in.txt` through the component `wasm` (its config
/// and more `[plugins.t]` lines in `plugin`) in batches of `batch`, to
/// `out.txt`; `pipeline` adds lines to `[pipelines.p]`.
async fn run_file(
    dir: &Path,
    wasm: &Path,
    input: &[u8],
    plugin: &str,
    batch: usize,
    pipeline: &str,
) -> Result<weir::pipeline::Summary, weir::pipeline::Error> {
    std::fs::write(dir.join("in.txt"), input).unwrap();
    let sink = format!("{{ type = \"ndjson\", path = \"out.txt\" }}\n{pipeline}");
    let text = pipeline_toml(
        wasm,
        plugin,
        batch,
        r#"{ type = "file", path = "in.txt" }"#,
        &sink,
    );
    try_run_pipeline(&text, dir).await
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_record_is_isolated_and_only_it_is_dead_lettered_with_the_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    let values = ["a", "b", "c", "d", "boom", "f", "g", "h"];
    let summary = run(dir.path(), &values, r#"{ mode = "panic" }"#, 3, "")
        .await
        .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (8, 7, 1)
    );
    assert_eq!(
        lines(&dir.path().join("out.txt")),
        ["a", "b", "c", "d", "f", "g", "h"]
    );
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["value"], "boom");
    let reason = dead[0]["headers"]["weir.reason"].as_str().unwrap();
    assert!(
        reason.contains("trapped") && reason.contains("boom record"),
        "the trap and the guest's panic message: {reason}"
    );
    assert_eq!(
        dead[0]["headers"]["weir.source"],
        format!(
            "file {}:5",
            dir.path().join("in.txt").canonicalize().unwrap().display()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn state_stays_exact_across_a_trap_the_fresh_instance_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let values = ["a", "b", "c", "d", "boom", "f", "g", "boom", "h"];
    let summary = run(dir.path(), &values, r#"{ mode = "counter" }"#, 4, "")
        .await
        .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (9, 7, 2)
    );
    // Each record counted once, in order, as if the traps never happened.
    assert_eq!(
        lines(&dir.path().join("out.txt")),
        ["a:1", "b:2", "c:3", "d:4", "f:5", "g:6", "h:7"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_trapping_on_every_record_stops_the_pipeline_after_k_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let error = run(
        dir.path(),
        &values,
        "{ mode = \"trap\" }\nmax-consecutive-traps = 3",
        10,
        "",
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("trapped on 3 records in a row") && message.contains("on-plugin-failure"),
        "{message}"
    );
    assert!(
        lines(&dir.path().join("out.txt")).is_empty(),
        "nothing written past the failures"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_plugin_dead_letters_everything_without_a_hot_loop_of_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let summary = run(
        dir.path(),
        &values,
        "{ mode = \"trap\" }\nmax-consecutive-traps = 3\non-plugin-failure = \"dead-letter-all\"",
        100,
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (1000, 0, 1000)
    );
    assert!(
        summary.restarts <= 20,
        "instances made: {} (bounded: isolation stops at the third trap)",
        summary.restarts
    );
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    let last = dead.last().unwrap()["headers"]["weir.reason"]
        .as_str()
        .unwrap();
    assert!(last.contains("disabled after 3 trapping records"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_plugin_is_interrupted_at_its_deadline_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let values = ["a", "b", "c", "d"];
    let summary = run(
        dir.path(),
        &values,
        "{ mode = \"spin\" }\nmax-batch-time = \"100ms\"\nmax-consecutive-traps = 2\non-plugin-failure = \"dead-letter-all\"",
        4,
        "",
    )
    .await
    .unwrap();
    assert_eq!((summary.read, summary.dead_lettered), (4, 4));
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    let first = dead[0]["headers"]["weir.reason"].as_str().unwrap();
    assert!(first.contains("max-batch-time 100 ms"), "{first}");
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_over_the_caps_are_traced_to_their_input_records_which_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let values = ["a", "big", "b", "many", "c"];
    let summary = run(
        dir.path(),
        &values,
        "{ mode = \"flood\" }\nmax-output-records = 1000\nmax-output-record-size = \"1MiB\"",
        5,
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (5, 3, 2)
    );
    assert_eq!(lines(&dir.path().join("out.txt")), ["a", "b", "c"]);
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| {
            (
                d["value"].as_str().unwrap(),
                d["headers"]["weir.reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        reasons[0].0 == "big" && reasons[0].1.contains("max-output-record-size"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == "many" && reasons[1].1.contains("max-output-records = 1000"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_that_cannot_be_decoded_are_dead_lettered_whole_and_the_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let parquet = common::taxi_parquet(20).await;
    std::fs::write(
        data.join("a-good.ndjson"),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
    )
    .unwrap();
    std::fs::write(data.join("b-garbage.parquet"), b"PAR1 this is not parquet").unwrap();
    std::fs::write(
        data.join("c-truncated.parquet"),
        &parquet[..parquet.len() / 2],
    )
    .unwrap();
    std::fs::write(data.join("d-ragged.csv"), "a,b\n1,2\n3\n4,5,6\n").unwrap();
    std::fs::write(data.join("e-good.parquet"), &parquet).unwrap();
    let text = pipeline_toml(
        &hostile(),
        r#"{ mode = "echo" }"#,
        100,
        r#"{ type = "object-store", url = "data" }"#,
        r#"{ type = "ndjson", path = "out.txt" }"#,
    );
    let summary = try_run_pipeline(&text, dir.path()).await.unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (3 + 3 + 20, 3 + 20, 3)
    );
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    let objects: Vec<&str> = dead.iter().map(|d| d["value"].as_str().unwrap()).collect();
    assert_eq!(
        objects,
        ["b-garbage.parquet", "c-truncated.parquet", "d-ragged.csv"],
        "each object's path, once"
    );
    for d in &dead {
        let reason = d["headers"]["weir.reason"].as_str().unwrap();
        assert!(
            reason.contains("the rest of the object is skipped"),
            "{reason}"
        );
        assert_eq!(d["headers"]["weir.stage"], "source");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_error_skip_counts_and_drops_failed_records_and_stop_halts_at_the_first() {
    let values = ["a", "b", "c", "d", "e", "f"];
    // fail-half fails every even index of each batch.
    let skip = tempfile::tempdir().unwrap();
    let summary = run(
        skip.path(),
        &values,
        r#"{ mode = "fail-half" }"#,
        6,
        "on-error = \"skip\"",
    )
    .await
    .unwrap();
    assert_eq!(
        (
            summary.read,
            summary.written,
            summary.dead_lettered,
            summary.skipped
        ),
        (6, 3, 0, 3)
    );
    assert!(
        !skip.path().join("dead.ndjson").exists()
            || lines(&skip.path().join("dead.ndjson")).is_empty()
    );

    let stop = tempfile::tempdir().unwrap();
    let error = run(
        stop.path(),
        &values,
        r#"{ mode = "fail-half" }"#,
        6,
        "on-error = \"stop\"",
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("fail-half mode")
            && message.contains("in.txt:1")
            && message.contains("on-error"),
        "{message}"
    );
}

mod services;

/// A secret no output may contain.
const CANARY: &str = "canary-secret-7f3a9c";

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_the_config_never_appears_in_logs_metrics_validate_or_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let config = dir.path().join("secret.toml");
    let topic = services::unique("secret-dead");
    let input = services::unique("secret-in");
    // The sample of the quickstart: 2 000 trips, 37 invalid.
    services::weir(
        &[
            "gen",
            "taxi",
            "--count",
            "2000",
            "--seed",
            "42",
            "--topic",
            &input,
            "--brokers",
            &services::kafka(),
        ],
        &services::weir_env(),
    );
    // PostgreSQL trusts local connections, so the password in the URL is
    // accepted and ignored: the pipeline runs. The S3 secret is wrong: the
    // object-store pipeline fails to list and retries, logging its errors.
    // The SASL password is set on a plaintext connection.
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.taxi]
path = "{plugins}/taxi-enrich.wasm"

[pipelines.to-postgres]
plugins = ["taxi"]
source = {{ type = "kafka", brokers = "${{WEIR_KAFKA}}", topics = ["{input}"], group = "{input}", options = {{ "sasl.password" = "${{SECRET}}" }} }}
sink = {{ type = "postgres", url = "postgres://postgres:${{SECRET}}@127.0.0.1:5432/test", table = "{table}", create-table = true, columns = [{{ name = "pickup_at", type = "timestamptz" }}] }}
dead-letter = {{ type = "kafka", brokers = "${{WEIR_KAFKA}}", topic = "{topic}", options = {{ "sasl.username" = "weir", "sasl.password" = "${{SECRET}}" }} }}

[pipelines.from-s3]
plugins = ["taxi"]
source = {{ type = "object-store", url = "s3://weir-nothing/x", options = {{ endpoint = "${{WEIR_S3_ENDPOINT}}", access_key_id = "weir-test", secret_access_key = "${{SECRET}}", allow_http = "true", region = "us-east-1" }} }}
sink = {{ type = "ndjson", path = "out.ndjson" }}
"#,
            plugins = root.join("plugins/dist").display(),
            input = input,
            table = services::unique("secret").replace('-', "_"),
            topic = topic,
        ),
    )
    .unwrap();
    let mut env = services::weir_env();
    env.retain(|(k, _)| !k.starts_with("AWS_"));
    env.push(("SECRET".into(), CANARY.into()));
    env.push(("WEIR_LOG".into(), "debug".into()));

    let (_, mut seen) = services::weir_output(&["validate", &config.display().to_string()], &env);
    let mut run = services::Running::start(&config, &env, dir.path());
    run.wait_until(
        "the Postgres pipeline to write its input and the S3 one to be refused",
        std::time::Duration::from_secs(60),
        |r| {
            r.metric("weir_records_out_total", "to-postgres")
                + r.metric("weir_records_failed_total", "to-postgres")
                >= 2000
                && r.log_text().contains("SignatureDoesNotMatch")
        },
    );
    seen.push_str(&run.get("/metrics").unwrap().1);
    seen.push_str(&run.get("/readyz").unwrap().1);
    // The failed pipeline makes the exit status 1: end it outright.
    seen.push_str(&run.kill9());
    // The 37 invalid trips of the sample, dead-lettered to Kafka.
    for record in services::consume(&topic, 37).await {
        seen.push_str(&String::from_utf8_lossy(&record.value));
        for header in &record.headers {
            seen.push_str(&format!(
                "{}={}\n",
                header.name,
                String::from_utf8_lossy(&header.value)
            ));
        }
    }
    for file in [
        "out.ndjson",
        "dead-letter/to-postgres.ndjson",
        "dead-letter/from-s3.ndjson",
    ] {
        seen.push_str(&std::fs::read_to_string(dir.path().join(file)).unwrap_or_default());
    }
    assert!(
        seen.contains("SignatureDoesNotMatch") && seen.contains("weir_records_out_total"),
        "the run did not get far enough to prove anything:\n{seen}"
    );
    assert!(
        !seen.contains(CANARY),
        "the secret leaked:\n{}",
        context(&seen)
    );
}

/// The lines around the first occurrence of the canary.
fn context(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains(CANARY))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_tombstones_are_dead_lettered_with_their_key_and_the_rest_flows() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = services::unique("tombstones");
    let connection = weir::kafka::Connection {
        brokers: services::kafka(),
        options: Default::default(),
    };
    weir::kafka::ensure_topic(&connection, &topic, 1)
        .await
        .unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", services::kafka())
        .create()
        .unwrap();
    for i in 0..30 {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let mut record = FutureRecord::<String, String>::to(&topic).key(&key);
        if i % 3 != 0 {
            record = record.payload(&value);
        }
        producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.echo]
path = "{hostile}"

[pipelines.p]
plugins = ["echo"]
source = {{ type = "kafka", brokers = "${{WEIR_KAFKA}}", topics = ["{topic}"], group = "{topic}" }}
sink = {{ type = "ndjson", path = "out.ndjson" }}
dead-letter = {{ type = "ndjson", path = "dead.ndjson", envelope = true }}
"#,
            hostile = hostile().display(),
        ),
    )
    .unwrap();
    let mut run = services::Running::start(&config, &services::weir_env(), dir.path());
    run.wait_for_records("p", 30);
    assert_eq!(run.metric("weir_records_out_total", "p"), 20);
    assert_eq!(run.metric("weir_records_failed_total", "p"), 10);
    run.stop();
    assert_eq!(lines(&dir.path().join("out.ndjson")).len(), 20);
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 10);
    for d in &dead {
        assert!(d["key"].as_str().unwrap().starts_with('k'), "{d}");
        assert_eq!(d["headers"]["weir.stage"], "source");
        assert!(
            d["headers"]["weir.reason"]
                .as_str()
                .unwrap()
                .contains("tombstone"),
            "{d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_records_each_get_a_reason_and_the_valid_ones_flow() {
    let dir = tempfile::tempdir().unwrap();
    let valid = weir::sample::taxi(50, 3, 0.0);
    let mut lines: Vec<Vec<u8>> = vec![
        valid[0].text.clone().into_bytes(),
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, b'{', 0x80],
        br#"{"tpep_pickup_datetime": 17, "trip_distance": "far"}"#.to_vec(),
        br#"{"VendorID": 1}"#.to_vec(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        format!(r#"{{"pad":"{}"}}"#, "x".repeat(10 << 20)).into_bytes(),
        valid[1].text.clone().into_bytes(),
    ];
    let count = lines.len() as u64;
    let mut input = Vec::new();
    for line in lines.drain(..) {
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    let taxi = common::reference("taxi-enrich");
    let summary = run_file(dir.path(), &taxi, &input, "{}", 4, "")
        .await
        .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (count, 2, count - 2),
        "in = out + dead-lettered"
    );
    let dead = ndjson_values(&dir.path().join("dead.ndjson"));
    for d in &dead {
        let reason = d["headers"]["weir.reason"].as_str().unwrap();
        assert!(
            !reason.is_empty() && !reason.contains("trapped"),
            "{reason}"
        );
    }
}

#[test]
fn a_component_of_another_world_is_refused_by_validate_and_run_with_the_key_and_no_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("world.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.x]\npath = \"{}\"\n\n[pipelines.p]\nplugins = [\"x\"]\nsource = {{ type = \"stdin\" }}\nsink = {{ type = \"ndjson\", path = \"-\" }}\n",
            common::wasm("tests/fixtures/dist/other-world.wasm").display()
        ),
    )
    .unwrap();
    for command in ["validate", "run"] {
        let (status, text) = services::weir_output(&[command, &config.display().to_string()], &[]);
        assert!(!status.success(), "{command}: {text}");
        assert!(
            text.contains("does not fit the weir:transform")
                && text.contains("regenerate its bindings"),
            "{command}: {text}"
        );
        assert!(
            !text.contains("panicked") && !text.contains("backtrace"),
            "{command}: {text}"
        );
        if command == "validate" {
            assert!(text.contains("line 2: plugins.x.path"), "{text}");
        }
    }
}

#[test]
fn validate_connect_names_the_key_and_line_of_an_unreachable_broker_and_database() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("down.toml");
    std::fs::write(
        &config,
        format!(
            "[pipelines.p]\nsource = {{ type = \"kafka\", brokers = \"127.0.0.1:{closed}\", topics = [\"t\"], group = \"g\" }}\nsink = {{ type = \"postgres\", url = \"postgres://u:hunter2@127.0.0.1:{closed}/db\", table = \"t\", columns = [{{ name = \"a\", type = \"bigint\" }}] }}\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let validate = |flags: &[&str]| {
        let args: Vec<&str> = ["validate"]
            .iter()
            .chain(flags)
            .chain([&config.as_str()])
            .copied()
            .collect();
        let (status, text) = services::weir_output(&args, &[]);
        (status.code(), text)
    };
    let (offline, text) = validate(&[]);
    assert_eq!(
        offline,
        Some(0),
        "without --connect nothing is dialled: {text}"
    );
    let (online, text) = validate(&["--connect"]);
    assert_eq!(online, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "line 2: pipelines.p.source.brokers: cannot reach 127.0.0.1:{closed}"
        )),
        "{text}"
    );
    assert!(
        text.contains("line 3: pipelines.p.sink.url: cannot reach"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_input_and_blank_lines_make_empty_batches_and_no_records() {
    for input in ["", "\n\n   \n\r\n"] {
        let dir = tempfile::tempdir().unwrap();
        let taxi = common::reference("taxi-enrich");
        let summary = run_file(dir.path(), &taxi, input.as_bytes(), "{}", 4, "")
            .await
            .unwrap();
        assert_eq!(
            (summary.read, summary.written, summary.dead_lettered),
            (0, 0, 0),
            "{input:?}"
        );
    }
}

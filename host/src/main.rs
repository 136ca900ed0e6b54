//! The `weir` command line: the binary's edge, where errors become messages
//! and exit codes.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use weir::config::Config;
use weir::pipeline::{Pipeline, Summary};
use weir::plugin::{self, PluginEngine, PluginSpec};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Streaming transforms in WebAssembly, one native host for all I/O."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every pipeline of a configuration until its input ends or Ctrl-C.
    Run {
        /// The TOML configuration.
        config: PathBuf,
        /// No live progress line.
        #[arg(long)]
        quiet: bool,
        /// Serve /metrics, /livez and /readyz here (overrides `[server] listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also watch the configuration file: a changed `[plugins.<name>]`
        /// section swaps that plugin (other changes need a restart).
        #[arg(long)]
        watch_config: bool,
        /// Run only this pipeline of the configuration (repeatable), e.g.
        /// the Kafka leg in several replicas and the other legs once.
        #[arg(long = "pipeline", value_name = "NAME")]
        pipelines: Vec<String>,
    },
    /// Shows a running weir's pipelines, live plugin versions and last swaps
    /// (its /readyz).
    Status {
        /// The configuration it runs (for `[server] listen`).
        config: Option<PathBuf>,
        /// Its operations endpoint (default: the config's, else 127.0.0.1:9464).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Checks a configuration, loads and initialises every plugin, touches no data.
    Validate {
        /// The TOML configuration.
        config: PathBuf,
        /// Also check that every broker, database and S3 endpoint accepts a
        /// connection (a TCP connect, 3 s time-out; nothing is sent).
        #[arg(long)]
        connect: bool,
    },
    /// Creates an S3 bucket (settings from the AWS_* environment variables).
    Bucket {
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Works with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The taxi transform through WebAssembly vs the same code natively.
    Bench {
        /// The taxi-enrich component.
        #[arg(long, default_value = "plugins/dist/taxi-enrich.wasm")]
        wasm: PathBuf,
        /// An identity component to measure the boundary cost alone, e.g.
        /// tests/fixtures/dist/hostile.wasm (it echoes in its default mode).
        #[arg(long)]
        echo: Option<PathBuf>,
        /// Records per pass.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// Passes per configuration; the best counts.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Prints the committed Parquet files of a sink's location, one per
    /// line (paths relative to it): a Delta table's newest version, or what
    /// a weir-manifest location's reader should read. S3 settings from the
    /// AWS_* environment variables.
    Files {
        /// A folder, `file:///dir` or `s3://bucket/prefix`.
        location: String,
        /// Also write the list to `<location>/_weir/committed`.
        #[arg(long)]
        write: bool,
        /// Print size and partition folder too (tab-separated).
        #[arg(long)]
        long: bool,
    },
    /// Merges the small committed Parquet files of each partition folder
    /// into files near a target size, committed atomically (safe beside a
    /// running writer). S3 settings from the AWS_* environment variables.
    Compact {
        /// A folder, `file:///dir` or `s3://bucket/prefix`.
        location: String,
        /// Merged files are made up to about this size.
        #[arg(long, default_value = "128MiB", value_parser = parse_size)]
        target_size: u64,
        /// Compact a folder once it has at least this many small files.
        #[arg(long, default_value_t = 5)]
        min_files: usize,
        /// Only folders under this partition, e.g. `season=2023-24`.
        #[arg(long)]
        partition: Option<String>,
        /// Sort each merged file's rows by this column.
        #[arg(long)]
        sort_by: Option<String>,
        /// Delete replaced files only this long after the swap, so readers
        /// that listed them still find them, e.g. `1h`, `0s`.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        retention: Duration,
        /// Print what would be merged; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Writes deterministic sample data: NDJSON, Parquet, or to a Kafka topic.
    Gen {
        /// Which data.
        kind: SampleKind,
        /// How many records.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Random seed; the same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Share of records made invalid on purpose, in percent.
        #[arg(long, default_value_t = 2.0)]
        invalid_pct: f64,
        /// `-` (stdout), a file, or for Parquet a folder or `s3://bucket/prefix`
        /// (S3 settings from the AWS_* environment variables).
        #[arg(long, default_value = "-")]
        to: String,
        /// Output format for --to.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: GenFormat,
        /// Kafka bootstrap servers, with --topic.
        #[arg(long)]
        brokers: Option<String>,
        /// Produce to this Kafka topic instead (created if missing).
        #[arg(long)]
        topic: Option<String>,
        /// Partitions of a topic --topic creates.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
    },
}

#[derive(Subcommand)]
enum BucketCommand {
    /// `weir bucket create s3://name`; succeeds if it exists already.
    Create {
        /// `s3://bucket`.
        location: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Builds a plugin project as a component and places it in the plugins
    /// folder atomically, so a running weir swaps to it. The language comes
    /// from the manifest: Cargo.toml (cargo), pyproject.toml
    /// (componentize-py), package.json (componentize-js).
    Build {
        /// The project's folder (or its manifest).
        #[arg(name = "project")]
        project: PathBuf,
        /// The plugins folder to place `<name>.wasm` in.
        #[arg(long, default_value = "plugins/dist")]
        out: PathBuf,
        /// Rust: use `cargo component build` (wasm32-wasip1 + adapter)
        /// instead of `cargo build --target wasm32-wasip2`.
        #[arg(long)]
        component: bool,
    },
    /// Writes a new plugin project with a working transform and its test.
    New {
        /// The plugin's name (lower-case, dashes), e.g. fare-check.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: weir::authoring::Language,
        /// The folder to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Publishes a version to a plugin location (`s3://…/x.wasm`,
    /// `file:///…`) that every process of a fleet polls, after checking it
    /// as a process would at swap time; the live object is replaced in one
    /// put.
    Deploy {
        /// The `.wasm` component to publish.
        file: PathBuf,
        /// The location, as the plugins' `path` names it.
        #[arg(long)]
        to: String,
        /// The pipeline configuration: the plugin whose `path` is the
        /// location gives the `init` configuration, limits, `state` policy
        /// and object-store `options`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin's name in the configuration, when several (or none)
        /// have this location as their path.
        #[arg(long)]
        plugin: Option<String>,
        /// NDJSON records run through the new version before publishing;
        /// a trap refuses it.
        #[arg(long)]
        input: Option<PathBuf>,
        /// An object-store option (`key=value`, object_store's keys), besides
        /// the `AWS_*` environment and the configuration's.
        #[arg(long = "option", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// The compiled-component cache (default: the one `weir run` uses
        /// without `[engine] cache-dir`).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Runs two versions of a plugin on the same NDJSON records and reports
    /// what changed: counts, failures and their reasons, the first
    /// differing outputs side by side, whether the new version takes the
    /// old one's state. Exit status 1 when they differ, so it can gate CI.
    Diff {
        /// The version running now.
        old: PathBuf,
        /// The candidate.
        new: PathBuf,
        /// NDJSON input, one record per line.
        #[arg(long)]
        input: PathBuf,
        /// Plugin config: inline JSON or TOML, or a `.json`/`.toml` file.
        #[arg(long)]
        config: Option<String>,
        /// Records per `process` call.
        #[arg(long, default_value_t = 1024)]
        batch_size: usize,
        /// How many differing outputs to show.
        #[arg(long, default_value_t = 5)]
        show: usize,
        /// The compiled-component cache.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Lists the versions published to a plugin location, oldest first,
    /// marking the live one.
    History {
        /// The location.
        location: String,
        /// An object-store option (`key=value`).
        #[arg(long = "option", value_parser = parse_option)]
        options: Vec<(String, String)>,
    },
    /// Publishes again the newest earlier version whose bytes differ from
    /// the live one's.
    Rollback {
        /// The location.
        location: String,
        /// The pipeline configuration (as for deploy).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin's name in the configuration.
        #[arg(long)]
        plugin: Option<String>,
        /// An object-store option (`key=value`).
        #[arg(long = "option", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// The compiled-component cache.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Runs a plugin on an NDJSON file and prints its outputs and failures.
    Test {
        /// The `.wasm` component.
        wasm: PathBuf,
        /// NDJSON input, one record per line.
        #[arg(long)]
        input: PathBuf,
        /// Plugin config: inline JSON or TOML, or a `.json`/`.toml` file.
        #[arg(long)]
        config: Option<String>,
        /// `now-ms` passed to `process` (default: the current time).
        #[arg(long)]
        now: Option<i64>,
        /// After processing, call `on-tick` with this `now-ms` and print its output.
        #[arg(long)]
        tick: Option<i64>,
        /// Records per `process` call.
        #[arg(long, default_value_t = 1024)]
        batch_size: usize,
        /// Exit with status 1 when any record failed.
        #[arg(long)]
        fail_on_failures: bool,
        /// The compiled-component cache (default: the one `weir run` uses
        /// without `[engine] cache-dir`; pass that folder when it is set).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleKind {
    Taxi,
    Weather,
    Logs,
    Users,
    Shots,
}

/// The plugin a location serves (see `weir::deploy::Target::find`) and an
/// engine to check versions with.
fn deploy_target(
    location: &str,
    config: Option<PathBuf>,
    plugin: Option<String>,
    options: Vec<(String, String)>,
    cache_dir: Option<PathBuf>,
) -> Result<(weir::deploy::Target, PluginEngine)> {
    let config = config.as_deref().map(Config::load).transpose()?;
    let target = weir::deploy::Target::find(
        location,
        config.as_ref(),
        plugin.as_deref(),
        &options.into_iter().collect(),
    )?;
    Ok((target, cli_engine(cache_dir)?))
}

/// The engine of a `weir plugin` command: its `--cache-dir`, else the
/// compiled cache `weir run` uses without `[engine] cache-dir`.
fn cli_engine(cache_dir: Option<PathBuf>) -> Result<PluginEngine> {
    Ok(PluginEngine::new(
        cache_dir.or_else(plugin::cache::ComponentCache::default_dir),
    )?)
}

fn parse_option(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?}: write key=value"))
}

fn parse_size(text: &str) -> std::result::Result<u64, String> {
    weir::config::parse_byte_size(text)
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    weir_plugin_kit::duration::parse_ms(text).map(Duration::from_millis)
}

#[derive(Clone, Copy, ValueEnum)]
enum GenFormat {
    Ndjson,
    Parquet,
}

/// glibc gives every thread that allocates its own arena and keeps their
/// freed memory; with the sink writing on one thread and plugins running on
/// another, that fragmentation doubled peak RSS in BENCHMARKS.md's run.
/// Two arenas keep both threads fast and the footprint small.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    // The Delta kernel logs every snapshot and commit at info: warnings
    // only, unless WEIR_LOG names it.
    let mut filter = std::env::var("WEIR_LOG").unwrap_or_else(|_| "info".into());
    if !filter.contains("delta_kernel") {
        filter.push_str(",delta_kernel=warn,delta_kernel_default_engine=warn");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for people: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match command {
        Command::Run {
            config,
            quiet,
            listen,
            watch_config,
            pipelines,
        } => run(&config, quiet, listen, watch_config, &pipelines).await,
        Command::Status { config, listen } => status(config.as_deref(), listen).await,
        Command::Plugin {
            command:
                PluginCommand::Build {
                    project,
                    out,
                    component,
                },
        } => {
            let placed = tokio::task::block_in_place(|| {
                weir::authoring::build::build(&project, &out, component)
            })?;
            println!("{placed}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::New { name, lang, dir },
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            weir::authoring::template::create(&name, lang, &dir)?;
            println!(
                "created {} ({lang}): {}",
                dir.display(),
                next_steps(lang, &dir)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Deploy {
                    file,
                    to,
                    config,
                    plugin,
                    input,
                    options,
                    cache_dir,
                },
        } => tokio::task::block_in_place(|| {
            let (target, engine) = deploy_target(&to, config, plugin, options, cache_dir)?;
            let deployed = weir::deploy::deploy(&engine, &target, &file, input.as_deref())?;
            if let Some(run) = deployed.sample {
                println!(
                    "sample: {} records in, {} out, {} failed",
                    run.records, run.outputs, run.failed
                );
            }
            let e = &deployed.entry;
            println!(
                "published {}@{} (sha256 {}) to {to} as #{}",
                e.name, e.version, e.digest, e.seq
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Plugin {
            command:
                PluginCommand::Diff {
                    old,
                    new,
                    input,
                    config,
                    batch_size,
                    show,
                    cache_dir,
                },
        } => tokio::task::block_in_place(|| {
            let engine = cli_engine(cache_dir)?;
            let config_json = plugin_config(config.as_deref())?;
            let spec = |path: &Path| PluginSpec::of_file(path, config_json.clone());
            let lines = weir::deploy::read_sample(&input)?;
            let report =
                weir::diff::diff(&engine, &spec(&old), &spec(&new), &lines, batch_size, show)?;
            println!("{report}");
            Ok(if report.same() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }),
        Command::Plugin {
            command: PluginCommand::History { location, options },
        } => tokio::task::block_in_place(|| {
            let published = weir::plugin::published::Published::open(
                &location,
                &options.into_iter().collect(),
            )?;
            let weir::deploy::History {
                entries,
                live,
                decisions,
            } = weir::deploy::history(&published)?;
            let newest_live = live
                .as_deref()
                .and_then(|d| entries.iter().rposition(|e| e.digest == d));
            // What the fleet runs when it rejected the live bytes.
            let current = newest_live
                .filter(|&i| decisions.contains_key(&entries[i].digest))
                .and_then(|_| weir::plugin::published::fleet_runs(&entries, &decisions))
                .map(|run| run.seq);
            println!("#\twhen (UTC)\taction\tversion\tsha256\tbytes\tby\tfleet");
            for (i, e) in entries.iter().enumerate() {
                let fleet = decisions.get(&e.digest).map_or("-".to_owned(), |d| {
                    format!(
                        "{} by {} at {}: {}",
                        d.outcome,
                        d.by,
                        weir::deploy::utc(d.at_ms),
                        d.reason
                    )
                });
                println!(
                    "{}\t{}\t{}\t{}@{}\t{}\t{}\t{}\t{fleet}{}",
                    e.seq,
                    weir::deploy::utc(e.at_ms),
                    e.action.label(),
                    e.name,
                    e.version,
                    plugin::cache::ComponentCache::short(&e.digest),
                    e.size,
                    e.by,
                    match (Some(i) == newest_live, current) {
                        (true, Some(seq)) => format!("\tlive, rejected: the fleet runs #{seq}"),
                        (true, None) if decisions.contains_key(&e.digest) =>
                            "\tlive, rejected: nothing for the fleet to run".to_owned(),
                        (true, None) => "\tlive".to_owned(),
                        (false, Some(seq)) if seq == e.seq => "\tcurrent".to_owned(),
                        _ => String::new(),
                    }
                );
            }
            match (live, newest_live) {
                (None, _) => println!("nothing is live at {location}"),
                (Some(d), None) => println!(
                    "the live bytes (sha256 {d}) are not in the history: they were written by something other than weir plugin deploy"
                ),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Plugin {
            command:
                PluginCommand::Rollback {
                    location,
                    config,
                    plugin,
                    options,
                    cache_dir,
                },
        } => tokio::task::block_in_place(|| {
            let (target, engine) = deploy_target(&location, config, plugin, options, cache_dir)?;
            let e = weir::deploy::rollback(&engine, &target)?;
            println!(
                "published {}@{} (sha256 {}) to {location} again as #{}",
                e.name, e.version, e.digest, e.seq
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Validate { config, connect } => {
            tokio::task::block_in_place(|| validate(&config, connect))
        }
        Command::Bucket {
            command: BucketCommand::Create { location },
        } => {
            weir::store::create_bucket(&location, &Default::default()).await?;
            println!("bucket {location} is ready");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Test {
                    wasm,
                    input,
                    config,
                    now,
                    tick,
                    batch_size,
                    fail_on_failures,
                    cache_dir,
                },
        } => {
            // Guest output goes through WASI's blocking bridge, which must
            // not run on a runtime worker's async context.
            let failed = tokio::task::block_in_place(|| {
                let engine = cli_engine(cache_dir)?;
                plugin_test(
                    &engine,
                    &wasm,
                    &input,
                    config.as_deref(),
                    now,
                    tick,
                    batch_size,
                )
            })?;
            Ok(if fail_on_failures && failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Bench {
            wasm,
            echo,
            records,
            repeat,
        } => {
            let cache =
                std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
            let report = tokio::task::block_in_place(|| {
                weir::bench::run(&wasm, echo.as_deref(), records, repeat, &cache)
            });
            let _ = std::fs::remove_dir_all(&cache);
            print!("{}", report?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Files {
            location,
            write,
            long,
        } => {
            let location = open_location(&location)?;
            let mut delta = weir::table::delta::DeltaTable::open(&location, 100)?;
            if delta.exists().await? {
                if write {
                    bail!(
                        "{}: is a Delta table: its log says which files are committed (readers read the table, not a list); --write is for weir-manifest locations",
                        location.display
                    );
                }
                let (files, version) = delta.files().await?;
                tracing::info!(table = %location.display, version = ?version, files = files.len(), "Files of the Delta table's newest version.");
                let mut out = std::io::stdout().lock();
                for file in &files {
                    if long {
                        let folder = file.path.rfind('/').map_or("", |end| &file.path[..=end]);
                        writeln!(out, "{}\t{}\t{}", file.path, file.size, folder)?;
                    } else {
                        writeln!(out, "{}", file.path)?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let snapshot = if write {
                weir::table::write_committed_list(&location).await?
            } else {
                weir::table::snapshot(&location).await?
            };
            let mut out = std::io::stdout().lock();
            for file in &snapshot.files {
                if long {
                    writeln!(out, "{}\t{}\t{}", file.name, file.size, file.folder)?;
                } else {
                    writeln!(out, "{}", file.name)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact {
            location,
            target_size,
            min_files,
            partition,
            sort_by,
            retention,
            dry_run,
        } => {
            let location = open_location(&location)?;
            let options = weir::table::compact::Options {
                target_size,
                min_files,
                partition,
                sort_by,
                retention,
                every: None,
                dry_run,
            };
            let report = weir::table::compact::compact(&location, &options).await?;
            if dry_run {
                for group in &report.groups {
                    println!(
                        "would merge {} files ({} bytes) in {}",
                        group.inputs.len(),
                        group.inputs.iter().map(|f| f.size).sum::<u64>(),
                        if group.folder.is_empty() {
                            "./"
                        } else {
                            &group.folder
                        }
                    );
                }
            }
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen {
            kind,
            count,
            seed,
            invalid_pct,
            to,
            format,
            brokers,
            topic,
            partitions,
        } => {
            let start_ms = 1_546_300_800_000;
            let lines = match kind {
                SampleKind::Taxi => weir::sample::taxi(count, seed, invalid_pct),
                SampleKind::Weather => {
                    weir::sample::weather(count, seed, start_ms, 1000, invalid_pct)
                }
                SampleKind::Logs => weir::sample::logs(count, seed, start_ms, invalid_pct),
                SampleKind::Users => weir::sample::users(count, seed, invalid_pct),
                SampleKind::Shots => weir::sample::shots(count, seed, invalid_pct),
            };
            // Weather is keyed by city, so that every reading of a city is
            // in one partition: a windowed average per city stays exact
            // when partitions are spread over processes. Shots by game, as
            // the scraper publishes them. Log lines by their timestamp:
            // spread over every partition (unkeyed, librdkafka's sticky
            // partitioner puts a burst of them in one or two).
            let key_field = match kind {
                SampleKind::Weather => Some("city"),
                SampleKind::Shots => Some("game_id"),
                SampleKind::Logs => Some("timestamp"),
                _ => None,
            };
            gen_write(lines, key_field, &to, format, brokers, topic, partitions).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes generated lines to stdout, a file, Parquet on an object store,
/// or a Kafka topic; each record's key is its `key_field`, when named and
/// present.
async fn gen_write(
    lines: Vec<weir::sample::Line>,
    key_field: Option<&str>,
    to: &str,
    format: GenFormat,
    brokers: Option<String>,
    topic: Option<String>,
    partitions: i32,
) -> Result<()> {
    use weir::sink::Sink;
    let now = weir::pipeline::now_ms();
    let records: Vec<weir::Record> = lines
        .into_iter()
        .map(|l| weir::Record {
            key: key_field.and_then(|field| {
                let value: serde_json::Value = serde_json::from_str(&l.text).ok()?;
                Some(value.get(field)?.as_str()?.as_bytes().to_vec())
            }),
            value: l.text.into_bytes(),
            timestamp_ms: now,
            headers: vec![],
        })
        .collect();
    let total = records.len();
    let mut sink: Box<dyn Sink> = if let Some(topic) = topic {
        let brokers = brokers.unwrap_or_else(|| "127.0.0.1:9092".into());
        let connection = weir::kafka::Connection {
            brokers: brokers.clone(),
            options: Default::default(),
        };
        weir::kafka::ensure_topic(&connection, &topic, partitions)
            .await
            .map_err(anyhow::Error::msg)?;
        Box::new(weir::sink::kafka::KafkaSink::open(
            &weir::sink::kafka::KafkaSinkConfig {
                brokers,
                topic,
                options: Default::default(),
            },
        )?)
    } else if matches!(format, GenFormat::Parquet) {
        if to == "-" {
            bail!("--format parquet needs --to <folder or s3://bucket/prefix>");
        }
        // Plain Parquet files (sample input for the object-store source),
        // not a table.
        let config: weir::sink::parquet::ParquetConfig = toml::from_str(&format!(
            "path = {}\ntable = \"weir\"",
            toml::Value::from(to)
        ))?;
        Box::new(weir::sink::parquet::ParquetSink::open(
            &config,
            &std::env::current_dir()?,
        )?)
    } else {
        let config = weir::sink::ndjson::NdjsonConfig {
            path: PathBuf::from(to),
            envelope: false,
            truncate: true,
        };
        Box::new(weir::sink::ndjson::NdjsonSink::open(&config, Path::new(to)).await?)
    };
    let mut refused = 0;
    for chunk in records.chunks(8192) {
        let rejected = sink.write(chunk.to_vec()).await?;
        for r in &rejected {
            tracing::warn!(reason = %r.reason, "Generated record not written.");
        }
        refused += rejected.len();
    }
    sink.close().await?;
    if to != "-" || refused > 0 {
        eprintln!(
            "{} of {total} records written to {}",
            total - refused,
            sink.describe()
        );
    }
    Ok(())
}

/// A Parquet location named on the command line (S3 settings from the
/// AWS_* environment).
fn open_location(location: &str) -> Result<weir::store::Location> {
    Ok(weir::store::open(
        location,
        &Default::default(),
        &std::env::current_dir()?,
    )?)
}

fn engine_for(config: &Config) -> Result<PluginEngine> {
    let cache = config
        .engine
        .cache_dir
        .as_ref()
        .map(|d| config.resolve(d))
        .or_else(plugin::cache::ComponentCache::default_dir);
    Ok(PluginEngine::new(cache)?)
}

async fn run(
    path: &Path,
    quiet: bool,
    listen: Option<std::net::SocketAddr>,
    watch_config: bool,
    only: &[String],
) -> Result<std::process::ExitCode> {
    let mut config = Config::load(path)?;
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|n| !config.pipelines.contains_key(*n)) {
            anyhow::bail!(
                "--pipeline {unknown}: {} defines no such pipeline (it has: {})",
                path.display(),
                config
                    .pipelines
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        config.pipelines.retain(|name, _| only.contains(name));
    }
    let engine = engine_for(&config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Signal received; draining.");
        let _ = stop_tx.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut progress = Vec::new();
    let mut targets = Vec::new();
    for name in config.pipelines.keys() {
        let mut pipeline = Pipeline::build(name, &config, &engine)
            .await
            .with_context(|| format!("pipeline {name} could not start"))?;
        progress.push((name.clone(), pipeline.stats()));
        targets.extend(pipeline.swap_targets());
        tasks.spawn(pipeline.run(stop_rx.clone()));
    }
    // Kept until the pipelines end; dropping it stops watching.
    let _watcher = if targets.is_empty() && !watch_config {
        None
    } else {
        let watched = targets.len();
        let watcher = weir::swap::watch(
            engine.clone(),
            targets,
            watch_config.then(|| path.to_owned()),
        )?;
        tracing::info!(
            plugins = watched,
            config = watch_config,
            "Watching for new plugin versions."
        );
        Some(watcher)
    };
    if let Some(addr) = listen.or(config.server.as_ref().map(|s| s.listen)) {
        weir::server::serve(addr, std::sync::Arc::new(progress.clone()))
            .await
            .with_context(|| format!("cannot serve metrics on {addr} (is the port taken?)"))?;
    }
    let show = !quiet && std::io::stderr().is_terminal();
    let reporter = show.then(|| tokio::spawn(report_progress(progress)));
    let mut failed = false;
    let mut summaries: Vec<Summary> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.context("pipeline task panicked")? {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                failed = true;
                tracing::error!(error = %e, "Pipeline failed.");
                eprintln!("error: {e}");
            }
        }
    }
    if let Some(r) = reporter {
        r.abort();
        eprintln!();
    }
    for s in &summaries {
        let skipped = if s.skipped > 0 {
            format!(", {} skipped", s.skipped)
        } else {
            String::new()
        };
        println!(
            "{}: {} in, {} out, {} dead-lettered{skipped}, {} plugin restarts in {:.2} s ({:.0} records/s)",
            s.pipeline,
            s.read,
            s.written,
            s.dead_lettered,
            s.restarts,
            s.elapsed.as_secs_f64(),
            s.records_per_sec()
        );
    }
    Ok(if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

async fn report_progress(pipelines: Vec<(String, std::sync::Arc<weir::pipeline::Stats>)>) {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let secs = started.elapsed().as_secs_f64();
        let line: Vec<String> = pipelines
            .iter()
            .map(|(name, s)| {
                let read = s.read.load(Ordering::Relaxed);
                let (swapped, refused) = {
                    let board = s.swaps.lock().expect("swap board lock");
                    board.counts.iter().fold((0, 0), |(ok, no), ((_, o), n)| {
                        if o.is_live() {
                            (ok + n, no)
                        } else {
                            (ok, no + n)
                        }
                    })
                };
                let swaps = if swapped + refused > 0 {
                    format!(" swaps {swapped} refused {refused}")
                } else {
                    String::new()
                };
                format!(
                    "{name}: in {read} out {} dead {} ({:.0}/s){swaps}",
                    s.written.load(Ordering::Relaxed),
                    s.dead_lettered.load(Ordering::Relaxed),
                    read as f64 / secs
                )
            })
            .collect();
        eprint!("\r{}   ", line.join(" | "));
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn validate(path: &Path, connect: bool) -> Result<std::process::ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(std::process::ExitCode::from(1));
        }
    };
    let engine = engine_for(&config)?;
    let mut problems = 0;
    for name in config.plugins.keys() {
        let spec = weir::pipeline::plugin_spec(&config, name);
        match engine.start(&spec) {
            Ok(p) => println!(
                "ok   plugins.{name}: {}@{} (state v{}, sha256 {})",
                p.info().name,
                p.info().version,
                p.info().state_version,
                &p.hash()[..12]
            ),
            Err(e) => {
                problems += 1;
                let key = match e {
                    plugin::Error::Init { .. } => format!("plugins.{name}.config"),
                    _ => format!("plugins.{name}.path"),
                };
                println!(
                    "FAIL {}: {}",
                    path.display(),
                    config.problem(&key, e.to_string())
                );
            }
        }
    }
    for (name, p) in &config.pipelines {
        println!(
            "ok   pipelines.{name}: {} → [{}] → {}",
            p.source.kind(),
            p.plugins.join(" → "),
            p.sink.kind()
        );
        // Load refused an impossible delivery already.
        if let Ok((delivery, why)) = p.delivery() {
            println!("     delivery: {delivery} ({why})");
        }
    }
    if connect {
        for endpoint in weir::reach::endpoints(&config) {
            match weir::reach::check(&endpoint.address, Duration::from_secs(3)) {
                Ok(()) => println!("ok   {}: {} answers", endpoint.key, endpoint.address),
                Err(why) => {
                    problems += 1;
                    println!(
                        "FAIL {}: {}",
                        path.display(),
                        config.problem(
                            &endpoint.key,
                            format!("{why}; is the service running and the address right? (weir run would wait for it, retrying)")
                        )
                    );
                }
            }
        }
    }
    if problems > 0 {
        println!("{problems} problem(s)");
        return Ok(std::process::ExitCode::from(1));
    }
    println!("{} is valid", path.display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// Turns `--config` into the JSON string `init` takes.
fn plugin_config(arg: Option<&str>) -> Result<String> {
    let Some(arg) = arg else {
        return Ok("{}".into());
    };
    let path = Path::new(arg);
    let (text, is_toml) = if path.is_file() {
        (
            std::fs::read_to_string(path)?,
            path.extension().is_some_and(|e| e == "toml"),
        )
    } else {
        (
            arg.to_owned(),
            serde_json::from_str::<serde_json::Value>(arg).is_err(),
        )
    };
    if is_toml {
        let table: toml::Table =
            toml::from_str(&text).context("--config is neither JSON nor TOML")?;
        Ok(serde_json::to_string(&table)?)
    } else {
        serde_json::from_str::<serde_json::Value>(&text).context("--config is not valid JSON")?;
        Ok(text)
    }
}

fn plugin_test(
    engine: &PluginEngine,
    wasm: &Path,
    input: &Path,
    config: Option<&str>,
    now: Option<i64>,
    tick: Option<i64>,
    batch_size: usize,
) -> Result<usize> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let spec = PluginSpec::of_file(wasm, plugin_config(config)?);
    let loaded = engine.load(&spec.path)?;
    // On stderr, so that stdout stays the plugin's output.
    eprintln!(
        "{} {} in {} ms",
        match loaded.origin {
            plugin::cache::Origin::Compiled => "compiled",
            plugin::cache::Origin::Cached => "loaded from the compiled-component cache",
        },
        wasm.display(),
        loaded.load_time.as_millis()
    );
    let mut plugin = engine.instantiate(&spec, &loaded)?;
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read --input {}", input.display()))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let now = now.unwrap_or_else(weir::pipeline::now_ms);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut outputs, mut failed) = (0usize, 0usize);
    for chunk in lines.chunks(batch_size) {
        let batch: Vec<plugin::Record> = chunk
            .iter()
            .map(|(_, l)| plugin::Record {
                key: None,
                value: l.as_bytes().to_vec(),
                timestamp_ms: now,
                headers: vec![],
            })
            .collect();
        let result = plugin.process(&batch, now)?;
        for f in &result.failures {
            failed += 1;
            let line = chunk.get(f.index as usize).map_or(0, |c| c.0);
            eprintln!("failure: {}:{line}: {}", input.display(), f.reason);
        }
        for r in &result.outputs {
            outputs += 1;
            out.write_all(&r.value)?;
            out.write_all(b"\n")?;
        }
    }
    if let Some(at) = tick {
        for r in plugin.on_tick(at)? {
            outputs += 1;
            out.write_all(&r.value)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    eprintln!(
        "{}@{}: {} in, {outputs} out, {failed} failed",
        plugin.info().name,
        plugin.info().version,
        lines.len()
    );
    Ok(failed)
}

/// `weir status`: a running weir's `/readyz`, which lists each pipeline,
/// its live plugin versions and their last swap.
async fn status(
    config: Option<&Path>,
    listen: Option<std::net::SocketAddr>,
) -> Result<std::process::ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = match (listen, config) {
        (Some(addr), _) => addr,
        (None, Some(path)) => Config::load(path)?
            .server
            .map_or_else(|| ([127, 0, 0, 1], 9464).into(), |s| s.listen),
        (None, None) => ([127, 0, 0, 1], 9464).into(),
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("no weir answers on {addr}; is it running with [server] or --listen?")
        })?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    print!("{body}");
    Ok(if head.starts_with("HTTP/1.1 200") {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// What to run after `weir plugin new`.
fn next_steps(lang: weir::authoring::Language, dir: &Path) -> String {
    let dir = dir.display();
    match lang {
        weir::authoring::Language::Rust => {
            format!("cd {dir} && cargo test, then weir plugin build {dir}")
        }
        weir::authoring::Language::Python => format!(
            "pip install weir-sdk (from weir's sdk/python) and componentize-py==0.25.1, cd {dir} && pytest, then weir plugin build {dir}"
        ),
        weir::authoring::Language::Js => {
            format!("cd {dir} && npm install && npm test, then weir plugin build {dir}")
        }
    }
}

//! weir: a streaming transform runtime.
//!
//! One native host owns all I/O and checkpointing; record transforms are
//! WebAssembly components that see only batches of records.
//!
//! # Layout
//!
//! The folders follow the data path:
//!
//! - `wit/transform.wit` — the contract between host and transforms.
//! - [`source`] — where records come from (one file per connector).
//! - [`plugin`] — the wasmtime engine, compiled cache, sandbox, instances.
//! - [`sink`] — where records go, and the dead-letter sink.
//! - [`pipeline`] — the loop that joins them: pull a batch → plugins → sink.
//! - [`store`] — object-store locations (S3, local, memory) shared by both.
//! - [`checkpoint`] — epochs' checkpoints: source positions + plugin state.
//! - [`kafka`] — librdkafka settings shared by the Kafka source and sink.
//! - [`server`] — `/metrics`, `/livez`, `/readyz`.
//! - [`config`] — the TOML configuration, `${VAR}` interpolation, validation.
//! - [`sample`] — deterministic sample data (taxi trips, weather, logs).
//! - [`bench`] — the WASM-vs-native benchmark behind `weir bench`.
//! - [`authoring`] — `weir plugin new` and `weir plugin build` (Rust, Python, JS).
//! - [`swap`] — hot swap: watching plugin files and published locations.
//! - [`deploy`] — `weir plugin deploy`, `history`, `rollback`: a version
//!   checked, then published to the location a fleet reads.
//! - [`diff`] — `weir plugin diff`: two versions on the same records.
//! - [`table`] — the committed files of a Parquet location and the epoch
//!   log of its table format (a Delta Lake table, `table::delta`, or weir's
//!   manifests), `weir files` and `weir compact`.
//!
//! `main.rs` is the CLI (`run`, `validate`, `plugin test`, `bench`, `gen`).

pub mod authoring;
pub mod bench;
mod chain;
pub mod checkpoint;
pub mod config;
pub mod crash;
pub mod deploy;
pub mod diff;
mod group;
pub mod kafka;
pub mod owner;
pub mod pipeline;
pub mod plugin;
pub mod reach;
pub mod record;
pub mod sample;
pub mod server;
pub mod sink;
pub mod source;
pub mod stats;
pub mod store;
pub mod swap;
pub mod table;

pub use plugin::{Header, Record};

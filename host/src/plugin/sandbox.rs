//! The WASI context every plugin gets: nothing, unless its configuration
//! grants folders to read (`read-only-dirs`).
//!
//! Components built for `wasm32-wasip2` import WASI interfaces through std.
//! They are linked, but grant nothing: no preopened directories (so no file
//! can be opened), no environment variables, no arguments, no sockets, no
//! name lookup, a stopped clock (time comes only through `process(now-ms)`).
//! The guest's stdout and stderr become `tracing` events tagged with the
//! plugin's name. Randomness stays available: it reads nothing of the host.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// The guest's last lines on stderr, kept so that a trap can say what the
/// guest said before it (a Rust panic prints its message there).
#[derive(Debug, Clone, Default)]
pub struct Stderr(Arc<std::sync::Mutex<Vec<String>>>);

/// Most stderr lines kept for a trap message.
const KEPT_LINES: usize = 4;

impl Stderr {
    /// Forgets what was said (before each call).
    pub fn clear(&self) {
        self.0.lock().expect("stderr lock").clear();
    }

    /// What was said since the last `clear`, as one line.
    pub fn said(&self) -> Option<String> {
        let lines = self.0.lock().expect("stderr lock");
        (!lines.is_empty()).then(|| lines.join(" | "))
    }

    fn keep(&self, line: &str) {
        // Rust's panic hook adds a hint about RUST_BACKTRACE, of no use here.
        if line.trim().is_empty() || line.starts_with("note: run with `RUST_BACKTRACE") {
            return;
        }
        let mut lines = self.0.lock().expect("stderr lock");
        if lines.len() == KEPT_LINES {
            lines.remove(0);
        }
        lines.push(line.chars().take(500).collect());
    }
}

/// Builds the WASI context for the plugin `name`: nothing but the folders
/// of `read_only` (guest path, host path), read-only. Its stderr lines are
/// also kept in `stderr`.
pub fn wasi_context(
    name: &Arc<str>,
    stderr: &Stderr,
    read_only: &[(String, std::path::PathBuf)],
) -> Result<WasiCtx, String> {
    let mut builder = WasiCtx::builder();
    for (guest, host) in read_only {
        builder
            .preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly)
            .map_err(|e| {
                format!(
                    "cannot grant {} as {guest} (read-only): {e:#}",
                    host.display()
                )
            })?;
    }
    builder
        .stdout(GuestLog {
            plugin: name.clone(),
            stream: "stdout",
            kept: None,
        })
        .stderr(GuestLog {
            plugin: name.clone(),
            stream: "stderr",
            kept: Some(stderr.clone()),
        })
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    Ok(builder.build())
}

/// A clock that always reads the Unix epoch: plugins get time from the host's
/// `now-ms` argument only, which keeps them deterministic and replayable.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Guest stdout/stderr, forwarded line by line to `tracing`.
#[derive(Clone)]
struct GuestLog {
    plugin: Arc<str>,
    stream: &'static str,
    kept: Option<Stderr>,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            target: self.clone(),
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            target: self.clone(),
            pending: Vec::new(),
        })
    }
}

/// Buffers partial lines; a line longer than 8 KiB is emitted in pieces.
struct LineWriter {
    target: GuestLog,
    pending: Vec<u8>,
}

const MAX_LINE: usize = 8 * 1024;

impl LineWriter {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let plugin = &*self.target.plugin;
        if let Some(kept) = &self.target.kept {
            kept.keep(text);
        }
        match self.target.stream {
            "stderr" => tracing::warn!(plugin, stream = "stderr", "{text}"),
            _ => tracing::info!(plugin, stream = "stdout", "{text}"),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

//! `weather-window`: per-city tumbling-window temperature statistics
//! (seed 004's 60-second average, plus count, min and max).
//!
//! Input: `{"city": "Oslo", "temperature": 3.5, "timestamp": …}` where the
//! timestamp (RFC 3339 or epoch ms) is needed only in event-time mode.
//! Output, one per closed (window, city): `{"city", "window_start",
//! "window_end", "count", "avg_temperature", "min_temperature",
//! "max_temperature"}`, key = city, timestamp = window end.
//!
//! - Processing time (default): a record belongs to the window holding the
//!   host's `now-ms`; windows close once `now-ms` reaches their end, from
//!   `process` or `on-tick`.
//! - Event time: a record belongs to the window holding its own timestamp;
//!   the watermark is the largest timestamp seen minus `watermark-delay`;
//!   a window closes when the watermark passes its end plus
//!   `allowed-lateness`. A record for a closed window is a failure ("late").
//!
//! Open windows and the watermark survive `snapshot`/`restore`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_plugin_kit::time::{RawTime, write_rfc3339};
use weir_plugin_kit::{BatchResult, Failure, Info, Record, Transform};

/// Which clock assigns records to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeMode {
    /// The host's clock when the record is processed.
    #[default]
    Processing,
    /// The record's own `timestamp` field.
    Event,
}

/// Configuration, from the plugin's section of the host configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    window: String,
    time: TimeMode,
    watermark_delay: String,
    allowed_lateness: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            window: "60s".into(),
            time: TimeMode::Processing,
            watermark_delay: "5s".into(),
            allowed_lateness: "0s".into(),
        }
    }
}

/// Parsed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Window size in milliseconds.
    pub window_ms: i64,
    /// Processing or event time.
    pub time: TimeMode,
    /// Event time: how far the watermark trails the largest timestamp.
    pub watermark_delay_ms: i64,
    /// Event time: how long after the watermark passes a window's end it
    /// still accepts records.
    pub allowed_lateness_ms: i64,
}

impl Config {
    /// Parses the JSON configuration; durations are `"60s"`-style strings.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: RawConfig = weir_plugin_kit::parse_config(json)?;
        let ms = |key: &str, text: &str| {
            weir_plugin_kit::duration::parse_ms(text)
                .map(|v| v as i64)
                .map_err(|e| format!("{key}: {e}"))
        };
        let config = Config {
            window_ms: ms("window", &raw.window)?,
            time: raw.time,
            watermark_delay_ms: ms("watermark-delay", &raw.watermark_delay)?,
            allowed_lateness_ms: ms("allowed-lateness", &raw.allowed_lateness)?,
        };
        if config.window_ms <= 0 {
            return Err("window: must be longer than 0".into());
        }
        Ok(config)
    }
}

/// Running aggregate of one (window, city).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    /// Readings.
    pub count: u64,
    /// Sum of temperatures.
    pub sum: f64,
    /// Lowest temperature.
    pub min: f64,
    /// Highest temperature.
    pub max: f64,
}

impl Agg {
    fn new(t: f64) -> Self {
        Agg {
            count: 1,
            sum: t,
            min: t,
            max: t,
        }
    }
    fn add(&mut self, t: f64) {
        self.count += 1;
        self.sum += t;
        self.min = self.min.min(t);
        self.max = self.max.max(t);
    }
}

/// What `snapshot` writes (state version 1), as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    windows: Vec<(i64, String, Agg)>,
    max_event_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Reading<'a> {
    #[serde(borrow)]
    city: Option<std::borrow::Cow<'a, str>>,
    temperature: Option<f64>,
    #[serde(borrow)]
    timestamp: Option<RawTime<'a>>,
}

/// The transform: open windows by start, then by city. Nested maps let a
/// reading find its aggregate by `&str`, without allocating a key.
pub struct WeatherWindow {
    config: Config,
    windows: BTreeMap<i64, BTreeMap<String, Agg>>,
    max_event_ms: Option<i64>,
}

impl WeatherWindow {
    fn watermark(&self) -> Option<i64> {
        self.max_event_ms
            .map(|m| m - self.config.watermark_delay_ms)
    }

    /// The instant up to which windows may close: `now` in processing time,
    /// the watermark minus allowed lateness in event time.
    fn closing_horizon(&self, now_ms: i64) -> Option<i64> {
        match self.config.time {
            TimeMode::Processing => Some(now_ms),
            TimeMode::Event if now_ms == weir_plugin_kit::END_OF_INPUT_MS => Some(now_ms),
            TimeMode::Event => self
                .watermark()
                .map(|w| w - self.config.allowed_lateness_ms),
        }
    }

    /// Emits and forgets every window whose end is at or before `horizon`.
    fn close_until(&mut self, horizon: Option<i64>, out: &mut Vec<Record>) {
        let Some(horizon) = horizon else { return };
        let size = self.config.window_ms;
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if start.saturating_add(size) > horizon {
                break;
            }
            for (city, agg) in entry.remove() {
                out.push(window_record(start, start + size, &city, &agg));
            }
        }
    }

    fn add(&mut self, value: &[u8], now_ms: i64) -> Result<(), String> {
        let reading: Reading =
            serde_json::from_slice(value).map_err(|e| format!("invalid JSON: {e}"))?;
        let city = reading
            .city
            .filter(|c| !c.trim().is_empty())
            .ok_or("city is missing or empty")?;
        let t = reading
            .temperature
            .ok_or("temperature is missing or not a number")?;
        let at = match self.config.time {
            TimeMode::Processing => now_ms,
            TimeMode::Event => {
                let ts = reading
                    .timestamp
                    .ok_or("timestamp is missing (required in event-time mode)")?
                    .parse()
                    .map_err(|e| format!("timestamp: {e}"))?
                    .epoch_ms;
                let start = ts.div_euclid(self.config.window_ms) * self.config.window_ms;
                if let Some(horizon) = self.closing_horizon(now_ms)
                    && start + self.config.window_ms <= horizon
                {
                    return Err(format!(
                        "late: window starting {} already closed (watermark {})",
                        weir_plugin_kit::time::format_rfc3339(start),
                        weir_plugin_kit::time::format_rfc3339(self.watermark().unwrap_or(ts))
                    ));
                }
                self.max_event_ms = Some(self.max_event_ms.map_or(ts, |m| m.max(ts)));
                ts
            }
        };
        let start = at.div_euclid(self.config.window_ms) * self.config.window_ms;
        let cities = self.windows.entry(start).or_default();
        match cities.get_mut(city.as_ref()) {
            Some(agg) => agg.add(t),
            None => {
                cities.insert(city.into_owned(), Agg::new(t));
            }
        }
        Ok(())
    }
}

fn window_record(start: i64, end: i64, city: &str, agg: &Agg) -> Record {
    let mut s = String::with_capacity(200);
    s.push_str("{\"city\":");
    s.push_str(&serde_json::to_string(city).expect("strings serialise"));
    s.push_str(",\"window_start\":\"");
    write_rfc3339(&mut s, start);
    s.push_str("\",\"window_end\":\"");
    write_rfc3339(&mut s, end);
    s.push_str(&format!(
        "\",\"count\":{},\"avg_temperature\":{},\"min_temperature\":{},\"max_temperature\":{}}}",
        agg.count,
        agg.sum / agg.count as f64,
        agg.min,
        agg.max
    ));
    Record {
        key: Some(city.as_bytes().to_vec()),
        value: s.into_bytes(),
        timestamp_ms: end,
        headers: Vec::new(),
    }
}

impl Transform for WeatherWindow {
    fn info() -> Info {
        Info {
            name: "weather-window".into(),
            // The `v2` feature builds the same logic under another version:
            // what the hot-swap tests switch to in the middle of a window.
            version: if cfg!(feature = "v2") {
                "2.0.0"
            } else {
                env!("CARGO_PKG_VERSION")
            }
            .into(),
            state_version: 1,
        }
    }

    fn new(config: &str) -> Result<Self, String> {
        Ok(WeatherWindow {
            config: Config::parse(config)?,
            windows: BTreeMap::new(),
            max_event_ms: None,
        })
    }

    fn process(&mut self, batch: Vec<Record>, now_ms: i64) -> BatchResult {
        let mut outputs = Vec::new();
        let mut failures = Vec::new();
        if self.config.time == TimeMode::Processing {
            self.close_until(Some(now_ms), &mut outputs);
        }
        for (index, record) in batch.iter().enumerate() {
            if let Err(reason) = self.add(&record.value, now_ms) {
                failures.push(Failure {
                    index: index as u32,
                    reason,
                });
            }
        }
        let horizon = self.closing_horizon(now_ms);
        self.close_until(horizon, &mut outputs);
        BatchResult { outputs, failures }
    }

    fn on_tick(&mut self, now_ms: i64) -> Vec<Record> {
        let mut outputs = Vec::new();
        let horizon = self.closing_horizon(now_ms);
        self.close_until(horizon, &mut outputs);
        outputs
    }

    fn snapshot(&self) -> Vec<u8> {
        let state = State {
            windows: self
                .windows
                .iter()
                .flat_map(|(s, cities)| cities.iter().map(|(c, a)| (*s, c.clone(), *a)))
                .collect(),
            max_event_ms: self.max_event_ms,
        };
        serde_json::to_vec(&state).expect("state serialises")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let state: State = if bytes.is_empty() {
            State::default()
        } else {
            serde_json::from_slice(bytes)
                .map_err(|e| format!("state is not weather-window state version 1: {e}"))?
        };
        self.windows.clear();
        for (start, city, agg) in state.windows {
            self.windows.entry(start).or_default().insert(city, agg);
        }
        self.max_event_ms = state.max_event_ms;
        Ok(())
    }
}

weir_plugin_kit::export_transform!(crate::WeatherWindow);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn rec(json: &str) -> Record {
        Record {
            key: None,
            value: json.as_bytes().to_vec(),
            timestamp_ms: 0,
            headers: vec![],
        }
    }

    fn parse(records: &[Record]) -> Vec<Value> {
        records
            .iter()
            .map(|r| serde_json::from_slice(&r.value).unwrap())
            .collect()
    }

    #[test]
    fn processing_time_windows_close_on_tick_with_count_avg_min_max() {
        let mut w = WeatherWindow::new("{}").unwrap();
        let out = w.process(
            vec![
                rec(r#"{"city":"Oslo","temperature":1}"#),
                rec(r#"{"city":"Oslo","temperature":4}"#),
                rec(r#"{"city":"Rome","temperature":20}"#),
            ],
            60_500,
        );
        assert!(out.outputs.is_empty() && out.failures.is_empty());
        assert!(w.on_tick(119_999).is_empty());
        let closed = parse(&w.on_tick(120_000));
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0]["city"], "Oslo");
        assert_eq!(closed[0]["count"], 2);
        assert_eq!(closed[0]["avg_temperature"], 2.5);
        assert_eq!(closed[0]["min_temperature"], 1.0);
        assert_eq!(closed[0]["max_temperature"], 4.0);
        assert_eq!(closed[0]["window_start"], "1970-01-01T00:01:00Z");
        assert_eq!(closed[0]["window_end"], "1970-01-01T00:02:00Z");
        assert_eq!(closed[1]["city"], "Rome");
    }

    #[test]
    fn event_time_uses_watermark_and_refuses_late_records() {
        let mut w = WeatherWindow::new(r#"{"time":"event","window":"10s","watermark-delay":"2s"}"#)
            .unwrap();
        let out = w.process(
            vec![
                rec(r#"{"city":"A","temperature":1,"timestamp":1000}"#),
                rec(r#"{"city":"A","temperature":3,"timestamp":"1970-01-01T00:00:09Z"}"#),
                rec(r#"{"city":"A","temperature":5,"timestamp":12500}"#),
            ],
            0,
        );
        // Watermark 10.5 s: window [0, 10 s) closed.
        let closed = parse(&out.outputs);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0]["count"], 2);
        assert_eq!(closed[0]["avg_temperature"], 2.0);
        let late = w.process(
            vec![rec(r#"{"city":"A","temperature":9,"timestamp":5000}"#)],
            0,
        );
        assert_eq!(late.failures.len(), 1);
        assert!(
            late.failures[0].reason.starts_with("late"),
            "{}",
            late.failures[0].reason
        );
        let rest = parse(&w.on_tick(i64::MAX));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0]["avg_temperature"], 5.0);
    }

    #[test]
    fn open_windows_survive_snapshot_and_restore() {
        let mut old = WeatherWindow::new("{}").unwrap();
        old.process(vec![rec(r#"{"city":"Oslo","temperature":2}"#)], 1_000);
        let state = old.snapshot();
        let mut new = WeatherWindow::new("{}").unwrap();
        new.restore(&state).unwrap();
        new.process(vec![rec(r#"{"city":"Oslo","temperature":4}"#)], 2_000);
        let closed = parse(&new.on_tick(60_000));
        assert_eq!(closed[0]["count"], 2);
        assert_eq!(closed[0]["avg_temperature"], 3.0);
        assert!(new.restore(b"garbage").is_err());
    }

    #[test]
    fn a_snapshot_restores_sums_to_the_last_bit() {
        // These 17 readings sum to 413.84000000000003, which serde_json
        // without `float_roundtrip` reads back as 413.84.
        let batch: Vec<Record> = (0..17u64)
            .map(|i| 12.0 + ((i * 7919) % 2200) as f64 / 100.0)
            .map(|t| rec(&format!(r#"{{"city":"Cairo","temperature":{t}}}"#)))
            .collect();
        let mut old = WeatherWindow::new("{}").unwrap();
        old.process(batch, 1_000);
        assert!(String::from_utf8_lossy(&old.snapshot()).contains("413.84000000000003"));
        let mut new = WeatherWindow::new("{}").unwrap();
        new.restore(&old.snapshot()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&new.snapshot()),
            String::from_utf8_lossy(&old.snapshot())
        );
    }

    #[test]
    fn bad_readings_fail_with_reasons() {
        let mut w = WeatherWindow::new("{}").unwrap();
        let out = w.process(
            vec![
                rec(r#"{"temperature":1}"#),
                rec(r#"{"city":"A","temperature":"warm"}"#),
                rec("nope"),
            ],
            0,
        );
        let reasons: Vec<_> = out.failures.iter().map(|f| f.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].contains("city"));
        assert!(reasons[1].contains("invalid JSON") || reasons[1].contains("temperature"));
        assert!(reasons[2].contains("invalid JSON"));
        assert!(WeatherWindow::new(r#"{"window":"0s"}"#).is_err());
        assert!(WeatherWindow::new(r#"{"windw":"1s"}"#).is_err());
    }
}

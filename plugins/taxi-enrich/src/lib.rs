//! `taxi-enrich`: validates NYC TLC yellow-trip records and enriches them with
//! trip metrics (seed 000's clean/validate/enrich step).
//!
//! Input: one JSON object per record with TLC's field names. Output: the same
//! object, every input field kept byte for byte, with these fields appended:
//! `pickup_at`, `dropoff_at` (RFC 3339, UTC), `trip_duration_min`,
//! `avg_speed_mph`, `fare_per_mile`, `tip_pct` (null when the fare is 0),
//! `pickup_hour`, `pickup_day_of_week`, `trip_category`.
//!
//! A record that fails validation becomes a failure with the reason; it is
//! never dropped silently.

use serde::Deserialize;
use weir_plugin_kit::time::{RawTime, Timestamp};
use weir_plugin_kit::{BatchResult, Info, Record, Transform, parse_config};

/// Thresholds, from the plugin's section of the host configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Trips faster than this on average are impossible.
    pub max_speed_mph: f64,
    /// Trips longer than this are data errors.
    pub max_distance_miles: f64,
    /// Trips lasting longer than this are data errors.
    pub max_duration_hours: f64,
    /// Trips shorter than this are `short`.
    pub short_trip_miles: f64,
    /// Trips at least this long are `long`; the rest are `medium`.
    pub long_trip_miles: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_speed_mph: 100.0,
            max_distance_miles: 250.0,
            max_duration_hours: 24.0,
            short_trip_miles: 2.0,
            long_trip_miles: 10.0,
        }
    }
}

/// The fields of a TLC record the enrichment reads; others pass through.
#[derive(Deserialize)]
struct Trip<'a> {
    #[serde(borrow)]
    tpep_pickup_datetime: Option<RawTime<'a>>,
    #[serde(borrow)]
    tpep_dropoff_datetime: Option<RawTime<'a>>,
    trip_distance: Option<f64>,
    fare_amount: Option<f64>,
    tip_amount: Option<f64>,
}

/// The derived metrics of one valid trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Pick-up instant and wall clock.
    pub pickup: Timestamp,
    /// Drop-off instant and wall clock.
    pub dropoff: Timestamp,
    /// Trip duration in minutes.
    pub duration_min: f64,
    /// Average speed in miles per hour.
    pub avg_speed_mph: f64,
    /// Fare divided by distance.
    pub fare_per_mile: f64,
    /// Tip as a percentage of the fare; `None` when the fare is zero.
    pub tip_pct: Option<f64>,
    /// `short`, `medium` or `long`.
    pub category: &'static str,
}

/// Validates one record and computes its metrics, or says why it is invalid.
pub fn analyse(config: &Config, value: &[u8]) -> Result<Metrics, String> {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("record is not a JSON object".into());
    }
    let trip: Trip = serde_json::from_slice(value).map_err(|e| format!("invalid JSON: {e}"))?;
    let pickup = required_time(trip.tpep_pickup_datetime.as_ref(), "tpep_pickup_datetime")?;
    let dropoff = required_time(trip.tpep_dropoff_datetime.as_ref(), "tpep_dropoff_datetime")?;
    if dropoff.epoch_ms <= pickup.epoch_ms {
        return Err(format!(
            "tpep_dropoff_datetime is not after tpep_pickup_datetime ({} ms apart)",
            dropoff.epoch_ms - pickup.epoch_ms
        ));
    }
    let duration_min = (dropoff.epoch_ms - pickup.epoch_ms) as f64 / 60_000.0;
    if duration_min > config.max_duration_hours * 60.0 {
        return Err(format!(
            "trip lasts {:.1} h, more than max-duration-hours {}",
            duration_min / 60.0,
            config.max_duration_hours
        ));
    }
    let distance = trip.trip_distance.ok_or("trip_distance is missing")?;
    if distance <= 0.0 || distance.is_nan() {
        return Err(format!("trip_distance {distance} is not positive"));
    }
    if distance > config.max_distance_miles {
        return Err(format!(
            "trip_distance {distance} mi is more than max-distance-miles {}",
            config.max_distance_miles
        ));
    }
    let fare = trip.fare_amount.ok_or("fare_amount is missing")?;
    if fare < 0.0 {
        return Err(format!("fare_amount {fare} is negative"));
    }
    let avg_speed_mph = distance / (duration_min / 60.0);
    if avg_speed_mph > config.max_speed_mph {
        return Err(format!(
            "average speed {avg_speed_mph:.1} mph is more than max-speed-mph {}",
            config.max_speed_mph
        ));
    }
    let tip = trip.tip_amount.unwrap_or(0.0);
    let category = if distance < config.short_trip_miles {
        "short"
    } else if distance < config.long_trip_miles {
        "medium"
    } else {
        "long"
    };
    Ok(Metrics {
        pickup,
        dropoff,
        duration_min,
        avg_speed_mph,
        fare_per_mile: fare / distance,
        tip_pct: (fare > 0.0).then(|| tip / fare * 100.0),
        category,
    })
}

fn required_time(raw: Option<&RawTime>, field: &str) -> Result<Timestamp, String> {
    raw.ok_or_else(|| format!("{field} is missing"))?
        .parse()
        .map_err(|e| format!("{field}: {e}"))
}

/// The version `describe` reports. The `v2` feature builds the version the
/// hot-swap tests switch to: it also writes `fare_per_minute`.
pub const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else {
    env!("CARGO_PKG_VERSION")
};

/// Appends the metrics to a JSON object in place: the closing `}` is replaced
/// by the new fields, so input fields are kept exactly and no second buffer
/// is allocated.
pub fn append_metrics(value: &mut Vec<u8>, m: &Metrics) {
    let end = value
        .iter()
        .rposition(|&b| b == b'}')
        .unwrap_or(value.len());
    let empty = value[..end]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    value.truncate(end);
    value.reserve(320);
    if !empty {
        value.push(b',');
    }
    value.extend_from_slice(b"\"pickup_at\":\"");
    weir_plugin_kit::time::push_rfc3339(value, m.pickup.epoch_ms);
    value.extend_from_slice(b"\",\"dropoff_at\":\"");
    weir_plugin_kit::time::push_rfc3339(value, m.dropoff.epoch_ms);
    value.push(b'"');
    push_number(value, "trip_duration_min", Some(m.duration_min));
    push_number(value, "avg_speed_mph", Some(m.avg_speed_mph));
    push_number(value, "fare_per_mile", Some(m.fare_per_mile));
    push_number(value, "tip_pct", m.tip_pct);
    #[cfg(feature = "v2")]
    push_number(
        value,
        "fare_per_minute",
        Some(m.fare_per_mile * m.avg_speed_mph / 60.0),
    );
    let hour = m.pickup.hour();
    value.extend_from_slice(b",\"pickup_hour\":");
    if hour >= 10 {
        value.push(b'0' + (hour / 10) as u8);
    }
    value.push(b'0' + (hour % 10) as u8);
    value.extend_from_slice(b",\"pickup_day_of_week\":\"");
    value.extend_from_slice(m.pickup.weekday_name().as_bytes());
    value.extend_from_slice(b"\",\"trip_category\":\"");
    value.extend_from_slice(m.category.as_bytes());
    value.extend_from_slice(b"\"}");
}

/// Appends `,"name":value`; serde_json's float formatting is the shortest
/// text that reads back exactly, and much cheaper than `core::fmt` in wasm.
fn push_number(out: &mut Vec<u8>, name: &str, value: Option<f64>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) if v.is_finite() => {
            serde_json::to_writer(&mut *out, &v).expect("writing to a Vec cannot fail")
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// The transform: configuration only, no state.
pub struct TaxiEnrich {
    config: Config,
}

impl TaxiEnrich {
    /// Enriches one record in place, or says why it is invalid.
    pub fn enrich(&self, record: &mut Record) -> Result<(), String> {
        let metrics = analyse(&self.config, &record.value)?;
        append_metrics(&mut record.value, &metrics);
        Ok(())
    }
}

impl Transform for TaxiEnrich {
    fn info() -> Info {
        Info {
            name: "taxi-enrich".into(),
            version: VERSION.into(),
            state_version: 0,
        }
    }

    fn new(config: &str) -> Result<Self, String> {
        Ok(TaxiEnrich {
            config: parse_config(config)?,
        })
    }

    fn process(&mut self, batch: Vec<Record>, _now_ms: i64) -> BatchResult {
        weir_plugin_kit::each_record(batch, |record| self.enrich(record))
    }
}

weir_plugin_kit::export_transform!(crate::TaxiEnrich);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn record(json: &str) -> Record {
        Record {
            key: None,
            value: json.as_bytes().to_vec(),
            timestamp_ms: 0,
            headers: vec![],
        }
    }

    const VALID: &str = r#"{"VendorID":1,"tpep_pickup_datetime":"2019-01-05 14:00:00","tpep_dropoff_datetime":"2019-01-05 14:30:00","passenger_count":1,"trip_distance":6.0,"fare_amount":20.0,"tip_amount":4.0,"total_amount":25.3}"#;

    #[test]
    fn enriches_a_valid_trip_and_keeps_its_fields() {
        let mut t = TaxiEnrich::new("{}").unwrap();
        let out = t.process(vec![record(VALID)], 0);
        assert!(out.failures.is_empty());
        let v: Value = serde_json::from_slice(&out.outputs[0].value).unwrap();
        assert_eq!(v["VendorID"], 1);
        assert_eq!(v["total_amount"], 25.3);
        assert_eq!(v["trip_duration_min"], 30.0);
        assert_eq!(v["avg_speed_mph"], 12.0);
        assert_eq!(v["fare_per_mile"], 20.0 / 6.0);
        assert_eq!(v["tip_pct"], 20.0);
        assert_eq!(v["pickup_hour"], 14.0);
        assert_eq!(v["pickup_day_of_week"], "Saturday");
        assert_eq!(v["trip_category"], "medium");
        assert_eq!(v["pickup_at"], "2019-01-05T14:00:00Z");
    }

    #[test]
    fn invalid_trips_fail_with_reasons_and_the_rest_pass() {
        let mut t = TaxiEnrich::new("{}").unwrap();
        let batch = vec![
            record(VALID),
            record(&VALID.replace("14:30:00", "13:30:00")),
            record(&VALID.replace("\"trip_distance\":6.0", "\"trip_distance\":0")),
            record(&VALID.replace("\"fare_amount\":20.0", "\"fare_amount\":-3")),
            record(&VALID.replace("\"trip_distance\":6.0", "\"trip_distance\":200")),
            record(&VALID.replace("2019-01-05 14:00:00", "not a time")),
            record("[1,2]"),
            record("{\"truncated\":"),
        ];
        let out = t.process(batch, 0);
        assert_eq!(out.outputs.len(), 1);
        let reasons: Vec<(u32, &str)> = out
            .failures
            .iter()
            .map(|f| (f.index, f.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 7);
        assert!(reasons[0].1.contains("not after"), "{reasons:?}");
        assert!(reasons[1].1.contains("not positive"));
        assert!(reasons[2].1.contains("negative"));
        assert!(reasons[3].1.contains("max-speed-mph"));
        assert!(reasons[4].1.contains("unparseable timestamp"));
        assert!(reasons[5].1.contains("not a JSON object"));
        assert!(reasons[6].1.contains("invalid JSON"));
        assert_eq!(
            reasons.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7]
        );
    }

    #[test]
    fn thresholds_come_from_config_and_typos_are_refused() {
        let t = TaxiEnrich::new(r#"{"max-speed-mph": 5}"#).unwrap();
        let err = analyse(&t.config, VALID.as_bytes()).unwrap_err();
        assert!(err.contains("max-speed-mph 5"), "{err}");
        let typo = TaxiEnrich::new(r#"{"max-sped-mph": 5}"#).err().unwrap();
        assert!(typo.contains("unknown field"), "{typo}");
    }

    #[test]
    fn zero_fare_has_no_tip_percentage_and_epoch_inputs_work() {
        let json = r#"{"tpep_pickup_datetime":1546696800000,"tpep_dropoff_datetime":"1546697400000","trip_distance":1.0,"fare_amount":0}"#;
        let mut r = record(json);
        TaxiEnrich::new("").unwrap().enrich(&mut r).unwrap();
        let v: Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["tip_pct"], Value::Null);
        assert_eq!(v["trip_duration_min"], 10.0);
        assert_eq!(v["trip_category"], "short");
    }
}

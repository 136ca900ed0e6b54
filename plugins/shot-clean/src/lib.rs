//! `shot-clean`: seed 002's shot-chart transform. Takes one field-goal
//! attempt as the scraper publishes it to `shot_charts`:
//!
//! `{"shot_id", "game_id", "game_date", "season", "team", "opponent",
//!   "player_id", "player", "period", "clock", "x", "y", "made",
//!   "shot_type", "action"}`
//!
//! (`x`, `y`: feet from the hoop, `x` across the court, `y` towards
//! mid-court; `clock`: what the period has left, `MM:SS`), checks it, and
//! writes it with what the shot-chart dashboards compute:
//!
//! - `distance_ft`: from `x` and `y`, to a tenth of a foot;
//! - `zone`: `Restricted Area` (within 4 ft), `In The Paint (Non-RA)`
//!   (the 16-ft lane up to the free-throw line), `Corner 3`, `Above the
//!   Break 3`, `Mid-Range` or `Backcourt` (past half court), from the
//!   court's geometry;
//! - `points`: 3 or 2 for a made attempt by its `shot_type`, else 0;
//! - `clock_seconds` (left in the period) and `game_seconds` (since tip-off,
//!   12-minute periods then 5-minute overtimes).
//!
//! An attempt is a failure, with the field named, when a field is missing
//! or of the wrong type, the period is not 1–10, the clock is not a time
//! the period can show, the point lies off the court, the date is not a
//! date, or the `shot_type` contradicts the distance (a three from inside
//! 21.5 ft, a two from beyond 25 ft).

use serde::{Deserialize, Serialize};
use weir_plugin_kit::{BatchResult, Info, Record, Transform};

/// The transform (no configuration).
pub struct ShotClean;

#[derive(Deserialize)]
struct Shot<'a> {
    #[serde(borrow)]
    shot_id: &'a str,
    #[serde(borrow)]
    game_id: &'a str,
    #[serde(borrow)]
    game_date: &'a str,
    #[serde(borrow)]
    season: &'a str,
    #[serde(borrow)]
    team: &'a str,
    #[serde(borrow)]
    opponent: &'a str,
    player_id: i64,
    player: String,
    period: i64,
    #[serde(borrow)]
    clock: &'a str,
    x: f64,
    y: f64,
    made: bool,
    #[serde(borrow)]
    shot_type: &'a str,
    #[serde(default)]
    action: Option<String>,
}

/// What is written.
#[derive(Serialize)]
struct Clean<'a> {
    shot_id: &'a str,
    game_id: &'a str,
    game_date: &'a str,
    season: &'a str,
    team: &'a str,
    opponent: &'a str,
    player_id: i64,
    player: String,
    period: i64,
    clock_seconds: i64,
    game_seconds: i64,
    x: f64,
    y: f64,
    distance_ft: f64,
    zone: &'static str,
    shot_type: &'a str,
    action: Option<String>,
    made: bool,
    points: i64,
}

/// Half the court's width, and the hoop's distance from its baseline, ft.
const HALF_WIDTH: f64 = 25.0;
const HOOP_FROM_BASELINE: f64 = 5.25;
const COURT_LENGTH: f64 = 94.0;

/// The zone of a point (feet from the hoop) on an NBA court.
pub fn zone(x: f64, y: f64) -> &'static str {
    let distance = x.hypot(y);
    if y > COURT_LENGTH / 2.0 - HOOP_FROM_BASELINE {
        "Backcourt"
    } else if distance <= 4.0 {
        "Restricted Area"
    } else if x.abs() >= 22.0 && y <= 8.75 {
        // The corners' straight line, 22 ft out, up to 14 ft from the baseline.
        "Corner 3"
    } else if distance >= 23.75 {
        "Above the Break 3"
    } else if x.abs() <= 8.0 && y <= 19.0 - HOOP_FROM_BASELINE {
        "In The Paint (Non-RA)"
    } else {
        "Mid-Range"
    }
}

/// Seconds shown by a `MM:SS` clock, if a period of this length can show it.
fn clock_seconds(clock: &str, period_seconds: i64) -> Option<i64> {
    let (minutes, seconds) = clock.split_once(':')?;
    let digits = |t: &str| (1..=2).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(minutes) || seconds.len() != 2 || !digits(seconds) {
        return None;
    }
    let (minutes, seconds): (i64, i64) = (minutes.parse().ok()?, seconds.parse().ok()?);
    let total = minutes * 60 + seconds;
    (seconds < 60 && total <= period_seconds).then_some(total)
}

fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        text[..4].parse::<i64>(),
        text[5..7].parse::<i64>(),
        text[8..].parse::<i64>(),
    ) else {
        return false;
    };
    let days = weir_plugin_kit::time::days_from_civil(y, m, d);
    (1..=12).contains(&m) && weir_plugin_kit::time::civil_from_days(days) == (y, m, d)
}

fn one_decimal(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl ShotClean {
    /// One attempt → one clean record, or why it was refused.
    pub fn clean(value: &[u8]) -> Result<Vec<u8>, String> {
        let shot: Shot = serde_json::from_slice(value).map_err(|e| {
            if e.is_data() {
                format!("not a shot record: {e}")
            } else {
                format!("not JSON: {e}")
            }
        })?;
        if shot.player.trim().is_empty() {
            return Err("player is empty".into());
        }
        if !(1..=10).contains(&shot.period) {
            return Err(format!(
                "period {} is not 1-4 or an overtime up to 10",
                shot.period
            ));
        }
        let length = if shot.period <= 4 { 720 } else { 300 };
        let left = clock_seconds(shot.clock, length).ok_or_else(|| {
            format!(
                "clock {:?} is not MM:SS within a {}-minute period",
                shot.clock,
                length / 60
            )
        })?;
        let played_before = if shot.period <= 4 {
            (shot.period - 1) * 720
        } else {
            4 * 720 + (shot.period - 5) * 300
        };
        let on_court = shot.x.abs() <= HALF_WIDTH
            && (-HOOP_FROM_BASELINE..=COURT_LENGTH - HOOP_FROM_BASELINE).contains(&shot.y);
        if !on_court {
            return Err(format!(
                "x {} / y {} lies off the court (x within ±25 ft, y from -5.25 to 88.75 ft)",
                shot.x, shot.y
            ));
        }
        if !is_date(shot.game_date) {
            return Err(format!("game_date {:?} is not YYYY-MM-DD", shot.game_date));
        }
        let distance = one_decimal(shot.x.hypot(shot.y));
        let value_of_make = match shot.shot_type {
            "3PT Field Goal" if distance < 21.5 => {
                return Err(format!(
                    "a 3PT Field Goal from {distance} ft is inside the arc"
                ));
            }
            "2PT Field Goal" if distance > 25.0 && shot.y <= 41.75 => {
                return Err(format!(
                    "a 2PT Field Goal from {distance} ft is beyond the arc"
                ));
            }
            "3PT Field Goal" => 3,
            "2PT Field Goal" => 2,
            other => {
                return Err(format!(
                    "shot_type {other:?} is not \"2PT Field Goal\" or \"3PT Field Goal\""
                ));
            }
        };
        let clean = Clean {
            shot_id: shot.shot_id,
            game_id: shot.game_id,
            game_date: shot.game_date,
            season: shot.season,
            team: shot.team,
            opponent: shot.opponent,
            player_id: shot.player_id,
            player: shot.player,
            period: shot.period,
            clock_seconds: left,
            game_seconds: played_before + length - left,
            x: shot.x,
            y: shot.y,
            distance_ft: distance,
            zone: zone(shot.x, shot.y),
            shot_type: shot.shot_type,
            action: shot.action,
            made: shot.made,
            points: if shot.made { value_of_make } else { 0 },
        };
        Ok(serde_json::to_vec(&clean).expect("JSON serialises"))
    }
}

impl Transform for ShotClean {
    fn info() -> Info {
        Info {
            name: "shot-clean".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            state_version: 0,
        }
    }

    fn new(config: &str) -> Result<Self, String> {
        let _: NoConfig = weir_plugin_kit::parse_config(config)?;
        Ok(ShotClean)
    }

    fn process(&mut self, batch: Vec<Record>, _now_ms: i64) -> BatchResult {
        weir_plugin_kit::each_record(batch, |record| {
            record.value = Self::clean(&record.value)?;
            Ok(())
        })
    }
}

/// shot-clean takes no settings; any key is refused.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoConfig {}

weir_plugin_kit::export_transform!(crate::ShotClean);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SHOT: &str = r#"{"shot_id":"0022300001-0007","game_id":"0022300001","game_date":"2023-10-24","season":"2023-24","team":"BOS","opponent":"MIA","player_id":1626037,"player":"Jalen Brown","period":5,"clock":"01:30","x":-22.4,"y":3.1,"made":true,"shot_type":"3PT Field Goal","action":"Jump Shot"}"#;

    fn clean(text: &str) -> Result<Value, String> {
        ShotClean::clean(text.as_bytes()).map(|v| serde_json::from_slice(&v).unwrap())
    }

    #[test]
    fn a_made_corner_three_in_overtime_scores_three_at_the_right_game_second() {
        let out = clean(SHOT).unwrap();
        assert_eq!(out["zone"], "Corner 3");
        assert_eq!(out["points"], 3);
        assert_eq!(out["distance_ft"], 22.6);
        assert_eq!(out["clock_seconds"], 90);
        assert_eq!(out["game_seconds"], 2880 + 300 - 90);
    }

    #[test]
    fn zones_follow_the_court_lines() {
        assert_eq!(zone(1.0, 2.0), "Restricted Area");
        assert_eq!(zone(6.0, 10.0), "In The Paint (Non-RA)");
        assert_eq!(zone(12.0, 10.0), "Mid-Range");
        assert_eq!(zone(22.5, 5.0), "Corner 3");
        assert_eq!(zone(0.0, 24.0), "Above the Break 3");
        assert_eq!(zone(0.0, 60.0), "Backcourt");
    }

    #[test]
    fn impossible_attempts_are_refused_with_the_field_named() {
        for (from, to, says) in [
            (r#""clock":"01:30""#, r#""clock":"14:75""#, "clock"),
            (r#""clock":"01:30""#, r#""clock":"06:00""#, "5-minute"),
            (r#""period":5"#, r#""period":0"#, "period"),
            (r#""x":-22.4"#, r#""x":61.5"#, "off the court"),
            (
                r#""x":-22.4,"y":3.1"#,
                r#""x":-2.4,"y":3.1"#,
                "inside the arc",
            ),
            (
                r#""game_date":"2023-10-24""#,
                r#""game_date":"2023-02-30""#,
                "game_date",
            ),
            (r#""player":"Jalen Brown","#, "", "player"),
            (r#""3PT Field Goal""#, r#""Free Throw""#, "shot_type"),
        ] {
            let text = SHOT.replace(from, to);
            assert_ne!(text, SHOT, "{from}");
            let reason = clean(&text).unwrap_err();
            assert!(reason.contains(says), "{to}: {reason}");
        }
        assert!(clean(&SHOT[..40]).unwrap_err().starts_with("not JSON"));
    }

    #[test]
    fn settings_are_refused() {
        assert!(ShotClean::new(r#"{"zone":"x"}"#).is_err());
        assert!(ShotClean::new("{}").is_ok());
    }
}

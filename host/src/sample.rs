//! Deterministic sample data for the quickstart, tests and benchmarks:
//! NYC-style taxi trips, weather readings, structured logs, users and
//! basketball shot charts.
//!
//! The same `seed` and `count` always give the same lines. Each generator
//! also says which lines it made invalid on purpose and how, so tests can
//! check a transform's failures against the generator's intent rather than
//! against the transform's own output.

use std::fmt::Write;

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One generated line and, when made invalid on purpose, the defect.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The NDJSON line, without the line break.
    pub text: String,
    /// `None` for a valid record; the kind of defect otherwise.
    pub defect: Option<&'static str>,
}

fn two(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (TLC's layout) of seconds since the Unix
/// epoch.
pub(crate) fn utc_time(epoch_s: i64) -> String {
    let days = epoch_s.div_euclid(86_400);
    let secs = epoch_s.rem_euclid(86_400);
    let (y, m, d) = weir_plugin_kit::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Taxi trips of January 2019 in TLC's yellow-trip layout; about
/// `invalid_pct` percent carry one defect each (reversed times, zero
/// distance, negative fare, unparseable timestamp, impossible speed,
/// truncated JSON).
pub fn taxi(count: usize, seed: u64, invalid_pct: f64) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    let start = 1_546_300_800; // 2019-01-01 00:00:00
    let mut lines = Vec::with_capacity(count);
    for _ in 0..count {
        let pickup = start + rng.range(0, 31 * 86_400 - 1);
        let distance = two((0.8 + 0.8 * rng.normal()).exp().clamp(0.1, 60.0));
        let speed = (12.0 + 4.0 * rng.normal()).clamp(3.0, 45.0);
        let minutes = (distance / speed * 60.0).max(1.0);
        let mut dropoff = pickup + (minutes * 60.0) as i64;
        let fare = two(2.5 + 2.5 * distance + 0.3 * minutes);
        let card = rng.chance(0.7);
        let tip = if card {
            two(fare * (0.10 + 0.15 * rng.unit()))
        } else {
            0.0
        };
        let extra = [0.0, 0.5, 1.0][rng.range(0, 2) as usize];
        let tolls = if rng.chance(0.05) { 5.76 } else { 0.0 };
        let mut fields = (utc_time(pickup), distance, fare);
        let defect = if rng.chance(invalid_pct / 100.0) {
            Some(match rng.range(0, 5) {
                0 => {
                    dropoff = pickup - 60 * rng.range(1, 30);
                    "dropoff-before-pickup"
                }
                1 => {
                    fields.1 = 0.0;
                    "zero-distance"
                }
                2 => {
                    fields.2 = -two(fare);
                    "negative-fare"
                }
                3 => {
                    fields.0 = "01/01/2019 12:00".into();
                    "unparseable-timestamp"
                }
                4 => {
                    fields.1 = 95.0;
                    dropoff = pickup + 600;
                    "impossible-speed"
                }
                _ => "truncated-json",
            })
        } else {
            None
        };
        let total = two(fields.2 + extra + 0.5 + 0.3 + tip + tolls);
        let mut text = String::with_capacity(420);
        let _ = write!(
            text,
            r#"{{"VendorID":{},"tpep_pickup_datetime":"{}","tpep_dropoff_datetime":"{}","passenger_count":{},"trip_distance":{},"RatecodeID":1,"store_and_fwd_flag":"N","PULocationID":{},"DOLocationID":{},"payment_type":{},"fare_amount":{},"extra":{},"mta_tax":0.5,"tip_amount":{},"tolls_amount":{},"improvement_surcharge":0.3,"total_amount":{}}}"#,
            rng.range(1, 2),
            fields.0,
            utc_time(dropoff),
            [1, 1, 1, 1, 2, 2, 3, 5, 6][rng.range(0, 8) as usize],
            fields.1,
            rng.range(1, 265),
            rng.range(1, 265),
            if card { 1 } else { 2 },
            fields.2,
            extra,
            tip,
            tolls,
            total
        );
        if defect == Some("truncated-json") {
            text.truncate(text.len() / 2);
        }
        lines.push(Line { text, defect });
    }
    lines
}

const CITIES: [(&str, f64); 8] = [
    ("Oslo", 2.0),
    ("Lisbon", 16.0),
    ("Cairo", 24.0),
    ("Mumbai", 29.0),
    ("Tokyo", 12.0),
    ("Lima", 19.0),
    ("Toronto", -3.0),
    ("Sydney", 22.0),
];

/// Weather readings, one every `step_ms` from `start_ms`, cycling through
/// eight cities; about `invalid_pct` percent lack a city or a number.
pub fn weather(
    count: usize,
    seed: u64,
    start_ms: i64,
    step_ms: i64,
    invalid_pct: f64,
) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let (city, base) = CITIES[rng.range(0, CITIES.len() as i64 - 1) as usize];
            let t = two(base + 3.0 * rng.normal());
            let ts = weir_plugin_kit::time::format_rfc3339(start_ms + i as i64 * step_ms);
            if rng.chance(invalid_pct / 100.0) {
                if rng.chance(0.5) {
                    Line {
                        text: format!(r#"{{"temperature":{t},"timestamp":"{ts}"}}"#),
                        defect: Some("missing-city"),
                    }
                } else {
                    Line {
                        text: format!(
                            r#"{{"city":"{city}","temperature":"n/a","timestamp":"{ts}"}}"#
                        ),
                        defect: Some("temperature-not-a-number"),
                    }
                }
            } else {
                Line {
                    text: format!(r#"{{"city":"{city}","temperature":{t},"timestamp":"{ts}"}}"#),
                    defect: None,
                }
            }
        })
        .collect()
}

/// Structured logs as seed 003 reads them: half carry `mobile` in the JSON
/// body, a quarter only in `attributes`, the rest nowhere; about
/// `invalid_pct` percent are not JSON at all.
pub fn logs(count: usize, seed: u64, start_ms: i64, invalid_pct: f64) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    let services = ["user-service", "payment-service", "search-service"];
    let levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"];
    (0..count)
        .map(|i| {
            if rng.chance(invalid_pct / 100.0) {
                return Line { text: format!("plain text log line {i}"), defect: Some("not-json") };
            }
            let ts = weir_plugin_kit::time::format_rfc3339(start_ms + i as i64 * 7);
            let mobile = format!("555-{:04}", rng.range(0, 9999));
            let place = rng.range(0, 3);
            let body = if place < 2 {
                format!(r#"{{\"data\":{{\"mobile\":\"{mobile}\",\"request\":{i}}}}}"#)
            } else {
                format!(r#"{{\"data\":{{\"request\":{i}}}}}"#)
            };
            let attr_mobile = if place == 2 { format!(r#","mobile":"{mobile}""#) } else { String::new() };
            let text = format!(
                r#"{{"timestamp":"{ts}","serviceName":"{}","severityText":"{}","attributes":{{"msg":"request {i}","url":"/api/v1/items/{}"{attr_mobile}}},"resources":{{"host.name":"web-{}"}},"body":"{body}"}}"#,
                services[rng.range(0, 2) as usize],
                levels[rng.range(0, 5) as usize],
                rng.range(1, 500),
                rng.range(1, 4),
            );
            Line { text, defect: None }
        })
        .collect()
}

/// Users as the Random User API returns them (seed 001's input): nested
/// name and location, string coordinates, numeric or text postcodes. About
/// `invalid_pct` percent lack a location or are not JSON.
pub fn users(count: usize, seed: u64, invalid_pct: f64) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    let firsts = [
        "Ada", "Björn", "Chen", "Dara", "Élodie", "Farah", "Goran", "Hana", "Ivo", "Jun",
    ];
    let lasts = [
        "Byron",
        "Lindqvist",
        "Wei",
        "O'Neil",
        "Dupont",
        "Haddad",
        "Petrović",
        "Sato",
    ];
    let places = [
        ("Leeds", "United Kingdom", 53.8, -1.55),
        ("Lyon", "France", 45.76, 4.84),
        ("Bergen", "Norway", 60.39, 5.32),
        ("Porto", "Portugal", 41.15, -8.61),
        ("Graz", "Austria", 47.07, 15.44),
        ("Austin", "United States", 30.27, -97.74),
    ];
    (0..count)
        .map(|i| {
            if rng.chance(invalid_pct / 200.0) {
                return Line { text: format!("<html>rate limited {i}</html>"), defect: Some("not-json") };
            }
            let first = firsts[rng.range(0, firsts.len() as i64 - 1) as usize];
            let last = lasts[rng.range(0, lasts.len() as i64 - 1) as usize];
            let (city, country, lat, lon) = places[rng.range(0, places.len() as i64 - 1) as usize];
            let (title, gender) = if rng.chance(0.5) { ("Ms", "female") } else { ("Mr", "male") };
            let postcode = if rng.chance(0.5) {
                rng.range(10_000, 99_999).to_string()
            } else {
                format!("\"{}{} {}\"", ["LS", "BN", "EH"][rng.range(0, 2) as usize], rng.range(1, 20), rng.range(1, 9))
            };
            let email = format!("{}.{}{i}@example.com", first.to_lowercase(), last.to_lowercase().replace('\'', ""));
            let registered = weir_plugin_kit::time::format_rfc3339(
                1_400_000_000_000 + rng.range(0, 300_000_000) * 1000,
            );
            let name = serde_json::json!({"title": title, "first": first, "last": last});
            if rng.chance(invalid_pct / 200.0) {
                let text = format!(r#"{{"gender":"{gender}","name":{name},"email":"{email}"}}"#);
                return Line { text, defect: Some("missing-location") };
            }
            let text = format!(
                r#"{{"gender":"{gender}","name":{name},"location":{{"street":{{"number":{},"name":"{} Road"}},"city":"{city}","state":"","country":"{country}","postcode":{postcode},"coordinates":{{"latitude":"{:.4}","longitude":"{:.4}"}}}},"email":"{email}","login":{{"uuid":"{:016x}"}},"registered":{{"date":"{registered}","age":{}}}}}"#,
                rng.range(1, 300),
                ["Mill", "Church", "Station", "Park"][rng.range(0, 3) as usize],
                lat + rng.normal() * 0.05,
                lon + rng.normal() * 0.05,
                rng.next_u64(),
                rng.range(1, 12),
            );
            Line { text, defect: None }
        })
        .collect()
}

const TEAMS: [&str; 10] = [
    "BOS", "MIA", "DEN", "LAL", "GSW", "MIL", "PHX", "NYK", "DAL", "OKC",
];

/// `(player_id, name)` per team, five each.
fn roster(team: usize, slot: usize) -> (i64, String) {
    const FIRST: [&str; 10] = [
        "Jalen", "Marcus", "Tyrese", "Luka", "Devin", "Jaylen", "Anthony", "Kevin", "Jamal",
        "Darius",
    ];
    const LAST: [&str; 10] = [
        "Brown", "Green", "Hart", "Murray", "Booker", "Holiday", "Davis", "Porter", "White",
        "Garland",
    ];
    let id = 1_626_000 + (team * 10 + slot) as i64 * 37;
    (
        id,
        format!(
            "{} {}",
            FIRST[(team + slot * 3) % 10],
            LAST[(team * 7 + slot) % 10]
        ),
    )
}

/// Shot charts as seed 002's scraper publishes them to `shot_charts`: one
/// record per field-goal attempt, games of about 170 attempts, up to eight
/// games a day from 2023-10-24 (season `2023-24`). Court coordinates are
/// feet from the hoop (`x` across, −25…25; `y` towards mid-court), the
/// clock is what the period has left, `MM:SS`. About `invalid_pct` percent
/// lack a player, lie off the court, carry an unreadable clock, or are not
/// JSON.
pub fn shots(count: usize, seed: u64, invalid_pct: f64) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    let first_day = weir_plugin_kit::time::days_from_civil(2023, 10, 24);
    let mut lines = Vec::with_capacity(count);
    let (mut game, mut left_in_game) = (0_i64, 0_i64);
    let mut teams = (0, 1);
    let mut elapsed = 0_i64;
    for i in 0..count {
        if left_in_game == 0 {
            game += 1;
            left_in_game = rng.range(150, 190);
            let home = rng.range(0, TEAMS.len() as i64 - 1) as usize;
            teams = (
                home,
                (home + rng.range(1, TEAMS.len() as i64 - 1) as usize) % TEAMS.len(),
            );
            elapsed = 0;
        }
        left_in_game -= 1;
        let (y, m, d) = weir_plugin_kit::time::civil_from_days(first_day + (game - 1) / 8);
        let date = format!("{y:04}-{m:02}-{d:02}");
        let game_id = format!("00223{game:05}");
        // 48 minutes of play, attempts spread evenly with some jitter.
        elapsed = (elapsed + rng.range(5, 28)).min(2879);
        let period = elapsed / 720 + 1;
        let left = 720 - elapsed % 720;
        let clock = format!("{:02}:{:02}", left / 60, left % 60);
        let (team, opponent) = if rng.chance(0.5) {
            teams
        } else {
            (teams.1, teams.0)
        };
        let (player_id, player) = roster(team, rng.range(0, 4) as usize);
        // A third of attempts are threes, a third at the rim, the rest between.
        let kind = rng.range(0, 2);
        let (distance, angle) = match kind {
            0 => (23.75 + 2.0 * rng.unit(), rng.unit() * std::f64::consts::PI),
            1 => (3.5 * rng.unit(), rng.unit() * std::f64::consts::PI),
            _ => (5.0 + 16.0 * rng.unit(), rng.unit() * std::f64::consts::PI),
        };
        // Corner threes stay inside the sideline.
        let x = (distance * angle.cos()).clamp(-24.9, 24.9);
        let x = (x * 10.0).round() / 10.0;
        let y = (distance * angle.sin() * 10.0).round() / 10.0;
        let three = kind == 0;
        let made = rng.chance([0.36, 0.62, 0.42][kind as usize]);
        let shot_type = if three {
            "3PT Field Goal"
        } else {
            "2PT Field Goal"
        };
        let action = ["Jump Shot", "Layup Shot", "Pullup Jump Shot"][kind as usize];
        let shot_id = format!("{game_id}-{:04}", 190 - left_in_game);
        let mut text = String::with_capacity(320);
        let _ = write!(
            text,
            r#"{{"shot_id":"{shot_id}","game_id":"{game_id}","game_date":"{date}","season":"2023-24","team":"{}","opponent":"{}","player_id":{player_id},"player":"{player}","period":{period},"clock":"{clock}","x":{x:.1},"y":{y:.1},"made":{made},"shot_type":"{shot_type}","action":"{action}"}}"#,
            TEAMS[team], TEAMS[opponent],
        );
        let defect = if rng.chance(invalid_pct / 100.0) {
            let defect = ["missing-player", "off-court", "bad-clock", "not-json"][i % 4];
            text = match defect {
                "missing-player" => text.replace(&format!(r#""player":"{player}","#), ""),
                "off-court" => text.replace(&format!(r#""x":{x:.1}"#), r#""x":61.5"#),
                "bad-clock" => text.replace(&format!(r#""clock":"{clock}""#), r#""clock":"14:75""#),
                _ => text[..text.len() / 2].to_owned(),
            };
            Some(defect)
        } else {
            None
        };
        lines.push(Line { text, defect });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_lines_and_about_the_asked_invalid_share() {
        assert_eq!(taxi(100, 7, 2.0), taxi(100, 7, 2.0));
        let lines = taxi(20_000, 1, 2.0);
        let invalid = lines.iter().filter(|l| l.defect.is_some()).count();
        assert!((300..500).contains(&invalid), "{invalid}");
        let valid = lines.iter().find(|l| l.defect.is_none()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&valid.text).unwrap();
        assert!(v["trip_distance"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn weather_and_logs_are_json_unless_marked() {
        for line in weather(500, 3, 0, 1000, 1.0)
            .iter()
            .chain(&logs(500, 3, 0, 1.0))
            .chain(&users(500, 3, 4.0))
            .chain(&shots(500, 3, 4.0))
        {
            let parsed = serde_json::from_str::<serde_json::Value>(&line.text);
            assert_eq!(
                parsed.is_err(),
                line.defect == Some("not-json"),
                "{}",
                line.text
            );
        }
    }
}

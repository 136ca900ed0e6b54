//! `user-profile`: seed 001's user transform. Takes a user as the Random
//! User API returns it (`name {title, first, last}`, `location {street
//! {number, name}, city, state, country, postcode, coordinates}`, `email`,
//! `gender`, `registered {date}`, …) and writes one flat record:
//!
//! `{"name", "gender", "address", "city", "nation", "zip_hash", "latitude",
//!  "longitude", "email", "registered"}`
//!
//! The zip code is never written: `zip_hash` is the hex SHA-256 of the
//! configured `zip-salt` followed by the postcode as text (the seed used
//! unsalted MD5, which a dictionary of all zip codes reverses in
//! milliseconds; a secret salt makes that useless). A user without a name,
//! a location or an email is a failure with the missing field named.

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use weir_plugin_kit::{BatchResult, Info, Record, Transform};

/// Configuration (`[plugins.<name>.config]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// Prepended to the postcode before hashing; keep it secret.
    #[serde(default)]
    zip_salt: String,
}

/// The transform.
pub struct UserProfile {
    salt: String,
}

#[derive(Deserialize)]
struct Name<'a> {
    #[serde(default, borrow)]
    title: Option<&'a str>,
    first: String,
    last: String,
}

#[derive(Deserialize)]
struct Street {
    #[serde(default)]
    number: Value,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Value,
    longitude: Value,
}

#[derive(Deserialize)]
struct Location {
    street: Street,
    city: String,
    country: String,
    #[serde(default)]
    postcode: Value,
    coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Registered {
    date: String,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow)]
    name: Name<'a>,
    #[serde(default)]
    gender: Option<String>,
    location: Location,
    email: String,
    registered: Option<Registered>,
}

/// `"52.1"` and `52.1` both count as a coordinate.
fn coordinate(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl UserProfile {
    /// Hex SHA-256 of the salt and the postcode.
    pub fn zip_hash(&self, postcode: &str) -> String {
        let digest = Sha256::new()
            .chain_update(self.salt.as_bytes())
            .chain_update(postcode.as_bytes())
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One user → one flat record.
    pub fn flatten(&self, value: &[u8]) -> Result<Vec<u8>, String> {
        let user: User = serde_json::from_slice(value).map_err(|e| {
            if e.is_data() {
                format!("not a user record: {e}")
            } else {
                format!("not JSON: {e}")
            }
        })?;
        let name = match user.name.title.filter(|t| !t.is_empty()) {
            Some(title) => format!("{title}. {} {}", user.name.first, user.name.last),
            None => format!("{} {}", user.name.first, user.name.last),
        };
        let loc = user.location;
        let number = scalar_text(&loc.street.number);
        let address = if number.is_empty() {
            loc.street.name
        } else {
            format!("{number}, {}", loc.street.name)
        };
        let postcode = scalar_text(&loc.postcode);
        let (latitude, longitude) = loc
            .coordinates
            .map(|c| (coordinate(&c.latitude), coordinate(&c.longitude)))
            .unwrap_or_default();
        let out = json!({
            "name": name,
            "gender": user.gender,
            "address": address,
            "city": loc.city,
            "nation": loc.country,
            "zip_hash": (!postcode.is_empty()).then(|| self.zip_hash(&postcode)),
            "latitude": latitude,
            "longitude": longitude,
            "email": user.email,
            "registered": user.registered.map(|r| r.date),
        });
        Ok(serde_json::to_vec(&out).expect("JSON serialises"))
    }
}

impl Transform for UserProfile {
    fn info() -> Info {
        Info {
            name: "user-profile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            state_version: 0,
        }
    }

    fn new(config: &str) -> Result<Self, String> {
        let config: Config = weir_plugin_kit::parse_config(config)?;
        Ok(UserProfile {
            salt: config.zip_salt,
        })
    }

    fn process(&mut self, batch: Vec<Record>, _now_ms: i64) -> BatchResult {
        weir_plugin_kit::each_record(batch, |record| {
            record.value = self.flatten(&record.value)?;
            Ok(())
        })
    }
}

weir_plugin_kit::export_transform!(crate::UserProfile);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(salt: &str) -> UserProfile {
        UserProfile::new(&format!(r#"{{"zip-salt":"{salt}"}}"#)).unwrap()
    }

    const USER: &str = r#"{"gender":"female","name":{"title":"Ms","first":"Ada","last":"Byron"},
        "location":{"street":{"number":12,"name":"Main St"},"city":"Leeds","state":"Yorks",
        "country":"United Kingdom","postcode":"LS1 4AP",
        "coordinates":{"latitude":"53.8","longitude":"-1.55"}},
        "email":"ada@example.com","registered":{"date":"2015-03-01T10:00:00.000Z","age":9}}"#;

    #[test]
    fn flattens_name_and_address_and_never_writes_the_zip() {
        let out: Value =
            serde_json::from_slice(&plugin("s").flatten(USER.as_bytes()).unwrap()).unwrap();
        assert_eq!(out["name"], "Ms. Ada Byron");
        assert_eq!(out["address"], "12, Main St");
        assert_eq!(out["nation"], "United Kingdom");
        assert_eq!(out["latitude"], 53.8);
        assert_eq!(out["registered"], "2015-03-01T10:00:00.000Z");
        assert!(!out.to_string().contains("LS1 4AP"));
    }

    #[test]
    fn zip_hash_is_salted_sha256() {
        // sha256("") of salt "" + "" is the well-known empty digest.
        assert_eq!(
            plugin("").zip_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(plugin("a").zip_hash("1"), plugin("b").zip_hash("1"));
    }

    #[test]
    fn users_without_location_fail_naming_the_field() {
        let e = plugin("")
            .flatten(br#"{"name":{"first":"a","last":"b"},"email":"x"}"#)
            .unwrap_err();
        assert!(e.contains("location"), "{e}");
        assert!(
            plugin("")
                .flatten(b"{oops")
                .unwrap_err()
                .starts_with("not JSON")
        );
    }
}

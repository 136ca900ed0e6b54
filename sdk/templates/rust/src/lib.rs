//! {{name}}: a weir transform. Edit `transform`; `cargo test` tests it
//! natively, `weir plugin build .` makes `{{name}}.wasm`.

use serde_json::Value;

wit_bindgen::generate!({ path: "wit", world: "transform" });

// The world brings `Record`, `BatchResult` and `Info` into scope; `Failure` is in `types`.
use weir::transform::types::Failure;

/// The field to upper-case, from the plugin's `config` (`{"field": "…"}`).
pub struct Settings {
    field: String,
}

impl Settings {
    /// Reads the configuration; an unknown key is refused by name.
    pub fn parse(config: &str) -> Result<Self, String> {
        let mut settings = Settings {
            field: "message".into(),
        };
        let doc: serde_json::Map<String, Value> = if config.trim().is_empty() {
            Default::default()
        } else {
            serde_json::from_str(config).map_err(|e| format!("invalid plugin config: {e}"))?
        };
        for (key, value) in doc {
            match (key.as_str(), value) {
                ("field", Value::String(s)) => settings.field = s,
                (key, _) => return Err(format!("unknown key or wrong type: `{key}`")),
            }
        }
        Ok(settings)
    }
}

/// One record in, its value changed, or why it is invalid.
pub fn transform(settings: &Settings, value: &[u8]) -> Result<Vec<u8>, String> {
    let mut doc: Value = serde_json::from_slice(value).map_err(|e| format!("invalid JSON: {e}"))?;
    let field = doc
        .get_mut(&settings.field)
        .ok_or_else(|| format!("{} is missing", settings.field))?;
    let upper = match &*field {
        Value::String(s) => s.to_uppercase(),
        other => other.to_string().to_uppercase(),
    };
    *field = Value::String(upper);
    Ok(serde_json::to_vec(&doc).expect("a Value always serialises"))
}

static SETTINGS: std::sync::Mutex<Option<Settings>> = std::sync::Mutex::new(None);

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            state_version: 0,
        }
    }

    fn init(config: String) -> Result<(), String> {
        *SETTINGS.lock().unwrap() = Some(Settings::parse(&config)?);
        Ok(())
    }

    fn process(batch: Vec<Record>, _now_ms: i64) -> BatchResult {
        let mut slot = SETTINGS.lock().unwrap();
        let settings = slot.get_or_insert_with(|| Settings::parse("{}").unwrap());
        let mut result = BatchResult {
            outputs: Vec::with_capacity(batch.len()),
            failures: Vec::new(),
        };
        for (index, mut record) in batch.into_iter().enumerate() {
            match transform(settings, &record.value) {
                Ok(value) => {
                    record.value = value;
                    result.outputs.push(record);
                }
                Err(reason) => result.failures.push(Failure {
                    index: index as u32,
                    reason,
                }),
            }
        }
        result
    }

    fn on_tick(_now_ms: i64) -> Vec<Record> {
        Vec::new()
    }

    fn snapshot() -> Vec<u8> {
        Vec::new()
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(format!("{{name}} keeps no state, but was given {} bytes", state.len()))
        }
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_cases_the_field_and_fails_a_record_without_it() {
        let settings = Settings::parse("{}").unwrap();
        assert_eq!(
            transform(&settings, br#"{"message":"hi"}"#).unwrap(),
            br#"{"message":"HI"}"#
        );
        assert_eq!(
            transform(&settings, br#"{"other":1}"#).unwrap_err(),
            "message is missing"
        );
        assert!(Settings::parse(r#"{"feild":"x"}"#).is_err());
    }
}

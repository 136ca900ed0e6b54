//! `log-extract`: flattens structured log records into the fields named in
//! the configuration (seed 003's nested-field extraction).
//!
//! Input: `{"timestamp", "serviceName", "severityText", "attributes": {…},
//! "resources": {…}, "body": "<JSON text>"}`. Each output field lists
//! sources tried in order; the first that yields a non-null value wins, else
//! the field's `default` (null unless set), or a failure when `required`.
//!
//! A source is written as:
//! - `$.data.mobile`, `$.items[0].id`, `$['key.with.dots']` — a JSON path
//!   into `body` (a body that is not JSON simply yields nothing);
//! - `attributes.<key>` / `resources.<key>` — a key of those maps (the key
//!   may itself contain dots);
//! - any other name — a top-level field of the record, e.g. `serviceName`.
//!
//! The default configuration reproduces seed 003's view: timestamp,
//! serviceName, severityText, msg, url, and mobile = `$.data.mobile` else
//! `attributes.mobile`.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use weir_plugin_kit::{BatchResult, Info, Record, Transform};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a field's value may come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A JSON path into the parsed `body`.
    Body(Vec<Step>),
    /// A key of `attributes`.
    Attribute(String),
    /// A key of `resources`.
    Resource(String),
    /// A top-level field of the record.
    Field(String),
}

impl Lookup {
    /// Parses a source as written in the configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix('$') {
            return parse_path(path)
                .map(Lookup::Body)
                .map_err(|e| format!("JSON path {text:?}: {e}"));
        }
        if let Some(key) = text.strip_prefix("attributes.") {
            return Ok(Lookup::Attribute(key.to_owned()));
        }
        if let Some(key) = text.strip_prefix("resources.") {
            return Ok(Lookup::Resource(key.to_owned()));
        }
        if text.is_empty() {
            return Err("empty source".into());
        }
        Ok(Lookup::Field(text.to_owned()))
    }
}

fn parse_path(mut rest: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").ok_or("unclosed ['")?;
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or("unclosed [")?;
            let index = after[..end]
                .trim()
                .parse()
                .map_err(|_| format!("bad index [{}]", &after[..end]))?;
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err("empty key".into());
            }
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else {
            return Err(format!(
                "unexpected {rest:?}; write $.a.b, $.a[0] or $['a.b']"
            ));
        }
    }
    Ok(steps)
}

/// One output field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    from: Vec<String>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    fields: Vec<RawField>,
}

impl Default for RawConfig {
    fn default() -> Self {
        let field = |name: &str, from: &[&str]| RawField {
            name: name.into(),
            from: from.iter().map(|s| s.to_string()).collect(),
            default: None,
            required: false,
        };
        RawConfig {
            fields: vec![
                field("timestamp", &["timestamp"]),
                field("serviceName", &["serviceName"]),
                field("severityText", &["severityText"]),
                field("msg", &["attributes.msg"]),
                field("url", &["attributes.url"]),
                field("mobile", &["$.data.mobile", "attributes.mobile"]),
            ],
        }
    }
}

/// A parsed output field.
#[derive(Debug, Clone)]
pub struct Field {
    /// Output name.
    pub name: String,
    /// Sources, tried in order.
    pub from: Vec<Lookup>,
    /// Value when no source yields one.
    pub default: Value,
    /// Fail the record instead of using the default.
    pub required: bool,
    /// `"name":` as JSON, escaped once at start-up rather than per record.
    key: Vec<u8>,
}

/// The transform.
pub struct LogExtract {
    fields: Vec<Field>,
    needs_body: bool,
}

impl LogExtract {
    /// Extracts the configured fields from one record.
    pub fn extract(&self, value: &[u8]) -> Result<Vec<u8>, String> {
        let record: Map<String, Value> = serde_json::from_slice(value)
            .map_err(|e| format!("record is not a JSON object: {e}"))?;
        let body: Option<Cow<Value>> = if self.needs_body {
            record.get("body").and_then(|b| match b {
                Value::String(text) => serde_json::from_str(text).ok().map(Cow::Owned),
                Value::Object(_) => Some(Cow::Borrowed(b)),
                _ => None,
            })
        } else {
            None
        };
        // Fields are written in config order straight from the parsed input:
        // no intermediate map, no copy of the values.
        let mut out = Vec::with_capacity(value.len() / 2);
        out.push(b'{');
        for (i, field) in self.fields.iter().enumerate() {
            let found = field.from.iter().find_map(|lookup| {
                let v = match lookup {
                    Lookup::Body(steps) => body.as_ref().and_then(|b| walk(b, steps)),
                    Lookup::Attribute(key) => record.get("attributes").and_then(|m| m.get(key)),
                    Lookup::Resource(key) => record.get("resources").and_then(|m| m.get(key)),
                    Lookup::Field(name) => record.get(name),
                };
                v.filter(|v| !v.is_null())
            });
            let value = match found {
                Some(v) => v,
                None if field.required => {
                    return Err(format!(
                        "required field {:?} not found in any of its sources",
                        field.name
                    ));
                }
                None => &field.default,
            };
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&field.key);
            serde_json::to_writer(&mut out, value).expect("writing JSON to a Vec cannot fail");
        }
        out.push(b'}');
        Ok(out)
    }
}

fn walk<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for step in steps {
        v = match step {
            Step::Key(k) => v.get(k)?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

impl Transform for LogExtract {
    fn info() -> Info {
        Info {
            name: "log-extract".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            state_version: 0,
        }
    }

    fn new(config: &str) -> Result<Self, String> {
        let raw: RawConfig = weir_plugin_kit::parse_config(config)?;
        if raw.fields.is_empty() {
            return Err("fields: list at least one output field".into());
        }
        let mut fields = Vec::with_capacity(raw.fields.len());
        for f in raw.fields {
            if f.from.is_empty() {
                return Err(format!("fields.{}: `from` lists no source", f.name));
            }
            let from = f
                .from
                .iter()
                .map(|s| Lookup::parse(s).map_err(|e| format!("fields.{}: {e}", f.name)))
                .collect::<Result<Vec<_>, _>>()?;
            if fields.iter().any(|known: &Field| known.name == f.name) {
                return Err(format!("fields: {:?} is listed twice", f.name));
            }
            let mut key = serde_json::to_vec(&f.name).expect("strings serialise");
            key.push(b':');
            fields.push(Field {
                name: f.name,
                from,
                default: f.default.unwrap_or(Value::Null),
                required: f.required,
                key,
            });
        }
        let needs_body = fields
            .iter()
            .flat_map(|f| &f.from)
            .any(|l| matches!(l, Lookup::Body(_)));
        Ok(LogExtract { fields, needs_body })
    }

    fn process(&mut self, batch: Vec<Record>, _now_ms: i64) -> BatchResult {
        weir_plugin_kit::each_record(batch, |record| {
            record.value = self.extract(&record.value)?;
            Ok(())
        })
    }
}

weir_plugin_kit::export_transform!(crate::LogExtract);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, input: &str) -> Result<Value, String> {
        let t = LogExtract::new(config)?;
        t.extract(input.as_bytes())
            .map(|v| serde_json::from_slice(&v).unwrap())
    }

    const LOG: &str = r#"{"timestamp":"2025-08-06T09:12:30Z","serviceName":"user-service","severityText":"INFO","attributes":{"msg":"login","url":"/a","mobile":"555-0100"},"resources":{"host.name":"web-1"},"body":"{\"data\":{\"mobile\":\"555-0199\",\"tags\":[\"x\",\"y\"]}}"}"#;

    #[test]
    fn default_config_prefers_body_path_then_attribute() {
        let v = run("{}", LOG).unwrap();
        assert_eq!(v["mobile"], "555-0199");
        assert_eq!(v["serviceName"], "user-service");
        assert_eq!(v["msg"], "login");
        let no_body = LOG.replace(r#"\"mobile\":\"555-0199\","#, "");
        assert_eq!(run("{}", &no_body).unwrap()["mobile"], "555-0100");
        let bad_body = LOG.replace(r#""body":"{"#, r#""body":"not json {"#);
        assert_eq!(run("{}", &bad_body).unwrap()["mobile"], "555-0100");
    }

    #[test]
    fn paths_indexes_resources_defaults_and_required() {
        let config = r#"{"fields":[
            {"name":"tag","from":["$.data.tags[1]"]},
            {"name":"host","from":["resources.host.name"]},
            {"name":"region","from":["$['data']['region']","attributes.region"],"default":"unknown"},
            {"name":"sev","from":["severityText"]}]}"#;
        let v = run(config, LOG).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"tag":"y","host":"web-1","region":"unknown","sev":"INFO"})
        );
        let required =
            r#"{"fields":[{"name":"trace","from":["attributes.trace_id"],"required":true}]}"#;
        assert!(run(required, LOG).unwrap_err().contains("\"trace\""));
    }

    #[test]
    fn bad_config_and_bad_records_are_explained() {
        assert!(
            LogExtract::new(r#"{"fields":[{"name":"a","from":["$.a[x]"]}]}"#)
                .err()
                .unwrap()
                .contains("bad index")
        );
        assert!(LogExtract::new(r#"{"fields":[]}"#).is_err());
        assert!(LogExtract::new(r#"{"fields":[{"name":"a","from":["x"],"dflt":1}]}"#).is_err());
        assert!(run("{}", "[1]").unwrap_err().contains("not a JSON object"));
    }
}

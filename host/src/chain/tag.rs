//! Which versions made an output: a header or a JSON field added to every
//! record of a batch (`plugin-version = "header" | "field"`).

use crate::swap::{VERSION_HEADER, VersionTag};
use crate::{Header, Record};

/// Names the live versions on every output, as configured.
pub(super) fn tag_with(tag: VersionTag, field: &str, records: &mut [Record], versions: &str) {
    match tag {
        VersionTag::None => {}
        VersionTag::Header => {
            for record in records {
                record.headers.push(Header {
                    name: VERSION_HEADER.into(),
                    value: versions.as_bytes().to_vec(),
                });
            }
        }
        VersionTag::Field => {
            // Encoded once per batch, inserted per record.
            let member = json_member(field, versions);
            for record in records {
                add_json_member(&mut record.value, &member);
            }
        }
    }
}

/// `"field":"text"`, JSON-encoded.
fn json_member(field: &str, text: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!("{}:{}", quote(field), quote(text)).into_bytes()
}

/// Adds an encoded `member` to a JSON object written as text, without
/// parsing it; values that are not an object are left as they are.
fn add_json_member(value: &mut Vec<u8>, member: &[u8]) {
    let start = value.iter().position(|b| !b.is_ascii_whitespace());
    let end = value.iter().rposition(|b| !b.is_ascii_whitespace());
    let (Some(start), Some(end)) = (start, end) else {
        return;
    };
    if value[start] != b'{' || value[end] != b'}' {
        return;
    }
    let empty = value[start + 1..end].iter().all(u8::is_ascii_whitespace);
    let comma: &[u8] = if empty { b"" } else { b"," };
    value.splice(end..end, comma.iter().chain(member).copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_field(text: &str) -> String {
        let mut value = text.as_bytes().to_vec();
        add_json_member(&mut value, &json_member("weir_version", "taxi@1+abc"));
        String::from_utf8(value).unwrap()
    }

    #[test]
    fn a_version_field_is_added_to_json_objects_and_nothing_else() {
        assert_eq!(
            with_field(r#"{"a":1}"#),
            r#"{"a":1,"weir_version":"taxi@1+abc"}"#
        );
        assert_eq!(with_field("{ }\n"), "{ \"weir_version\":\"taxi@1+abc\"}\n");
        assert_eq!(with_field("[1,2]"), "[1,2]");
        assert_eq!(with_field("plain text"), "plain text");
        assert_eq!(with_field(""), "");
        let parsed: serde_json::Value =
            serde_json::from_str(&with_field(r#" {"nested":{"b":[1]}} "#)).unwrap();
        assert_eq!(parsed["weir_version"], "taxi@1+abc");
    }
}

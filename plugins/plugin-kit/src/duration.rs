//! Durations written as `"250ms"`, `"60s"`, `"5m"`, `"1h"` or a bare number of
//! milliseconds, as in the host's TOML.

/// Parses a duration into milliseconds; the error says what is accepted.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected e.g. \"500ms\", \"60s\", \"5m\", \"1h\"")
    })?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_ms("250ms"), Ok(250));
        assert_eq!(parse_ms("60s"), Ok(60_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_ms("42"), Ok(42));
    }

    #[test]
    fn refuses_unknown_units_and_garbage() {
        assert!(parse_ms("5 days").unwrap_err().contains("unknown unit"));
        assert!(parse_ms("s").unwrap_err().contains("expected"));
        assert!(parse_ms("").is_err());
    }
}

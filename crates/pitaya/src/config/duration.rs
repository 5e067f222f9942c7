//! Go-style duration strings, as Pitaya's configuration writes them.
//!
//! Pitaya reads durations through Viper, so its config files hold Go's
//! `time.Duration` syntax: an optional sign, then one or more
//! `<number><unit>` pairs such as `500ms`, `1.5s`, `1h30m` or `1m0s`. The
//! units are `ns`, `us` (also `µs` and `μs`), `ms`, `s`, `m` and `h`; the
//! bare string `0` is accepted as zero. A plain integer in place of a string
//! is a count of nanoseconds, as Viper converts it.

use std::time::Duration;

/// Nanoseconds in one of each unit, longest suffix first per letter so `ms`
/// is tried before `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's durations are an `i64` of nanoseconds; we refuse anything larger so a
/// value that Pitaya accepts means the same here and nothing more.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits kept; later digits are worth less than a nanosecond even
/// for hours, so dropping them matches Go's truncation.
const MAX_FRACTION_DIGITS: u32 = 19;

/// Returned when a string is not a valid Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// The string did not follow the `<number><unit>` grammar.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number had no unit after it.
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit was not one of `ns us µs ms s m h`.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The duration was below zero, which a `std::time::Duration` cannot hold.
    #[error("negative duration {0:?}")]
    Negative(String),
    /// The duration exceeded Go's limit of `i64::MAX` nanoseconds.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Returns the duration written in Go syntax, such as `1h30m` or `1.5s`.
///
/// # Errors
///
/// Returns a [`DurationError`] for empty input, a number without a unit, an
/// unknown unit, a negative value or one above `i64::MAX` nanoseconds.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        None => return Err(DurationError::Empty),
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        Some(_) => (false, input),
    };

    // Go accepts a lone zero without a unit and nothing else unit-less.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, tail) = parse_component(rest, input)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        rest = tail;
    }

    if negative && total > 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    // MAX_NANOS fits in a u64, so the cast below cannot truncate.
    Ok(Duration::from_nanos(total as u64))
}

/// Returns the nanoseconds of the leading `<number><unit>` of `s` and the rest.
fn parse_component<'a>(s: &'a str, input: &str) -> Result<(u128, &'a str), DurationError> {
    let overflow = || DurationError::Overflow(input.to_owned());

    // Integer part.
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut whole: u128 = 0;
    for b in s[..int_len].bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(b - b'0')))
            .filter(|w| *w <= MAX_NANOS)
            .ok_or_else(overflow)?;
    }
    let mut rest = &s[int_len..];

    // Optional fraction, kept as numerator over a power of ten.
    let (mut frac, mut scale, mut frac_len) = (0u128, 1u128, 0usize);
    if let Some(after_dot) = rest.strip_prefix('.') {
        frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        for (i, b) in after_dot[..frac_len].bytes().enumerate() {
            if i < MAX_FRACTION_DIGITS as usize {
                frac = frac * 10 + u128::from(b - b'0');
                scale *= 10;
            }
        }
        rest = &after_dot[frac_len..];
    }
    if int_len == 0 && frac_len == 0 {
        return Err(DurationError::Invalid(input.to_owned()));
    }

    // Unit: everything up to the next digit or dot.
    let unit_len = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let unit = &rest[..unit_len];
    if unit.is_empty() {
        return Err(DurationError::MissingUnit(input.to_owned()));
    }
    let per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, nanos)| *nanos)
        .ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;

    // `whole` is at most MAX_NANOS and `per_unit` at most 3.6e12, so the
    // product fits in a u128; the fraction is below 1e19 times the same.
    let nanos = whole
        .checked_mul(per_unit)
        .and_then(|n| n.checked_add(frac * per_unit / scale))
        .filter(|n| *n <= MAX_NANOS)
        .ok_or_else(overflow)?;
    Ok((nanos, &rest[unit_len..]))
}

/// Returns `d` written as Go's `time.Duration.String` writes it.
///
/// Below one second the largest fitting unit of `ns`, `µs` and `ms` is used
/// with a decimal fraction (`1.5µs`); from one second up the form is
/// `<h>h<m>m<s>s`, leading zero fields dropped (`1h0m0s`, `1m30s`, `2.5s`).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }

    let mut out = String::new();
    let minutes = nanos / 60_000_000_000;
    let hours = minutes / 60;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{}m", minutes % 60));
    }
    out.push_str(&format!("{}s", decimal(nanos % 60_000_000_000, 9)));
    out
}

/// Returns `value / 10^digits` as a decimal without trailing zeros.
fn decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A `#[serde(with = "...")]` module for `Duration` fields in Go syntax.
///
/// Deserializes a Go duration string or an integer count of nanoseconds; a
/// string of digits alone is also nanoseconds, as Viper reads it. Serializes
/// with [`format()`].
pub mod serde_go {
    use super::{format, parse};
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;
    use std::fmt;
    use std::time::Duration;

    /// Writes `d` as a Go duration string.
    ///
    /// # Errors
    ///
    /// Returns the serializer's error if it cannot write a string.
    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*d))
    }

    /// Reads a Go duration string or an integer of nanoseconds.
    ///
    /// # Errors
    ///
    /// Returns the deserializer's error, carrying the [`super::DurationError`]
    /// text, when the value is not a valid non-negative duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(GoDurationVisitor)
    }

    struct GoDurationVisitor;

    impl Visitor<'_> for GoDurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Go duration such as \"30s\" or an integer of nanoseconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            let v = v.trim();
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                let nanos: u64 = v
                    .parse()
                    .map_err(|_| E::custom(format!("{v:?} is too large")))?;
                return self.visit_u64(nanos);
            }
            parse(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            if u128::from(v) > super::MAX_NANOS {
                return Err(E::custom(format!(
                    "duration of {v} nanoseconds is too large"
                )));
            }
            Ok(Duration::from_nanos(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("negative duration of {v} nanoseconds")))
                .and_then(|v| self.visit_u64(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_single_units() {
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("3μs"), Ok(Duration::from_micros(3)));
    }

    #[test]
    fn parses_compound_and_fractional_values() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("5.s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse("1.0000000001h"),
            Ok(Duration::from_nanos(3_600_000_000_360))
        );
        assert_eq!(parse("+2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn parses_zero_forms() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("-0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("10"), Err(DurationError::MissingUnit("10".into())));
        assert_eq!(parse("1s5"), Err(DurationError::MissingUnit("1s5".into())));
        assert_eq!(parse("s"), Err(DurationError::Invalid("s".into())));
        assert_eq!(parse(".s"), Err(DurationError::Invalid(".s".into())));
        assert_eq!(parse("-"), Err(DurationError::Invalid("-".into())));
        assert_eq!(
            parse("1 s"),
            Err(DurationError::UnknownUnit {
                unit: " s".into(),
                input: "1 s".into()
            })
        );
        assert!(matches!(
            parse("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("1.2.3s"),
            Err(DurationError::MissingUnit(_))
        ));
    }

    #[test]
    fn rejects_negative_and_oversized_values() {
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
        assert!(matches!(parse("3000000h"), Err(DurationError::Overflow(_))));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999ns"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("2562047h47m16.854775808s"),
            Err(DurationError::Overflow(_))
        ));
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(2)), "2ns");
        assert_eq!(format(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format(ms(500)), "500ms");
        assert_eq!(format(ms(1500)), "1.5s");
        assert_eq!(format(Duration::from_secs(60)), "1m0s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::from_secs(6 * 3600)), "6h0m0s");
        assert_eq!(format(Duration::new(3661, 5)), "1h1m1.000000005s");
    }

    #[test]
    fn format_output_parses_back_to_the_same_value() {
        for d in [
            Duration::from_nanos(1),
            Duration::from_nanos(999_999),
            ms(10),
            Duration::new(59, 999_999_999),
            Duration::from_secs(86_400 * 3 + 7),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{d:?}");
        }
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct Holder {
        #[serde(with = "serde_go")]
        d: Duration,
    }

    #[test]
    fn serde_reads_strings_and_nanosecond_integers() {
        let from = |json: &str| serde_json::from_str::<Holder>(json).map(|h| h.d);
        assert_eq!(from(r#"{"d":"1m30s"}"#).unwrap(), Duration::from_secs(90));
        assert_eq!(from(r#"{"d":1500}"#).unwrap(), Duration::from_nanos(1500));
        assert_eq!(from(r#"{"d":"1500"}"#).unwrap(), Duration::from_nanos(1500));
        assert!(from(r#"{"d":-1}"#)
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(from(r#"{"d":"ten"}"#)
            .unwrap_err()
            .to_string()
            .contains("\"ten\""));
        assert!(from(r#"{"d":true}"#).is_err());
        assert!(from(r#"{"d":"99999999999999999999"}"#).is_err());
    }

    #[test]
    fn serde_writes_go_strings() {
        let json = serde_json::to_string(&Holder { d: ms(2500) }).unwrap();
        assert_eq!(json, r#"{"d":"2.5s"}"#);
    }
}

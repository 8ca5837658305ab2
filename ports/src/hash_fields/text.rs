//! The scalar texts of hash fields: floats as Python writes them, and
//! lenient parsing of integers, floats and booleans as pydantic's lax
//! mode reads them.

use std::borrow::Cow;

use statehouse_domain::python_float_repr;

/// A float as Python's `repr` writes it (what redis-py sends for a
/// `float`): `0.25`, `3.0`, `1e+20`, `1e-05`, `inf`, `-inf`, `nan`.
///
/// ```
/// use statehouse_ports::hash_fields::format_float;
///
/// assert_eq!(format_float(3.0), "3.0");
/// assert_eq!(format_float(1e16), "1e+16");
/// assert_eq!(format_float(f64::INFINITY), "inf");
/// assert_eq!(format_float(f64::NAN), "nan");
/// ```
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        python_float_repr(value)
    }
}

/// An `f32` in the same form, with the shortest digits of the `f32` (not
/// of its widened `f64`): `0.1f32` is `0.1`.
pub(super) fn format_f32(value: f32) -> String {
    if !value.is_finite() {
        return format_float(f64::from(value));
    }
    // The f64 nearest the f32's shortest decimal has the same shortest
    // decimal (it has at most 9 significant digits).
    let shortest: f64 = format!("{value:e}").parse().unwrap_or(f64::from(value));
    format_float(shortest)
}

/// `text` without the `_` that Python allows between two digits; `None`
/// if an `_` is anywhere else.
fn without_underscores(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('_') {
        return Some(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'_' {
            let before = at.checked_sub(1).and_then(|i| bytes.get(i));
            let after = bytes.get(at + 1);
            if !before.is_some_and(u8::is_ascii_digit) || !after.is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
    }
    Some(Cow::Owned(text.replace('_', "")))
}

/// A float as Python's `float()` reads it: surrounding whitespace, `_`
/// between digits, `inf`/`infinity`/`nan` in any case with a sign.
pub(super) fn parse_float(text: &str) -> Option<f64> {
    let text = without_underscores(text.trim())?;
    let (sign, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, &text[..]),
    };
    let lower = magnitude.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(sign * f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust's grammar is Python's for the finite forms ("1e+20", ".5",
    // "5.", "1E5"), except that it also takes what was handled above.
    if magnitude.is_empty() || magnitude.starts_with(['+', '-']) {
        return None;
    }
    magnitude.parse::<f64>().ok().map(|value| sign * value)
}

/// Why an integer text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntError {
    /// Not an integer at all.
    NotAnInteger,
    /// An integer, but not in the type's range.
    OutOfRange,
}

/// An integer as pydantic's lax mode reads a text: decimal with a sign,
/// whitespace and `_` between digits, or a float text with no fraction
/// (`3.0`, `1e3`).
pub(super) fn parse_int(text: &str) -> Result<i128, IntError> {
    let trimmed = text.trim();
    let digits = without_underscores(trimmed).ok_or(IntError::NotAnInteger)?;
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(&digits);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse::<i128>().map_err(|_| IntError::OutOfRange);
    }
    match parse_float(trimmed) {
        Some(value) if value.is_finite() && value.fract() == 0.0 => {
            // Exact up to 2^53; beyond, as exact as the float is.
            if value.abs() < 1.7e38 {
                // The range check above keeps this cast exact and in range.
                #[allow(clippy::cast_possible_truncation)]
                Ok(value as i128)
            } else {
                Err(IntError::OutOfRange)
            }
        }
        _ => Err(IntError::NotAnInteger),
    }
}

/// A `u128` (the one integer `i128` does not cover).
pub(super) fn parse_u128(text: &str) -> Result<u128, IntError> {
    let digits = without_underscores(text.trim()).ok_or(IntError::NotAnInteger)?;
    let unsigned = digits.strip_prefix('+').unwrap_or(&digits);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return unsigned.parse::<u128>().map_err(|_| IntError::OutOfRange);
    }
    let value = parse_int(text)?;
    u128::try_from(value).map_err(|_| IntError::OutOfRange)
}

/// A boolean as pydantic's lax mode reads a text: `true`/`false`, `1`/`0`,
/// `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n` in any case (Python's `True`
/// and `False` among them), with surrounding whitespace.
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_what_python_float_reads() {
        let cases: [(&str, f64); 14] = [
            ("0.25", 0.25),
            (" 0.25\n", 0.25),
            ("3", 3.0),
            ("1e+20", 1e20),
            ("1E5", 1e5),
            ("+.5", 0.5),
            ("5.", 5.0),
            ("1_0.5", 10.5),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("+INF", f64::INFINITY),
            ("-0.0", -0.0),
            ("1.7976931348623157e+308", f64::MAX),
            ("5e-324", 5e-324),
        ];
        for (text, value) in cases {
            assert_eq!(parse_float(text), Some(value), "{text:?}");
        }
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        assert!(parse_float("-NaN").is_some_and(f64::is_nan));
        for bad in [
            "",
            "1_",
            "_1",
            "1__0",
            "--1",
            "+-1",
            "abc",
            "1e",
            "0x10",
            "1,5",
            "inf inity",
        ] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_written_float_reads_back_exactly() {
        for value in [
            0.1,
            1e20,
            1e16,
            1e15,
            1e-5,
            -2.5e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123.456,
        ] {
            assert_eq!(parse_float(&format_float(value)), Some(value), "{value}");
        }
        assert_eq!(format_float(-0.0), "-0.0");
        assert_eq!(format_float(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_f32(0.1), "0.1");
        assert_eq!(format_f32(1e20), "1e+20");
        assert_eq!(format_f32(f32::INFINITY), "inf");
        assert_eq!(parse_float(&format_f32(0.3)).map(|v| v as f32), Some(0.3f32));
    }

    #[test]
    fn integers_read_like_pydantic_lax_mode() {
        for (text, value) in [
            ("3", 3),
            (" 3 ", 3),
            ("+3", 3),
            ("-3", -3),
            ("007", 7),
            ("1_000", 1000),
            ("3.0", 3),
            ("1e3", 1000),
            ("-2E2", -200),
            ("170141183460469231731687303715884105727", i128::MAX),
        ] {
            assert_eq!(parse_int(text), Ok(value), "{text:?}");
        }
        for bad in ["", "3.5", "0x10", "1_", "abc", "nan", "inf", "1e-3"] {
            assert_eq!(parse_int(bad), Err(IntError::NotAnInteger), "{bad:?}");
        }
        assert_eq!(parse_int("1e40"), Err(IntError::OutOfRange));
        assert_eq!(
            parse_int("999999999999999999999999999999999999999999"),
            Err(IntError::OutOfRange)
        );
        assert_eq!(
            parse_u128("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        assert_eq!(parse_u128("-1"), Err(IntError::OutOfRange));
    }

    #[test]
    fn booleans_read_like_pydantic_lax_mode() {
        for text in ["True", "true", "TRUE", "1", "yes", "on", "t", "Y", " true "] {
            assert_eq!(parse_bool(text), Some(true), "{text:?}");
        }
        for text in ["False", "false", "0", "no", "off", "f", "N"] {
            assert_eq!(parse_bool(text), Some(false), "{text:?}");
        }
        for text in ["", "2", "truth", "None"] {
            assert_eq!(parse_bool(text), None, "{text:?}");
        }
    }
}

use std::fmt;
use std::time::Duration;

/// A duration as people read it: `0 ms`, `42 ms`, `0.3 s`, `12.5 s`,
/// `5 min 3 s`, `2 h 10 min`, `3 d 4 h`, `100 years`.
///
/// Meant for messages and command-line output, never for parsing: the
/// larger the duration, the coarser the rounding (tenths of a second below
/// a minute, whole seconds below an hour, minutes below a day, hours below a
/// year, days beyond; a year is 365 days). Below 100 ms it shows whole
/// milliseconds, rounded up, so a non-zero duration never reads as `0 ms`.
///
/// ```
/// use std::time::Duration;
/// use statehouse_domain::HumanDuration;
///
/// assert_eq!(HumanDuration(Duration::from_millis(299)).to_string(), "0.3 s");
/// assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1 min 30 s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        const DAY: u64 = 24 * HOUR;
        const YEAR: u64 = 365 * DAY;

        let duration = self.0;
        if duration < Duration::from_millis(100) {
            // Exact up to here; rounded up so that 1 ns is "1 ms", not "0 ms".
            return write!(f, "{} ms", duration.as_nanos().div_ceil(1_000_000));
        }
        if duration < Duration::from_secs(MINUTE) {
            let tenths = (duration.as_millis() + 50) / 100;
            return match tenths % 10 {
                0 => write!(f, "{} s", tenths / 10),
                tenth => write!(f, "{}.{tenth} s", tenths / 10),
            };
        }
        let secs = duration.as_secs();
        let (big, big_unit, small, small_unit) = if secs < HOUR {
            (secs / MINUTE, "min", secs % MINUTE, "s")
        } else if secs < DAY {
            (secs / HOUR, "h", secs % HOUR / MINUTE, "min")
        } else if secs < YEAR {
            (secs / DAY, "d", secs % DAY / HOUR, "h")
        } else {
            let years = secs / YEAR;
            let unit = if years == 1 { "year" } else { "years" };
            (years, unit, secs % YEAR / DAY, "d")
        };
        write!(f, "{big} {big_unit}")?;
        if small > 0 {
            write!(f, " {small} {small_unit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(duration: Duration) -> String {
        HumanDuration(duration).to_string()
    }

    #[test]
    fn short_durations_in_milliseconds_never_round_to_zero() {
        assert_eq!(human(Duration::ZERO), "0 ms");
        assert_eq!(human(Duration::from_nanos(1)), "1 ms");
        assert_eq!(human(Duration::from_millis(42)), "42 ms");
        assert_eq!(human(Duration::from_micros(99_500)), "100 ms");
    }

    #[test]
    fn seconds_with_one_decimal_below_a_minute() {
        assert_eq!(human(Duration::from_millis(100)), "0.1 s");
        assert_eq!(human(Duration::from_millis(299)), "0.3 s");
        assert_eq!(human(Duration::from_millis(2_000)), "2 s");
        assert_eq!(human(Duration::from_millis(12_450)), "12.5 s");
        assert_eq!(human(Duration::from_millis(59_999)), "60 s");
    }

    #[test]
    fn larger_units_beyond_a_minute() {
        assert_eq!(human(Duration::from_secs(60)), "1 min");
        assert_eq!(human(Duration::from_secs(303)), "5 min 3 s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 600)), "2 h 10 min");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3 d 4 h");
        assert_eq!(human(Duration::from_secs(365 * 86_400)), "1 year");
        assert_eq!(human(Duration::from_secs(u64::MAX)), "584942417355 years 26 d");
    }
}

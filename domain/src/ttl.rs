use std::time::Duration;

use crate::{HumanDuration, ValidationError};

/// A time to live: at least one millisecond, at most [`Ttl::MAX`].
///
/// Redis expires keys with millisecond precision, so a duration with a
/// sub-millisecond part is rounded *up* (a key never expires earlier than
/// asked). Zero is rejected rather than treated as "delete now": a TTL that
/// silently deletes data is a bug waiting to happen.
///
/// ```
/// use std::time::Duration;
/// use statehouse_domain::Ttl;
///
/// let ttl = Ttl::new(Duration::from_secs(30))?;
/// assert_eq!(ttl.as_millis(), 30_000);
/// assert!(Ttl::new(Duration::ZERO).is_err());
/// assert!(Ttl::from_millis_signed(-5).is_err());
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u64);

impl Ttl {
    /// The longest TTL accepted: 100 years. Redis adds the TTL to the current
    /// Unix time in milliseconds and rejects overflows; this bound stays far
    /// from that edge.
    pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

    /// A TTL of `duration`, rounded up to whole milliseconds.
    pub fn new(duration: Duration) -> Result<Self, ValidationError> {
        if duration.is_zero() {
            return Err(ValidationError::TtlTooShort {
                given: HumanDuration(duration).to_string(),
            });
        }
        if duration > Self::MAX {
            return Err(ValidationError::TtlTooLong {
                given: duration,
                max: Self::MAX,
            });
        }
        let millis = duration.as_nanos().div_ceil(1_000_000);
        // Bounded by MAX (about 3.2e12 ms), so the conversion cannot fail.
        Ok(Self(u64::try_from(millis).unwrap_or(u64::MAX)))
    }

    /// A TTL of `days` whole days, capped at [`Ttl::MAX`] (36,500 days):
    /// for defaults known at compile time.
    ///
    /// ```
    /// use statehouse_domain::Ttl;
    ///
    /// assert_eq!(Ttl::days(90).as_millis(), 90 * 86_400_000);
    /// ```
    pub const fn days(days: u16) -> Self {
        let days = if days == 0 {
            1
        } else if days > 36_500 {
            36_500
        } else {
            days
        };
        Self(days as u64 * 86_400_000)
    }

    /// A TTL of `millis` milliseconds.
    pub fn from_millis(millis: u64) -> Result<Self, ValidationError> {
        Self::new(Duration::from_millis(millis))
    }

    /// A TTL of `secs` seconds.
    pub fn from_secs(secs: u64) -> Result<Self, ValidationError> {
        Self::new(Duration::from_secs(secs))
    }

    /// A TTL from a signed count of milliseconds, as it arrives from a
    /// command line or a config file; zero and negative values are rejected.
    pub fn from_millis_signed(millis: i64) -> Result<Self, ValidationError> {
        match u64::try_from(millis) {
            Ok(millis) => Self::from_millis(millis),
            Err(_) => Err(ValidationError::TtlTooShort {
                given: format!("{millis} ms"),
            }),
        }
    }

    /// A TTL from a signed count of seconds; zero and negative values are
    /// rejected.
    pub fn from_secs_signed(secs: i64) -> Result<Self, ValidationError> {
        match u64::try_from(secs) {
            Ok(secs) => Self::from_secs(secs),
            Err(_) => Err(ValidationError::TtlTooShort {
                given: format!("{secs} s"),
            }),
        }
    }

    /// The TTL in whole milliseconds (at least 1).
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// The TTL as a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = ValidationError;

    fn try_from(duration: Duration) -> Result<Self, Self::Error> {
        Self::new(duration)
    }
}

impl From<Ttl> for Duration {
    fn from(ttl: Ttl) -> Duration {
        ttl.as_duration()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_rejected_not_a_delete() {
        assert!(matches!(
            Ttl::new(Duration::ZERO),
            Err(ValidationError::TtlTooShort { .. })
        ));
        assert!(Ttl::from_millis(0).is_err());
        assert!(Ttl::from_secs_signed(0).is_err());
    }

    #[test]
    fn negative_values_are_rejected_with_their_value() {
        let err = Ttl::from_secs_signed(-5).unwrap_err();
        assert_eq!(err.to_string(), "a TTL must be at least 1 ms, got -5 s");
        assert!(Ttl::from_millis_signed(i64::MIN).is_err());
    }

    #[test]
    fn messages_show_durations_as_people_read_them() {
        let zero = Ttl::new(Duration::ZERO).unwrap_err();
        assert_eq!(zero.to_string(), "a TTL must be at least 1 ms, got 0 ms");
        let long = Ttl::new(Ttl::MAX + Duration::from_secs(86_400)).unwrap_err();
        assert_eq!(
            long.to_string(),
            "a TTL must be at most 100 years, got 100 years 1 d"
        );
    }

    #[test]
    fn sub_millisecond_parts_round_up() {
        assert_eq!(Ttl::new(Duration::from_nanos(1)).unwrap().as_millis(), 1);
        assert_eq!(Ttl::new(Duration::from_micros(1500)).unwrap().as_millis(), 2);
        assert_eq!(Ttl::new(Duration::from_millis(7)).unwrap().as_millis(), 7);
    }

    #[test]
    fn absurdly_long_ttls_are_rejected() {
        assert!(Ttl::new(Ttl::MAX).is_ok());
        assert!(matches!(
            Ttl::new(Ttl::MAX + Duration::from_millis(1)),
            Err(ValidationError::TtlTooLong { .. })
        ));
        assert!(Ttl::from_secs(u64::MAX).is_err());
    }
}

//! Money: what a request cost, in integers.
//!
//! Amounts are nano-dollars (1e-9 USD) in an `i64` (up to about 9.2 billion dollars): a request's
//! cost on the cheapest models is a few millionths of a cent, so micro-dollars would round it
//! to zero, and sums of floats drift. Prices per token are finer still (see `prices`); a cost is
//! rounded to the nano-dollar once, when it is computed, and only integers are summed after.

pub mod cost;
pub mod prices;

use std::fmt;

/// An amount in nano-dollars (1e-9 USD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub i64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Dollars as a float, for JSON fields LiteLLM's clients read as numbers (`spend`, `cost`).
    /// Never summed: sums are taken over `Nanos`.
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// From dollars (a budget in a config or a request body), rounded to the nano-dollar;
    /// saturates instead of wrapping, and NaN is zero.
    pub fn from_usd(usd: f64) -> Nanos {
        let nanos = (usd * 1e9).round();
        if nanos.is_nan() {
            Nanos(0)
        } else {
            // `as` saturates at the bounds of i64.
            Nanos(nanos as i64)
        }
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }
}

/// Exact decimal dollars: `0.000035`, `12.5`, `0` (no exponent, no float rounding), as the cost
/// headers carry it.
impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        // Trailing zeros dropped by arithmetic, not by trimming a formatted string: the cost
        // header of every response is written with this, without allocating.
        let (mut frac, mut width) = (frac, 9);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{sign}{whole}.{frac:0width$}")
    }
}

impl Nanos {
    /// The exact decimal dollars as a header value (the `Display` form), formatted on the stack.
    pub fn header_value(self) -> axum::http::HeaderValue {
        let mut buf = StackText::default();
        // 21 bytes at most (`-9223372036.854775808`): the buffer cannot overflow.
        let _ = fmt::write(&mut buf, format_args!("{self}"));
        axum::http::HeaderValue::from_bytes(buf.as_bytes())
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("0"))
    }
}

/// A fixed buffer `fmt::Write` fills without allocating.
#[derive(Default)]
struct StackText {
    buf: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Where a request's cost came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostSource {
    /// The usage the provider reported, times the deployment's price.
    Reported,
    /// No usage was reported (a stream cut short, a provider that sends none): a token estimate.
    Estimated,
    /// Answered from the response cache: costs nothing.
    CacheHit,
    /// The deployment has no price (not in the table, none configured): recorded as 0.
    Unpriced,
}

impl CostSource {
    pub fn name(self) -> &'static str {
        match self {
            CostSource::Reported => "reported",
            CostSource::Estimated => "estimated",
            CostSource::CacheHit => "cache_hit",
            CostSource::Unpriced => "unpriced",
        }
    }
}

/// What one request cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub total: Nanos,
    pub source: CostSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_render_exactly() {
        assert_eq!(Nanos(35_000).to_string(), "0.000035");
        assert_eq!(Nanos(12_500_000_000).to_string(), "12.5");
        assert_eq!(Nanos(0).to_string(), "0");
        assert_eq!(Nanos(1).to_string(), "0.000000001");
        assert_eq!(Nanos(-1_500_000_000).to_string(), "-1.5");
        assert_eq!(Nanos(i64::MIN).to_string(), "-9223372036.854775808");
        assert_eq!(Nanos(100).to_string(), "0.0000001");
        assert_eq!(Nanos(1_000_000_010).to_string(), "1.00000001");
        assert_eq!(Nanos(i64::MIN).header_value(), "-9223372036.854775808");
        assert_eq!(Nanos(450_000).header_value(), "0.00045");
    }

    #[test]
    fn dollars_parse_to_the_nano_and_saturate() {
        assert_eq!(Nanos::from_usd(0.1), Nanos(100_000_000));
        assert_eq!(Nanos::from_usd(f64::NAN), Nanos(0));
        assert_eq!(Nanos::from_usd(1e300), Nanos(i64::MAX));
        assert_eq!(Nanos::from_usd(-1e300), Nanos(i64::MIN));
    }
}

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
        f.write_str(self.decimal().as_str())
    }
}

impl Nanos {
    /// The exact decimal dollars (the `Display` form), written digit by digit on the stack:
    /// the cost header of every response and every access line carry it, and `core::fmt`
    /// with a computed width costs several times as much.
    pub fn decimal(self) -> Decimal {
        let mut out = Decimal {
            buf: [0; DECIMAL_MAX],
            start: DECIMAL_MAX,
        };
        let abs = self.0.unsigned_abs();
        let (mut whole, mut frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
        if frac != 0 {
            // Trailing zeros dropped by arithmetic; the rest padded to its place with zeros.
            let mut width = 9;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            for _ in 0..width {
                out.push(b'0' + (frac % 10) as u8);
                frac /= 10;
            }
            out.push(b'.');
        }
        loop {
            out.push(b'0' + (whole % 10) as u8);
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        if self.0 < 0 {
            out.push(b'-');
        }
        out
    }

    /// The exact decimal dollars as a header value.
    pub fn header_value(self) -> axum::http::HeaderValue {
        axum::http::HeaderValue::from_str(self.decimal().as_str())
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("0"))
    }
}

/// The longest decimal: `-9223372036.854775808`.
const DECIMAL_MAX: usize = 21;

/// [`Nanos::decimal`]: the text sits at the end of the buffer, written right to left.
pub struct Decimal {
    buf: [u8; DECIMAL_MAX],
    start: usize,
}

impl Decimal {
    fn push(&mut self, byte: u8) {
        self.start -= 1;
        self.buf[self.start] = byte;
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '.' and '-' are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
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

    /// The digit writer against the exact value, over every magnitude and sign.
    #[test]
    fn dollars_round_trip_through_the_decimal() {
        let mut values = vec![i64::MAX, i64::MIN, i64::MIN + 1, -1, 10, 999_999_999];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for shift in 0..63 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x >> shift) as i64);
            values.push(-((x >> (shift + 1)) as i64));
        }
        for v in values {
            let text = Nanos(v).to_string();
            let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
            assert!(!frac.ends_with('0') && frac.len() <= 9, "{v}: {text}");
            let nanos = i128::from(whole.trim_start_matches('-').parse::<i64>().unwrap())
                * 1_000_000_000
                + format!("{frac:0<9}").parse::<i128>().unwrap();
            let signed = if text.starts_with('-') { -nanos } else { nanos };
            assert_eq!(signed, i128::from(v), "{text}");
        }
    }

    #[test]
    fn dollars_parse_to_the_nano_and_saturate() {
        assert_eq!(Nanos::from_usd(0.1), Nanos(100_000_000));
        assert_eq!(Nanos::from_usd(f64::NAN), Nanos(0));
        assert_eq!(Nanos::from_usd(1e300), Nanos(i64::MAX));
        assert_eq!(Nanos::from_usd(-1e300), Nanos(i64::MIN));
    }
}

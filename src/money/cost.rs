//! What a request cost: the usage a provider reported times the deployment's price, or an
//! estimate when no usage came. Integer arithmetic only: pico-dollar products summed in `u128`,
//! rounded to the nano-dollar once.

use serde_json::Value;

use super::prices::Price;
use super::{Cost, CostSource, Nanos};
use crate::schema::Usage;

/// The tokens a cost is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All prompt tokens, cached and cache-writing ones included (OpenAI's `prompt_tokens`).
    pub prompt: u64,
    /// Of `prompt`, read from a prompt cache.
    pub cache_read: u64,
    /// Of `prompt`, written to a prompt cache (Anthropic).
    pub cache_creation: u64,
    pub completion: u64,
}

impl Tokens {
    /// From OpenAI-shaped usage. Cached tokens are `prompt_tokens_details.cached_tokens`
    /// (OpenAI), or Anthropic's `cache_read_input_tokens` that its translation keeps beside;
    /// cache writes are Anthropic's `cache_creation_input_tokens`. Both are part of
    /// `prompt_tokens` (the Anthropic translation adds them back).
    pub fn from_usage(usage: &Usage) -> Tokens {
        let extra_u64 = |key: &str| usage.extra.get(key).and_then(Value::as_u64);
        let cache_read = extra_u64("cache_read_input_tokens")
            .or_else(|| {
                usage
                    .extra
                    .get("prompt_tokens_details")
                    .and_then(|d| d.get("cached_tokens"))
                    .and_then(Value::as_u64)
            })
            .unwrap_or(0);
        Tokens {
            prompt: usage.prompt_tokens,
            cache_read,
            cache_creation: extra_u64("cache_creation_input_tokens").unwrap_or(0),
            completion: usage.completion_tokens,
        }
    }

    /// A guess from sizes when no usage was reported: about four bytes of text a token.
    pub fn estimate(prompt_bytes: u64, output_bytes: u64) -> Tokens {
        Tokens {
            prompt: prompt_bytes.div_ceil(4),
            completion: output_bytes.div_ceil(4),
            ..Tokens::default()
        }
    }
}

/// The cost of `tokens` at `price`, in nano-dollars: uncached prompt tokens at the input
/// price, cache reads and writes at theirs (the input price when the model has none), output
/// tokens at the output price, plus the per-request fee.
pub fn nanos(price: &Price, tokens: &Tokens) -> Nanos {
    // A provider that reports more cached tokens than prompt tokens is believed for the cached
    // ones; the uncached rest cannot go below zero.
    let uncached = tokens
        .prompt
        .saturating_sub(tokens.cache_read)
        .saturating_sub(tokens.cache_creation);
    let times = |tokens: u64, pico: u64| u128::from(tokens) * u128::from(pico);
    // Each product fits `u128`; the sum saturates (only prices no file can set get there).
    let pico = [
        times(uncached, price.input_per_token),
        times(
            tokens.cache_read,
            price.cache_read_per_token.unwrap_or(price.input_per_token),
        ),
        times(
            tokens.cache_creation,
            price
                .cache_creation_per_token
                .unwrap_or(price.input_per_token),
        ),
        times(tokens.completion, price.output_per_token),
        u128::from(price.per_request),
        u128::from(price.per_query),
    ]
    .into_iter()
    .fold(0u128, u128::saturating_add);
    // Rounded half up, once; beyond i64 (9 billion dollars) it saturates.
    let nanos = pico.saturating_add(500) / 1000;
    Nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// A request's cost: from reported usage when there is some, else estimated from sizes; a
/// deployment without a price costs 0, marked unpriced.
pub fn of_request(
    price: Option<&Price>,
    usage: Option<&Usage>,
    prompt_bytes: u64,
    output_bytes: u64,
) -> Cost {
    let Some(price) = price else {
        return Cost {
            total: Nanos::ZERO,
            source: CostSource::Unpriced,
        };
    };
    match usage {
        Some(usage) => Cost {
            total: nanos(price, &Tokens::from_usage(usage)),
            source: CostSource::Reported,
        },
        None => Cost {
            total: nanos(price, &Tokens::estimate(prompt_bytes, output_bytes)),
            source: CostSource::Estimated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mini() -> Price {
        // gpt-4o-mini: $0.15 / $0.60 per million tokens, cache reads $0.075.
        Price {
            input_per_token: 150_000,
            output_per_token: 600_000,
            cache_read_per_token: Some(75_000),
            ..Price::default()
        }
    }

    fn usage(value: serde_json::Value) -> Usage {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reported_usage_times_the_price_exactly() {
        let usage =
            usage(json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}));
        // 1000 × 0.15e-6 + 500 × 0.6e-6 = 0.00015 + 0.0003 = 0.00045 dollars.
        let cost = of_request(Some(&mini()), Some(&usage), 0, 0);
        assert_eq!(cost.total, Nanos(450_000));
        assert_eq!(cost.source, CostSource::Reported);
        assert_eq!(cost.total.to_string(), "0.00045");
    }

    #[test]
    fn cached_prompt_tokens_are_billed_at_the_cache_price() {
        let openai = usage(
            json!({"prompt_tokens": 1000, "completion_tokens": 0, "total_tokens": 1000,
            "prompt_tokens_details": {"cached_tokens": 800}}),
        );
        // 200 × 150_000 + 800 × 75_000 pico = 30_000_000 + 60_000_000 = 90_000 nanos.
        assert_eq!(nanos(&mini(), &Tokens::from_usage(&openai)), Nanos(90_000));
        // Anthropic, translated: prompt = input 10 + reads 100 + writes 1000.
        let sonnet = Price {
            input_per_token: 3_000_000,
            output_per_token: 15_000_000,
            cache_read_per_token: Some(300_000),
            cache_creation_per_token: Some(3_750_000),
            ..Price::default()
        };
        let anthropic = usage(
            json!({"prompt_tokens": 1110, "completion_tokens": 20, "total_tokens": 1130,
            "prompt_tokens_details": {"cached_tokens": 100},
            "cache_read_input_tokens": 100, "cache_creation_input_tokens": 1000}),
        );
        let tokens = Tokens::from_usage(&anthropic);
        assert_eq!(
            tokens,
            Tokens {
                prompt: 1110,
                cache_read: 100,
                cache_creation: 1000,
                completion: 20
            }
        );
        // 10×3e6 + 100×3e5 + 1000×3.75e6 + 20×15e6 = 3e7+3e7+3.75e9+3e8 = 4.11e9 pico.
        assert_eq!(nanos(&sonnet, &tokens), Nanos(4_110_000));
        // Without cache prices, cached tokens cost the input price.
        let plain = Price {
            input_per_token: 1_000,
            ..Price::default()
        };
        assert_eq!(nanos(&plain, &tokens), Nanos(1_110));
    }

    #[test]
    fn rounding_happens_once_on_the_sum() {
        // 3 tokens at 0.4 nano each: 1.2 nanos, not 3 × round(0.4) = 0.
        let price = Price {
            input_per_token: 400,
            ..Price::default()
        };
        let tokens = Tokens {
            prompt: 3,
            ..Tokens::default()
        };
        assert_eq!(nanos(&price, &tokens), Nanos(1));
        let tokens = Tokens {
            prompt: 4,
            ..Tokens::default()
        };
        assert_eq!(nanos(&price, &tokens), Nanos(2)); // 1.6 rounds up
    }

    #[test]
    fn huge_numbers_saturate_instead_of_wrapping() {
        let price = Price {
            input_per_token: 1_000_000_000_000_000_000,
            output_per_token: 1_000_000_000_000_000_000,
            per_request: u64::MAX,
            ..Price::default()
        };
        let tokens = Tokens {
            prompt: u64::MAX,
            cache_read: u64::MAX,
            cache_creation: u64::MAX,
            completion: u64::MAX,
        };
        assert_eq!(nanos(&price, &tokens), Nanos(i64::MAX));
    }

    #[test]
    fn per_request_fees_are_added() {
        let price = Price {
            per_request: 10_000_000_000, // one cent
            ..mini()
        };
        let tokens = Tokens {
            prompt: 1000,
            ..Tokens::default()
        };
        assert_eq!(nanos(&price, &tokens), Nanos(10_000_000 + 150_000));
    }

    #[test]
    fn no_usage_is_estimated_and_no_price_is_unpriced() {
        let cost = of_request(Some(&mini()), None, 4000, 2000);
        // 1000 prompt and 500 output tokens estimated.
        assert_eq!(cost.total, Nanos(450_000));
        assert_eq!(cost.source, CostSource::Estimated);
        let cost = of_request(None, None, 4000, 2000);
        assert_eq!(cost.total, Nanos::ZERO);
        assert_eq!(cost.source, CostSource::Unpriced);
    }
}

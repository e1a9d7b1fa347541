//! Model prices: the table shipped with the gateway, a user's price file over it, and which
//! entry prices a deployment.
//!
//! The shipped table is `prices/model_prices.json`, derived by `scripts/update-prices` from
//! LiteLLM's `model_prices_and_context_window_backup.json` of the litellm 1.110.2 wheel (taken
//! 2026-12-02; LiteLLM is MIT-licensed, Copyright (c) 2023 Berri AI: see
//! `prices/LICENSE-litellm`). It keeps LiteLLM's format, so a user refreshes prices by pointing
//! `switchyard_prices.file` (or `SWITCHYARD_PRICES_FILE`) at LiteLLM's newest file: its entries
//! win over the shipped ones.
//!
//! Prices are integers: pico-dollars (1e-12 USD) per token. The cheapest token in LiteLLM's
//! table is 1.3e-10 dollars (130 pico-dollars), so nothing real rounds away, and a cost is
//! `tokens × pico` summed in `u128` and rounded to the nano-dollar once (see `cost`).
//! Lookups happen when a config is built, never per request.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// The shipped table, as committed (see the module docs for its source).
const SHIPPED_JSON: &str = include_str!("../../prices/model_prices.json");

/// Where the shipped table comes from, for docs and `switchyard check`.
pub const SHIPPED_SOURCE: &str =
    "LiteLLM 1.110.2 model_prices_and_context_window_backup.json (MIT), taken 2026-12-02";

/// The largest price accepted, in dollars (per token or per request): far above any real price,
/// and small enough that `tokens × pico-dollars` never leaves `u128` and a price fits `u64`.
const MAX_PRICE_USD: f64 = 1_000_000.0;

/// One model's price, in pico-dollars (1e-12 USD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Price {
    pub input_per_token: u64,
    pub output_per_token: u64,
    /// Cached prompt tokens (OpenAI's `cached_tokens`, Anthropic's cache reads); `None` bills
    /// them at the input price.
    pub cache_read_per_token: Option<u64>,
    /// Tokens written to a prompt cache (Anthropic); `None` bills them at the input price.
    pub cache_creation_per_token: Option<u64>,
    /// `input_cost_per_request` plus `output_cost_per_request`.
    pub per_request: u64,
    /// `input_cost_per_query`: what a rerank call costs (LiteLLM prices Cohere-style rerank
    /// models per search, not per token). Charged once per call, as `per_request` is.
    pub per_query: u64,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

impl Price {
    /// Input plus output price per token in dollars, for cost-based routing.
    pub fn per_token_usd(&self) -> f64 {
        (self.input_per_token as f64 + self.output_per_token as f64) / 1e12
    }
}

/// A table entry: its price and the provider LiteLLM files it under.
#[derive(Debug, Clone)]
pub struct PriceEntry {
    pub provider: Option<String>,
    pub mode: Option<String>,
    pub price: Arc<Price>,
}

/// Entries by lower-cased name (LiteLLM matches names without regard to case).
#[derive(Default)]
pub struct PriceTable {
    entries: HashMap<String, PriceEntry>,
}

impl std::fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PriceTable({} entries)", self.entries.len())
    }
}

/// What is wrong with a price file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", entry.as_ref().map(|e| format!("entry `{e}`: ")).unwrap_or_default())]
pub struct PriceError {
    pub entry: Option<String>,
    pub message: String,
}

impl PriceTable {
    /// The table shipped in the binary, parsed on first use.
    pub fn shipped() -> &'static PriceTable {
        static SHIPPED: OnceLock<PriceTable> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            // The committed file is checked by a test; a broken build would fail there first.
            PriceTable::parse(SHIPPED_JSON).unwrap_or_default()
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses a file in LiteLLM's format. Every entry must be an object whose price fields are
    /// finite numbers from 0 to a million dollars; other fields are ignored, and LiteLLM's
    /// `sample_spec` (its documentation entry) is skipped.
    pub fn parse(text: &str) -> Result<PriceTable, PriceError> {
        let root: Map<String, Value> = serde_json::from_str(text).map_err(|err| PriceError {
            entry: None,
            message: format!("not a JSON object of model entries: {err}"),
        })?;
        let mut entries = HashMap::with_capacity(root.len());
        for (name, value) in &root {
            if name == "sample_spec" {
                continue;
            }
            let entry = parse_entry(value).map_err(|message| PriceError {
                entry: Some(name.clone()),
                message,
            })?;
            entries.insert(name.to_ascii_lowercase(), entry);
        }
        Ok(PriceTable { entries })
    }

    pub fn get(&self, name: &str) -> Option<&PriceEntry> {
        match self.entries.get(name) {
            Some(entry) => Some(entry),
            None => self.entries.get(&name.to_ascii_lowercase()),
        }
    }
}

fn parse_entry(value: &Value) -> Result<PriceEntry, String> {
    let Value::Object(fields) = value else {
        return Err(format!("must be an object, got {}", kind(value)));
    };
    let text = |key: &str| -> Result<Option<String>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string, got {}", kind(other))),
        }
    };
    let price = |key: &str| -> Result<Option<u64>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => pico_from_json(value)
                .map(Some)
                .map_err(|message| format!("`{key}` {message}")),
        }
    };
    let tokens = |key: &str| -> Result<Option<u64>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a whole number of tokens, got {value}")),
        }
    };
    let per_request = price("input_cost_per_request")?
        .unwrap_or(0)
        .saturating_add(price("output_cost_per_request")?.unwrap_or(0));
    Ok(PriceEntry {
        provider: text("litellm_provider")?,
        mode: text("mode")?,
        price: Arc::new(Price {
            input_per_token: price("input_cost_per_token")?.unwrap_or(0),
            output_per_token: price("output_cost_per_token")?.unwrap_or(0),
            cache_read_per_token: price("cache_read_input_token_cost")?,
            cache_creation_per_token: price("cache_creation_input_token_cost")?,
            per_request,
            per_query: price("input_cost_per_query")?.unwrap_or(0),
            max_input_tokens: tokens("max_input_tokens")?,
            max_output_tokens: tokens("max_output_tokens")?,
        }),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn pico_from_json(value: &Value) -> Result<u64, String> {
    match value.as_f64() {
        Some(usd) => pico_from_usd(usd),
        None => Err(format!("must be a number of dollars, got {}", kind(value))),
    }
}

/// Dollars to pico-dollars, refusing what no price can be: negative, NaN, infinite, or above
/// [`MAX_PRICE_USD`].
pub fn pico_from_usd(usd: f64) -> Result<u64, String> {
    if !usd.is_finite() {
        return Err(format!("must be a finite number of dollars, got {usd}"));
    }
    if usd < 0.0 {
        return Err(format!("must not be negative, got {usd}"));
    }
    if usd > MAX_PRICE_USD {
        return Err(format!(
            "must be at most {MAX_PRICE_USD} dollars, got {usd:e}"
        ));
    }
    // At most 1e18: exact enough in f64 for the cent, and within u64.
    Ok((usd * 1e12).round() as u64)
}

/// The shipped table with a user's price file over it: an entry in the file replaces the
/// shipped entry of the same name (LiteLLM merges its files the same way).
#[derive(Debug, Clone)]
pub struct Prices {
    overlay: Option<Arc<PriceTable>>,
    /// `None` only in tests that price from an overlay alone.
    shipped: Option<&'static PriceTable>,
}

impl Default for Prices {
    fn default() -> Self {
        Prices::shipped()
    }
}

/// Where a deployment's price came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub price: Arc<Price>,
    /// The table entry used, if any (`None`: the config's own prices alone).
    pub entry: Option<String>,
}

/// A deployment's own prices (`litellm_params` or `model_info`), in pico-dollars; each one set
/// replaces the table's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceOverrides {
    pub input_per_token: Option<u64>,
    pub output_per_token: Option<u64>,
    pub cache_read_per_token: Option<u64>,
    pub cache_creation_per_token: Option<u64>,
    pub per_query: Option<u64>,
}

impl PriceOverrides {
    pub fn is_empty(&self) -> bool {
        *self == PriceOverrides::default()
    }
}

impl Prices {
    pub fn shipped() -> Prices {
        Prices {
            overlay: None,
            shipped: Some(PriceTable::shipped()),
        }
    }

    /// The shipped table under `overlay` (a user's price file).
    pub fn with_overlay(overlay: PriceTable) -> Prices {
        Prices {
            overlay: Some(Arc::new(overlay)),
            shipped: Some(PriceTable::shipped()),
        }
    }

    /// Only `table` (for tests).
    pub fn only(table: PriceTable) -> Prices {
        Prices {
            overlay: Some(Arc::new(table)),
            shipped: None,
        }
    }

    /// How many entries the user's file added or replaced.
    pub fn overlay_len(&self) -> usize {
        self.overlay.as_ref().map_or(0, |t| t.len())
    }

    fn get(&self, name: &str) -> Option<&PriceEntry> {
        self.overlay
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| self.shipped.and_then(|t| t.get(name)))
    }

    /// The entry pricing `model` served by `provider`, by LiteLLM's lookup order
    /// (`litellm/utils.py`, `_model_cost_lookup_order`): `provider/model`, then `model` as
    /// written, then `model` without its `provider/` prefix, then the same two with the model's
    /// version stripped (see [`strip_version`]); an entry filed under another provider does not
    /// count (with LiteLLM's exceptions: the `vertex_ai-*` and `bedrock*` families, and
    /// `azure_ai` falling back to Azure's and OpenAI's prices).
    pub fn lookup(&self, provider: &str, model: &str) -> Option<(String, &PriceEntry)> {
        let split = model
            .strip_prefix(provider)
            .and_then(|rest| rest.strip_prefix('/'));
        let bare = split.unwrap_or(model);
        let combined = match split {
            Some(_) => model.to_owned(),
            None => format!("{provider}/{model}"),
        };
        let stripped = strip_version(provider, bare).filter(|s| *s != bare);
        let combined_stripped = stripped.map(|s| format!("{provider}/{s}"));
        let candidates = [
            Some(combined.as_str()),
            Some(model),
            split,
            combined_stripped.as_deref(),
            stripped,
        ];
        for name in candidates.into_iter().flatten() {
            if let Some(entry) = self.get(name) {
                if provider_matches(entry.provider.as_deref(), provider) {
                    return Some((name.to_owned(), entry));
                }
            }
        }
        None
    }

    /// The entry for a model named without a deployment (`/spend/calculate`): the name as
    /// written, else, for `provider/model`, the lookup for that provider.
    pub fn lookup_name(&self, model: &str) -> Option<(String, &PriceEntry)> {
        if let Some(entry) = self.get(model) {
            return Some((model.to_owned(), entry));
        }
        let (provider, _) = model.split_once('/')?;
        self.lookup(provider, model)
    }

    /// The deployment's price: the table's entry for `model` (its `base_model` when set)
    /// with the deployment's own prices over it. `None` when neither has a price.
    pub fn resolve(
        &self,
        provider: &str,
        model: &str,
        overrides: &PriceOverrides,
    ) -> Option<Resolved> {
        let found = self.lookup(provider, model);
        if found.is_none() && overrides.is_empty() {
            return None;
        }
        let (entry, mut price) = match found {
            Some((name, entry)) => (Some(name), Price::clone(&entry.price)),
            None => (None, Price::default()),
        };
        if let Some(p) = overrides.input_per_token {
            price.input_per_token = p;
        }
        if let Some(p) = overrides.output_per_token {
            price.output_per_token = p;
        }
        if let Some(p) = overrides.cache_read_per_token {
            price.cache_read_per_token = Some(p);
        }
        if let Some(p) = overrides.cache_creation_per_token {
            price.cache_creation_per_token = Some(p);
        }
        if let Some(p) = overrides.per_query {
            price.per_query = p;
        }
        Some(Resolved {
            price: Arc::new(price),
            entry,
        })
    }
}

/// A model name without its version, as LiteLLM's `_strip_model_name` does it: an OpenAI
/// fine-tune loses its organization, suffix and id (`ft:gpt-4o-mini:org::abc` →
/// `ft:gpt-4o-mini`), a Vertex AI or Gemini model its `-NNN` version (`gemini-1.5-pro-002`), any
/// other its dated snapshot (`gpt-4o-2024-11-20` → `gpt-4o`). (LiteLLM's Bedrock rules, region
/// and version prefixes, are not reproduced: set `base_model` for such deployments.)
pub fn strip_version<'a>(provider: &str, model: &'a str) -> Option<&'a str> {
    if provider == "vertex_ai" || provider == "gemini" {
        let (head, tail) = model.rsplit_once('-')?;
        return (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())).then_some(head);
    }
    if model.contains("ft:") {
        // `(:[^:]*){3}$`: cut at the third colon from the end.
        let mut end = model.len();
        for _ in 0..3 {
            end = model[..end].rfind(':')?;
        }
        return Some(&model[..end]);
    }
    // `-\d{4}-\d{2}-\d{2}$`
    let bytes = model.as_bytes();
    let n = bytes.len();
    if n < 11 {
        return None;
    }
    let suffix = &bytes[n - 11..];
    let digit = |i: usize| suffix[i].is_ascii_digit();
    let dated = suffix[0] == b'-'
        && (1..5).all(digit)
        && suffix[5] == b'-'
        && (6..8).all(digit)
        && suffix[8] == b'-'
        && (9..11).all(digit);
    dated.then(|| &model[..n - 11])
}

/// LiteLLM's `_check_provider_match`: an entry without a provider matches any.
fn provider_matches(entry: Option<&str>, provider: &str) -> bool {
    let Some(entry) = entry else { return true };
    entry == provider
        || (provider == "vertex_ai" && entry.starts_with("vertex_ai"))
        || (provider == "fireworks_ai" && entry.starts_with("fireworks_ai"))
        || (provider.starts_with("bedrock") && entry.starts_with("bedrock"))
        || (provider == "azure_ai" && (entry == "azure" || entry == "openai"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> Prices {
        Prices::only(PriceTable::parse(json).unwrap())
    }

    #[test]
    fn the_shipped_table_parses_and_prices_known_models() {
        let table = PriceTable::parse(SHIPPED_JSON).unwrap();
        assert!(table.len() > 1000, "{}", table.len());
        let mini = table.get("gpt-4o-mini").unwrap();
        assert_eq!(mini.provider.as_deref(), Some("openai"));
        assert_eq!(mini.price.input_per_token, 150_000);
        assert_eq!(mini.price.output_per_token, 600_000);
        assert_eq!(mini.price.cache_read_per_token, Some(75_000));
        let sonnet = table.get("claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.price.input_per_token, 3_000_000);
        assert_eq!(sonnet.price.cache_creation_per_token, Some(3_750_000));
        assert_eq!(PriceTable::shipped().len(), table.len());
    }

    #[test]
    fn litellms_own_file_loads_sample_spec_and_all() {
        let text = r#"{
            "sample_spec": {"input_cost_per_token": 0.0, "max_input_tokens": "max input tokens, if the provider specifies it"},
            "m": {"input_cost_per_token": 1.5e-7, "output_cost_per_token": 6e-7, "litellm_provider": "openai",
                  "input_cost_per_request": 0.01, "output_cost_per_request": 0.02,
                  "supports_vision": true, "search_context_cost_per_query": {"low": 0.025}}
        }"#;
        let table = PriceTable::parse(text).unwrap();
        assert_eq!(table.len(), 1);
        let price = &table.get("m").unwrap().price;
        assert_eq!(price.input_per_token, 150_000);
        assert_eq!(price.per_request, 30_000_000_000);
    }

    #[test]
    fn hostile_entries_are_refused_naming_the_entry() {
        let cases = [
            (r#"{"m": 3}"#, "entry `m`: must be an object, got a number"),
            (r#"{"m": {"input_cost_per_token": "0.1"}}"#, "entry `m`: `input_cost_per_token` must be a number of dollars, got a string"),
            (r#"{"m": {"output_cost_per_token": -1e-6}}"#, "entry `m`: `output_cost_per_token` must not be negative, got -0.000001"),
            (r#"{"m": {"input_cost_per_token": 1e300}}"#, "entry `m`: `input_cost_per_token` must be at most 1000000 dollars, got 1e300"),
            (r#"{"m": {"cache_read_input_token_cost": true}}"#, "entry `m`: `cache_read_input_token_cost` must be a number of dollars, got a boolean"),
            (r#"{"m": {"max_input_tokens": -5}}"#, "entry `m`: `max_input_tokens` must be a whole number of tokens, got -5"),
            (r#"{"m": {"litellm_provider": 7}}"#, "entry `m`: `litellm_provider` must be a string, got a number"),
            (r#"[1, 2]"#, "not a JSON object of model entries"),
            (r#"{"m": {"input_cost_per_token": NaN}}"#, "not a JSON object of model entries"),
        ];
        for (text, expected) in cases {
            let err = PriceTable::parse(text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text}: {err}");
        }
        assert!(pico_from_usd(f64::NAN).is_err());
        assert!(pico_from_usd(f64::INFINITY).is_err());
        assert_eq!(pico_from_usd(MAX_PRICE_USD), Ok(1_000_000_000_000_000_000));
    }

    #[test]
    fn lookup_tries_provider_slash_model_then_model_then_the_bare_name() {
        let prices = table(
            r#"{
            "gpt-x": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"},
            "azure/gpt-x": {"input_cost_per_token": 2e-6, "litellm_provider": "azure"},
            "claude-y": {"input_cost_per_token": 3e-6, "litellm_provider": "anthropic"},
            "groq/llama": {"input_cost_per_token": 4e-6, "litellm_provider": "groq"},
            "Mixed-Case": {"input_cost_per_token": 5e-6},
            "vertex_ai/gem": {"input_cost_per_token": 6e-6, "litellm_provider": "vertex_ai-language-models"}
        }"#,
        );
        let name = |provider: &str, model: &str| prices.lookup(provider, model).map(|(n, _)| n);
        assert_eq!(name("openai", "gpt-x").as_deref(), Some("gpt-x"));
        assert_eq!(name("azure", "gpt-x").as_deref(), Some("azure/gpt-x"));
        assert_eq!(name("azure", "azure/gpt-x").as_deref(), Some("azure/gpt-x"));
        assert_eq!(name("groq", "llama").as_deref(), Some("groq/llama"));
        assert_eq!(name("groq", "groq/llama").as_deref(), Some("groq/llama"));
        assert_eq!(name("vertex_ai", "gem").as_deref(), Some("vertex_ai/gem"));
        // Case does not matter; an entry without a provider matches any.
        assert_eq!(name("openai", "mixed-case").as_deref(), Some("mixed-case"));
        // An entry filed under another provider is not this deployment's price...
        assert_eq!(name("openai", "claude-y"), None);
        // ...except Azure AI, which falls back to Azure's and OpenAI's.
        assert_eq!(name("azure_ai", "gpt-x").as_deref(), Some("gpt-x"));
        assert_eq!(name("hosted_vllm", "llama"), None);
        let raw = |model: &str| prices.lookup_name(model).map(|(n, _)| n);
        assert_eq!(raw("claude-y").as_deref(), Some("claude-y"));
        assert_eq!(raw("openai/gpt-x").as_deref(), Some("gpt-x"));
        assert_eq!(raw("azure/gpt-x").as_deref(), Some("azure/gpt-x"));
        assert_eq!(raw("nope"), None);
    }

    #[test]
    fn versions_are_stripped_as_litellm_does() {
        assert_eq!(strip_version("openai", "gpt-4o-2024-11-20"), Some("gpt-4o"));
        assert_eq!(strip_version("openai", "gpt-4o"), None);
        assert_eq!(strip_version("openai", "x-2024-1-20"), None);
        assert_eq!(
            strip_version("openai", "ft:gpt-4o-mini-2024-07-18:my-org::abc123"),
            Some("ft:gpt-4o-mini-2024-07-18")
        );
        assert_eq!(strip_version("openai", "ft:gpt-4o:org"), None);
        assert_eq!(
            strip_version("gemini", "gemini-1.5-pro-002"),
            Some("gemini-1.5-pro")
        );
        assert_eq!(strip_version("vertex_ai", "gemini-2.0-flash"), None);
        let prices = table(
            r#"{"gpt-x": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"},
                "gemini/gem-1": {"input_cost_per_token": 2e-6, "litellm_provider": "gemini"}}"#,
        );
        let name = |provider: &str, model: &str| prices.lookup(provider, model).map(|(n, _)| n);
        assert_eq!(name("openai", "gpt-x-2030-01-02").as_deref(), Some("gpt-x"));
        assert_eq!(
            name("openai", "openai/gpt-x-2030-01-02").as_deref(),
            Some("gpt-x")
        );
        assert_eq!(name("gemini", "gem-1-002").as_deref(), Some("gemini/gem-1"));
    }

    #[test]
    fn a_users_file_wins_over_the_shipped_table() {
        let overlay =
            PriceTable::parse(r#"{"gpt-4o-mini": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"}, "my-model": {"input_cost_per_token": 2e-6}}"#)
                .unwrap();
        let prices = Prices::with_overlay(overlay);
        let mini = prices
            .resolve("openai", "gpt-4o-mini", &PriceOverrides::default())
            .unwrap();
        assert_eq!(mini.price.input_per_token, 1_000_000);
        assert_eq!(mini.price.output_per_token, 0);
        assert!(prices
            .resolve("openai", "my-model", &PriceOverrides::default())
            .is_some());
        // Entries the file does not name come from the shipped table.
        let sonnet = prices
            .resolve("anthropic", "claude-sonnet-4-5", &PriceOverrides::default())
            .unwrap();
        assert_eq!(sonnet.price.input_per_token, 3_000_000);
    }

    #[test]
    fn a_deployments_own_prices_replace_the_tables_one_by_one() {
        let prices = table(
            r#"{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 1e-7, "litellm_provider": "openai"}}"#,
        );
        let overrides = PriceOverrides {
            output_per_token: Some(5_000_000),
            ..PriceOverrides::default()
        };
        let rerank = table(
            r#"{"rr": {"input_cost_per_query": 0.002, "input_cost_per_token": 0.0, "mode": "rerank"}}"#,
        );
        // 0.002 dollars a search, in pico-dollars; a deployment's own replaces it.
        let found = rerank.resolve("cohere", "rr", &PriceOverrides::default());
        assert_eq!(found.unwrap().price.per_query, 2_000_000_000);
        let own = PriceOverrides {
            per_query: Some(1_000_000_000),
            ..PriceOverrides::default()
        };
        assert_eq!(
            rerank
                .resolve("cohere", "rr", &own)
                .unwrap()
                .price
                .per_query,
            1_000_000_000
        );
        let resolved = prices.resolve("openai", "m", &overrides).unwrap();
        assert_eq!(resolved.entry.as_deref(), Some("m"));
        assert_eq!(resolved.price.input_per_token, 1_000_000);
        assert_eq!(resolved.price.output_per_token, 5_000_000);
        assert_eq!(resolved.price.cache_read_per_token, Some(100_000));
        // Not in the table: the overrides alone; neither: no price.
        let alone = prices.resolve("openai", "unknown", &overrides).unwrap();
        assert_eq!(alone.entry, None);
        assert_eq!(alone.price.input_per_token, 0);
        assert_eq!(alone.price.output_per_token, 5_000_000);
        assert!(prices
            .resolve("openai", "unknown", &PriceOverrides::default())
            .is_none());
    }
}

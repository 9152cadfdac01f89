//! What a call cost: the operator's price table (`[openai.prices]`, US dollars per million
//! tokens) applied to the usage the API reported.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Usage;

/// Prices of one model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input: f64,
    /// Prompt tokens served from the prompt cache; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Completion tokens (reasoning tokens included).
    pub output: f64,
}

/// Model name → price. Dated snapshots (`gpt-4o-mini-2024-07-18`) use the entry whose name is
/// the longest prefix of theirs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.0.get(model) {
            return Some(*p);
        }
        self.0
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// The cost of `usage` on `model` in US dollars; 0 for a model not in the table.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> f64 {
        let Some(p) = self.price(model) else { return 0.0 };
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * p.input
            + cached as f64 * p.cached_input.unwrap_or(p.input)
            + usage.completion_tokens as f64 * p.output)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        let mut t = BTreeMap::new();
        t.insert("gpt-4o-mini".to_string(), Price { input: 0.15, cached_input: Some(0.075), output: 0.60 });
        t.insert("gpt-4o".to_string(), Price { input: 2.5, cached_input: None, output: 10.0 });
        PriceTable(t)
    }

    #[test]
    fn cost_counts_fresh_cached_and_output_tokens() {
        let u = Usage { prompt_tokens: 1_000_000, cached_tokens: 400_000, completion_tokens: 100_000 };
        let cost = table().cost_usd("gpt-4o-mini", &u);
        assert!((cost - (0.6 * 0.15 + 0.4 * 0.075 + 0.1 * 0.60)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn a_dated_snapshot_uses_the_longest_matching_name() {
        assert_eq!(table().price("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15));
        assert_eq!(table().price("gpt-4o-2024-08-06").map(|p| p.input), Some(2.5));
        assert_eq!(table().cost_usd("llama3", &Usage::default()), 0.0);
    }
}

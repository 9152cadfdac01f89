//! Logging set-up, and `UserText`: the one type that carries what people wrote.
//!
//! Logs hold ids, counts, lengths, durations and error codes only. `UserText`'s `Debug` prints
//! its length, so a stray `?field` in a log line cannot leak a message.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Text written by a person (or produced for one). `Debug` shows only the length; read the
/// text with [`UserText::expose`], which says at the call site that text is being used.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserText(String);

impl UserText {
    pub fn new(s: impl Into<String>) -> Self {
        UserText(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for UserText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserText(len={})", self.0.len())
    }
}

/// Installs the global subscriber: JSON lines (the default, for log pipelines) or a pretty
/// terminal format. Safe to call twice: the second call does nothing.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_debug_prints_only_its_length() {
        let t = UserText::new("my password is hunter2");
        assert_eq!(format!("{t:?}"), "UserText(len=22)");
    }
}

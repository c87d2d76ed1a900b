//! Values the host injects into requests and never shows a guest, a log or an API.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Named secret values. `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Arc<BTreeMap<String, String>>,
}

/// A secret that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is not 1-64 letters, digits, `-` and `_`.
    #[error("`{0}` is not a secret name (1-64 letters, digits, `-` and `_`)")]
    BadName(String),
    /// The value is empty, too long, or has characters a header cannot carry.
    #[error("secret `{0}` is empty, over 4096 bytes or not a valid header value")]
    BadValue(String),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Secrets from `(name, value)` pairs, each checked.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, SecretError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if !super::valid_secret_name(&name) {
                return Err(SecretError::BadName(name));
            }
            let value = value.trim_end_matches(['\r', '\n']).to_string();
            if value.is_empty()
                || value.len() > super::MAX_GRANT_VALUE
                || http::HeaderValue::from_str(&value).is_err()
            {
                return Err(SecretError::BadValue(name));
            }
            values.insert(name, value);
        }
        Ok(Self {
            values: Arc::new(values),
        })
    }

    /// A secret's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A header template with every `{{secret.NAME}}` filled in (unknown names stay empty).
    pub(crate) fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(i) = rest.find("{{secret.") {
            out.push_str(&rest[..i]);
            let after = &rest[i + "{{secret.".len()..];
            match after.split_once("}}") {
                Some((name, tail)) => {
                    out.push_str(self.get(name).unwrap_or(""));
                    rest = tail;
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_templates_and_hides_values_from_debug() {
        let s = Secrets::new([("openai".to_string(), "sk-123\n".to_string())]).unwrap();
        assert_eq!(s.fill("Bearer {{secret.openai}}"), "Bearer sk-123");
        assert_eq!(s.fill("a {{secret.none}} b"), "a  b");
        assert_eq!(format!("{s:?}"), "{\"openai\"}");
        assert!(Secrets::new([("bad name".into(), "x".into())]).is_err());
        assert!(Secrets::new([("k".into(), "line\nbreak".into())]).is_err());
    }
}

//! Tenants' secrets: values (API keys) a tenant's outbound grants inject into the
//! requests of its streams as `{{secret.NAME}}`, set through the admin API
//! (`PUT /api/secrets/{name}` with `{"value": "…"}`).
//!
//! A secret belongs to its tenant: only that tenant's grants can name it. Its value
//! is write-only: listed by name, never returned, logged or counted. It is kept in
//! the store's database (mode 0600, see [`super::store`]) and reaches a request
//! through the stream's [`crate::runtime::outbound::Secrets`], after the request
//! has left the guest, and only for the hosts whose rules name it. Changing a
//! secret reaches the new connections of the streams using it; one a grant uses
//! cannot be deleted (the answer names the streams).
//!
//! Bounds per tenant: `max_secrets` names, `max_secret_bytes` per value; a value is
//! one line of visible ASCII (what an HTTP header can carry).

use std::sync::Arc;

use super::registry::{HostingError, Registry};
use super::store::SecretRecord;
use super::tenants::Tenant;
use crate::runtime::outbound::valid_secret_name;

/// What is wrong with a secret a tenant sets, if anything. The message names the
/// secret and the bound, never the value.
pub fn check(tenant: &Tenant, name: &str, value: &str) -> Result<(), HostingError> {
    if !valid_secret_name(name) {
        return Err(HostingError::Invalid(format!(
            "secret name {name:?} must be 1 to 64 letters, digits, - or _"
        )));
    }
    let limit = tenant.config.max_secret_bytes;
    if value.is_empty() {
        return Err(HostingError::Invalid(format!("secret `{name}` is empty")));
    }
    if value.len() > limit {
        return Err(HostingError::Invalid(format!(
            "secret `{name}` is {} bytes, more than the tenant's max_secret_bytes of {limit}",
            value.len()
        )));
    }
    if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(HostingError::Invalid(format!(
            "secret `{name}` must be one line of visible ASCII characters and spaces (a header value)"
        )));
    }
    Ok(())
}

impl Registry {
    /// The tenant's secrets, by name (never their values).
    pub async fn secrets(&self, tenant: &Tenant) -> Result<Vec<SecretRecord>, HostingError> {
        let t = tenant.name().to_string();
        Ok(self.blocking(move |s| s.secret_names(&t)).await?)
    }

    /// Set one of the tenant's secrets (new, or a new value); whether it is new. The
    /// streams whose grants use it get the new value for their new connections.
    pub async fn set_secret(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        value: String,
    ) -> Result<bool, HostingError> {
        check(tenant, name, &value)?;
        let _admin = self.inner.admin.lock().await;
        let held = self.secrets(tenant).await?;
        let max = tenant.config.max_secrets;
        if !held.iter().any(|s| s.name == name) && held.len() >= max {
            return Err(HostingError::Quota(format!(
                "the tenant's quota of {max} secrets is reached (max_secrets)"
            )));
        }
        let (t, n) = (tenant.name().to_string(), name.to_string());
        let created = self.blocking(move |s| s.put_secret(&t, &n, &value)).await?;
        self.regrant(tenant, name).await?;
        tracing::info!(tenant = %tenant.name(), secret = %name, created, "secret set");
        Ok(created)
    }

    /// Delete one of the tenant's secrets; refused while a stream's grant uses it.
    pub async fn delete_secret(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
    ) -> Result<(), HostingError> {
        let _admin = self.inner.admin.lock().await;
        let users = self.secret_users(tenant, name);
        if !users.is_empty() {
            return Err(HostingError::Conflict(format!(
                "secret `{name}` is used by the outbound grant of stream `{}`: change or remove those grants first",
                users.join("`, `")
            )));
        }
        let (t, n) = (tenant.name().to_string(), name.to_string());
        self.blocking(move |s| s.delete_secret(&t, &n)).await?;
        tracing::info!(tenant = %tenant.name(), secret = %name, "secret deleted");
        Ok(())
    }

    /// The tenant's streams whose grants use the secret `name`, by name.
    pub fn secret_users(&self, tenant: &Tenant, name: &str) -> Vec<String> {
        self.list(Some(tenant.name()))
            .iter()
            .filter(|l| l.uses_secret(name))
            .map(|l| l.name().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{TenantConfig, Tenants};

    #[test]
    fn values_are_bounded_and_refusals_never_show_them() {
        let mut c = TenantConfig::new("a", "token");
        c.max_secret_bytes = 16;
        let tenants = Tenants::new(vec![c]).unwrap();
        let t = tenants.get("a").unwrap();
        assert!(check(t, "openai", "sk-0123456789").is_ok());
        for (name, value, says) in [
            ("bad name", "v", "secret name"),
            ("k", "", "empty"),
            (
                "k",
                "sk-0123456789abcdefXYZ",
                "more than the tenant's max_secret_bytes of 16",
            ),
            ("k", "sk-line\nbreak", "one line"),
            ("k", "sk-caf\u{e9}", "visible ASCII"),
        ] {
            let e = check(t, name, value).unwrap_err().to_string();
            assert!(e.contains(says), "{name}: {e}");
            if !value.is_empty() {
                assert!(!e.contains(value), "the value is in {e:?}");
            }
        }
    }
}

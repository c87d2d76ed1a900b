//! Tenants' outbound grants: what a tenant's stream may reach over `wasi:http`, set
//! through the admin API (`PUT /api/streams/{name}/outbound`) within the ceiling the
//! operator gives the tenant (`outbound_ceiling` in its `[[tenant]]` entry).
//!
//! A grant has the shape of a `[stream.outbound]` table ([`OutboundEntry`]): allowed
//! hosts, each with optional header rules using `{{secret.NAME}}`, and variables. It
//! is checked when set: its size bounds, every host within the tenant's ceiling, every
//! secret one the tenant holds ([`super::secrets`]); a refusal names the entry. It is
//! kept with the stream, not with a version, so uploading, activating or rolling back
//! never changes it, and it survives a restart. A change reaches new connections;
//! open ones keep the grant they started with. A stream's access holds only the
//! secrets its rules name, and its requests share the tenant's
//! `max_outbound_in_flight` with every other stream of the tenant.
//!
//! At start-up a stored grant is checked again (the operator may have narrowed the
//! ceiling): one that no longer fits refuses every request, and the stream's view
//! says why, until the tenant sets a grant again.

use std::sync::Arc;

use super::registry::{HostingError, LiveStream, Registry, read, write};
use super::store::StoreError;
use super::tenants::Tenant;
use crate::config::OutboundEntry;
use crate::runtime::HandlerComponent;
use crate::runtime::outbound::{Outbound, OutboundGrant, Secrets};

/// A stream's grant as the tenant set it, and the access built from it.
#[derive(Debug)]
pub struct StreamGrant {
    /// As set (and stored).
    pub(super) entry: OutboundEntry,
    /// What its connections' requests are checked against.
    pub(super) access: Arc<Outbound>,
    /// Why the stored grant could not be applied at start-up (its access then
    /// refuses every request).
    pub(super) problem: Option<String>,
}

/// Check a grant a tenant asks for: its entries, and every host within the tenant's
/// ceiling. The message names what does not fit.
pub fn check(tenant: &Tenant, entry: &OutboundEntry) -> Result<OutboundGrant, String> {
    let grant = entry.grant()?;
    let outside = grant.outside(&tenant.outbound_ceiling);
    if !outside.is_empty() {
        let ceiling = if tenant.config.outbound_ceiling.is_empty() {
            "which is empty: the operator grants this tenant no host".to_string()
        } else {
            format!("`{}`", tenant.config.outbound_ceiling.join("`, `"))
        };
        return Err(format!(
            "outbound grant `{}`: outside the tenant's outbound_ceiling ({ceiling})",
            outside.join("`, `")
        ));
    }
    Ok(grant)
}

/// The secrets `grant` names, from the tenant's `held` ones; the first it names that
/// the tenant does not hold is the error.
fn named_secrets(
    tenant: &Tenant,
    grant: &OutboundGrant,
    held: &[(String, String)],
) -> Result<Secrets, String> {
    let mut pairs = Vec::new();
    for name in grant.secrets() {
        match held.iter().find(|(n, _)| n == name) {
            Some(pair) => pairs.push(pair.clone()),
            None => {
                return Err(format!(
                    "outbound grant uses `{{{{secret.{name}}}}}`, which tenant `{}` does not hold (set it with PUT /api/secrets/{name})",
                    tenant.name()
                ));
            }
        }
    }
    Secrets::new(pairs).map_err(|e| e.to_string())
}

impl Registry {
    /// The access of stream `name` of `tenant` under `grant` (counted in metrics as
    /// `{tenant}/{name}`).
    fn access(
        &self,
        tenant: &Tenant,
        name: &str,
        grant: OutboundGrant,
        secrets: Secrets,
    ) -> Result<Arc<Outbound>, String> {
        Outbound::within_tenant(
            &format!("{}/{}", tenant.name(), name),
            grant,
            self.inner.outbound_policy.clone(),
            secrets,
            tenant.outbound_in_flight.clone(),
        )
        .map_err(|e| e.to_string())
    }

    /// A stored grant applied again (at start-up, or after a secret changed): checked
    /// like a new one; one that no longer fits refuses every request and says why.
    fn reapply(&self, live: &LiveStream, entry: OutboundEntry, held: &[(String, String)]) {
        let tenant = live.tenant().clone();
        let built = check(&tenant, &entry).and_then(|grant| {
            let secrets = named_secrets(&tenant, &grant, held)?;
            self.access(&tenant, live.name(), grant, secrets)
        });
        let grant = match built {
            Ok(access) => StreamGrant {
                entry,
                access,
                problem: None,
            },
            Err(why) => {
                tracing::error!(
                    tenant = %tenant.name(), stream = %live.name(),
                    "the stream's outbound grant no longer applies, every request is refused: {why}"
                );
                let access = self
                    .access(
                        &tenant,
                        live.name(),
                        OutboundGrant::default(),
                        Secrets::default(),
                    )
                    .expect("an empty grant names no secret");
                StreamGrant {
                    entry,
                    access,
                    problem: Some(why),
                }
            }
        };
        *write(&live.outbound) = Some(grant);
    }

    /// The tenant's secrets with their values, read off the async threads.
    async fn held_secrets(&self, tenant: &Tenant) -> Result<Vec<(String, String)>, StoreError> {
        let t = tenant.name().to_string();
        self.blocking(move |s| s.secret_values(&t)).await
    }

    /// Restore a stream's stored grant at start-up (before its version is loaded).
    pub(super) async fn restore_outbound(
        &self,
        live: &LiveStream,
        entry: OutboundEntry,
    ) -> Result<(), StoreError> {
        let held = self.held_secrets(live.tenant()).await?;
        self.reapply(live, entry, &held);
        Ok(())
    }

    /// After the tenant's secret `secret` changed (with the admin lock held): rebuild
    /// the access of each of its streams whose grant uses it, for new connections.
    pub(super) async fn regrant(&self, tenant: &Tenant, secret: &str) -> Result<(), StoreError> {
        let users: Vec<_> = self
            .list(Some(tenant.name()))
            .into_iter()
            .filter(|l| l.uses_secret(secret))
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        let held = self.held_secrets(tenant).await?;
        for live in users {
            if let Some(entry) = live.outbound() {
                self.reapply(&live, entry, &held);
                self.refresh_served(&live);
            }
        }
        Ok(())
    }

    /// Set (with `None`, remove) the outbound grant of a tenant's stream: checked
    /// against the tenant's ceiling and secrets, stored with the stream, and in force
    /// for its new connections. Removing it is refused while the active version
    /// imports `wasi:http` (an empty grant refuses every request instead).
    pub async fn set_outbound(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        entry: Option<OutboundEntry>,
    ) -> Result<(), HostingError> {
        let grant = entry
            .as_ref()
            .map(|e| check(tenant, e))
            .transpose()
            .map_err(HostingError::Invalid)?;
        let (_admin, live) = self.locked(tenant, name).await?;
        let applied = match (entry, grant) {
            (Some(entry), Some(grant)) => {
                let held = self.held_secrets(tenant).await?;
                let secrets =
                    named_secrets(tenant, &grant, &held).map_err(HostingError::Invalid)?;
                let access = self
                    .access(tenant, name, grant, secrets)
                    .map_err(HostingError::Invalid)?;
                Some(StreamGrant {
                    entry,
                    access,
                    problem: None,
                })
            }
            _ => {
                if let Some(component) = self.served_component(&live)
                    && let Some(import) = component.http_import()
                {
                    return Err(HostingError::Conflict(format!(
                        "the active version of stream `{name}` imports `{import}` and needs a grant: activate a version that does not, or set an empty grant ({{\"allowed_hosts\": []}}) to refuse every request"
                    )));
                }
                None
            }
        };
        let stored = applied.as_ref().map(|g| g.entry.clone());
        self.on_stream(tenant.name(), name, move |s, t, n| {
            s.set_outbound(t, n, stored.as_ref())
        })
        .await?;
        let hosts = applied.as_ref().map_or(0, |g| g.access.grant().hosts.len());
        *write(&live.outbound) = applied;
        self.refresh_served(&live);
        tracing::info!(tenant = %tenant.name(), stream = %name, hosts, "outbound grant changed");
        Ok(())
    }
}

impl LiveStream {
    /// The outbound grant as the tenant set it, if it set one.
    pub fn outbound(&self) -> Option<OutboundEntry> {
        read(&self.outbound).as_ref().map(|g| g.entry.clone())
    }

    /// Why the stored grant could not be applied at start-up, if it could not.
    pub fn outbound_error(&self) -> Option<String> {
        read(&self.outbound)
            .as_ref()
            .and_then(|g| g.problem.clone())
    }

    /// Whether the stream's grant names the secret `name`.
    pub fn uses_secret(&self, name: &str) -> bool {
        read(&self.outbound).as_ref().is_some_and(|g| {
            g.entry
                .grant()
                .is_ok_and(|grant| grant.secrets().any(|s| s == name))
        })
    }

    fn access(&self) -> Option<Arc<Outbound>> {
        read(&self.outbound).as_ref().map(|g| g.access.clone())
    }

    /// `base` (as loaded) with the stream's current access. Without a grant it stays
    /// as loaded: every request it makes is refused.
    pub(super) fn granted(&self, base: &HandlerComponent) -> HandlerComponent {
        match self.access() {
            Some(access) => base
                .with_outbound(Some(access))
                .unwrap_or_else(|_| base.clone()),
            None => base.clone(),
        }
    }

    /// Refuse a component that imports `wasi:http` for a stream without a grant.
    pub(super) fn require_grant(&self, component: &HandlerComponent) -> Result<(), HostingError> {
        match component.http_import() {
            Some(import) if self.access().is_none() => Err(HostingError::Invalid(format!(
                "the component imports `{import}`, but stream `{name}` has no outbound grant: set one with PUT /api/streams/{name}/outbound (hosts within the tenant's outbound_ceiling) first",
                name = self.name()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{TenantConfig, Tenants};

    fn tenant(ceiling: &[&str]) -> Arc<Tenant> {
        let mut c = TenantConfig::new("a", "token");
        c.outbound_ceiling = ceiling.iter().map(|s| s.to_string()).collect();
        Tenants::new(vec![c]).unwrap().get("a").unwrap().clone()
    }

    fn entry(json: serde_json::Value) -> OutboundEntry {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_grant_must_fit_the_ceiling_and_name_held_secrets() {
        let t = tenant(&["https://api.openai.com", "https://*.groq.com:443"]);
        let ok = entry(serde_json::json!({
            "allowed_hosts": ["https://api.groq.com",
                {"url": "https://api.openai.com", "headers": {"authorization": "Bearer {{secret.openai}}"}}],
        }));
        let grant = check(&t, &ok).unwrap();
        let held = vec![
            ("openai".to_string(), "sk-1".to_string()),
            ("other".to_string(), "sk-2".to_string()),
        ];
        let secrets = named_secrets(&t, &grant, &held).unwrap();
        assert_eq!(format!("{secrets:?}"), "{\"openai\"}", "only what it names");
        let e = named_secrets(&t, &grant, &held[1..]).unwrap_err();
        assert!(
            e.contains("{{secret.openai}}") && e.contains("does not hold"),
            "{e}"
        );

        let wide = entry(serde_json::json!({
            "allowed_hosts": ["https://api.groq.com", "https://evil.example.com", "https://*.openai.com"],
        }));
        let e = check(&t, &wide).unwrap_err();
        assert!(
            e.contains("https://evil.example.com") && e.contains("https://*.openai.com"),
            "{e}"
        );
        assert!(!e.contains("`https://api.groq.com`,"), "{e}");

        let none = tenant(&[]);
        let e = check(&none, &ok).unwrap_err();
        assert!(e.contains("grants this tenant no host"), "{e}");
        let empty = entry(serde_json::json!({"allowed_hosts": []}));
        assert!(
            check(&none, &empty).is_ok(),
            "an empty grant fits any ceiling"
        );

        let bad = entry(serde_json::json!({"allowed_hosts": ["api.openai.com"]}));
        assert!(check(&t, &bad).unwrap_err().contains("api.openai.com"));
    }
}

//! Durable state of hosted streams, behind [`ComponentStore`] so that a shared database
//! and object store can back many hosts later.
//!
//! [`SqliteStore`] keeps component bytes content-addressed by SHA-256 in files under a
//! data directory (`components/{sha256}.wasm`, written to `tmp/`, fsynced, renamed,
//! directory fsynced) and tenants, streams, versions and the active pointer in SQLite
//! (`wasmrtc.sqlite3`, WAL, `synchronous=FULL`), every change in one transaction. A
//! version row is written only once its file is durable, and the active pointer moves
//! in the same transaction as the activation history: a crash at any point leaves the
//! last committed version active and no half-written one visible.
//!
//! What a tenant stores is bounded by its [`Retention`]: an upload past a stream's
//! versions removes the oldest ones that are not active, and one that would take the
//! tenant's components past their bytes is refused. A component file goes as soon as
//! no version refers to it (a deleted stream's, a removed version's, a refused
//! upload's): the check and the removal hold the database's lock, as does an
//! upload's write of its file and its version row, so neither sees the other halfway.
//!
//! The database also holds what tenants keep secret: their secrets (`PUT
//! /api/secrets/{name}`) and their streams' shared TURN secrets, in plain text. The
//! database file and its `-wal` and `-shm` companions are therefore kept mode 0600
//! (owner only), set when the store is opened, also on a database created before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ice::StreamIce;
use super::tenants::{TenantConfig, hex};
use crate::config::OutboundEntry;

/// Limits a tenant sets on one of its streams (`None` = the tenant's quota, or
/// unlimited for `concurrency_limit` and `time_limit` within the tenant's quota).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamLimits {
    /// Connections at once (FastRTC's `concurrency_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<usize>,
    /// Longest connection, in seconds (FastRTC's `time_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<f64>,
    /// Instance memory cap in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU budget per call in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_call: Option<u64>,
}

/// A stream as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Owner.
    pub tenant: String,
    /// Name, unique per tenant.
    pub name: String,
    /// Its limits.
    pub limits: StreamLimits,
    /// Its own STUN and TURN servers, if the tenant set them.
    pub ice: Option<StreamIce>,
    /// Its outbound grant, if the tenant set one (kept with the stream, not a version).
    pub outbound: Option<OutboundEntry>,
    /// The version new connections get; `None` before the first upload.
    pub active_version: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
}

/// One uploaded version of a stream's component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRecord {
    /// 1, 2, … per stream.
    pub version: u64,
    /// Hex SHA-256 of the component, its key in the store.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Unix seconds.
    pub created_at: u64,
}

/// How much of a tenant's uploads the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Versions kept per stream (at least 2): an upload past them removes the oldest
    /// ones other than the active one and itself.
    pub versions_per_stream: usize,
    /// Bytes of the distinct components the tenant's versions refer to; an upload
    /// that would pass them is refused.
    pub tenant_bytes: u64,
}

/// Activations remembered per stream (what rollbacks can go back through).
pub const ACTIVATION_HISTORY: i64 = 100;

/// A version recorded by [`ComponentStore::add_version`].
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The new version.
    pub record: VersionRecord,
    /// Older versions removed to keep the stream within its retention, oldest first.
    pub removed: Vec<u64>,
}

/// One of a tenant's secrets as listed: never its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretRecord {
    /// The name grants use as `{{secret.NAME}}`.
    pub name: String,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such stream, version or component.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with what is stored (stream exists, nothing to roll back…).
    #[error("{0}")]
    Conflict(String),
    /// A component file does not hash to its name.
    #[error("component {0} is corrupt on disk")]
    Corrupt(String),
    /// File system.
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Past one of the tenant's storage quotas.
    #[error("{0}")]
    Quota(String),
    /// Database.
    #[error("store database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database's schema cannot be brought to this version's (e.g. it was written
    /// by a newer wasmrtc).
    #[error("store schema: {0}")]
    Schema(String),
}

/// Durable state of hosted streams. Methods block (call them off the async threads).
pub trait ComponentStore: Send + Sync + 'static {
    /// The bytes stored under `sha256`, checked against it.
    fn component(&self, sha256: &str) -> Result<Vec<u8>, StoreError>;
    /// Record a configured tenant (name and quotas; the token hash is not needed).
    fn upsert_tenant(&self, tenant: &TenantConfig) -> Result<(), StoreError>;
    /// Create a stream with no version; `Conflict` if it exists.
    fn create_stream(
        &self,
        tenant: &str,
        name: &str,
        limits: &StreamLimits,
    ) -> Result<StreamRecord, StoreError>;
    /// Delete a stream and its versions; `NotFound` if there is none.
    fn delete_stream(&self, tenant: &str, name: &str) -> Result<(), StoreError>;
    /// Every stream, or a tenant's, by tenant and name.
    fn streams(&self, tenant: Option<&str>) -> Result<Vec<StreamRecord>, StoreError>;
    /// One stream.
    fn stream(&self, tenant: &str, name: &str) -> Result<Option<StreamRecord>, StoreError>;
    /// A stream's versions, oldest first.
    fn versions(&self, tenant: &str, name: &str) -> Result<Vec<VersionRecord>, StoreError>;
    /// Store a component durably as a new version of a stream, the active one if
    /// `activate`, removing older versions past `retention`; refused (nothing
    /// changed) past the tenant's bytes.
    fn add_version(
        &self,
        tenant: &str,
        name: &str,
        bytes: &[u8],
        activate: bool,
        retention: Retention,
    ) -> Result<Added, StoreError>;
    /// Make `version` the active one (pushed on the stream's activation history).
    fn activate(&self, tenant: &str, name: &str, version: u64) -> Result<(), StoreError>;
    /// The version a rollback would activate: the one active before the last activation.
    fn rollback_target(&self, tenant: &str, name: &str) -> Result<Option<u64>, StoreError>;
    /// Undo the last activation; the version now active.
    fn rollback(&self, tenant: &str, name: &str) -> Result<u64, StoreError>;
    /// Replace a stream's limits.
    fn set_limits(&self, tenant: &str, name: &str, limits: &StreamLimits)
    -> Result<(), StoreError>;
    /// Replace a stream's own ICE servers (`None`: the tenant's and host's again).
    fn set_ice(&self, tenant: &str, name: &str, ice: Option<&StreamIce>) -> Result<(), StoreError>;
    /// Replace a stream's outbound grant (`None`: it has none).
    fn set_outbound(
        &self,
        tenant: &str,
        name: &str,
        grant: Option<&OutboundEntry>,
    ) -> Result<(), StoreError>;
    /// A tenant's secrets, by name, without their values.
    fn secret_names(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError>;
    /// A tenant's secrets with their values, by name (for the host's own use only).
    fn secret_values(&self, tenant: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Set a tenant's secret; whether it is new.
    fn put_secret(&self, tenant: &str, name: &str, value: &str) -> Result<bool, StoreError>;
    /// Delete a tenant's secret; `NotFound` if there is none.
    fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError>;
    /// Remove temporary files and component files no version refers to; how many.
    fn collect_garbage(&self) -> Result<usize, StoreError>;
}

/// SQLite for the records, files for the components.
pub struct SqliteStore {
    dir: PathBuf,
    db: Mutex<Connection>,
}

/// The schema, one step per version (SQLite's `user_version` counts the steps applied).
/// Steps are only ever appended. The first one is written `IF NOT EXISTS`, so a
/// database created before versioning began (at `user_version` 0) takes it unchanged.
const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE IF NOT EXISTS tenants (
            name TEXT PRIMARY KEY,
            quotas TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS streams (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            limits TEXT NOT NULL,
            active_version INTEGER,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, name)
        );
        CREATE TABLE IF NOT EXISTS versions (
            tenant TEXT NOT NULL,
            stream TEXT NOT NULL,
            version INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, stream, version),
            FOREIGN KEY (tenant, stream) REFERENCES streams (tenant, name) ON DELETE CASCADE
        );
        CREATE TABLE IF NOT EXISTS activations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant TEXT NOT NULL,
            stream TEXT NOT NULL,
            version INTEGER NOT NULL,
            FOREIGN KEY (tenant, stream) REFERENCES streams (tenant, name) ON DELETE CASCADE
        );
        CREATE INDEX IF NOT EXISTS activations_by_stream ON activations (tenant, stream, id);",
    ),
    // Tenants' own STUN and TURN servers per stream (`tenancy::ice`), as JSON.
    M::up("ALTER TABLE streams ADD COLUMN ice TEXT;"),
    // Tenants' outbound grants per stream (`tenancy::outbound`), as JSON in the shape
    // of a `[stream.outbound]` table, and tenants' secrets (`tenancy::secrets`).
    M::up(
        "ALTER TABLE streams ADD COLUMN outbound TEXT;
        CREATE TABLE IF NOT EXISTS secrets (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, name)
        );",
    ),
];

/// The database's file name in the data directory.
const DB_FILE: &str = "wasmrtc.sqlite3";

/// Make the database file (created empty if absent) and its `-wal` and `-shm`
/// companions readable and writable by the owner only. SQLite creates the
/// companions with the database file's mode.
#[cfg(unix)]
fn owner_only(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)?;
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    for file in files {
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_db: &Path) -> std::io::Result<()> {
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Makes a rename in `dir` durable (a no-op where directories cannot be opened).
    match std::fs::File::open(dir) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn not_found(tenant: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!("no stream `{name}` for tenant `{tenant}`"))
}

/// The columns [`stream_row`] reads, in its order.
const STREAM_COLUMNS: &str = "tenant, name, limits, active_version, created_at, ice, outbound";

fn stream_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StreamRecord> {
    let limits: String = row.get(2)?;
    let ice: Option<String> = row.get(5)?;
    let outbound: Option<String> = row.get(6)?;
    Ok(StreamRecord {
        tenant: row.get(0)?,
        name: row.get(1)?,
        limits: serde_json::from_str(&limits).unwrap_or_default(),
        ice: ice.and_then(|j| serde_json::from_str(&j).ok()),
        outbound: outbound.and_then(|j| serde_json::from_str(&j).ok()),
        active_version: row.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        created_at: row.get::<_, i64>(4)? as u64,
    })
}

impl SqliteStore {
    /// Open (creating) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("components"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let path = dir.join(DB_FILE);
        owner_only(&path)?;
        let mut db = Connection::open(&path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut db)
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        Ok(Self {
            dir,
            db: Mutex::new(db),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join("components").join(format!("{sha256}.wasm"))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in an immediate (write-locked) transaction, committed if it succeeds.
    fn write<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.write_sweeping(|tx, _| f(tx))
    }

    /// Run `f` in an immediate (write-locked) transaction, committed if it succeeds;
    /// then, still holding the database's lock, remove the files of the components in
    /// `released` (filled by `f`) that no version refers to any more: also when `f`
    /// fails and its transaction is rolled back.
    fn write_sweeping<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Vec<String>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut db = self.db();
        let mut released = Vec::new();
        let r = (|| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let r = f(&tx, &mut released)?;
            tx.commit()?;
            Ok(r)
        })();
        released.sort();
        released.dedup();
        // The outcome is the transaction's: a file left here is collected at the next start.
        for sha256 in released {
            let referenced = has_row(
                &db,
                "SELECT 1 FROM versions WHERE sha256 = ?1 LIMIT 1",
                params![sha256],
            );
            match referenced {
                Ok(true) => {}
                Ok(false) => match std::fs::remove_file(self.path_of(&sha256)) {
                    Ok(()) => tracing::debug!(%sha256, "store: removed an unreferenced component"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(%sha256, "store: cannot remove a component: {e}"),
                },
                Err(e) => tracing::warn!(%sha256, "store: cannot check a component's use: {e}"),
            }
        }
        r
    }

    /// Write component bytes durably; their hex SHA-256, the key to read them back.
    fn put_component(&self, bytes: &[u8]) -> Result<String, StoreError> {
        use std::io::Write;
        let sha256 = hex(&Sha256::digest(bytes));
        let path = self.path_of(&sha256);
        // Already stored (and intact): content addressing makes this a no-op.
        if std::fs::read(&path).is_ok_and(|b| hex(&Sha256::digest(&b)) == sha256) {
            return Ok(sha256);
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{sha256}.{}.{nanos}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            sync_dir(&self.dir.join("components"))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        Ok(sha256)
    }
}

/// Whether `sql` finds a row.
fn has_row(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool, StoreError> {
    Ok(tx.query_row(sql, params, |_| Ok(())).optional()?.is_some())
}

fn exists(tx: &rusqlite::Transaction<'_>, tenant: &str, name: &str) -> Result<bool, StoreError> {
    has_row(
        tx,
        "SELECT 1 FROM streams WHERE tenant = ?1 AND name = ?2",
        params![tenant, name],
    )
}

/// `NotFound` unless the stream exists.
fn require_stream(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
) -> Result<(), StoreError> {
    if exists(tx, tenant, name)? {
        Ok(())
    } else {
        Err(not_found(tenant, name))
    }
}

/// `NotFound` unless a statement on the stream's row changed it (`changed` rows).
fn changed_stream(changed: usize, tenant: &str, name: &str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(not_found(tenant, name))
    } else {
        Ok(())
    }
}

fn has_version(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
    version: u64,
) -> Result<bool, StoreError> {
    has_row(
        tx,
        "SELECT 1 FROM versions WHERE tenant = ?1 AND stream = ?2 AND version = ?3",
        params![tenant, name, version as i64],
    )
}

fn set_active(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
    version: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE streams SET active_version = ?3 WHERE tenant = ?1 AND name = ?2",
        params![tenant, name, version as i64],
    )?;
    Ok(())
}

fn limits_json(limits: &StreamLimits) -> String {
    serde_json::to_string(limits).unwrap_or_else(|_| "{}".into())
}

fn push_activation(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
    version: u64,
) -> Result<(), StoreError> {
    let current: Option<i64> = tx.query_row(
        "SELECT active_version FROM streams WHERE tenant = ?1 AND name = ?2",
        params![tenant, name],
        |r| r.get(0),
    )?;
    if current == Some(version as i64) {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO activations (tenant, stream, version) VALUES (?1, ?2, ?3)",
        params![tenant, name, version as i64],
    )?;
    // Rollbacks go back through the last ACTIVATION_HISTORY activations at most.
    tx.execute(
        "DELETE FROM activations WHERE tenant = ?1 AND stream = ?2 AND id NOT IN
           (SELECT id FROM activations WHERE tenant = ?1 AND stream = ?2
            ORDER BY id DESC LIMIT ?3)",
        params![tenant, name, ACTIVATION_HISTORY],
    )?;
    set_active(tx, tenant, name, version)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The components a stream's versions refer to.
fn shas_of(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
) -> Result<Vec<String>, StoreError> {
    let mut q = tx.prepare("SELECT sha256 FROM versions WHERE tenant = ?1 AND stream = ?2")?;
    let rows = q.query_map(params![tenant, name], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Remove a stream's oldest versions past `retention`, never the active one or
/// `newest`, with their activations; the removed, oldest first. Their components go
/// to `released`.
fn prune(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
    newest: u64,
    retention: Retention,
    released: &mut Vec<String>,
) -> Result<Vec<u64>, StoreError> {
    let active: Option<i64> = tx.query_row(
        "SELECT active_version FROM streams WHERE tenant = ?1 AND name = ?2",
        params![tenant, name],
        |r| r.get(0),
    )?;
    let protected = |v: u64| v == newest || active == Some(v as i64);
    let mut q = tx.prepare(
        "SELECT version, sha256 FROM versions WHERE tenant = ?1 AND stream = ?2
         ORDER BY version DESC",
    )?;
    let versions: Vec<(u64, String)> = q
        .query_map(params![tenant, name], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut kept = versions.iter().filter(|(v, _)| protected(*v)).count();
    let mut removed = Vec::new();
    for (version, sha256) in versions {
        if protected(version) {
            continue;
        }
        if kept < retention.versions_per_stream {
            kept += 1;
            continue;
        }
        for table in ["versions", "activations"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1 AND stream = ?2 AND version = ?3"),
                params![tenant, name, version as i64],
            )?;
        }
        released.push(sha256);
        removed.push(version);
    }
    removed.reverse();
    Ok(removed)
}

/// The last two activations of a stream, newest first.
fn last_activations(
    db: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Vec<(i64, u64)>, StoreError> {
    let mut q = db.prepare(
        "SELECT id, version FROM activations WHERE tenant = ?1 AND stream = ?2 ORDER BY id DESC LIMIT 2",
    )?;
    let rows = q.query_map(params![tenant, name], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl ComponentStore for SqliteStore {
    fn component(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        if !is_sha256(sha256) {
            return Err(StoreError::NotFound(format!("no component {sha256}")));
        }
        let bytes = match std::fs::read(self.path_of(sha256)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(format!("no component {sha256}")));
            }
            Err(e) => return Err(e.into()),
        };
        if hex(&Sha256::digest(&bytes)) != sha256 {
            return Err(StoreError::Corrupt(sha256.to_string()));
        }
        Ok(bytes)
    }

    fn upsert_tenant(&self, tenant: &TenantConfig) -> Result<(), StoreError> {
        let mut quotas = serde_json::to_value(tenant).unwrap_or_default();
        if let Some(q) = quotas.as_object_mut() {
            q.remove("name");
            q.remove("token_sha256");
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tenants (name, quotas) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET quotas = excluded.quotas",
                params![tenant.name, quotas.to_string()],
            )?;
            Ok(())
        })
    }

    fn create_stream(
        &self,
        tenant: &str,
        name: &str,
        limits: &StreamLimits,
    ) -> Result<StreamRecord, StoreError> {
        let record = StreamRecord {
            tenant: tenant.to_string(),
            name: name.to_string(),
            limits: limits.clone(),
            ice: None,
            outbound: None,
            active_version: None,
            created_at: now(),
        };
        self.write(|tx| {
            if exists(tx, tenant, name)? {
                return Err(StoreError::Conflict(format!(
                    "stream `{name}` already exists"
                )));
            }
            tx.execute(
                "INSERT INTO streams (tenant, name, limits, active_version, created_at)
                 VALUES (?1, ?2, ?3, NULL, ?4)",
                params![tenant, name, limits_json(limits), record.created_at as i64],
            )?;
            Ok(record)
        })
    }

    fn delete_stream(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.write_sweeping(|tx, released| {
            released.extend(shas_of(tx, tenant, name)?);
            // Explicit deletes, so that a database opened without foreign keys is clean too.
            tx.execute(
                "DELETE FROM activations WHERE tenant = ?1 AND stream = ?2",
                params![tenant, name],
            )?;
            tx.execute(
                "DELETE FROM versions WHERE tenant = ?1 AND stream = ?2",
                params![tenant, name],
            )?;
            let n = tx.execute(
                "DELETE FROM streams WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
            )?;
            changed_stream(n, tenant, name)
        })
    }

    fn streams(&self, tenant: Option<&str>) -> Result<Vec<StreamRecord>, StoreError> {
        let db = self.db();
        let mut q = db.prepare(&format!(
            "SELECT {STREAM_COLUMNS} FROM streams
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, name"
        ))?;
        let rows = q.query_map(params![tenant], stream_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn stream(&self, tenant: &str, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {STREAM_COLUMNS} FROM streams WHERE tenant = ?1 AND name = ?2"),
                params![tenant, name],
                stream_row,
            )
            .optional()?)
    }

    fn versions(&self, tenant: &str, name: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let db = self.db();
        let mut q = db.prepare(
            "SELECT version, sha256, size, created_at FROM versions
             WHERE tenant = ?1 AND stream = ?2 ORDER BY version",
        )?;
        let rows = q.query_map(params![tenant, name], |r| {
            Ok(VersionRecord {
                version: r.get::<_, i64>(0)? as u64,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                created_at: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_version(
        &self,
        tenant: &str,
        name: &str,
        bytes: &[u8],
        activate: bool,
        retention: Retention,
    ) -> Result<Added, StoreError> {
        let size = bytes.len() as u64;
        self.write_sweeping(|tx, released| {
            require_stream(tx, tenant, name)?;
            // Under the database's lock: no sweep removes the file before its row is in.
            let sha256 = self.put_component(bytes)?;
            // Swept if this fails; kept if its row commits.
            released.push(sha256.clone());
            let last: Option<i64> = tx.query_row(
                "SELECT MAX(version) FROM versions WHERE tenant = ?1 AND stream = ?2",
                params![tenant, name],
                |r| r.get(0),
            )?;
            let record = VersionRecord {
                version: last.unwrap_or(0) as u64 + 1,
                sha256: sha256.clone(),
                size,
                created_at: now(),
            };
            tx.execute(
                "INSERT INTO versions (tenant, stream, version, sha256, size, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    tenant,
                    name,
                    record.version as i64,
                    sha256,
                    size as i64,
                    record.created_at as i64
                ],
            )?;
            if activate {
                push_activation(tx, tenant, name, record.version)?;
            }
            let removed = prune(tx, tenant, name, record.version, retention, released)?;
            let stored: i64 = tx.query_row(
                "SELECT COALESCE(SUM(size), 0) FROM
                   (SELECT MAX(size) AS size FROM versions WHERE tenant = ?1 GROUP BY sha256)",
                params![tenant],
                |r| r.get(0),
            )?;
            if stored as u64 > retention.tenant_bytes {
                return Err(StoreError::Quota(format!(
                    "the tenant's components would take {:.1} MiB, over its {:.1} MiB \
                     (max_stored_mb); delete streams or upload a smaller component",
                    mib(stored as u64),
                    mib(retention.tenant_bytes)
                )));
            }
            Ok(Added { record, removed })
        })
    }

    fn activate(&self, tenant: &str, name: &str, version: u64) -> Result<(), StoreError> {
        self.write(|tx| {
            require_stream(tx, tenant, name)?;
            if !has_version(tx, tenant, name, version)? {
                return Err(StoreError::NotFound(format!(
                    "stream `{name}` has no version {version}"
                )));
            }
            push_activation(tx, tenant, name, version)
        })
    }

    fn rollback_target(&self, tenant: &str, name: &str) -> Result<Option<u64>, StoreError> {
        let last = last_activations(&self.db(), tenant, name)?;
        Ok(last.get(1).map(|(_, v)| *v))
    }

    fn rollback(&self, tenant: &str, name: &str) -> Result<u64, StoreError> {
        self.write(|tx| {
            require_stream(tx, tenant, name)?;
            let last = last_activations(tx, tenant, name)?;
            let [(top, _), (_, previous)] = last[..] else {
                return Err(StoreError::Conflict(format!(
                    "stream `{name}` has no earlier version to roll back to"
                )));
            };
            tx.execute("DELETE FROM activations WHERE id = ?1", params![top])?;
            set_active(tx, tenant, name, previous)?;
            Ok(previous)
        })
    }

    fn set_limits(
        &self,
        tenant: &str,
        name: &str,
        limits: &StreamLimits,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE streams SET limits = ?3 WHERE tenant = ?1 AND name = ?2",
                params![tenant, name, limits_json(limits)],
            )?;
            changed_stream(n, tenant, name)
        })
    }

    fn set_ice(&self, tenant: &str, name: &str, ice: Option<&StreamIce>) -> Result<(), StoreError> {
        let json = ice.map(|i| serde_json::to_string(i).unwrap_or_else(|_| "{}".into()));
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE streams SET ice = ?3 WHERE tenant = ?1 AND name = ?2",
                params![tenant, name, json],
            )?;
            changed_stream(n, tenant, name)
        })
    }

    fn set_outbound(
        &self,
        tenant: &str,
        name: &str,
        grant: Option<&OutboundEntry>,
    ) -> Result<(), StoreError> {
        let json = grant.map(|g| serde_json::to_string(g).unwrap_or_else(|_| "{}".into()));
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE streams SET outbound = ?3 WHERE tenant = ?1 AND name = ?2",
                params![tenant, name, json],
            )?;
            changed_stream(n, tenant, name)
        })
    }

    fn secret_names(&self, tenant: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let db = self.db();
        let mut q =
            db.prepare("SELECT name, updated_at FROM secrets WHERE tenant = ?1 ORDER BY name")?;
        let rows = q.query_map(params![tenant], |r| {
            Ok(SecretRecord {
                name: r.get(0)?,
                updated_at: r.get::<_, i64>(1)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn secret_values(&self, tenant: &str) -> Result<Vec<(String, String)>, StoreError> {
        let db = self.db();
        let mut q =
            db.prepare("SELECT name, value FROM secrets WHERE tenant = ?1 ORDER BY name")?;
        let rows = q.query_map(params![tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_secret(&self, tenant: &str, name: &str, value: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let existed = has_row(
                tx,
                "SELECT 1 FROM secrets WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
            )?;
            tx.execute(
                "INSERT INTO secrets (tenant, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE
                 SET value = excluded.value, updated_at = excluded.updated_at",
                params![tenant, name, value, now() as i64],
            )?;
            Ok(!existed)
        })
    }

    fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no secret `{name}`")));
            }
            Ok(())
        })
    }

    fn collect_garbage(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.dir.join("tmp"))? {
            if std::fs::remove_file(entry?.path()).is_ok() {
                removed += 1;
            }
        }
        let used: std::collections::HashSet<String> = {
            let db = self.db();
            let mut q = db.prepare("SELECT DISTINCT sha256 FROM versions")?;
            q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for entry in std::fs::read_dir(self.dir.join("components"))? {
            let path = entry?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "wasm")
                && is_sha256(stem)
                && !used.contains(stem)
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wasmrtc-store-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_database_from_before_schema_versions_is_migrated_keeping_its_streams() {
        let dir = temp_dir("migrate");
        {
            // The schema as the first release wrote it: no `ice`, `user_version` 0.
            let db = Connection::open(dir.join("wasmrtc.sqlite3")).unwrap();
            db.execute_batch(
                "CREATE TABLE streams (tenant TEXT NOT NULL, name TEXT NOT NULL,
                   limits TEXT NOT NULL, active_version INTEGER, created_at INTEGER NOT NULL,
                   PRIMARY KEY (tenant, name));
                 INSERT INTO streams VALUES ('a', 'old', '{}', NULL, 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&dir).unwrap();
        let old = store.stream("a", "old").unwrap().expect("the old stream");
        assert_eq!(old.ice, None);
        let ice = StreamIce {
            turn_urls: vec!["turn:turn.example.com:3478".into()],
            turn_secret: Some("secret".into()),
            ..StreamIce::default()
        };
        store.set_ice("a", "old", Some(&ice)).unwrap();
        drop(store);
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(store.stream("a", "old").unwrap().unwrap().ice, Some(ice));
        store.set_ice("a", "old", None).unwrap();
        assert_eq!(store.stream("a", "old").unwrap().unwrap().ice, None);
        assert!(matches!(
            store.set_ice("a", "missing", None),
            Err(StoreError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn versions_activations_and_rollback() {
        let dir = temp_dir("versions");
        let store = SqliteStore::open(&dir).unwrap();
        store
            .create_stream("a", "gain", &StreamLimits::default())
            .unwrap();
        assert!(matches!(
            store.create_stream("a", "gain", &StreamLimits::default()),
            Err(StoreError::Conflict(_))
        ));
        let one = store
            .add_version("a", "gain", b"one", true, WIDE)
            .unwrap()
            .record;
        assert_eq!(one.version, 1);
        assert_eq!(store.component(&one.sha256).unwrap(), b"one");
        assert_eq!(store.rollback_target("a", "gain").unwrap(), None);
        assert!(matches!(
            store.rollback("a", "gain"),
            Err(StoreError::Conflict(_))
        ));
        let two = store
            .add_version("a", "gain", b"two", true, WIDE)
            .unwrap()
            .record;
        assert_eq!(
            store.stream("a", "gain").unwrap().unwrap().active_version,
            Some(2)
        );
        assert_eq!(store.rollback_target("a", "gain").unwrap(), Some(1));
        assert_eq!(store.rollback("a", "gain").unwrap(), 1);
        store.activate("a", "gain", 2).unwrap();
        assert!(matches!(
            store.activate("a", "gain", 9),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.add_version("b", "gain", b"one", true, WIDE),
            Err(StoreError::NotFound(_))
        ));
        drop(store);

        // Reopened: the same state; unreferenced files are collected.
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(
            store.stream("a", "gain").unwrap().unwrap().active_version,
            Some(2)
        );
        assert_eq!(store.versions("a", "gain").unwrap().len(), 2);
        store.put_component(b"orphan").unwrap();
        std::fs::write(dir.join("tmp").join("half-written"), b"x").unwrap();
        assert_eq!(store.collect_garbage().unwrap(), 2);
        // A deleted stream's files go with it, at once.
        store.delete_stream("a", "gain").unwrap();
        assert!(store.streams(None).unwrap().is_empty());
        for sha in [&one.sha256, &two.sha256] {
            assert!(!store.path_of(sha).exists(), "{sha} stayed");
        }
        assert_eq!(store.collect_garbage().unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Retention wide enough never to matter.
    const WIDE: Retention = Retention {
        versions_per_stream: 1000,
        tenant_bytes: u64::MAX,
    };

    #[test]
    fn retention_removes_old_versions_and_their_files_and_caps_a_tenants_bytes() {
        let dir = temp_dir("retention");
        let store = SqliteStore::open(&dir).unwrap();
        for name in ["gain", "echo"] {
            store
                .create_stream("a", name, &StreamLimits::default())
                .unwrap();
        }
        let keep3 = Retention {
            versions_per_stream: 3,
            tenant_bytes: 100,
        };
        // v1 active, v2..v6 uploaded without activating: the oldest inactive go.
        let v1 = store
            .add_version("a", "gain", &[1; 10], true, keep3)
            .unwrap();
        assert!(v1.removed.is_empty());
        let mut removed = Vec::new();
        let mut records = vec![v1.record.clone()];
        for v in 2..=6u8 {
            let added = store
                .add_version("a", "gain", &[v; 10], false, keep3)
                .unwrap();
            removed.extend(added.removed);
            records.push(added.record);
        }
        assert_eq!(removed, [2, 3, 4]);
        let kept: Vec<u64> = store
            .versions("a", "gain")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(kept, [1, 5, 6], "the active one and the newest");
        for r in &records {
            let removed = [2, 3, 4].contains(&r.version);
            assert_eq!(
                !store.path_of(&r.sha256).exists(),
                removed,
                "v{}",
                r.version
            );
        }
        // Removed versions leave the activation history: rollback never reaches one.
        store.activate("a", "gain", 5).unwrap();
        store.activate("a", "gain", 6).unwrap();
        store
            .add_version("a", "gain", &[7; 10], true, keep3)
            .unwrap();
        assert_eq!(store.rollback("a", "gain").unwrap(), 6);
        assert_eq!(store.rollback("a", "gain").unwrap(), 5);

        // Bytes: 3 distinct components of 10 in "gain" (1 was removed), so 70 more
        // fit in "echo" and 71 do not. The same bytes again cost nothing.
        let over = store.add_version("a", "echo", &[9; 71], true, keep3);
        assert!(matches!(over, Err(StoreError::Quota(_))), "{over:?}");
        assert!(
            store.versions("a", "echo").unwrap().is_empty(),
            "nothing recorded"
        );
        let sha = hex(&Sha256::digest([9u8; 71]));
        assert!(
            !store.path_of(&sha).exists(),
            "a refused upload's file stays"
        );
        store
            .add_version("a", "echo", &[9; 70], true, keep3)
            .unwrap();
        store
            .add_version("a", "echo", &[9; 70], true, keep3)
            .unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn grants_and_secrets_are_kept_in_an_owner_only_database() {
        let dir = temp_dir("secrets");
        {
            // A database written before: readable by everyone.
            let db = Connection::open(dir.join(DB_FILE)).unwrap();
            db.execute_batch("CREATE TABLE IF NOT EXISTS t (x);")
                .unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o644))
                    .unwrap();
            }
        }
        let store = SqliteStore::open(&dir).unwrap();
        store
            .create_stream("a", "agent", &StreamLimits::default())
            .unwrap();
        let grant: OutboundEntry = serde_json::from_value(serde_json::json!({
            "allowed_hosts": ["https://api.groq.com",
                {"url": "https://api.openai.com", "headers": {"authorization": "Bearer {{secret.openai}}"}}],
            "variables": {"MODEL": "m"},
        }))
        .unwrap();
        store.set_outbound("a", "agent", Some(&grant)).unwrap();
        assert!(store.put_secret("a", "openai", "sk-1").unwrap());
        assert!(!store.put_secret("a", "openai", "sk-2").unwrap());
        assert!(store.put_secret("b", "openai", "sk-b").unwrap());
        assert_eq!(
            store.secret_values("a").unwrap(),
            vec![("openai".to_string(), "sk-2".to_string())]
        );
        assert_eq!(store.secret_names("a").unwrap()[0].name, "openai");
        assert!(matches!(
            store.set_outbound("a", "missing", None),
            Err(StoreError::NotFound(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in [DB_FILE, "wasmrtc.sqlite3-wal", "wasmrtc.sqlite3-shm"] {
                let mode = std::fs::metadata(dir.join(file))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{file} has mode {mode:o}");
            }
        }
        drop(store);
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(
            store.stream("a", "agent").unwrap().unwrap().outbound,
            Some(grant)
        );
        store.delete_secret("a", "openai").unwrap();
        assert!(matches!(
            store.delete_secret("a", "openai"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.secret_values("b").unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_database_is_owner_only() {
        let dir = temp_dir("mode");
        let _store = SqliteStore::open(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DB_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_component_is_detected() {
        let dir = temp_dir("corrupt");
        let store = SqliteStore::open(&dir).unwrap();
        let sha = store.put_component(b"bytes").unwrap();
        std::fs::write(store.path_of(&sha), b"other").unwrap();
        assert!(matches!(store.component(&sha), Err(StoreError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(dir);
    }
}

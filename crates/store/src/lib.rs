//! Cove's single-table DynamoDB data layer.
//!
//! Every entity lives in one table (`pk`/`sk` strings, sparse GSIs, a `version` attribute for
//! optimistic concurrency). The same code runs natively (the AWS SDK's default HTTP client) and
//! inside Spin components (a smithy `HttpClient` over `spin_sdk::http::send`, see `spin_http`).
//!
//! # Keys and access patterns
//!
//! | entity | `pk` | `sk` | GSI1 (`gsi1pk` / `gsi1sk`) | access patterns |
//! |---|---|---|---|---|
//! | organization | `ORG#<orgId>` | `#META` | – | get by id |
//! | user | `USER#<userId>` | `#META` | – | get by id (JWT `sub`) |
//! | membership | `ORG#<orgId>` | `MEMBER#<userId>` | `USER#<userId>` / `ORG#<orgId>` | members of an org (query pk); orgs of a user (GSI1) |
//! | role | `ORG#<orgId>` | `ROLE#<roleId>` | – | get by (org, id); list per org (query pk, `begins_with`); global roles are constants (`roles::GLOBAL_ROLES`) |
//! | invitation | `ORG#<orgId>` | `INVITE#<id>` | `INVITEE#<lowercased email>` / `INVITE#<id>` | list per org (query pk); the invitee's invitations (GSI1); accept = one transaction (invitation `pending`→`accepted` + membership put) |
//! | API key | `ORG#<orgId>` | `APIKEY#<userId>#<name>` | – | get/delete by (org, user, name); list per org+user (query pk, `begins_with`) or per org |
//! | API key hash | `APIKEYHASH#<sha256 hex>` | `#META` | – | authentication: one strongly consistent `GetItem` per request |
//! | bootstrap marker | `SYSTEM` | `BOOTSTRAP` | – | first-start admin |
//! | role name lock | `ORG#<orgId>` | `ROLENAME#<lowercased name>` | – (attr `roleId`) | unique role names per org: put/moved/deleted in the role's transactions |
//! | linked account | `USER#<userId>` | `LINK#<provider>#<providerUserId>` | – | the user's links (query pk, `begins_with`) |
//! | linked account claim | `ACCOUNTLINK#<provider>#<providerUserId>` | `#META` | – (attr `userId`) | one user per provider identity, written/deleted with the link |
//! | sandbox | `SANDBOX#<id>` | `#META` | `ORG#<orgId>#SANDBOXES` / `<createdAt>#<id>`; GSI2 `RUNNER#<runnerId>` / `SANDBOX#<id>` (index keys absent once destroyed; GSI2 absent without a runner); once destroyed with backups still on a runner (`backupRunnerId`): GSI1 `SANDBOXBACKUPS#REMOVE` / `<id>` | get by id; list per org newest first (GSI1, descending); sandboxes of a runner (GSI2); destroyed sandboxes whose backups the lifecycle sweep still has to remove (GSI1); GSI3 `SANDBOXDUE#<shard>` / `<dueAt>#<id>` while the lifecycle sweep has something to do with it at `dueAt` (see `sandboxes::due`): the sweep reads only what is due, no scan. The row carries the state change in flight (`transition`: action, generation, `startedAt`, `pushedAt`, attempts), which the sweep pushes again or expires |
//! | sandbox name lock | `ORG#<orgId>` | `SANDBOXNAME#<name>` | – (attr `sandboxId`) | get by name; unique names per org (conditional put in the sandbox's transactions); held by every sandbox that is not destroyed, so the org's partition shows its live sandboxes (organization deletion checks them) |
//! | org usage counters | `ORG#<orgId>` | `USAGE` | – (attrs `cpu`, `memory`, `disk`) | exact sums over the org's sandboxes of what their states hold (CONTRACT §8), moved with `ADD` in the sandbox's transactions; growth checked against the quota for user actions only (`sandboxes::usage`) |
//! | snapshot | `SNAPSHOT#<id>` | `#META` | `ORG#<orgId>#SNAPSHOTS` / `<createdAt>#<id>` (general snapshots: `GENERAL#SNAPSHOTS`); GSI2 `SNAPSHOTS#<state>` / `<transitionAt>#<id>` only in `pending`, `pulling`, `building`, `removing`, `active` | get by id; list per org and the general ones (GSI1); the lifecycle sweep's work per state, oldest transition first, no scan (GSI2). Every state change is conditional on `version` |
//! | snapshot name lock | `ORG#<orgId>` | `SNAPSHOTNAME#<name>` | – (attr `snapshotId`) | get by name; unique names per org (409), written and deleted with the row, with the org's `live_check`; organization deletion purges the rows the locks name |
//! | volume | `VOLUME#<id>` | `#META` | `ORG#<orgId>#VOLUMES` / `<createdAt>#<id>`; GSI2 `VOLUMES#<state>` / `<transitionAt>#<id>` only in `pending_create`, `creating`, `pending_delete`, `deleting` | get by id; list per org (GSI1, deleted ones included); the sweep's provisioning and deletion work per state (GSI2). Every state change is conditional on `version` |
//! | volume name lock | `ORG#<orgId>` | `VOLUMENAME#<name>` | – (attr `volumeId`) | get by name; unique names per org (400); released when the volume reaches `deleted`; organization deletion sends the volumes they name to `pending_delete` |
//! | runner | `RUNNER#<id>` | `#META` | `RUNNERS` / `<id>` | get by id; list all (GSI1); `assignedSandboxes` changed only by `ADD` in sandbox transactions, runner writes `SET` their own attributes |
//! | docker registry | `ORG#<orgId>` | `REGISTRY#<id>` | – | get by (org, id); list per org (query pk, `begins_with`); `matching_host` for the snapshot sweep; password sealed (AES-256-GCM, key from `scoped_credentials_secret`), never answered |
//! | signed preview token | `PREVIEWTOKEN#<token>` | `#META` | – (attrs `sandboxId`, `port`, `expiresAt`, `ttl`) | signed preview URLs (CONTRACT §9): get by token, expired rows count as absent |
//! | sandbox event | `ORG#<orgId>#EVENTS` | `<unix ms, 13 digits>#<sandboxId>#<version, 10 digits>` | – (attrs `kinds`, `sandboxId`, `oldState`, `newState`, `oldDesiredState`, `newDesiredState`, `ttl`) | the outbox of the real-time events (CONTRACT §11): put in the same transaction as the sandbox write that creates it or changes its `state`/`desiredState`; read after a cursor, oldest first (consistent query of the partition, `sk >`); TTL (`ttl`, 1 h) removes them, expired ones count as absent; organization deletion purges them with its partition (see `sandboxes::events`) |
//! | runner token | `RUNNERKEY#<sha256 hex of token>` | `#META` | – | runner authentication (attr `runnerId`), written/deleted with the runner in one transaction |
//!
//! Everything an organization owns sits in its `ORG#<orgId>` partition (quota is a nested `quota`
//! map on `#META`), so deleting an organization (`OrgRepo::delete`) is: mark `#META` `deleting`
//! (every write adding an item to the partition, sandbox name locks included, carries a
//! `ConditionCheck` that `#META` exists and is not marked, see `orgs::live_check`), then a strongly
//! consistent query for sandbox name locks (found: undo the mark, refuse), then a query on the
//! partition and batch deletes of every row plus the `APIKEYHASH#<hash>` pointers the API-key rows
//! name and the sandbox events (`ORG#<orgId>#EVENTS`), then delete `#META`. Membership and invitation GSI1 entries go with their rows; the
//! `SANDBOX#<id>` rows left are destroyed ones (no index keys, nothing counted).
//!
//! # Modules
//!
//! One module per entity; `tx` builds every `TransactWriteItems` (a client request token from
//! the secure random source per attempt, retries of lost races, refusals read back into typed
//! [`Conflict`]s), `query` reads many items (`query_all`, pages, scans), `random` makes ids and
//! tokens. Errors are one [`StoreError`] with the operation and a typed reason; the HTTP answer
//! for it is `cove_edge::store_error`'s business.
//!
//! GSI1 and GSI2 are sparse (only items that carry the attributes are indexed) and project all
//! attributes; GSI2 is reserved for later entities (sandboxes by runner, lifecycle due times); GSI3 carries the
//! sandboxes' lifecycle due times only.

// No function over 60 lines (clippy.toml `too-many-lines-threshold`), tests aside.
#![warn(clippy::too_many_lines)]

mod client;
mod error;
mod item;
pub mod keys;
mod page;
mod query;
pub mod random;
#[cfg(target_arch = "wasm32")]
mod spin_http;
mod table;
mod tx;

pub mod api_keys;
pub mod bootstrap;
pub mod invitations;
pub mod memberships;
pub mod orgs;
pub mod preview_tokens;
pub mod registries;
pub mod roles;
pub mod runners;
pub mod sandboxes;
pub mod scheduling;
pub mod snapshots;
pub mod users;
pub mod volumes;

pub use client::StoreConfig;
#[cfg(not(target_arch = "wasm32"))]
pub use client::https_client;
pub use error::{Conflict, DisplayChain, Entity, Resource, StoreError};
pub use page::{Cursor, Page};
pub use table::{AttributeDef, IndexDef, TABLE_DEFINITION, TTL_ATTRIBUTE, TableDefinition};

/// A handle on the table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long one minute of a sandbox's lifecycle intervals lasts (60 s; tests shorten it).
    lifecycle_minute: time::Duration,
}

impl Store {
    /// Builds a client for the configured endpoint. No I/O happens here.
    pub fn new(config: &StoreConfig) -> Self {
        Self {
            client: client::build(config),
            table: config.table.clone(),
            lifecycle_minute: time::Duration::MINUTE,
        }
    }

    /// This store with one minute of the sandboxes' lifecycle intervals (`autoStopInterval`,
    /// `autoArchiveInterval`, `autoDeleteInterval`) lasting `minute` instead of 60 s: a
    /// test-only time scale (the `lifecycle_minute_secs` variable), so that the due times the
    /// sandboxes' index carries and the lifecycle sweep reads agree. Non-positive: unchanged.
    #[must_use]
    pub fn with_lifecycle_minute(mut self, minute: time::Duration) -> Self {
        if minute.is_positive() {
            self.lifecycle_minute = minute;
        }
        self
    }

    /// How long one minute of the lifecycle intervals lasts (see [`Self::with_lifecycle_minute`]).
    pub fn lifecycle_minute(&self) -> time::Duration {
        self.lifecycle_minute
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn api_keys(&self) -> api_keys::ApiKeyRepo<'_> {
        api_keys::ApiKeyRepo { store: self }
    }
    pub fn orgs(&self) -> orgs::OrgRepo<'_> {
        orgs::OrgRepo { store: self }
    }
    pub fn users(&self) -> users::UserRepo<'_> {
        users::UserRepo { store: self }
    }
    pub fn memberships(&self) -> memberships::MembershipRepo<'_> {
        memberships::MembershipRepo { store: self }
    }

    pub fn roles(&self) -> roles::RoleRepo<'_> {
        roles::RoleRepo { store: self }
    }
    pub fn invitations(&self) -> invitations::InvitationRepo<'_> {
        invitations::InvitationRepo { store: self }
    }
    pub fn sandboxes(&self) -> sandboxes::SandboxRepo<'_> {
        sandboxes::SandboxRepo { store: self }
    }
    pub fn snapshots(&self) -> snapshots::SnapshotRepo<'_> {
        snapshots::SnapshotRepo { store: self }
    }
    pub fn registries(&self) -> registries::RegistryRepo<'_> {
        registries::RegistryRepo { store: self }
    }
    pub fn volumes(&self) -> volumes::VolumeRepo<'_> {
        volumes::VolumeRepo { store: self }
    }
    pub fn runners(&self) -> runners::RunnerRepo<'_> {
        runners::RunnerRepo { store: self }
    }
    pub fn preview_tokens(&self) -> preview_tokens::PreviewTokenRepo<'_> {
        preview_tokens::PreviewTokenRepo { store: self }
    }
    /// The raw DynamoDB client (tests and diagnostics: writing items the repositories never write).
    #[doc(hidden)]
    pub fn raw_client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// The `(pk, sk)` of every item in the table (a full scan: tests and diagnostics only).
    pub async fn scan_keys(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .scan_all("Scan", None)
            .await?
            .iter()
            .map(|i| {
                let get = |k: &str| item::get_s(i, k).unwrap_or_default().to_owned();
                (get("pk"), get("sk"))
            })
            .collect())
    }

    /// One cheap read, to tell whether the table answers (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::key("SYSTEM", "PING")))
            .send()
            .await
            .map_err(|e| StoreError::backend("Ping", e))?;
        Ok(())
    }

    pub(crate) fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// Reads one item (strongly consistent) and decodes it.
    pub(crate) async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        key: item::Item,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend(op, e))?;
        out.item.map(|i| item::from_item(op, i)).transpose()
    }

    /// Writes an item that must not exist yet; `Conflict { Exists }` if it does.
    pub(crate) async fn put_new(
        &self,
        op: &'static str,
        item: item::Item,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res.map_err(|e| StoreError::backend(op, e)) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(StoreError::conflict(op, Conflict::Exists)),
            Err(e) => Err(e),
        }
    }
}

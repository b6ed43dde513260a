//! Docker registries an organization registered: `ORG#<orgId>` / `REGISTRY#<id>`.
//!
//! The password is stored sealed (AES-256-GCM under a key derived from
//! `scoped_credentials_secret`, see `cove_scoped_creds::sealing`, with `<orgId>/<id>` as
//! associated data) and never leaves this module in clear except through
//! [`RegistryRepo::matching_host`], which the snapshot sweep uses to pull an organization's
//! private images. The internal registry is not stored: the `registries` function synthesizes it
//! from its variables. Rows live in the organization's partition, so `OrgRepo::delete` removes
//! them with the organization.

use cove_api_types::ids::OrganizationId;
use serde::{Deserialize, Serialize};

use crate::item::{Item, key, n, to_item};
use crate::query::Query;
use crate::tx::{self, Cond, Fail, Tx};
use crate::{Conflict, Store, StoreError};

/// A registered registry, password sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryRecord {
    /// UUID.
    pub id: String,
    pub organization_id: OrganizationId,
    pub name: String,
    /// As given (`https://host[:port][/path]` or `host[:port]`).
    pub url: String,
    pub username: String,
    /// `v1.` + base64url(nonce ‖ AES-256-GCM ciphertext).
    pub password_sealed: String,
    pub project: String,
    /// The organization's default registry (`set-default`).
    #[serde(default)]
    pub is_default: bool,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

impl RegistryRecord {
    /// The associated data the password is sealed with: `<orgId>/<id>`.
    pub fn seal_context(&self) -> String {
        format!("{}/{}", self.organization_id.as_str(), self.id)
    }

    /// Seals `password` into the record under `secret`.
    pub fn set_password(&mut self, secret: &[u8], password: &str) -> Result<(), StoreError> {
        self.password_sealed =
            cove_scoped_creds::sealing::seal(secret, password, &self.seal_context())
                .map_err(|e| sealing_error("SealRegistryPassword", e))?;
        Ok(())
    }

    /// The password in clear (sealed under `secret`).
    pub fn password(&self, secret: &[u8]) -> Result<String, StoreError> {
        cove_scoped_creds::sealing::open(secret, &self.password_sealed, &self.seal_context())
            .map_err(|e| sealing_error("OpenRegistryPassword", e))
    }

    /// `host[:port]` of the registry's URL, lowercased, Docker Hub's aliases as `docker.io`.
    pub fn host(&self) -> String {
        url_host(&self.url)
    }
}

/// A password that cannot be sealed or opened (wrong secret, damaged row): a decode error.
fn sealing_error(op: &'static str, e: cove_scoped_creds::CredsError) -> StoreError {
    StoreError::decode(op, <serde_dynamo::Error as serde::de::Error>::custom(e))
}

/// A registry whose host matches an image, with its password in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRegistry {
    pub record: RegistryRecord,
    pub password: String,
}

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        DOCKER_HUB.to_owned()
    } else {
        host
    }
}

/// `host[:port]` of a registry URL (`https://r.example:5000/v2/x` → `r.example:5000`).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    canonical_host(host)
}

/// The registry host of an image reference, as Docker resolves it: the first path component
/// when it has a `.` or a `:` or is `localhost`, else Docker Hub (`docker.io`).
pub fn image_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            canonical_host(first)
        }
        _ => DOCKER_HUB.to_owned(),
    }
}

fn sk(id: &str) -> String {
    format!("REGISTRY#{id}")
}

fn item(rec: &RegistryRecord) -> Result<Item, StoreError> {
    to_item(
        "PutRegistry",
        rec,
        &[
            ("pk", crate::orgs::pk(&rec.organization_id)),
            ("sk", sk(&rec.id)),
        ],
    )
}

pub struct RegistryRepo<'a> {
    pub(crate) store: &'a Store,
}

impl RegistryRepo<'_> {
    /// One registry of the organization.
    pub async fn get(
        &self,
        org: &OrganizationId,
        id: &str,
    ) -> Result<Option<RegistryRecord>, StoreError> {
        self.store
            .get_record("GetRegistry", key(crate::orgs::pk(org), sk(id)))
            .await
    }

    /// The organization's registries, oldest first by id order of the partition.
    pub async fn list(&self, org: &OrganizationId) -> Result<Vec<RegistryRecord>, StoreError> {
        let mut all: Vec<RegistryRecord> = self
            .store
            .query_all(
                "ListRegistries",
                &Query::prefix(crate::orgs::pk(org), "REGISTRY#"),
            )
            .await?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Creates the registry, requiring the organization to be live (`Conflict {
    /// OrganizationDeleting }` otherwise, `Conflict { Exists }` for a taken id).
    pub async fn create(&self, rec: &RegistryRecord) -> Result<(), StoreError> {
        self.store
            .put_new_in_org("CreateRegistry", &rec.organization_id, vec![item(rec)?])
            .await
    }

    /// Replaces a registry still at `rec.version - 1` (`Conflict { Changed }` otherwise, also
    /// when it was deleted meanwhile).
    pub async fn update(&self, rec: &RegistryRecord) -> Result<(), StoreError> {
        const OP: &str = "UpdateRegistry";
        let cond = Cond::new("attribute_exists(pk) AND version = :v")
            .value(":v", n(rec.version.saturating_sub(1)));
        Tx::new(OP)
            .with(
                Fail::Conflict(Conflict::Changed),
                tx::put(self.store, OP, item(rec)?, cond)?,
            )
            .commit(self.store)
            .await
    }

    /// Deletes the registry; `false` when there was none.
    pub async fn delete(&self, org: &OrganizationId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .store
            .client()
            .delete_item()
            .table_name(self.store.table())
            .set_key(Some(key(crate::orgs::pk(org), sk(id))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteRegistry", e))?;
        Ok(out.attributes.is_some())
    }

    /// The organization's registry for an image whose registry host is `image_host` (see
    /// [`image_host`]): the registry URL's `host[:port]` equals it (Docker Hub aliases are one
    /// host). Several: the default one, else the most recently updated. The password is opened
    /// with `secret` (`scoped_credentials_secret`). Only this organization's rows are read, so
    /// another organization's credentials are never used.
    pub async fn matching_host(
        &self,
        org: &OrganizationId,
        image_host: &str,
        secret: &[u8],
    ) -> Result<Option<MatchedRegistry>, StoreError> {
        let wanted = canonical_host(image_host);
        let best = self
            .list(org)
            .await?
            .into_iter()
            .filter(|r| r.host() == wanted)
            .max_by(|a, b| (a.is_default, &a.updated_at).cmp(&(b.is_default, &b.updated_at)));
        match best {
            None => Ok(None),
            Some(record) => {
                let password = record.password(secret)?;
                Ok(Some(MatchedRegistry { record, password }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_as_docker_resolves_them() {
        assert_eq!(
            url_host("https://registry.example.com:5000/v2/"),
            "registry.example.com:5000"
        );
        assert_eq!(url_host("127.0.0.1:41234"), "127.0.0.1:41234");
        assert_eq!(url_host("https://registry.hub.docker.com"), "docker.io");
        assert_eq!(url_host("https://u@Ghcr.IO/x"), "ghcr.io");
        assert_eq!(image_host("ubuntu:22.04"), "docker.io");
        assert_eq!(image_host("library/ubuntu:22.04"), "docker.io");
        assert_eq!(image_host("ghcr.io/o/i:1"), "ghcr.io");
        assert_eq!(image_host("127.0.0.1:5000/o/i:1"), "127.0.0.1:5000");
        assert_eq!(image_host("localhost/i:1"), "localhost");
    }
}

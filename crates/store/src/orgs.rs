//! Organizations: `ORG#<id>` / `#META`.

use cove_api_types::ids::{OrganizationId, UserId};
use serde::{Deserialize, Serialize};

use crate::item::{META, from_item, key, to_item};
use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgRecord {
    pub id: OrganizationId,
    pub name: String,
    pub created_by: UserId,
    /// A user's personal organization: it can't be deleted or left.
    pub personal: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub suspended_at: Option<String>,
    #[serde(default)]
    pub suspension_reason: Option<String>,
    #[serde(default)]
    pub suspended_until: Option<String>,
    pub version: u64,
}

pub(crate) fn pk(id: &OrganizationId) -> String {
    format!("ORG#{id}")
}

pub(crate) fn item(rec: &OrgRecord) -> Result<crate::item::Item, StoreError> {
    to_item(
        "PutOrganization",
        rec,
        &[("pk", pk(&rec.id)), ("sk", META.to_owned())],
    )
}

pub struct OrgRepo<'a> {
    pub(crate) store: &'a Store,
}

impl OrgRepo<'_> {
    pub async fn get(&self, id: &OrganizationId) -> Result<Option<OrgRecord>, StoreError> {
        let out = self
            .store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(key(pk(id), META)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend("GetOrganization", e))?;
        out.item
            .map(|i| from_item("GetOrganization", i))
            .transpose()
    }

    /// Creates the organization; `Conflict` if the id is taken.
    pub async fn create(&self, rec: &OrgRecord) -> Result<(), StoreError> {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item(rec)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::backend("PutOrganization", e))?;
        Ok(())
    }
}

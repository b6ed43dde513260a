//! The table's definition: keys, attribute types, indexes, billing, TTL. [`TABLE_DEFINITION`] is
//! the one source of what [`Store::ensure_table`] creates and of what a deployment must create
//! (`infra/terraform` is compared with it by `tests/infra`, through the `cove-table-definition`
//! binary, which prints it as JSON).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde::Serialize;

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;

use crate::{Store, StoreError};

/// Name of the first global secondary index (`gsi1pk` / `gsi1sk`).
pub const GSI1: &str = "gsi1";
/// Name of the second global secondary index (`gsi2pk` / `gsi2sk`).
pub const GSI2: &str = "gsi2";
/// Name of the third global secondary index (`gsi3pk` / `gsi3sk`): the sandboxes' due times.
pub const GSI3: &str = "gsi3";
/// The table's TTL attribute (epoch seconds): signed preview tokens and sandbox events carry it.
/// `ensure_table` turns TTL on where the engine has it (best effort: expired rows already count
/// as absent to every reader); the infrastructure enables it on the tables it creates.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// A key attribute and its DynamoDB scalar type (`S`, `N`, `B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AttributeDef {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A global secondary index: its keys and projection (`ALL`, `KEYS_ONLY`, `INCLUDE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDef {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    pub projection: &'static str,
}

/// The whole table as the code uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDefinition {
    pub hash_key: &'static str,
    pub range_key: &'static str,
    /// Every attribute a key of the table or of an index names.
    pub attributes: &'static [AttributeDef],
    pub global_secondary_indexes: &'static [IndexDef],
    pub billing_mode: &'static str,
    pub ttl_attribute: &'static str,
}

const fn s(name: &'static str) -> AttributeDef {
    AttributeDef { name, kind: "S" }
}

const fn all(name: &'static str, hash_key: &'static str, range_key: &'static str) -> IndexDef {
    IndexDef {
        name,
        hash_key,
        range_key,
        projection: "ALL",
    }
}

/// What [`Store::ensure_table`] creates.
pub const TABLE_DEFINITION: TableDefinition = TableDefinition {
    hash_key: "pk",
    range_key: "sk",
    attributes: &[
        s("pk"),
        s("sk"),
        s("gsi1pk"),
        s("gsi1sk"),
        s("gsi2pk"),
        s("gsi2sk"),
        s("gsi3pk"),
        s("gsi3sk"),
    ],
    global_secondary_indexes: &[
        all(GSI1, "gsi1pk", "gsi1sk"),
        all(GSI2, "gsi2pk", "gsi2sk"),
        all(GSI3, "gsi3pk", "gsi3sk"),
    ],
    billing_mode: "PAY_PER_REQUEST",
    ttl_attribute: TTL_ATTRIBUTE,
};

const OP: &str = "CreateTable";

impl Store {
    /// Creates the table with its indexes if it does not exist yet, and turns on TTL on
    /// [`TTL_ATTRIBUTE`]. Safe to call on every start.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        self.ensure_table_and_indexes().await?;
        self.ensure_ttl().await;
        Ok(())
    }

    async fn ensure_table_and_indexes(&self) -> Result<(), StoreError> {
        match self
            .client()
            .describe_table()
            .table_name(self.table())
            .send()
            .await
        {
            Ok(out) => return self.ensure_due_index(out.table.as_ref()).await,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(StoreError::backend("DescribeTable", e)),
        }
        match self.create_table_request()?.send().await {
            Ok(_) => Ok(()),
            // Another process created it between our describe and create: fine.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::backend(OP, e)),
        }
    }

    /// Adds GSI3 (the sandboxes' due times) to a table created before it existed. Until it is
    /// active the lifecycle sweep's due query fails (and is retried every sweep).
    async fn ensure_due_index(
        &self,
        table: Option<&aws_sdk_dynamodb::types::TableDescription>,
    ) -> Result<(), StoreError> {
        let has = table
            .map(|t| t.global_secondary_indexes())
            .is_some_and(|gs| gs.iter().any(|g| g.index_name() == Some(GSI3)));
        if has {
            return Ok(());
        }
        let Some(due) = TABLE_DEFINITION
            .global_secondary_indexes
            .iter()
            .find(|g| g.name == GSI3)
        else {
            return Ok(());
        };
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(due.name)
            .key_schema(key(due.hash_key, KeyType::Hash)?)
            .key_schema(key(due.range_key, KeyType::Range)?)
            .projection(projection(due))
            .build()
            .map_err(|e| StoreError::builder("UpdateTable", e))?;
        let mut update = self.client().update_table().table_name(self.table());
        for a in TABLE_DEFINITION
            .attributes
            .iter()
            .filter(|a| a.name == due.hash_key || a.name == due.range_key)
        {
            update = update.attribute_definitions(attr(a)?);
        }
        let res = update
            .global_secondary_index_updates(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                    .create(create)
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => tracing::info!(table = self.table(), "due-time index (gsi3) added"),
            Err(e) => {
                tracing::warn!(table = self.table(), error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "cannot add the due-time index (gsi3)")
            }
        }
        Ok(())
    }

    /// Turns on TTL on [`TTL_ATTRIBUTE`] when it is off. Best effort (readers treat expired items
    /// as absent anyway): a refusal (a table still being created) is logged and tried again at the
    /// next start.
    async fn ensure_ttl(&self) {
        use aws_sdk_dynamodb::types::{TimeToLiveSpecification, TimeToLiveStatus};
        let on = self
            .client()
            .describe_time_to_live()
            .table_name(self.table())
            .send()
            .await
            .ok()
            .and_then(|o| o.time_to_live_description)
            .and_then(|d| d.time_to_live_status)
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if on {
            return;
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build();
        let spec = match spec {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot describe the TTL specification");
                return;
            }
        };
        let res = self
            .client()
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(spec)
            .send()
            .await;
        match res {
            Ok(_) => tracing::info!(
                table = self.table(),
                attribute = TTL_ATTRIBUTE,
                "TTL enabled"
            ),
            Err(e) => {
                tracing::warn!(table = self.table(), error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "cannot enable TTL")
            }
        }
    }

    fn create_table_request(&self) -> Result<CreateTableFluentBuilder, StoreError> {
        let def = &TABLE_DEFINITION;
        let mut req = self
            .client()
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::from(def.billing_mode))
            .key_schema(key(def.hash_key, KeyType::Hash)?)
            .key_schema(key(def.range_key, KeyType::Range)?);
        for a in def.attributes {
            req = req.attribute_definitions(attr(a)?);
        }
        for g in def.global_secondary_indexes {
            req = req.global_secondary_indexes(gsi(g)?);
        }
        Ok(req)
    }
}

fn attr(a: &AttributeDef) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(a.name)
        .attribute_type(ScalarAttributeType::from(a.kind))
        .build()
        .map_err(|e| StoreError::builder(OP, e))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| StoreError::builder(OP, e))
}

fn projection(g: &IndexDef) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(g.projection))
        .build()
}

fn gsi(g: &IndexDef) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(g.name)
        .key_schema(key(g.hash_key, KeyType::Hash)?)
        .key_schema(key(g.range_key, KeyType::Range)?)
        .projection(projection(g))
        .build()
        .map_err(|e| StoreError::builder(OP, e))
}

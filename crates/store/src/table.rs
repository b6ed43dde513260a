use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;

use crate::{Store, StoreError};

/// Name of the first global secondary index (`gsi1pk` / `gsi1sk`).
pub const GSI1: &str = "gsi1";
/// Name of the second global secondary index (`gsi2pk` / `gsi2sk`).
pub const GSI2: &str = "gsi2";
/// Name of the third global secondary index (`gsi3pk` / `gsi3sk`): the sandboxes' due times.
pub const GSI3: &str = "gsi3";
/// The table's TTL attribute (epoch seconds): signed preview tokens, sandbox events.
pub const TTL_ATTRIBUTE: &str = "ttl";

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
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(GSI3)
            .key_schema(key("gsi3pk", KeyType::Hash)?)
            .key_schema(key("gsi3sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| StoreError::builder("UpdateTable", e))?;
        let res = self
            .client()
            .update_table()
            .table_name(self.table())
            .attribute_definitions(attr("gsi3pk")?)
            .attribute_definitions(attr("gsi3sk")?)
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
        let mut req = self
            .client()
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?);
        for name in [
            "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk",
        ] {
            req = req.attribute_definitions(attr(name)?);
        }
        for (name, pk, sk) in [
            (GSI1, "gsi1pk", "gsi1sk"),
            (GSI2, "gsi2pk", "gsi2sk"),
            (GSI3, "gsi3pk", "gsi3sk"),
        ] {
            req = req.global_secondary_indexes(gsi(name, pk, sk)?);
        }
        Ok(req)
    }
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
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

fn gsi(name: &str, pk: &str, sk: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::builder(OP, e))
}

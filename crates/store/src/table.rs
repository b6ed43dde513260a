use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use crate::{Store, StoreError};

/// Name of the first global secondary index (`gsi1pk` / `gsi1sk`).
pub const GSI1: &str = "gsi1";
/// Name of the second global secondary index (`gsi2pk` / `gsi2sk`).
pub const GSI2: &str = "gsi2";

impl Store {
    /// Creates the table with its indexes if it does not exist yet. Safe to call on every start.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        match self
            .client()
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(StoreError::backend("DescribeTable", e)),
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| StoreError::Backend {
                    op: "CreateTable",
                    message: e.to_string(),
                })
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| StoreError::Backend {
                    op: "CreateTable",
                    message: e.to_string(),
                })
        };
        let gsi = |name: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, StoreError> {
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
                .map_err(|e| StoreError::Backend {
                    op: "CreateTable",
                    message: e.to_string(),
                })
        };
        let created = self
            .client()
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .attribute_definitions(attr("gsi2pk")?)
            .attribute_definitions(attr("gsi2sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi(GSI1, "gsi1pk", "gsi1sk")?)
            .global_secondary_indexes(gsi(GSI2, "gsi2pk", "gsi2sk")?)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it between our describe and create: fine.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::backend("CreateTable", e)),
        }
    }
}

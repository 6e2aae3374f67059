//! Creating the table where nobody else does: the local run and the tests. In AWS the SAM
//! template creates the same table (keep the two in step).
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::keys::{DUE_AT, DUE_INDEX, DUE_PK, PK, SK, TTL};
use super::{Store, StoreError};

impl Store {
    /// Creates the table with its `due` index and TTL; a table that already exists is kept.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, ty: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ty)
                .build()
        };
        let key = |name: &str, ty: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(ty)
                .build()
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(PK, ScalarAttributeType::S)?)
            .attribute_definitions(attr(SK, ScalarAttributeType::S)?)
            .attribute_definitions(attr(DUE_PK, ScalarAttributeType::S)?)
            .attribute_definitions(attr(DUE_AT, ScalarAttributeType::N)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(DUE_INDEX)
                    .key_schema(key(DUE_PK, KeyType::Hash)?)
                    .key_schema(key(DUE_AT, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(StoreError::from_sdk(e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }
}

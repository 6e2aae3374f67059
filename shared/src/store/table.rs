//! Creating the table where nobody else does: the local run and the tests. In AWS the SAM
//! template creates the same table (keep the two in step).
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use super::schema::{DUE_AT, DUE_INDEX, DUE_PK, PK, SK, TTL};
use super::{Store, StoreError};

impl Store {
    /// Creates the table with its `due` index, its stream (`NEW_AND_OLD_IMAGES`, what the
    /// `publish` function reads) and TTL; a table that already exists is kept, and gets its
    /// stream if it had none (a data directory from before events went through the stream).
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
            .stream_specification(stream())
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                return self.ensure_stream().await;
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

fn stream() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .unwrap_or_else(|_| unreachable!("stream_enabled is set"))
}

impl Store {
    async fn ensure_stream(&self) -> Result<(), StoreError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let enabled = described
            .table()
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        if !enabled {
            self.client
                .update_table()
                .table_name(&self.table)
                .stream_specification(stream())
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
        }
        Ok(())
    }
}

//! The transaction builder's answers (`store::tx`), for one write and for several: a failed
//! condition is a rejection naming its slot with the item as it was; anything else DynamoDB
//! refuses is a store error, never a domain answer.
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, Update};
use trials::store::codec::{key, Item};
use trials::store::{Outcome, Slot, StoreError};
use trials_tests::TestApp;

fn item(pk: &str, value: &str) -> Item {
    let mut item = key(pk, "X");
    item.insert("v".into(), AttributeValue::S(value.into()));
    item
}

async fn seed(t: &TestApp, pk: &str) {
    let put = Put::builder()
        .table_name(t.app.store.table_name())
        .set_item(Some(item(pk, "before")))
        .build()
        .unwrap();
    let outcome = t
        .app
        .store
        .tx()
        .put(Slot::Trial, put)
        .commit()
        .await
        .unwrap();
    assert!(outcome.committed());
}

fn rejected_with(outcome: Outcome, slot: Slot) -> Option<Item> {
    match outcome {
        Outcome::Rejected(r) => {
            assert!(r.failed(slot), "{r:?}");
            r.old(slot).cloned()
        }
        Outcome::Committed => panic!("committed, though its condition failed"),
    }
}

#[tokio::test]
async fn a_lone_update_or_delete_whose_condition_fails_is_rejected_with_the_item_as_it_was() {
    let t = TestApp::new().await;
    let store = &t.app.store;
    seed(&t, "A").await;
    let update = Update::builder()
        .table_name(store.table_name())
        .set_key(Some(key("A", "X")))
        .update_expression("SET v = :after")
        .condition_expression("v = :other")
        .expression_attribute_values(":after", AttributeValue::S("after".into()))
        .expression_attribute_values(":other", AttributeValue::S("other".into()))
        .build()
        .unwrap();
    let outcome = store
        .tx()
        .update(Slot::Trial, update)
        .commit()
        .await
        .unwrap();
    assert_eq!(
        rejected_with(outcome, Slot::Trial),
        Some(item("A", "before"))
    );

    let delete = Delete::builder()
        .table_name(store.table_name())
        .set_key(Some(key("A", "X")))
        .condition_expression("v = :other")
        .expression_attribute_values(":other", AttributeValue::S("other".into()))
        .build()
        .unwrap();
    let outcome = store
        .tx()
        .delete(Slot::Reminder, delete)
        .commit()
        .await
        .unwrap();
    assert_eq!(
        rejected_with(outcome, Slot::Reminder),
        Some(item("A", "before"))
    );
}

#[tokio::test]
async fn a_write_dynamodb_refuses_is_a_store_error_not_a_rejection() {
    let t = TestApp::new().await;
    let store = &t.app.store;
    seed(&t, "A").await;
    // A condition DynamoDB cannot parse: a ValidationException, not a failed condition.
    let broken = || {
        Put::builder()
            .table_name(store.table_name())
            .set_item(Some(item("A", "after")))
            .condition_expression("attribute_not_exists(")
            .build()
            .unwrap()
    };
    let alone = store.tx().put(Slot::Trial, broken()).commit().await;
    assert!(
        matches!(alone, Err(StoreError::Refused(_))),
        "one write: {alone:?}"
    );
    let with_another = store
        .tx()
        .put(Slot::Trial, broken())
        .put(
            Slot::Stats,
            Put::builder()
                .table_name(store.table_name())
                .set_item(Some(item("B", "x")))
                .build()
                .unwrap(),
        )
        .commit()
        .await;
    assert!(
        matches!(with_another, Err(StoreError::Refused(_))),
        "a transaction: {with_another:?}"
    );
    let kept = store
        .client()
        .get_item()
        .table_name(store.table_name())
        .set_key(Some(key("A", "X")))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.item, Some(item("A", "before")), "nothing written");
}

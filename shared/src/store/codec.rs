//! Small helpers to build and read DynamoDB items.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub fn get_bool(item: &Item, name: &str) -> Option<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Some(*v),
        _ => None,
    }
}

pub fn get_ss(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        Some(AttributeValue::L(v)) => v.iter().filter_map(|a| a.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// `(pk, sk)` as a key map.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        (super::schema::PK.to_owned(), s(pk)),
        (super::schema::SK.to_owned(), s(sk)),
    ])
}

/// Builds expression attribute values without the noise of `AttributeValue` at every call.
#[derive(Default)]
pub struct Values(Item);

impl Values {
    pub fn new() -> Values {
        Values::default()
    }
    pub fn s(mut self, name: &str, v: impl Into<String>) -> Values {
        self.0.insert(name.to_owned(), s(v));
        self
    }
    pub fn n(mut self, name: &str, v: i64) -> Values {
        self.0.insert(name.to_owned(), n(v));
        self
    }
    pub fn build(self) -> Option<Item> {
        Some(self.0)
    }
}

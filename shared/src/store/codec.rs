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

/// Where the next page of a `Query` or `Scan` starts: its `LastEvaluatedKey`, when DynamoDB
/// gave one (an absent or empty key means this page was the last). Every paged read goes
/// through here, so none stops at the first page (1 MB) or loops on an empty key.
pub fn next_page(last_evaluated_key: Option<Item>) -> Option<Item> {
    last_evaluated_key.filter(|k| !k.is_empty())
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
    /// Adds `more` (a name already present takes the new value).
    pub fn extend(mut self, more: Item) -> Values {
        self.0.extend(more);
        self
    }
    pub fn build(self) -> Option<Item> {
        Some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_a_last_key_has_a_next_one() {
        let last = key("TRIAL#a", "TRIAL");
        assert_eq!(next_page(Some(last.clone())), Some(last));
        assert_eq!(next_page(Some(Item::new())), None);
        assert_eq!(next_page(None), None);
    }

    #[test]
    fn string_lists_read_from_a_list_or_a_string_set() {
        // Written as a list; a set (e.g. an item written by hand with the AWS CLI) reads the
        // same. Anything else is no list.
        let mut item = Item::new();
        item.insert("l".into(), AttributeValue::L(vec![s("a"), s("b")]));
        item.insert(
            "ss".into(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        );
        item.insert("n".into(), n(1));
        assert_eq!(get_ss(&item, "l"), ["a", "b"]);
        assert_eq!(get_ss(&item, "ss"), ["a", "b"]);
        assert!(get_ss(&item, "n").is_empty());
        assert!(get_ss(&item, "absent").is_empty());
    }
}

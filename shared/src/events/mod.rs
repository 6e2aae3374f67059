//! Domain events out to EventBridge.
pub mod publisher;

pub use publisher::Publisher;

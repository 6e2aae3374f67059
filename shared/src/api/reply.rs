//! A response as handlers produce it, before it becomes an HTTP response.
use lambda_http::{Body, Response};

use super::error::ApiError;
use crate::domain::ErrorCode;
use crate::store::idempotency::StoredResponse;

pub const JSON: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Sent again from the idempotency record, not executed.
    pub replayed: bool,
    /// The error code, for the request log.
    pub code: Option<ErrorCode>,
    pub retryable: bool,
    /// Headers of the route's own (`ETag`, `Cache-Control`), sent as they are.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: JSON.to_owned(),
            body: body.to_string(),
            replayed: false,
            code: None,
            retryable: false,
            headers: Vec::new(),
        }
    }

    pub fn error(err: &ApiError) -> Reply {
        Reply {
            status: err.status(),
            content_type: JSON.to_owned(),
            body: err.body(),
            replayed: false,
            code: Some(err.code),
            retryable: err.retryable,
            headers: Vec::new(),
        }
    }

    pub fn replay(stored: StoredResponse) -> Reply {
        Reply {
            status: stored.status,
            content_type: stored.content_type,
            body: stored.body,
            replayed: true,
            code: None,
            retryable: false,
            headers: Vec::new(),
        }
    }

    pub fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status,
            content_type: self.content_type.clone(),
            body: self.body.clone(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder()
            .status(self.status)
            .header("content-type", self.content_type);
        if self.replayed {
            builder = builder.header("idempotent-replayed", "true");
        }
        if self.retryable {
            builder = builder.header("retry-after", "1");
        }
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Body::Text(self.body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl Reply {
    /// `self` with a header of the route's own.
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

impl From<ApiError> for Reply {
    fn from(err: ApiError) -> Reply {
        Reply::error(&err)
    }
}

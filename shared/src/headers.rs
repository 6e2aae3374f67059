//! Reading the headers every authenticated request carries, below both `auth` and `api` so
//! neither imports the other for it. Works for API Gateway HTTP API (2.0) and REST API (1.0)
//! events and for the local server alike (header names are case-insensitive).
use lambda_http::Request;

use crate::domain::{ErrorCode, OrgId, ProjectId};

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A tenant header that is missing or malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    MissingOrgId,
    InvalidOrgId,
    MissingProjectId,
    InvalidProjectId,
}

impl HeaderError {
    pub fn code(self) -> ErrorCode {
        match self {
            HeaderError::MissingOrgId => ErrorCode::MissingOrgId,
            HeaderError::InvalidOrgId => ErrorCode::InvalidOrgId,
            HeaderError::MissingProjectId => ErrorCode::MissingProjectId,
            HeaderError::InvalidProjectId => ErrorCode::InvalidProjectId,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            HeaderError::MissingOrgId => "Missing required header X-Org-Id",
            HeaderError::InvalidOrgId => {
                "X-Org-Id must be 1-128 characters of letters, digits, '_', '-', '.' or ':'"
            }
            HeaderError::MissingProjectId => "Missing required header X-Project-Id",
            HeaderError::InvalidProjectId => {
                "X-Project-Id must be 1-128 characters of letters, digits, '_', '-', '.' or ':'"
            }
        }
    }
}

pub fn org_id(req: &Request) -> Result<OrgId, HeaderError> {
    let raw = header(req, "x-org-id").ok_or(HeaderError::MissingOrgId)?;
    OrgId::parse(raw.trim()).ok_or(HeaderError::InvalidOrgId)
}

pub fn project_id(req: &Request) -> Result<ProjectId, HeaderError> {
    let raw = header(req, "x-project-id").ok_or(HeaderError::MissingProjectId)?;
    ProjectId::parse(raw.trim()).ok_or(HeaderError::InvalidProjectId)
}

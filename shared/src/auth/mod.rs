//! Who is calling: the tenant (org, project) a request acts for.
use lambda_http::Request;

use crate::api::request::{org_id, project_id};
use crate::api::ApiError;
use crate::domain::{OrgId, ProjectId};
use crate::App;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub org: OrgId,
    pub project: ProjectId,
}

/// Verified API keys, cached briefly in a warm function (issue 7 fills this in).
#[derive(Clone, Debug, Default)]
pub struct KeyCache {
    ttl_secs: i64,
}

impl KeyCache {
    pub fn new(ttl_secs: i64) -> KeyCache {
        KeyCache { ttl_secs }
    }
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }
}

pub async fn authenticate(_app: &App, req: &Request) -> Result<Tenant, ApiError> {
    Ok(Tenant {
        org: org_id(req)?,
        project: project_id(req)?,
    })
}

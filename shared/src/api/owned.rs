//! The org's own trial: the rules every route that names a trial shares. Another org's trial
//! is indistinguishable from none (404, nothing leaks); a trial of the caller's org that was
//! purged answers 410 `trial_expired` (only the org guards remember it, read on the miss path
//! alone).
//!
//! **Projects.** A trial belongs to the project it was started under (`X-Project-Id` of the
//! start). A key limited to projects acts only on the trials of those projects: any other
//! trial of its org is, to it, indistinguishable from none (404, purged or not), exactly as
//! another org's trial. A key for all projects acts on every trial of its org. (`X-Project-Id`
//! of the request itself must be a project the key allows: 403 before any of this.)
use crate::auth::Tenant;
use crate::domain::{TransitionError, Trial, TrialId};
use crate::App;

use super::error::ApiError;

/// The trial `id` if it belongs to the caller's org: one consistent read.
pub async fn load_owned(app: &App, id: &TrialId, tenant: &Tenant) -> Result<Trial, ApiError> {
    let found = app.store.get_trial(id).await?;
    owned(app, id, tenant, found).await
}

/// The same rules for a trial already read (`found`: the item as read, `None` if missing).
pub async fn owned(
    app: &App,
    id: &TrialId,
    tenant: &Tenant,
    found: Option<Trial>,
) -> Result<Trial, ApiError> {
    match found {
        Some(trial)
            if trial.org_id == tenant.org && tenant.may_act_on(trial.project_id.as_ref()) =>
        {
            Ok(trial)
        }
        Some(_) => Err(ApiError::trial_not_found()),
        None => Err(purged_or_not_found(app, id, tenant).await),
    }
}

/// Why the org's trial `id` is not there: purged (410) or never the org's, or not the key's
/// project's (404). The trial's product is unknown once it is gone, so the org's guard of each
/// catalog product is read (one `GetItem` each, on this miss path only; one for a one-product
/// catalog, as before products).
pub async fn purged_or_not_found(app: &App, id: &TrialId, tenant: &Tenant) -> ApiError {
    for product in app.config.catalog.product_keys() {
        match app.store.get_product_guard(&tenant.org, &product).await {
            Ok(Some(guard))
                if guard.purged
                    && guard.trial_id.as_ref() == Some(id)
                    && tenant.may_act_on(guard.project_id.as_ref()) =>
            {
                return TransitionError::Expired.into()
            }
            Ok(_) => {}
            Err(e) => return e.into(),
        }
    }
    ApiError::trial_not_found()
}

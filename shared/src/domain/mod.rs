//! The domain: plans and their catalog, ids, the trial and its state machine. Pure: no I/O, no
//! clock reads (one exception: `catalog::Catalog::load` reads `PLANS_FILE`, once, at init).
pub mod catalog;
pub mod events;
pub mod ids;
pub mod plan;
pub mod state_machine;
pub mod time;
pub mod trial;

pub use ids::{OrgId, ProjectId, TrialId};
pub use plan::Plan;
pub use state_machine::{TransitionError, TrialStatus};
pub use trial::{Trial, TrialPolicy};

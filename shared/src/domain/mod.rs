//! The domain: plans, ids, the trial and its state machine. Pure: no I/O, no clock reads.
pub mod api_key;
pub mod codes;
pub mod events;
pub mod ids;
pub mod plan;
pub mod state_machine;
pub mod time;
pub mod trial;

pub use codes::ErrorCode;
pub use ids::{OrgId, ProjectId, TrialId};
pub use plan::Plan;
pub use state_machine::{TransitionError, TrialStatus};
pub use trial::{Trial, TrialPolicy};

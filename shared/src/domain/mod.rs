//! The domain: plans and their catalog, ids, the trial and its state machine, API keys, the
//! error catalogue, the applicant, its abuse signals and the post-start redirect. Pure: no I/O,
//! no clock reads (one exception: `catalog::Catalog::load` reads `PLANS_FILE`, once, at init).
pub mod access;
pub mod active_ranges;
pub mod api_key;
pub mod applicant;
pub mod applicant_config;
pub mod catalog;
pub mod codes;
pub mod events;
pub mod extension;
pub mod ids;
pub mod plan_change;
pub mod redirect;
pub mod reminders;
pub mod signals;
pub mod state_machine;
pub mod time;
pub mod trial;
pub mod usage;

pub use active_ranges::{ActiveRange, LifecycleTerms};
/// A plan is catalog data: its id (look its terms up in [`catalog::Catalog`]).
pub use catalog::PlanId as Plan;
pub use codes::ErrorCode;
pub use extension::{ExtendRequest, Extension, ExtensionInputError};
pub use ids::{OrgId, ProjectId, TrialId};
pub use reminders::{Reminder, ScheduledReminder};
pub use state_machine::{ExtendFrom, ExtensionRefusal, TransitionError, TrialStatus};
pub use trial::{Trial, TrialPolicy};

//! The domain: plans, ids, the trial and its state machine. Pure: no I/O, no clock reads.
pub mod events;
pub mod extension;
pub mod ids;
pub mod lifecycle;
pub mod plan;
pub mod reminders;
pub mod state_machine;
pub mod time;
pub mod trial;

pub use extension::{ExtendRequest, Extension, ExtensionInputError};
pub use ids::{OrgId, ProjectId, TrialId};
pub use lifecycle::{ActiveRange, LifecycleTerms};
pub use plan::Plan;
pub use reminders::{Reminder, ScheduledReminder};
pub use state_machine::{ExtendFrom, ExtensionRefusal, TransitionError, TrialStatus};
pub use trial::{Trial, TrialPolicy};

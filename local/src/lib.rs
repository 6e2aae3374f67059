//! Trials on one machine, with the same handler code the Lambdas run: an embedded dynoxide,
//! an HTTP server that routes like API Gateway, and the scheduled jobs on a timer.
pub mod dev_key;
pub mod embedded;
pub mod server;
pub mod stream;
pub mod stripe_standin;

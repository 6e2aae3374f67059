//! Trials on one machine, with the same handler code the Lambdas run: an embedded dynoxide,
//! an HTTP server that routes like API Gateway, the Stripe stand-in with its checkout page, and
//! the scheduled jobs on a timer; and `trialctl`, the operator's command line ([`ctl`]).
pub mod console;
pub mod ctl;
pub mod dev_key;
pub mod embedded;
pub mod html;
pub mod pages;
pub mod server;
pub mod service;
pub mod stream;
pub mod stripe_standin;

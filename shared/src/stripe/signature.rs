//! `Stripe-Signature` verification (issue 5 fills this in).

//! Work that runs on a schedule rather than on a request. Each job takes a lock in the
//! cache for its run, so that N instances behind one proxy run it once.
//!
//! - [`followers`]: the follower check (remarks against the rule).
//! - [`orders`]: closes expired orders at their channel and queries quiet ones.
//! - [`reconcile`]: matches a channel's daily bill against our orders.
//! - [`schedule`]: runs the follower check on `CAMPUSPAY_CLEANUP_SCHEDULE`.

pub mod followers;
pub mod orders;
pub mod reconcile;
pub mod schedule;

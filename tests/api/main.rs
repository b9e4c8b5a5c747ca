//! Whole flows: the real program over HTTP, against the sandbox over loopback.

mod books;
mod branches;
mod channel_guards;
mod channels;
mod cli;
mod console;
mod faults;
mod followers;
mod guards;
mod hardening;
mod hostile_input;
mod import;
mod metrics;
mod payments;
mod races;
mod receipts;
mod reconcile;
mod refunds;
mod sandboxes;
mod students;
mod support;
mod webhook;

//! Whole flows: the real program over HTTP, against the sandbox over loopback.

mod cli;
mod support;
mod webhook;

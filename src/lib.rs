//! campus-pay: the fee-payment platform of a college.
//!
//! Rooms (see DESIGN.md): `domain` is pure; SQL lives only in `store`; upstream
//! protocols only in `wechat` and `pay`; HTTP only in `web`. `sandbox` plays the
//! upstream services over loopback for the demo and the tests.

pub mod background;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod pay;
pub mod sandbox;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod wechat;

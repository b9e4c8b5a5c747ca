//! The main crate's protocol files, compiled on their own.
//!
//! Depending on `campus-pay` itself would build the whole server (database drivers,
//! TLS, HTTP) with sanitizer instrumentation for every fuzz run; these four files need
//! none of it, so they are included by path.

#[path = "../../src/wechat"]
pub mod wechat {
    pub mod crypto;
    pub mod message;
    pub mod reply;
    pub mod signature;
}

//! The official account, as a server (signatures, safe-mode crypto, XML in and out)
//! and as a client (access token, menus, users, OAuth). Knows nothing of fees.

pub mod api;
pub mod crypto;
pub mod menu;
pub mod message;
pub mod reply;
pub mod signature;
pub mod token;

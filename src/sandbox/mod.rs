//! The simulated upstreams used by `demo` and by the tests, over loopback, with the
//! real wire formats and signatures. They refuse what the real services refuse.

pub mod abc;
pub mod alipay;
mod kit;
pub mod ledger;
pub mod merchant;
mod push_crypto;
pub mod wechat_api;
pub mod wechat_pay;
pub mod wechat_push;

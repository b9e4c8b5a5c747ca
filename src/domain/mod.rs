//! The rules of the college's fees, free of IO: no SQL, no HTTP, no clocks it was not
//! given. Everything here can be tested with plain values.
//!
//! - [`id_card`]: the 18-character resident ID number, validated and masked for display.
//! - [`money`]: amounts in fen ([`money::Fen`]); yuan strings only at the edges.
//! - [`student`]: gender and grade as the rolls write them.
//! - [`remark`]: the follower remark rule (grade + class + name within 20 bytes).
//! - [`password`]: initial passwords, the rule for new ones, argon2id hashing.
//! - [`order`]: order numbers, descriptions, what a payment report does to an order.
//! - [`fee_item`]: whether an item is payable now; waiving and deferring (绿色通道).
//! - [`provider`]: the payment providers, the ways to pay through each, their names.

pub mod fee_item;
pub mod id_card;
pub mod money;
pub mod order;
pub mod password;
pub mod provider;
pub mod receipt;
pub mod reconcile;
pub mod refund;
pub mod remark;
pub mod student;

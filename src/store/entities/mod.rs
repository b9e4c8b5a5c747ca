//! One sea-orm entity per table, mirroring the migrations (which stay the truth
//! about the schema). Private to `store`: the rest of the program sees the store's
//! functions and plain records, plus the status enums re-exported by `store`.

pub mod admins;
pub mod audit_log;
pub mod fee_items;
pub mod follower_check_runs;
pub mod followers;
pub mod order_items;
pub mod orders;
pub mod payment_notifications;
pub mod reconciliation_lines;
pub mod reconciliation_runs;
pub mod refunds;
pub mod students;

pub use admins::AdminRole;
pub use fee_items::FeeItemStatus;
pub use orders::{OrderStatus, PaymentChannel};
pub use payment_notifications::{NotificationChannel, NotificationVerdict};
pub use reconciliation_runs::RunStatus;
pub use refunds::{RefundKind, RefundStatus};
pub use students::Gender;

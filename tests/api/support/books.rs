//! The books checked from the outside: what the WeChat Pay, Alipay and bank sandboxes
//! recorded against our orders, items and refunds (see `books/compare.rs` for the
//! rules). Fault tests and money flows end with [`check_books`].

mod compare;

pub use compare::{Summary, Verdict};

use crate::support::TestApp;

/// Panics, naming every disagreement, unless the sandboxes' records and our books
/// balance: every order a channel charged is paid here (or a late payment flagged for
/// the office) for the same amount; every payment here was charged; every refund a
/// channel made is ours with the same amount and state; no item paid by two orders
/// without one flagged; no item held by a closed order; the money the channels kept
/// is what our books count as kept. Returns what the books hold.
pub async fn check_books(app: &TestApp) -> Summary {
    let verdict = books_verdict(app).await;
    assert!(
        verdict.violations.is_empty(),
        "the books do not balance with the channels:\n  {}\n({})",
        verdict.violations.join("\n  "),
        verdict.summary.describe()
    );
    verdict.summary
}

/// The comparison itself, without panicking: for tests that show the check catches a
/// disagreement.
pub async fn books_verdict(app: &TestApp) -> Verdict {
    let mut channels = app.pay.ledger();
    channels.extend(app.alipay.ledger());
    channels.extend(app.abc.ledger());
    let ours = compare::read_ours(app.store.connection(), None)
        .await
        .expect("our books read");
    compare::compare(&channels, &ours)
}

// For `tests/api/books.rs`; the browser tests share this module without them.
#[allow(unused_imports)]
pub use compare::{OurBooks, OurItem, OurLine, OurOrder, OurRefund, compare};

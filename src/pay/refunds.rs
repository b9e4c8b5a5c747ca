//! Refunds through every channel, by the rules of issue 7: a refund is recorded with
//! our refund number before the channel is asked, and every later call about it
//! (a retry, a query) uses that same number. An answer that never came (or cannot be
//! believed) leaves the refund `requested`, to be queried by the sweep; it is never
//! sent again under a new number. Answers, query results and notifications all go
//! through [`Refunds::apply`], so the same news twice changes nothing.

use std::time::Duration;

use super::checkout::{Channels, Checkout};
use super::{Channel, ChannelError, RefundRequest, RefundState};
use crate::clock::Clock;
use crate::domain::refund::{ItemEffect, PlanError};
use crate::store::{
    AuditEntry, CreateRefund, NewRefund, OrderRecord, PaymentChannel, RefundNews, RefundRecord,
    RefundScope, Store, StoreError,
};

/// A refund not final and without news for this long is queried by the sweep.
pub const QUIET_FOR: Duration = Duration::from_secs(120);

/// What the office asks for, confirmed.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    /// The whole order's remainder, or part of one item.
    pub scope: RefundScope,
    /// What the items show once the money is back (the office's choice, no default).
    pub effect: ItemEffect,
    pub reason: String,
    /// What the order had left when the office confirmed.
    pub expected_left_fen: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no order of ours has that number")]
    UnknownOrder,
    #[error("the order was never paid")]
    NotPaid,
    #[error("the item is not one of the order's")]
    NotAnItemOfTheOrder,
    #[error("at most {left_fen} fen is left to refund")]
    TooMuch { left_fen: i64 },
    #[error("the items cannot end up as asked: {0}")]
    Refused(PlanError),
    #[error("the order changed since the refund was confirmed ({left_fen} fen left)")]
    Changed { left_fen: i64 },
    #[error("the channel {0:?} is not configured")]
    ChannelNotConfigured(PaymentChannel),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundSweep {
    pub queried: usize,
    pub finished: usize,
}

#[derive(Clone)]
pub struct Refunds {
    pub store: Store,
    pub channels: Channels,
    pub clock: Clock,
    /// The public URL, to which `/pay/notify/wechat/refund` is appended.
    pub public_url: String,
}

impl Refunds {
    /// The same store, channels, clock and public URL as the payments.
    pub fn from_checkout(checkout: &Checkout) -> Refunds {
        Refunds {
            store: checkout.store.clone(),
            channels: checkout.channels.clone(),
            clock: checkout.clock.clone(),
            public_url: checkout.public_url.clone(),
        }
    }

    /// Records the refund (with `audit`, by its actor) and asks the channel. The
    /// record comes back as the channel's answer left it: `requested` when the outcome
    /// is unknown (the sweep queries it), `failed` when the channel refused.
    pub async fn request(
        &self,
        out_trade_no: &str,
        ask: &RefundAsk,
        audit: AuditEntry,
    ) -> Result<RefundRecord, RefundError> {
        let order = self
            .store
            .find_order(out_trade_no)
            .await?
            .ok_or(RefundError::UnknownOrder)?;
        let channel = self.channel_of(&order)?;
        let new = NewRefund {
            out_trade_no,
            scope: ask.scope,
            effect: ask.effect,
            reason: &ask.reason,
            expected_left_fen: ask.expected_left_fen,
            requested_by: &audit.actor,
            now: self.clock.now(),
        };
        let refund = match self.store.create_refund(&new, &audit).await? {
            CreateRefund::Created(refund) => *refund,
            CreateRefund::UnknownOrder => return Err(RefundError::UnknownOrder),
            CreateRefund::NotPaid => return Err(RefundError::NotPaid),
            CreateRefund::NotAnItemOfTheOrder => return Err(RefundError::NotAnItemOfTheOrder),
            CreateRefund::TooMuch { left_fen } => return Err(RefundError::TooMuch { left_fen }),
            CreateRefund::Refused(why) => return Err(RefundError::Refused(why)),
            CreateRefund::Changed { left_fen } => return Err(RefundError::Changed { left_fen }),
        };
        tracing::info!(out_refund_no = %refund.out_refund_no, out_trade_no, "refund requested");
        self.send(channel.as_ref(), &order, &refund).await
    }

    /// Asks the channel where a refund stands and applies the answer. A refund the
    /// channel never received is asked for again, with the same number.
    pub async fn refresh(&self, refund: &RefundRecord) -> Result<RefundRecord, RefundError> {
        if refund.is_final() {
            return Ok(refund.clone());
        }
        let order = self
            .store
            .find_order_by_id(refund.order_id)
            .await?
            .ok_or(RefundError::UnknownOrder)?;
        let channel = self.channel_of(&order)?;
        let now = self.clock.now();
        match channel
            .query_refund(&order.out_trade_no, &refund.out_refund_no)
            .await
        {
            Ok(RefundState::NotFound) if refund.channel_refund_no.is_none() => {
                // Our request never reached it: the same refund, the same number.
                self.send(channel.as_ref(), &order, refund).await
            }
            Ok(state) => Ok(self.apply(&refund.out_refund_no, &state).await?.0),
            Err(error) => {
                tracing::warn!(out_refund_no = %refund.out_refund_no, %error, "refund query gave no answer");
                self.store.mark_refund_queried(refund.id, now).await?;
                Ok(refund.clone())
            }
        }
    }

    /// Applies what a channel said (an answer, a query, a notification). Returns the
    /// refund as it now stands and whether this news changed it.
    pub async fn apply(
        &self,
        out_refund_no: &str,
        state: &RefundState,
    ) -> Result<(RefundRecord, bool), RefundError> {
        let now = self.clock.now();
        let news = match state {
            RefundState::Processing { channel_refund_no } => RefundNews::Processing {
                channel_refund_no: channel_refund_no.clone(),
            },
            RefundState::Succeeded {
                channel_refund_no,
                succeeded_at,
            } => RefundNews::Succeeded {
                channel_refund_no: channel_refund_no.clone(),
                at: *succeeded_at,
            },
            RefundState::Failed { reason } => RefundNews::Failed {
                reason: reason.clone(),
            },
            RefundState::NotFound => {
                let refund = self
                    .store
                    .find_refund(out_refund_no)
                    .await?
                    .ok_or(RefundError::UnknownOrder)?;
                self.store.mark_refund_queried(refund.id, now).await?;
                return Ok((refund, false));
            }
        };
        let (refund, changed) = self
            .store
            .apply_refund_news(out_refund_no, &news, now)
            .await?
            .ok_or(RefundError::UnknownOrder)?;
        if !changed {
            self.store.mark_refund_queried(refund.id, now).await?;
        } else if refund.is_final() {
            tracing::info!(out_refund_no, status = ?refund.status, "refund finished");
        }
        Ok((refund, changed))
    }

    /// Queries the refunds that are not final and went quiet.
    pub async fn sweep(&self, limit: u64) -> Result<RefundSweep, RefundError> {
        let due = self
            .store
            .refunds_to_query(self.clock.now(), QUIET_FOR, limit)
            .await?;
        let mut report = RefundSweep::default();
        for refund in due {
            report.queried += 1;
            match self.refresh(&refund).await {
                Ok(now) if now.is_final() => report.finished += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(out_refund_no = %refund.out_refund_no, %error, "cannot refresh a refund");
                }
            }
        }
        Ok(report)
    }

    /// One call to the channel with the refund's own number, and its answer applied.
    async fn send(
        &self,
        channel: &dyn Channel,
        order: &OrderRecord,
        refund: &RefundRecord,
    ) -> Result<RefundRecord, RefundError> {
        let notify_url = self.notify_url(order.channel);
        let request = RefundRequest {
            out_trade_no: &order.out_trade_no,
            out_refund_no: &refund.out_refund_no,
            total_fen: order.amount_fen,
            refund_fen: refund.amount_fen,
            reason: &refund.reason,
            notify_url: &notify_url,
        };
        match channel.refund(&request).await {
            Ok(state) => Ok(self.apply(&refund.out_refund_no, &state).await?.0),
            Err(ChannelError::OutcomeUnknown(why)) => {
                tracing::warn!(out_refund_no = %refund.out_refund_no, why, "refund outcome unknown; it will be queried");
                Ok(refund.clone())
            }
            Err(
                ChannelError::Refused { code, message }
                | ChannelError::AlreadyPaid { code, message },
            ) => {
                let failed = RefundState::Failed {
                    reason: format!("{code}: {message}"),
                };
                Ok(self.apply(&refund.out_refund_no, &failed).await?.0)
            }
            Err(unsupported @ ChannelError::Unsupported(_)) => {
                // Worded as the refusal was before it was typed: stored reasons stay alike.
                let failed = RefundState::Failed {
                    reason: format!("UNSUPPORTED: {unsupported}"),
                };
                Ok(self.apply(&refund.out_refund_no, &failed).await?.0)
            }
        }
    }

    fn channel_of(&self, order: &OrderRecord) -> Result<std::sync::Arc<dyn Channel>, RefundError> {
        self.channels
            .for_kind(order.channel)
            .ok_or(RefundError::ChannelNotConfigured(order.channel))
    }

    /// WeChat Pay notifies refunds; the other channels are queried.
    fn notify_url(&self, kind: PaymentChannel) -> String {
        match kind {
            PaymentChannel::WechatJsapi | PaymentChannel::WechatNative => format!(
                "{}/pay/notify/wechat/refund",
                self.public_url.trim_end_matches('/')
            ),
            _ => String::new(),
        }
    }
}

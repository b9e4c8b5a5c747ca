//! From ticked items to a paid order: takes the items into an order, asks the channel
//! to collect, believes only verified reports, and closes what expired. The web pages,
//! the notification handler and the jobs all go through here, so every path applies a
//! payment the same idempotent way.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt as _;

use super::{Channel, ChannelError, ChannelPayment, ChannelState, Closed, Prepaid, PrepayOrder};
use crate::clock::Clock;
use crate::domain::order::{OutTradeNo, expiry, order_description};
use crate::domain::provider::Provider;
use crate::store::{
    ApplyOutcome, NewOrder, NotificationChannel, OrderRecord, OrderStatus, PaymentChannel,
    PaymentReport, Store, StoreError, TakeOutcome,
};

/// Closing orders in the way of a new one is retried this often before giving up.
const TAKE_ATTEMPTS: usize = 3;
/// A page asking "paid yet?" queries the channel at most this often per order.
const QUERY_INTERVAL: Duration = Duration::from_secs(5);
/// An order on a channel that cannot close it (the bank) stays payable there until
/// its own timeout, which is our expiry; the items stay held this much longer, for
/// the difference between the bank's clock and ours.
pub const CHANNEL_TIMEOUT_MARGIN: Duration = Duration::from_secs(60);

/// The channels configured, by what they serve.
#[derive(Clone, Default)]
pub struct Channels {
    pub wechat: Option<Arc<dyn Channel>>,
    pub alipay: Option<Arc<dyn Channel>>,
    pub abc: Option<Arc<dyn Channel>>,
}

impl Channels {
    pub fn for_kind(&self, kind: PaymentChannel) -> Option<Arc<dyn Channel>> {
        self.for_provider(kind.provider())
    }

    pub fn for_provider(&self, provider: Provider) -> Option<Arc<dyn Channel>> {
        match provider {
            Provider::WechatPay => self.wechat.clone(),
            Provider::Alipay => self.alipay.clone(),
            Provider::Abc => self.abc.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Checkout {
    pub store: Store,
    pub channels: Channels,
    pub clock: Clock,
    pub school_name: String,
    pub order_ttl: Duration,
    /// The public URL, to which `/pay/notify/<provider>` is appended.
    pub public_url: String,
}

/// What starting a payment came to.
#[derive(Debug)]
pub enum Started {
    /// Pay with this.
    Ready {
        order: Box<OrderRecord>,
        prepaid: Prepaid,
    },
    /// The items are no longer payable (paid meanwhile, not the student's…).
    Unavailable,
    /// The items were just found paid (a payment in flight completed).
    AlreadyPaid,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the channel {0:?} is not configured")]
    ChannelNotConfigured(PaymentChannel),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("orders holding the items could not be closed at the channel")]
    StillHeld,
    /// A payment report for an order number we never made.
    #[error("no order of ours has that number")]
    UnknownOrder,
    /// A verified notification from one provider about an order on another's channel.
    #[error("the order is on another provider's channel")]
    OtherProvider,
    /// The items are held by an order that its channel cannot close (the bank's page
    /// stays payable) until `until`; no other order may take them before then.
    #[error("the order {} holds the items until {until}", order.out_trade_no)]
    HeldByChannel {
        order: Box<OrderRecord>,
        until: DateTime<Utc>,
    },
}

/// What the store made of a channel's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Paid(OrderRecord),
    /// Still open at the channel.
    Open(OrderRecord),
    /// Closed (expired or replaced) and not paid.
    Closed(OrderRecord),
    /// The channel reported something the office must look at.
    Exception(OrderRecord),
}

impl Checkout {
    /// Takes the student's items into an order on `kind` and asks the channel to
    /// collect. Asking again for the same items gets the same order. `request_id` (the
    /// page request's `X-Request-Id`) is kept on a new order for the logs.
    pub async fn start(
        &self,
        student_id: i64,
        item_ids: &[i64],
        kind: PaymentChannel,
        payer_openid: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Started, CheckoutError> {
        let channel = self
            .channels
            .for_kind(kind)
            .ok_or(CheckoutError::ChannelNotConfigured(kind))?;
        let description = self.description_for(student_id, item_ids).await?;
        for _ in 0..TAKE_ATTEMPTS {
            let now = self.clock.now();
            let number = new_out_trade_no(now);
            let outcome = self
                .store
                .take_items_into_order(&NewOrder {
                    out_trade_no: number.as_str(),
                    student_id,
                    channel: kind,
                    item_ids,
                    payer_openid,
                    description: &description,
                    now,
                    expires_at: expiry(now, self.order_ttl),
                    request_id,
                })
                .await?;
            match outcome {
                TakeOutcome::Created(order) => {
                    return self.prepay(channel.as_ref(), order, true).await;
                }
                TakeOutcome::Existing(order) => {
                    return self.prepay(channel.as_ref(), order, false).await;
                }
                TakeOutcome::Unavailable => return Ok(Started::Unavailable),
                TakeOutcome::Blocked(orders) => {
                    for order in orders {
                        if let Settled::Paid(_) = self.close(&order).await? {
                            return Ok(Started::AlreadyPaid);
                        }
                    }
                }
            }
        }
        Err(CheckoutError::StillHeld)
    }

    /// Where the channel of `kind` sends its notifications.
    fn notify_url(&self, kind: PaymentChannel) -> String {
        format!(
            "{}{}",
            self.public_url.trim_end_matches('/'),
            kind.provider().notify_path()
        )
    }

    async fn description_for(
        &self,
        student_id: i64,
        item_ids: &[i64],
    ) -> Result<String, StoreError> {
        let items = self.store.fee_items_of(student_id).await?;
        let chosen: Vec<(&str, &str)> = items
            .iter()
            .filter(|item| item_ids.contains(&item.id))
            .map(|item| (item.academic_year.as_str(), item.item.as_str()))
            .collect();
        Ok(order_description(&self.school_name, &chosen))
    }

    /// Asks the channel for the means to pay. A new order the channel refused is
    /// released at once; one whose outcome is unknown stays open for the query job.
    async fn prepay(
        &self,
        channel: &dyn Channel,
        order: OrderRecord,
        new: bool,
    ) -> Result<Started, CheckoutError> {
        let request = PrepayOrder {
            kind: order.channel,
            out_trade_no: &order.out_trade_no,
            description: &order.description,
            amount_fen: order.amount_fen,
            expires_at: order.expires_at,
            notify_url: &self.notify_url(order.channel),
            payer_openid: order.payer_openid.as_deref(),
        };
        match channel.prepay(&request).await {
            Ok(prepaid) => Ok(Started::Ready {
                order: Box::new(order),
                prepaid,
            }),
            Err(
                refused @ (ChannelError::Refused { .. }
                | ChannelError::AlreadyPaid { .. }
                | ChannelError::Unsupported(_)),
            ) if new => {
                tracing::warn!(out_trade_no = %order.out_trade_no, error = %refused, "prepay refused; releasing the order");
                self.store.release_order(order.id, self.clock.now()).await?;
                Err(refused.into())
            }
            Err(ChannelError::AlreadyPaid { .. }) => match self.refresh_now(&order).await? {
                Settled::Paid(_) => Ok(Started::AlreadyPaid),
                _ => Err(CheckoutError::StillHeld),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Where an order stands, asking the channel when no notification has settled it
    /// (at most every few seconds per order, however often the page asks).
    pub async fn refresh(&self, order: &OrderRecord) -> Result<Settled, CheckoutError> {
        if order.status != OrderStatus::Created {
            return Ok(settled_from_record(order.clone()));
        }
        let recently =
            self.clock.now() - chrono::Duration::from_std(QUERY_INTERVAL).unwrap_or_default();
        if order.created_at > recently {
            return Ok(Settled::Open(order.clone()));
        }
        // Judged from the order in hand: the waiting pages poll this every two seconds.
        let asked_recently = order.last_queried_at.is_some_and(|asked| asked > recently);
        if asked_recently {
            return Ok(Settled::Open(order.clone()));
        }
        self.refresh_now(order).await
    }

    /// Queries the channel now and applies what it vouches for.
    pub async fn refresh_now(&self, order: &OrderRecord) -> Result<Settled, CheckoutError> {
        let channel = self
            .channels
            .for_kind(order.channel)
            .ok_or(CheckoutError::ChannelNotConfigured(order.channel))?;
        self.store
            .mark_order_queried(order.id, self.clock.now())
            .await?;
        match channel.query(&order.out_trade_no).await? {
            ChannelState::Paid(payment) => Ok(self.apply(&order.out_trade_no, &payment).await?.0),
            ChannelState::Unpaid | ChannelState::NotFound => Ok(Settled::Open(order.clone())),
            ChannelState::Closed => Ok(Settled::Open(order.clone())),
            ChannelState::Other(state) => {
                tracing::warn!(out_trade_no = %order.out_trade_no, %state, "order in an unexpected state at the channel");
                Ok(Settled::Open(order.clone()))
            }
        }
    }

    /// Applies a payment from a verified notification of `provider`: only to an order
    /// on that provider's channel (a genuine signature of one provider says nothing
    /// about another's orders).
    pub async fn apply_notified(
        &self,
        provider: NotificationChannel,
        out_trade_no: &str,
        payment: &ChannelPayment,
    ) -> Result<(Settled, bool), CheckoutError> {
        let order = self
            .store
            .find_order(out_trade_no)
            .await?
            .ok_or(CheckoutError::UnknownOrder)?;
        if provider_of(order.channel) != provider {
            tracing::warn!(out_trade_no, ?provider, channel = ?order.channel, "a notification about another provider's order");
            return Err(CheckoutError::OtherProvider);
        }
        self.apply(out_trade_no, payment).await
    }

    /// Applies a payment the channel vouched for (a verified notification or query).
    /// The flag says whether this call was the one that applied it (false for the
    /// copies that found it done).
    pub async fn apply(
        &self,
        out_trade_no: &str,
        payment: &ChannelPayment,
    ) -> Result<(Settled, bool), CheckoutError> {
        let report = PaymentReport {
            out_trade_no,
            channel_trade_no: &payment.channel_trade_no,
            amount_fen: payment.amount_fen,
            paid_at: payment.paid_at,
            payer_openid: payment.payer_openid.as_deref(),
        };
        let outcome = self.store.apply_payment(&report, self.clock.now()).await?;
        let ApplyOutcome::PaidWhileHeld {
            holders, repeated, ..
        } = outcome
        else {
            return settled_of(outcome, out_trade_no);
        };
        // Money came for a closed order whose items another, unpaid order holds: close
        // that one at its channel, then judge again. Its items are then free (and
        // settled by this payment), or it turns out paid (and this one is a true
        // duplicate, flagged for a refund).
        for holder in holders {
            // Boxed: closing may find the holder paid and apply that payment in turn.
            if let Err(error) = Box::pin(self.close(&holder)).await {
                tracing::warn!(out_trade_no = %holder.out_trade_no, %error, "cannot close the order holding a late payment's items; left to the office");
            }
        }
        // Releasing a holder may already have settled this payment (it was waiting on
        // that order); either way this report is what brought it in, unless it was a
        // copy of one already recorded.
        let again = self.store.apply_payment(&report, self.clock.now()).await?;
        settled_of(again, out_trade_no).map(|(settled, _)| (settled, !repeated))
    }

    /// Closes an open order at its channel, then releases its items; an order found
    /// paid while closing is applied instead. An order on a channel that cannot close
    /// it (the bank) is closed only once its own timeout has passed there (and a query
    /// says unpaid): until then its page can still be paid, so the items stay held.
    pub async fn close(&self, order: &OrderRecord) -> Result<Settled, CheckoutError> {
        let channel = self
            .channels
            .for_kind(order.channel)
            .ok_or(CheckoutError::ChannelNotConfigured(order.channel))?;
        if !channel.closes_unpaid_orders() {
            let until = held_until(order);
            if self.clock.now() < until {
                return Err(CheckoutError::HeldByChannel {
                    order: Box::new(order.clone()),
                    until,
                });
            }
        }
        match channel.close(&order.out_trade_no).await? {
            Closed::Closed => {
                if self.store.release_order(order.id, self.clock.now()).await? {
                    self.settle_waiting_payments(order).await;
                }
                let current = self.store.find_order(&order.out_trade_no).await?;
                Ok(current.map_or(Settled::Closed(order.clone()), settled_from_record))
            }
            Closed::AlreadyPaid => match channel.query(&order.out_trade_no).await? {
                ChannelState::Paid(payment) => {
                    Ok(self.apply(&order.out_trade_no, &payment).await?.0)
                }
                _ => Err(ChannelError::OutcomeUnknown(
                    "closing said paid, querying did not".into(),
                )
                .into()),
            },
        }
    }

    /// Payments that came for closed orders while `released` held their items wait on
    /// the office; now that the items are free they settle them, before the student
    /// is asked to pay again. A failure is logged: the payment stays flagged.
    async fn settle_waiting_payments(&self, released: &OrderRecord) {
        let waiting = match self.store.late_payments_waiting_on(released.id).await {
            Ok(waiting) => waiting,
            Err(error) => {
                tracing::error!(out_trade_no = %released.out_trade_no, %error, "cannot look for payments waiting on a released order");
                return;
            }
        };
        for late in waiting {
            let (Some(channel_trade_no), Some(paid_at)) = (late.channel_trade_no, late.paid_at)
            else {
                continue;
            };
            let payment = ChannelPayment {
                channel_trade_no,
                amount_fen: late.amount_fen,
                paid_at,
                payer_openid: None,
            };
            // Boxed: applying may close other orders in turn.
            match Box::pin(self.apply(&late.out_trade_no, &payment)).await {
                Ok((Settled::Paid(_), _)) => {
                    tracing::info!(out_trade_no = %late.out_trade_no, "a waiting late payment settled its items");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(out_trade_no = %late.out_trade_no, %error, "a waiting late payment could not be applied; left to the office");
                }
            }
        }
    }

    /// One pass of the order job: closes what expired, queries what went quiet.
    /// Returns how many orders it settled.
    pub async fn sweep(&self, quiet_for: Duration, batch: u64) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for order in self.store.expired_open_orders(now, batch).await? {
            match self.close(&order).await {
                Ok(Settled::Paid(_)) => report.found_paid += 1,
                Ok(_) => report.closed += 1,
                // The bank's page is payable a little longer: a later pass closes it.
                Err(CheckoutError::HeldByChannel { .. }) => {}
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(out_trade_no = %order.out_trade_no, %error, "closing an expired order failed; next pass retries");
                }
            }
        }
        let quiet = now - chrono::Duration::from_std(quiet_for).unwrap_or_default();
        for order in self.store.open_orders_to_query(quiet, quiet, batch).await? {
            match self.refresh_now(&order).await {
                Ok(Settled::Paid(_)) => report.found_paid += 1,
                Ok(_) => {}
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(out_trade_no = %order.out_trade_no, %error, "querying an order failed; next pass retries");
                }
            }
        }
        Ok(report)
    }
}

impl Settled {
    /// The order, whatever became of it.
    pub fn order(&self) -> &OrderRecord {
        match self {
            Settled::Paid(order)
            | Settled::Open(order)
            | Settled::Closed(order)
            | Settled::Exception(order) => order,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub closed: usize,
    pub found_paid: usize,
    pub failed: usize,
}

/// What the store's verdict on a payment report means for the caller; the flag says
/// whether this report changed anything.
fn settled_of(outcome: ApplyOutcome, out_trade_no: &str) -> Result<(Settled, bool), CheckoutError> {
    Ok(match outcome {
        ApplyOutcome::Applied(order) => (Settled::Paid(order), true),
        ApplyOutcome::AlreadyApplied(order) => (Settled::Paid(order), false),
        ApplyOutcome::PaidAfterClose {
            order,
            settled: true,
            repeated,
        } => (Settled::Paid(order), !repeated),
        ApplyOutcome::PaidAfterClose {
            order,
            settled: false,
            repeated,
        }
        | ApplyOutcome::Conflicting { order, repeated } => {
            if !repeated {
                tracing::error!(out_trade_no, exception = ?order.exception, "payment needs the finance office");
            }
            (Settled::Exception(order), !repeated)
        }
        ApplyOutcome::AmountMismatch(order) => {
            tracing::error!(out_trade_no, exception = ?order.exception, "payment needs the finance office");
            (Settled::Exception(order), true)
        }
        ApplyOutcome::PaidWhileHeld {
            order, repeated, ..
        } => {
            if !repeated {
                tracing::error!(out_trade_no, exception = ?order.exception, "payment for items another order still holds; needs the finance office");
            }
            (Settled::Exception(order), !repeated)
        }
        ApplyOutcome::UnknownOrder => return Err(CheckoutError::UnknownOrder),
    })
}

/// Until when an order on a channel that cannot close it keeps its items: its timeout
/// at the channel (our expiry, sent as the bank's `orderTimeoutDate`) and a margin.
pub fn held_until(order: &OrderRecord) -> DateTime<Utc> {
    order.expires_at + chrono::Duration::from_std(CHANNEL_TIMEOUT_MARGIN).unwrap_or_default()
}

/// The provider whose notifications speak for orders on `kind`.
pub fn provider_of(kind: PaymentChannel) -> NotificationChannel {
    match kind {
        PaymentChannel::WechatJsapi | PaymentChannel::WechatNative => NotificationChannel::Wechat,
        PaymentChannel::Alipay => NotificationChannel::Alipay,
        PaymentChannel::AbcPage | PaymentChannel::AbcScan => NotificationChannel::Abc,
    }
}

fn settled_from_record(order: OrderRecord) -> Settled {
    match order.status {
        OrderStatus::Paid => Settled::Paid(order),
        OrderStatus::Created => Settled::Open(order),
        OrderStatus::Closed | OrderStatus::Refunded if order.exception.is_some() => {
            Settled::Exception(order)
        }
        OrderStatus::Closed | OrderStatus::Refunded => Settled::Closed(order),
    }
}

fn new_out_trade_no(now: DateTime<Utc>) -> OutTradeNo {
    OutTradeNo::generate(now, &rand::rng().random())
}

//! The sandbox's state: the trades, the recorded calls, the pending notifications,
//! and Alipay's refusals.

use super::*;

// ---- state ------------------------------------------------------------------------

pub(super) struct Shared {
    pub(super) base_url: Url,
    pub(super) app_id: String,
    pub(super) clock: Clock,
    pub(super) http: reqwest::Client,
    pub(super) state: Mutex<GatewayState>,
    /// Notifications sent in the background (cashier, retries); aborted on drop.
    pub(super) background: Mutex<JoinSet<()>>,
}

pub(super) struct GatewayState {
    pub(super) orders: HashMap<String, Order>,
    pub(super) creation_order: Vec<String>,
    /// qr_code → out_trade_no.
    pub(super) qr_codes: HashMap<String, String>,
    /// trade_no → out_trade_no.
    pub(super) trade_nos: HashMap<String, String>,
    pub(super) calls: Vec<RecordedCall>,
    pub(super) injected_failures: HashMap<String, VecDeque<(String, String)>>,
    pub(super) hangs: HashMap<String, VecDeque<Duration>>,
    pub(super) response_tampers: HashMap<String, VecDeque<AlipayResponseTamper>>,
    pub(super) notification_answers: Vec<(String, u16, String)>,
    pub(super) notification_copies: usize,
    pub(super) retry_schedule: Vec<Duration>,
    /// Notifications not acknowledged yet, each with its next time.
    pub(super) pending_retries: Vec<PendingRetry>,
    /// token → (bill day, link issued at).
    pub(super) bill_links: HashMap<String, (NaiveDate, DateTime<Utc>)>,
    pub(super) bill_tampers: Vec<AlipayBillTamper>,
    /// A close answered `ACQ.TRADE_NOT_EXIST` also kills the code (reported, not
    /// documented: see the module's comment).
    pub(super) lock_codes_closed_before_scan: bool,
}

impl Default for GatewayState {
    fn default() -> Self {
        Self {
            orders: HashMap::new(),
            creation_order: Vec::new(),
            qr_codes: HashMap::new(),
            trade_nos: HashMap::new(),
            calls: Vec::new(),
            injected_failures: HashMap::new(),
            hangs: HashMap::new(),
            response_tampers: HashMap::new(),
            notification_answers: Vec::new(),
            notification_copies: 1,
            retry_schedule: NOTIFICATION_RETRIES.to_vec(),
            pending_retries: Vec::new(),
            bill_links: HashMap::new(),
            bill_tampers: Vec::new(),
            lock_codes_closed_before_scan: false,
        }
    }
}

/// A notification to send again at `due` (sandbox clock), then after each pause left.
pub(super) struct PendingRetry {
    pub(super) trade: AlipaySandboxTrade,
    pub(super) url: String,
    pub(super) due: DateTime<Utc>,
    pub(super) remaining: VecDeque<Duration>,
}

pub(super) struct Order {
    pub(super) trade: AlipaySandboxTrade,
    /// What the first precreate asked for: a repeat must ask for exactly this.
    pub(super) params: PrecreateParams,
    pub(super) refunds: Vec<AlipaySandboxRefund>,
}

impl Order {
    /// Expiry closes: an unscanned code after `scan_before`, a waiting trade after
    /// `pay_before`.
    pub(super) fn settle(&mut self, now: DateTime<Utc>) {
        let trade = &mut self.trade;
        let deadline = match trade.status {
            SandboxTradeStatus::NotScanned => trade.scan_before,
            SandboxTradeStatus::WaitBuyerPay => trade.pay_before,
            _ => return,
        };
        if now >= deadline {
            trade.status = SandboxTradeStatus::TradeClosed;
            trade.closed_at = Some(deadline);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PrecreateParams {
    pub(super) total_amount: String,
    pub(super) subject: String,
    pub(super) body: Option<String>,
    pub(super) product_code: Option<String>,
    pub(super) time_expire: Option<String>,
    pub(super) timeout_express: Option<String>,
    pub(super) notify_url: Option<String>,
}

/// A refusal: `code`, `sub_code`, `sub_msg`.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) code: &'static str,
    pub(super) sub_code: String,
    pub(super) sub_msg: String,
}

impl Refusal {
    pub(super) fn new(code: &'static str, sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self {
            code,
            sub_code: sub_code.to_owned(),
            sub_msg: sub_msg.into(),
        }
    }

    pub(super) fn missing(sub_code: &str, sub_msg: &str) -> Self {
        Self::new(codes::MISSING_ARGUMENTS, sub_code, sub_msg)
    }

    pub(super) fn invalid(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ARGUMENTS, sub_code, sub_msg)
    }

    pub(super) fn business(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new(codes::BUSINESS_FAILED, sub_code, sub_msg)
    }

    pub(super) fn parameter(sub_msg: impl Into<String>) -> Self {
        Self::business(sub_codes::ACQ_INVALID_PARAMETER, sub_msg)
    }

    pub(super) fn msg(&self) -> &'static str {
        match self.code {
            codes::UNAVAILABLE => "Service Currently Unavailable",
            codes::MISSING_ARGUMENTS => "Missing Required Arguments",
            codes::INVALID_ARGUMENTS => "Invalid Arguments",
            _ => "Business Failed",
        }
    }

    pub(super) fn content(&self) -> String {
        alipay_json(&[
            ("code", json!(self.code)),
            ("msg", json!(self.msg())),
            ("sub_code", json!(self.sub_code)),
            ("sub_msg", json!(self.sub_msg)),
        ])
    }
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, GatewayState> {
        kit::lock(&self.state)
    }

    pub(super) fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        kit::spawn_background(&self.background, task);
    }

    pub(super) fn scan(&self, out_trade_no: &str) -> Result<AlipaySandboxTrade, AlipayPayError> {
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        order.settle(now);
        let trade = &mut order.trade;
        match trade.status {
            SandboxTradeStatus::NotScanned => {
                let trade_no = new_trade_no(now);
                trade.status = SandboxTradeStatus::WaitBuyerPay;
                trade.trade_no = Some(trade_no.clone());
                trade.scanned_at = Some(now);
                state.trade_nos.insert(trade_no, out_trade_no.to_owned());
                Ok(trade.clone())
            }
            SandboxTradeStatus::WaitBuyerPay => Ok(trade.clone()),
            SandboxTradeStatus::TradeSuccess => {
                Err(AlipayPayError::AlreadyPaid(out_trade_no.to_owned()))
            }
            SandboxTradeStatus::TradeClosed => Err(closed_or_expired(trade)),
        }
    }

    pub(super) fn mark_paid(&self, out_trade_no: &str) -> Result<AlipayPaid, AlipayPayError> {
        self.scan(out_trade_no)?;
        let now = self.clock.now();
        let mut state = self.state();
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        order.settle(now);
        let trade = &mut order.trade;
        if trade.status != SandboxTradeStatus::WaitBuyerPay {
            return Err(closed_or_expired(trade));
        }
        trade.status = SandboxTradeStatus::TradeSuccess;
        trade.paid_at = Some(now);
        trade.buyer_id = Some(BUYER_ID.to_owned());
        trade.notify_id = Some(format!(
            "{}0022{}",
            now.with_timezone(&china()).format("%Y%m%d"),
            random_string(DIGITS, 22)
        ));
        Ok(AlipayPaid {
            out_trade_no: out_trade_no.to_owned(),
            trade_no: trade.trade_no.clone().unwrap_or_default(),
            total_amount: trade.total_amount.clone(),
            gmt_payment: now,
            notification_answers: Vec::new(),
        })
    }

    /// The order as its payment's notification describes it; for an unpaid order, as
    /// the payment would be, without paying it.
    pub(super) fn trade_as_paid(
        &self,
        out_trade_no: &str,
    ) -> Result<AlipaySandboxTrade, AlipayPayError> {
        let now = self.clock.now();
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        let mut trade = order.trade.clone();
        if trade.status != SandboxTradeStatus::TradeSuccess {
            trade.trade_no = Some(trade.trade_no.clone().unwrap_or_else(|| new_trade_no(now)));
            trade.scanned_at.get_or_insert(now);
            trade.paid_at = Some(now);
            trade.buyer_id = Some(BUYER_ID.to_owned());
            trade.notify_id = Some(format!(
                "{}0022{}",
                now.with_timezone(&china()).format("%Y%m%d"),
                random_string(DIGITS, 22)
            ));
        }
        Ok(trade)
    }

    /// A paid order's notification parameters (unsigned) and where to send them.
    pub(super) fn outgoing_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<(Option<String>, AlipaySandboxTrade), AlipayPayError> {
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.trade.status != SandboxTradeStatus::TradeSuccess {
            return Err(AlipayPayError::NotPaid(out_trade_no.to_owned()));
        }
        Ok((order.trade.notify_url.clone(), order.trade.clone()))
    }

    pub(super) fn record_answers(&self, out_trade_no: &str, answers: &[(u16, String)]) {
        let mut state = self.state();
        for (status, body) in answers {
            let entry = (out_trade_no.to_owned(), *status, body.clone());
            state.notification_answers.push(entry);
        }
    }
}

pub(super) fn closed_or_expired(trade: &AlipaySandboxTrade) -> AlipayPayError {
    match trade.closed_at {
        Some(at) if at == trade.pay_before || at == trade.scan_before => {
            AlipayPayError::Expired(trade.out_trade_no.clone(), at)
        }
        _ => AlipayPayError::Closed(trade.out_trade_no.clone()),
    }
}

//! The sandbox's state: the orders, the recorded calls, the pending notifications,
//! and the signed, encrypted notifications built from them.

use super::*;

// ---- state ------------------------------------------------------------------------

pub(super) struct Shared {
    pub(super) merchant: SandboxMerchant,
    pub(super) clock: Clock,
    pub(super) http: reqwest::Client,
    pub(super) state: Mutex<PayState>,
    /// Notifications sent in the background (cashier, retries); aborted on drop.
    pub(super) background: Mutex<JoinSet<()>>,
    pub(super) bills: bills::Bills,
    pub(super) refunds: refunds::Refunds,
}

pub(super) struct PayState {
    pub(super) orders: HashMap<String, Order>,
    pub(super) creation_order: Vec<String>,
    /// prepay_id or code_url → out_trade_no.
    pub(super) handles: HashMap<String, String>,
    /// transaction_id → out_trade_no.
    pub(super) transaction_ids: HashMap<String, String>,
    /// Nonces seen in verified requests, with their timestamps.
    pub(super) nonces: HashMap<String, i64>,
    pub(super) calls: Vec<RecordedCall>,
    pub(super) injected_failures: HashMap<String, VecDeque<(u16, String)>>,
    pub(super) hangs: HashMap<String, VecDeque<Duration>>,
    /// Requests being held by [`WechatPaySandbox::hang_next`] right now.
    pub(super) held: usize,
    pub(super) response_tampers: HashMap<String, VecDeque<ResponseTamper>>,
    pub(super) notification_answers: Vec<(String, u16, String)>,
    pub(super) notification_copies: usize,
    pub(super) notification_delay: Duration,
    pub(super) retry_schedule: Vec<Duration>,
    /// Notifications not acknowledged yet, each with its next time.
    pub(super) pending_retries: Vec<PendingRetry>,
    pub(super) payee_name: String,
}

impl Default for PayState {
    fn default() -> Self {
        Self {
            orders: HashMap::new(),
            creation_order: Vec::new(),
            handles: HashMap::new(),
            transaction_ids: HashMap::new(),
            nonces: HashMap::new(),
            calls: Vec::new(),
            injected_failures: HashMap::new(),
            hangs: HashMap::new(),
            held: 0,
            response_tampers: HashMap::new(),
            notification_answers: Vec::new(),
            notification_copies: 1,
            notification_delay: Duration::ZERO,
            retry_schedule: NOTIFICATION_RETRIES.to_vec(),
            pending_retries: Vec::new(),
            payee_name: "沙箱商户".to_owned(),
        }
    }
}

impl PayState {
    /// The first queued item for the route template or the concrete path.
    pub(super) fn pop_for<T>(
        queues: &mut HashMap<String, VecDeque<T>>,
        route: &str,
        path: &str,
    ) -> Option<T> {
        for key in [path, route] {
            if let Some(item) = queues.get_mut(key).and_then(VecDeque::pop_front) {
                return Some(item);
            }
        }
        None
    }
}

pub(super) struct Order {
    pub(super) tx: SandboxTransaction,
    /// What the first prepay asked for: a repeat must ask for exactly this.
    pub(super) params: PrepayParams,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PrepayParams {
    pub(super) trade_type: TradeType,
    pub(super) appid: String,
    pub(super) mchid: String,
    pub(super) description: String,
    pub(super) out_trade_no: String,
    pub(super) time_expire: Option<String>,
    pub(super) attach: Option<String>,
    pub(super) notify_url: String,
    pub(super) total: i64,
    pub(super) openid: Option<String>,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, PayState> {
        kit::lock(&self.state)
    }

    pub(super) fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        kit::spawn_background(&self.background, task);
    }

    /// The transaction as the query API shows it.
    pub(super) fn transaction_json(tx: &SandboxTransaction) -> Value {
        let mut value = json!({
            "appid": tx.appid,
            "mchid": tx.mchid,
            "out_trade_no": tx.out_trade_no,
            "trade_state": tx.trade_state.as_str(),
            "trade_state_desc": tx.trade_state.description(),
        });
        if tx.trade_state == TradeState::Success {
            value["transaction_id"] = json!(tx.transaction_id);
            value["trade_type"] = json!(tx.trade_type.as_str());
            value["bank_type"] = json!("OTHERS");
            value["success_time"] = json!(tx.success_time.as_ref().map(format_time));
            value["payer"] = json!({ "openid": tx.openid });
            value["amount"] = json!({
                "total": tx.total,
                "payer_total": tx.total,
                "currency": "CNY",
                "payer_currency": "CNY",
            });
            if let Some(attach) = &tx.attach {
                value["attach"] = json!(attach);
            }
        } else {
            // Unpaid orders come back thin: no trade_type, payer, currency.
            value["amount"] = json!({ "total": tx.total, "payer_currency": "CNY" });
        }
        value
    }

    pub(super) fn mark_paid(&self, out_trade_no: &str) -> Result<PaidTransaction, PayError> {
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        match order.tx.trade_state {
            TradeState::Success => return Err(PayError::AlreadyPaid(out_trade_no.to_owned())),
            TradeState::Closed => return Err(PayError::Closed(out_trade_no.to_owned())),
            TradeState::NotPay if now >= order.tx.pay_before => {
                return Err(PayError::Expired(
                    out_trade_no.to_owned(),
                    order.tx.pay_before,
                ));
            }
            TradeState::NotPay => {}
        }
        let transaction_id = new_transaction_id(now);
        let success_time = wechat_time(now);
        let tx = &mut order.tx;
        tx.trade_state = TradeState::Success;
        tx.transaction_id = Some(transaction_id.clone());
        tx.success_time = Some(success_time);
        if tx.openid.is_none() {
            tx.openid = Some(NATIVE_PAYER_OPENID.to_owned());
        }
        tx.notification_id = Some(uuid::Uuid::new_v4().to_string());
        state
            .transaction_ids
            .insert(transaction_id.clone(), out_trade_no.to_owned());
        Ok(PaidTransaction {
            out_trade_no: out_trade_no.to_owned(),
            transaction_id,
            success_time,
            total: tx.total,
            transaction: Self::transaction_json(tx),
            notification_answers: Vec::new(),
        })
    }

    /// The plaintext and id of an order's notification; for an unpaid order, as the
    /// payment would be, without paying it.
    pub(super) fn notification_resource(
        &self,
        out_trade_no: &str,
    ) -> Result<(Value, String), PayError> {
        let now = self.clock.now();
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.tx.trade_state == TradeState::Success {
            let id = order.tx.notification_id.clone().unwrap_or_default();
            return Ok((Self::transaction_json(&order.tx), id));
        }
        let mut as_paid = order.tx.clone();
        as_paid.trade_state = TradeState::Success;
        as_paid.transaction_id = Some(new_transaction_id(now));
        as_paid.success_time = Some(wechat_time(now));
        as_paid
            .openid
            .get_or_insert_with(|| NATIVE_PAYER_OPENID.to_owned());
        let id = uuid::Uuid::new_v4().to_string();
        Ok((Self::transaction_json(&as_paid), id))
    }

    /// The `Wechatpay-*` headers over `body`, as WeChat signs answers and
    /// notifications, possibly spoilt.
    pub(super) fn wechatpay_headers(
        &self,
        body: &[u8],
        tamper: Option<ResponseTamper>,
    ) -> Vec<(String, String)> {
        let mut timestamp = self.clock.now().timestamp();
        if tamper == Some(ResponseTamper::StaleTimestamp) {
            timestamp -= 2 * CLOCK_SKEW_SECS;
        }
        let nonce = random_string(ALPHANUMERIC, 32);
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let keys = &*KEYS;
        let signature = match tamper {
            Some(ResponseTamper::Signtest) => {
                let noise: Vec<u8> = random_string(ALPHANUMERIC, 256).into_bytes();
                format!("{SIGNTEST_PREFIX}{}", STANDARD.encode(noise))
            }
            Some(ResponseTamper::WrongKey) => rsa_sign(&keys.forger, &message),
            _ => rsa_sign(&keys.wechatpay, &message),
        };
        let serial = if tamper == Some(ResponseTamper::UnknownSerial) {
            "PUB_KEY_ID_00000000000000000000000000000000".to_owned()
        } else {
            SANDBOX_PUBLIC_KEY_ID.to_owned()
        };
        vec![
            ("Wechatpay-Nonce".to_owned(), nonce),
            ("Wechatpay-Signature".to_owned(), signature),
            ("Wechatpay-Timestamp".to_owned(), timestamp.to_string()),
            ("Wechatpay-Serial".to_owned(), serial),
            (
                "Wechatpay-Signature-Type".to_owned(),
                "WECHATPAY2-SHA256-RSA2048".to_owned(),
            ),
        ]
    }

    pub(super) fn build_notification(
        &self,
        transaction: &Value,
        id: &str,
        tamper: Option<ResponseTamper>,
    ) -> Notification {
        let nonce = random_string(ALPHANUMERIC, 12);
        let plaintext = transaction.to_string();
        let ciphertext = aes_gcm_encrypt(
            self.merchant.apiv3_key.as_bytes(),
            nonce.as_bytes(),
            b"transaction",
            plaintext.as_bytes(),
        );
        let create_time = format_time(&wechat_time(self.clock.now()));
        let body = json!({
            "id": id,
            "create_time": create_time,
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": "transaction",
                "nonce": nonce,
            },
        })
        .to_string();
        let mut headers = self.wechatpay_headers(body.as_bytes(), tamper);
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        Notification { headers, body }
    }

    /// A paid order's notification for sending, and where to.
    pub(super) fn outgoing_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<(String, Value, String), PayError> {
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.tx.trade_state != TradeState::Success {
            return Err(PayError::NotPaid(out_trade_no.to_owned()));
        }
        let id = order.tx.notification_id.clone().unwrap_or_default();
        Ok((
            order.tx.notify_url.clone(),
            Self::transaction_json(&order.tx),
            id,
        ))
    }

    pub(super) fn record_answers(&self, out_trade_no: &str, answers: &[(u16, String)]) {
        let mut state = self.state();
        for (status, body) in answers {
            let entry = (out_trade_no.to_owned(), *status, body.clone());
            state.notification_answers.push(entry);
        }
    }
}

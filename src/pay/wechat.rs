//! WeChat Pay as a [`Channel`]: JSAPI inside WeChat, Native (a QR code) on the PC
//! portal, and the notifications it sends to `/pay/notify/wechat`.

use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::wechatpay::notify::{RefundNotice, parse_refund_notification};
use super::wechatpay::refund::{Refund, RefundApply, RefundStatus};
use super::wechatpay::{
    ApiV3Key, MerchantKey, NotifyError, PayApiError, PrepayRequest, ResponseVerifier, TradeState,
    TransactionNotice, TransactionState, WechatPayClient, WechatPayClientConfig,
    WechatPayPublicKey, parse_transaction_notification,
};
use super::{
    Channel, ChannelError, ChannelPayment, ChannelState, Closed, Prepaid, PrepayOrder,
    RefundRequest, RefundState,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::order::beijing_offset;
use crate::store::PaymentChannel;

/// How long one call to WeChat Pay may take before its outcome counts as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct WechatPay {
    client: WechatPayClient,
    apiv3_key: ApiV3Key,
    clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum WechatPaySetupError {
    #[error(
        "CAMPUSPAY_WECHATPAY_*: WeChat Pay needs the official account (CAMPUSPAY_WECHAT_APPID)"
    )]
    NoAccount,
    #[error("CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE: {0}")]
    PrivateKey(String),
    #[error("CAMPUSPAY_WECHATPAY_PUBLIC_KEY_FILE: {0}")]
    PublicKey(String),
    #[error("CAMPUSPAY_WECHATPAY_APIV3_KEY: {0}")]
    ApiV3Key(String),
    #[error("CAMPUSPAY_WECHATPAY_API_BASE: {0}")]
    Client(String),
}

impl WechatPay {
    /// Reports each exchange with WeChat Pay to `observer`.
    pub fn observed(mut self, observer: crate::metrics::UpstreamObserver) -> WechatPay {
        self.client = self.client.observed(observer);
        self
    }

    /// WeChat Pay from the configuration: `None` when it is not configured; an error
    /// (which stops the start) when configured but unusable.
    pub fn from_config(
        config: &Config,
        clock: Clock,
    ) -> Result<Option<WechatPay>, WechatPaySetupError> {
        let Some(pay) = &config.wechat_pay else {
            return Ok(None);
        };
        let account = config
            .wechat
            .as_ref()
            .ok_or(WechatPaySetupError::NoAccount)?;
        let merchant_key = MerchantKey::from_pem(pay.private_key_pem.expose_secret())
            .map_err(|error| WechatPaySetupError::PrivateKey(error.to_string()))?;
        let public_key = WechatPayPublicKey::from_pem(&pay.public_key_pem)
            .map_err(|error| WechatPaySetupError::PublicKey(error.to_string()))?;
        let apiv3_key = ApiV3Key::new(pay.apiv3_key.expose_secret().as_bytes())
            .map_err(|error| WechatPaySetupError::ApiV3Key(error.to_string()))?;
        let client = WechatPayClient::new(WechatPayClientConfig {
            api_base: config.wechat_pay_api_base.clone(),
            appid: account.appid.clone(),
            mchid: pay.mchid.clone(),
            merchant_serial: pay.cert_serial.clone(),
            merchant_key,
            public_key_id: pay.public_key_id.clone(),
            verifier: ResponseVerifier::with_public_key(pay.public_key_id.clone(), public_key),
            timeout: config.upstream_timeout.unwrap_or(CALL_TIMEOUT),
            clock: clock.clone(),
        })
        .map_err(|error| WechatPaySetupError::Client(error.to_string()))?;
        Ok(Some(WechatPay {
            client,
            apiv3_key,
            clock,
        }))
    }

    pub fn appid(&self) -> &str {
        self.client.appid()
    }

    pub fn mchid(&self) -> &str {
        self.client.mchid()
    }

    /// Verifies and decrypts a notification, and checks it is for our app and merchant
    /// and says paid. The order number and amount are checked against the order by the
    /// caller.
    pub fn read_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<TransactionNotice, NotificationRefused> {
        let notice = parse_transaction_notification(
            headers,
            raw_body,
            self.client.verifier(),
            &self.apiv3_key,
            now,
        )
        .map_err(NotificationRefused::Unreadable)?;
        let transaction = &notice.transaction;
        if transaction.appid != self.appid() || transaction.mchid != self.mchid() {
            return Err(NotificationRefused::NotOurs);
        }
        if transaction.trade_state != TradeState::Success {
            return Err(NotificationRefused::NotPaid);
        }
        Ok(notice)
    }

    /// Verifies and decrypts a refund notification and checks it is for our merchant.
    /// The refund number and amount are checked against our refund by the caller.
    pub fn read_refund_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<RefundNotice, NotificationRefused> {
        let notice = parse_refund_notification(
            headers,
            raw_body,
            self.client.verifier(),
            &self.apiv3_key,
            now,
        )
        .map_err(NotificationRefused::Unreadable)?;
        if notice.refund.mchid != self.mchid() {
            return Err(NotificationRefused::NotOurs);
        }
        Ok(notice)
    }

    /// What a refund answer (or notification) means for us. A SUCCESS must name our
    /// refund number, or it is not believed.
    fn refund_state(
        &self,
        refund: Refund,
        out_refund_no: &str,
    ) -> Result<RefundState, ChannelError> {
        if refund.out_refund_no != out_refund_no {
            return Err(ChannelError::OutcomeUnknown(format!(
                "WeChat Pay answered for refund {} when asked about {out_refund_no}",
                refund.out_refund_no
            )));
        }
        Ok(refund_state_of(
            &refund.status,
            refund.refund_id,
            refund.success_time,
            self.clock.now(),
        ))
    }

    fn prepay_request(&self, order: &PrepayOrder<'_>) -> PrepayRequest {
        PrepayRequest {
            description: order.description.to_owned(),
            out_trade_no: order.out_trade_no.to_owned(),
            time_expire: order.expires_at.with_timezone(&beijing_offset()),
            notify_url: order.notify_url.to_owned(),
            amount_fen: order.amount_fen,
            attach: None,
        }
    }

    /// A query's SUCCESS is believed only for our app and merchant.
    fn state_of(&self, state: TransactionState) -> Result<ChannelState, ChannelError> {
        match state.trade_state {
            TradeState::Success => {
                let ours = state.appid.as_deref() == Some(self.appid())
                    && state.mchid.as_deref() == Some(self.mchid());
                let (Some(channel_trade_no), Some(amount_fen), true) =
                    (state.transaction_id, state.amount_total, ours)
                else {
                    return Err(ChannelError::OutcomeUnknown(
                        "a SUCCESS answer without our app, merchant, transaction or amount".into(),
                    ));
                };
                Ok(ChannelState::Paid(ChannelPayment {
                    channel_trade_no,
                    amount_fen,
                    paid_at: state
                        .success_time
                        .map_or_else(|| self.clock.now(), |time| time.with_timezone(&Utc)),
                    payer_openid: state.payer_openid,
                }))
            }
            TradeState::NotPay | TradeState::UserPaying | TradeState::Accept => {
                Ok(ChannelState::Unpaid)
            }
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                Ok(ChannelState::Closed)
            }
            other => Ok(ChannelState::Other(other.as_str().to_owned())),
        }
    }
}

/// Why a notification was not accepted; `label` names it in metrics and the record.
#[derive(Debug, thiserror::Error)]
pub enum NotificationRefused {
    #[error(transparent)]
    Unreadable(NotifyError),
    #[error("the notification is for another app or merchant")]
    NotOurs,
    #[error("the notification does not say paid")]
    NotPaid,
}

impl NotificationRefused {
    /// 401 for what failed verification, 500 when we could not decrypt (likely our
    /// key; WeChat retries), 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            NotificationRefused::Unreadable(error) => error.http_status(),
            NotificationRefused::NotOurs | NotificationRefused::NotPaid => 400,
        }
    }

    /// What WeChat is told; nothing about our keys.
    pub fn reason(&self) -> &'static str {
        match self {
            NotificationRefused::Unreadable(error) => error.reason(),
            NotificationRefused::NotOurs => "not for this merchant",
            NotificationRefused::NotPaid => "not a successful payment",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            NotificationRefused::Unreadable(error) => error.metric_label(),
            NotificationRefused::NotOurs => "not_ours",
            NotificationRefused::NotPaid => "not_paid",
        }
    }
}

/// WeChat's refund status in our words; shared by answers and notifications.
pub fn refund_state_of(
    status: &RefundStatus,
    refund_id: String,
    success_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    now: DateTime<Utc>,
) -> RefundState {
    match status {
        RefundStatus::Success => RefundState::Succeeded {
            channel_refund_no: refund_id,
            succeeded_at: success_time.map_or(now, |time| time.with_timezone(&Utc)),
        },
        RefundStatus::Closed => RefundState::Failed {
            reason: "微信支付已关闭该退款（CLOSED），款项未退回".into(),
        },
        RefundStatus::Abnormal => RefundState::Failed {
            reason: "微信支付退款异常（ABNORMAL）：用户卡已注销或冻结，需在商户平台处理".into(),
        },
        // PROCESSING, or a status this code does not know: keep asking.
        RefundStatus::Processing | RefundStatus::Other(_) => RefundState::Processing {
            channel_refund_no: Some(refund_id),
        },
    }
}

fn channel_error(error: PayApiError) -> ChannelError {
    if error.outcome_unknown() {
        return ChannelError::OutcomeUnknown(error.to_string());
    }
    if let PayApiError::OrderPaid { .. } = error {
        return ChannelError::AlreadyPaid {
            code: error.code().unwrap_or("ORDERPAID").to_owned(),
            message: error.to_string(),
        };
    }
    ChannelError::Refused {
        code: error.code().unwrap_or("REFUSED").to_owned(),
        message: error.to_string(),
    }
}

#[async_trait::async_trait]
impl Channel for WechatPay {
    /// `/v3/pay/transactions/out-trade-no/{n}/close` closes an unpaid order at once.
    fn closes_unpaid_orders(&self) -> bool {
        true
    }

    async fn prepay(&self, order: &PrepayOrder<'_>) -> Result<Prepaid, ChannelError> {
        let request = self.prepay_request(order);
        match order.kind {
            PaymentChannel::WechatJsapi => {
                let payer = order.payer_openid.ok_or_else(|| ChannelError::Refused {
                    code: "NO_PAYER".into(),
                    message: "JSAPI needs the payer's openid".into(),
                })?;
                let prepay_id = self
                    .client
                    .jsapi_prepay(&request, payer)
                    .await
                    .map_err(channel_error)?;
                let params = self.client.jsapi_pay_params(&prepay_id, self.clock.now());
                let json = serde_json::to_value(params).map_err(|error| ChannelError::Refused {
                    code: "ENCODE".into(),
                    message: error.to_string(),
                })?;
                Ok(Prepaid::JsBridge(json))
            }
            PaymentChannel::WechatNative => {
                let code_url = self
                    .client
                    .native_prepay(&request)
                    .await
                    .map_err(channel_error)?;
                Ok(Prepaid::QrCode(code_url.0))
            }
            other => Err(ChannelError::Refused {
                code: "WRONG_CHANNEL".into(),
                message: format!("WeChat Pay cannot serve {other:?}"),
            }),
        }
    }

    async fn query(&self, out_trade_no: &str) -> Result<ChannelState, ChannelError> {
        match self.client.query_by_out_trade_no(out_trade_no).await {
            Ok(state) => self.state_of(state),
            Err(PayApiError::NotFound { .. }) => Ok(ChannelState::NotFound),
            Err(error) => Err(channel_error(error)),
        }
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundState, ChannelError> {
        let apply = RefundApply {
            out_trade_no: request.out_trade_no.to_owned(),
            out_refund_no: request.out_refund_no.to_owned(),
            reason: Some(request.reason.chars().take(80).collect()),
            notify_url: Some(request.notify_url.to_owned()).filter(|url| !url.is_empty()),
            refund_fen: request.refund_fen,
            total_fen: request.total_fen,
        };
        let refund = self.client.refund(&apply).await.map_err(channel_error)?;
        self.refund_state(refund, request.out_refund_no)
    }

    async fn query_refund(
        &self,
        _out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundState, ChannelError> {
        match self.client.query_refund(out_refund_no).await {
            Ok(refund) => self.refund_state(refund, out_refund_no),
            Err(error) if error.code() == Some("RESOURCE_NOT_EXISTS") => Ok(RefundState::NotFound),
            Err(error) => Err(channel_error(error)),
        }
    }

    async fn close(&self, out_trade_no: &str) -> Result<Closed, ChannelError> {
        match self.client.close(out_trade_no).await {
            Ok(()) | Err(PayApiError::OrderClosed { .. } | PayApiError::NotFound { .. }) => {
                Ok(Closed::Closed)
            }
            Err(PayApiError::OrderPaid { .. }) => Ok(Closed::AlreadyPaid),
            Err(error) => Err(channel_error(error)),
        }
    }

    /// The `ALL` trade bill of `day`, gzipped on the wire, checked against its SHA1
    /// and its summary line.
    async fn bill(&self, day: chrono::NaiveDate) -> Result<Vec<super::BillLine>, super::BillError> {
        use super::BillError;
        use super::wechatpay::bill::TradeBillError;
        match self.client.trade_bill(day, true).await {
            Ok(lines) => Ok(lines),
            Err(TradeBillError::NoBill(_)) => Err(BillError::NoBill),
            Err(TradeBillError::Corrupt(why)) => Err(BillError::Corrupt(why)),
            Err(TradeBillError::Api(error)) => Err(BillError::Channel(channel_error(error))),
        }
    }
}

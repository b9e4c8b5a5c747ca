//! The API v3 routes: WeChat Pay's errors, the signed answers, the dispatch of a
//! request to its handler, and the handlers.

use super::*;

// ---- WeChat Pay's errors ------------------------------------------------------------

#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: String,
    pub(super) message: String,
    pub(super) detail: Option<Box<Value>>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            detail: None,
        }
    }

    pub(super) fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    pub(super) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message)
    }

    pub(super) fn order_not_exist() -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::ORDER_NOT_EXIST, "订单不存在")
    }

    pub(super) fn order_paid() -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::ORDER_PAID, "订单已支付")
    }

    pub(super) fn order_closed() -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::ORDER_CLOSED, "订单已关闭")
    }

    /// `PARAM_ERROR` naming the field, in WeChat's words.
    pub(super) fn param(
        location: &str,
        pointer: &str,
        label: &str,
        rule: &str,
        value: Option<&Value>,
    ) -> Self {
        let message = format!("输入源“/{location}{pointer}”映射到值字段“{label}”{rule}");
        let mut detail = json!({ "location": location, "field": pointer });
        if let Some(value) = value {
            detail["value"] = value.clone();
        }
        Self::new(StatusCode::BAD_REQUEST, codes::PARAM_ERROR, message).with_detail(detail)
    }

    /// 401 `SIGN_ERROR` with what the sandbox signed, as WeChat shows it.
    pub(super) fn sign(message: &str, method: &Method, uri: &str, signed: Option<&[u8]>) -> Self {
        let (length, truncated) = match signed {
            Some(signed) => (signed.len(), truncate_sign_message(signed)),
            None => (0, String::new()),
        };
        Self::new(StatusCode::UNAUTHORIZED, codes::SIGN_ERROR, message).with_detail(json!({
            "detail": { "issue": "sign not match" },
            "field": "signature",
            "location": "authorization",
            "sign_information": {
                "method": method.as_str(),
                "url": uri,
                "sign_message_length": length,
                "truncated_sign_message": truncated,
            },
        }))
    }

    pub(super) fn body(&self) -> Vec<u8> {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(detail) = &self.detail {
            body["detail"] = (**detail).clone();
        }
        body.to_string().into_bytes()
    }
}

/// The four header lines of the signed message and the first character of the body,
/// as WeChat's `truncated_sign_message` shows them.
pub(super) fn truncate_sign_message(signed: &[u8]) -> String {
    let text = String::from_utf8_lossy(signed);
    let mut out = String::new();
    for (index, line) in text.split('\n').enumerate() {
        if index < 4 {
            out.push_str(line);
            out.push('\n');
        } else {
            out.extend(line.chars().take(1));
            out.push('\n');
            break;
        }
    }
    out
}

/// A successful answer: status and JSON body (none for 204).
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Option<Value>,
}

impl Reply {
    pub(super) fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub(super) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

// ---- routes -----------------------------------------------------------------------

pub(super) type SharedState = State<Arc<Shared>>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::CASHIER, get(cashier_page).post(cashier_pay))
        .merge(bills::routes())
        .merge(refunds::routes())
        .fallback(api)
        .with_state(shared)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Jsapi,
    Native,
    QueryByOutTradeNo(String),
    QueryByTransactionId(String),
    Close(String),
    Certificates,
    Unknown,
}

impl Route {
    pub(super) fn parse(method: &Method, path: &str) -> Route {
        let post = method == Method::POST;
        let get = method == Method::GET;
        if path == paths::JSAPI && post {
            return Route::Jsapi;
        }
        if path == paths::NATIVE && post {
            return Route::Native;
        }
        if path == paths::CERTIFICATES && get {
            return Route::Certificates;
        }
        if let Some(rest) = path.strip_prefix(paths::OUT_TRADE_NO_PREFIX) {
            if let Some(number) = rest.strip_suffix("/close")
                && post
                && !number.contains('/')
            {
                return Route::Close(percent_decode(number));
            }
            if get && !rest.contains('/') {
                return Route::QueryByOutTradeNo(percent_decode(rest));
            }
        }
        if let Some(id) = path.strip_prefix(paths::TRANSACTION_ID_PREFIX)
            && get
            && !id.contains('/')
        {
            return Route::QueryByTransactionId(percent_decode(id));
        }
        Route::Unknown
    }

    pub(super) fn template(&self) -> &'static str {
        match self {
            Route::Jsapi => paths::JSAPI,
            Route::Native => paths::NATIVE,
            Route::QueryByOutTradeNo(_) => paths::QUERY_BY_OUT_TRADE_NO,
            Route::QueryByTransactionId(_) => paths::QUERY_BY_TRANSACTION_ID,
            Route::Close(_) => paths::CLOSE,
            Route::Certificates => paths::CERTIFICATES,
            Route::Unknown => paths::UNKNOWN,
        }
    }
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything under `/v3/`: recorded, checked as WeChat checks, answered signed.
pub(super) async fn api(
    State(shared): SharedState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !uri.path().starts_with("/v3/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let route = Route::parse(&method, uri.path());
    let hang = {
        let mut state = shared.state();
        let hang = PayState::pop_for(&mut state.hangs, route.template(), uri.path());
        state.held += usize::from(hang.is_some());
        hang
    };
    if let Some(duration) = hang {
        // Counted down even when the caller gives up and the connection is dropped.
        let _held = HeldRequest(shared.clone());
        tokio::time::sleep(duration).await;
    }
    let raw_uri = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let (status, answer) = match shared.handle(&route, &method, &uri, &raw_uri, &headers, &body) {
        Ok(reply) => {
            let body = reply.body.map(|body| body.to_string().into_bytes());
            (reply.status, body.unwrap_or_default())
        }
        Err(error) => (error.status, error.body()),
    };
    let tamper = {
        let mut state = shared.state();
        let tamper = PayState::pop_for(&mut state.response_tampers, route.template(), uri.path());
        state.calls.push(RecordedCall {
            method: method.to_string(),
            route: route.template(),
            path: uri.path().to_owned(),
            uri: raw_uri,
            body: String::from_utf8_lossy(&body).into_owned(),
            wechatpay_serial: header_text(&headers, "wechatpay-serial").map(str::to_owned),
            status: status.as_u16(),
        });
        tamper
    };
    shared.signed_response(status, answer, tamper)
}

/// One request held by a hang, for as long as it lives.
pub(super) struct HeldRequest(pub(super) Arc<Shared>);

impl Drop for HeldRequest {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.held = state.held.saturating_sub(1);
    }
}

pub(super) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

impl Shared {
    pub(super) fn signed_response(
        &self,
        status: StatusCode,
        body: Vec<u8>,
        tamper: Option<ResponseTamper>,
    ) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in self.wechatpay_headers(&body, tamper) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        let request_id = random_string(HEX, 40).to_uppercase();
        if let Ok(value) = HeaderValue::try_from(request_id) {
            headers.insert("request-id", value);
        }
        if !body.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        (status, headers, body).into_response()
    }

    pub(super) fn handle(
        &self,
        route: &Route,
        method: &Method,
        uri: &Uri,
        raw_uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        self.injected_failure(route.template(), uri.path())?;
        self.check_authorization(method, raw_uri, headers, body)?;
        check_content_headers(method, headers)?;
        if let Some(serial) = header_text(headers, "wechatpay-serial")
            && serial != SANDBOX_PUBLIC_KEY_ID
        {
            return Err(ApiError::invalid_request(format!(
                "Wechatpay-Serial {serial} 对应的微信支付公钥或平台证书不存在"
            )));
        }
        match route {
            Route::Jsapi => self.prepay(TradeType::Jsapi, body),
            Route::Native => self.prepay(TradeType::Native, body),
            Route::QueryByOutTradeNo(number) => {
                self.check_query_mchid(uri.query())?;
                let state = self.state();
                let order = state
                    .orders
                    .get(number)
                    .ok_or_else(ApiError::order_not_exist)?;
                Ok(Reply::json(Self::transaction_json(&order.tx)))
            }
            Route::QueryByTransactionId(id) => {
                self.check_query_mchid(uri.query())?;
                let state = self.state();
                let order = state
                    .transaction_ids
                    .get(id)
                    .and_then(|number| state.orders.get(number))
                    .ok_or_else(ApiError::order_not_exist)?;
                Ok(Reply::json(Self::transaction_json(&order.tx)))
            }
            Route::Close(number) => self.close(number, body),
            Route::Certificates => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::RESOURCE_NOT_EXISTS,
                "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥",
            )),
            Route::Unknown => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::RESOURCE_NOT_EXISTS,
                "请求的资源不存在",
            )),
        }
    }

    pub(super) fn injected_failure(&self, route: &str, path: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        match PayState::pop_for(&mut state.injected_failures, route, path) {
            Some((status, code)) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Err(ApiError::new(
                    status,
                    &code,
                    "failure injected by the sandbox",
                ))
            }
            None => Ok(()),
        }
    }

    /// WeChat's merchant-side check of `Authorization`.
    pub(super) fn check_authorization(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let refuse =
            |message: &str, signed: Option<&[u8]>| ApiError::sign(message, method, uri, signed);
        let Some(authorization) = header_text(headers, "authorization") else {
            return Err(refuse("缺少 Authorization 请求头", None));
        };
        let fields = parse_authorization(authorization).map_err(|why| refuse(why, None))?;
        let mut message = format!(
            "{}\n{uri}\n{}\n{}\n",
            method.as_str(),
            fields.timestamp,
            fields.nonce_str
        )
        .into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signed = Some(message.as_slice());
        if fields.mchid != self.merchant.mchid {
            return Err(refuse("Authorization 中的商户号不存在或与请求不符", signed));
        }
        if fields.serial_no != self.merchant.merchant_serial {
            return Err(refuse(
                "商户证书序列号有误，请确认证书序列号与私钥匹配",
                signed,
            ));
        }
        let Ok(timestamp) = fields.timestamp.parse::<i64>() else {
            return Err(refuse("Authorization 中的 timestamp 格式错误", signed));
        };
        let now = self.clock.now().timestamp();
        if (now - timestamp).abs() > CLOCK_SKEW_SECS {
            return Err(refuse("请求的时间戳已过期，请确认服务器时间", signed));
        }
        if fields.nonce_str.is_empty() || fields.nonce_str.len() > 32 {
            return Err(refuse("Authorization 中的 nonce_str 不合法", signed));
        }
        if !rsa_verify(&KEYS.merchant, &message, fields.signature) {
            return Err(refuse("错误的签名，验签失败", signed));
        }
        let mut state = self.state();
        state
            .nonces
            .retain(|_, seen| (now - *seen).abs() <= 2 * CLOCK_SKEW_SECS);
        if state.nonces.contains_key(fields.nonce_str) {
            return Err(refuse("nonce_str 重复，请求可能被重放", signed));
        }
        state.nonces.insert(fields.nonce_str.to_owned(), timestamp);
        Ok(())
    }

    pub(super) fn check_query_mchid(&self, query: Option<&str>) -> Result<(), ApiError> {
        let mchid = query.and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "mchid")
                .map(|(_, value)| value.into_owned())
        });
        match mchid {
            None => Err(ApiError::param(
                "query",
                "/mchid",
                "直连商户号",
                "必填性规则校验失败，此字段为必填项",
                None,
            )),
            Some(mchid) if mchid != self.merchant.mchid => {
                Err(ApiError::invalid_request("mchid 与发起请求的商户号不一致"))
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) fn prepay(&self, trade_type: TradeType, body: &[u8]) -> Result<Reply, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::PARAM_ERROR,
                "请求体不是合法的 JSON",
            )
        })?;
        let params = validate_prepay(trade_type, &value)?;
        if params.mchid != self.merchant.mchid {
            return Err(ApiError::invalid_request(
                "请求体中的 mchid 与发起请求的商户号不一致",
            ));
        }
        if params.appid != self.merchant.appid {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::APPID_MCHID_NOT_MATCH,
                "AppID和mch_id不匹配",
            ));
        }
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let number = params.out_trade_no.clone();
        if let Some(order) = state.orders.get(&number) {
            match order.tx.trade_state {
                TradeState::Success => return Err(ApiError::order_paid()),
                TradeState::Closed => return Err(ApiError::order_closed()),
                TradeState::NotPay => {}
            }
            if order.params != params {
                return Err(ApiError::invalid_request("201 商户订单号重复"));
            }
        } else {
            let order = new_order(params, now);
            state.creation_order.push(number.clone());
            state.orders.insert(number.clone(), order);
        }
        let order = state
            .orders
            .get_mut(&number)
            .expect("the order was found or inserted above");
        let reply = match trade_type {
            TradeType::Jsapi => {
                let prepay_id = new_prepay_id(now);
                order.tx.prepay_ids.push(prepay_id.clone());
                state.handles.insert(prepay_id.clone(), number);
                json!({ "prepay_id": prepay_id })
            }
            TradeType::Native => {
                let code_url = new_code_url();
                order.tx.code_urls.push(code_url.clone());
                state.handles.insert(code_url.clone(), number);
                json!({ "code_url": code_url })
            }
        };
        Ok(Reply::json(reply))
    }

    pub(super) fn close(&self, number: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::PARAM_ERROR,
                "请求体不是合法的 JSON",
            )
        })?;
        let object = value.as_object().cloned().unwrap_or_default();
        let mchid = required_text(&object, "mchid", "/mchid", "直连商户号", 1, 32)?;
        if mchid != self.merchant.mchid {
            return Err(ApiError::invalid_request(
                "请求体中的 mchid 与发起请求的商户号不一致",
            ));
        }
        let now = self.clock.now();
        let mut state = self.state();
        let order = state
            .orders
            .get_mut(number)
            .ok_or_else(ApiError::order_not_exist)?;
        match order.tx.trade_state {
            TradeState::Success => Err(ApiError::order_paid()),
            // Closing twice is harmless: WeChat answers 204 again.
            TradeState::Closed => Ok(Reply::no_content()),
            TradeState::NotPay => {
                order.tx.trade_state = TradeState::Closed;
                order.tx.closed_at = Some(now);
                Ok(Reply::no_content())
            }
        }
    }
}

pub(super) fn new_order(params: PrepayParams, now: DateTime<Utc>) -> Order {
    let time_expire = params
        .time_expire
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
    let pay_before = match time_expire {
        Some(time) => time
            .with_timezone(&Utc)
            .clamp(now + MIN_ORDER_LIFETIME, now + MAX_ORDER_LIFETIME),
        None => now + DEFAULT_ORDER_LIFETIME,
    };
    let tx = SandboxTransaction {
        out_trade_no: params.out_trade_no.clone(),
        trade_type: params.trade_type,
        trade_state: TradeState::NotPay,
        appid: params.appid.clone(),
        mchid: params.mchid.clone(),
        description: params.description.clone(),
        attach: params.attach.clone(),
        notify_url: params.notify_url.clone(),
        total: params.total,
        openid: params.openid.clone(),
        time_expire,
        pay_before,
        created_at: now,
        prepay_ids: Vec::new(),
        code_urls: Vec::new(),
        transaction_id: None,
        success_time: None,
        closed_at: None,
        notification_id: None,
    };
    Order { tx, params }
}

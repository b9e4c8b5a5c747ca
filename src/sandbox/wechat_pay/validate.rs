//! Request validation as WeChat Pay does it: headers, the `Authorization` header,
//! and the prepay body's fields.

use super::*;

/// `Accept` on every call and `Content-Type` on POST, both `application/json`.
pub(super) fn check_content_headers(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let accept = header_text(headers, "accept").unwrap_or("");
    // The docs say "请设置为application/json"; `*/*` (reqwest's default) is not that.
    if !accept.contains("application/json") {
        return Err(ApiError::invalid_request("Http头Accept未设置或者值不合法"));
    }
    if method == Method::POST {
        let content_type = header_text(headers, "content-type").unwrap_or("");
        if !content_type.trim_start().starts_with("application/json") {
            return Err(ApiError::invalid_request(
                "Http头Content-Type值必须为application/json",
            ));
        }
    }
    Ok(())
}

pub(super) struct AuthorizationFields<'a> {
    pub(super) mchid: &'a str,
    pub(super) nonce_str: &'a str,
    pub(super) timestamp: &'a str,
    pub(super) serial_no: &'a str,
    pub(super) signature: &'a str,
}

/// `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",…`, fields in any order.
pub(super) fn parse_authorization(header: &str) -> Result<AuthorizationFields<'_>, &'static str> {
    let rest = header
        .strip_prefix(AUTH_SCHEME)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("Authorization 的认证类型不是 WECHATPAY2-SHA256-RSA2048")?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or("Authorization 格式错误")?;
        let value = value
            .strip_prefix('"')
            .and_then(|value| value.strip_suffix('"'))
            .ok_or("Authorization 的字段值必须用双引号括起来")?;
        if fields.insert(key.trim(), value).is_some() {
            return Err("Authorization 中有重复的字段");
        }
    }
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or("Authorization 缺少必需的字段")
    };
    Ok(AuthorizationFields {
        mchid: field("mchid")?,
        nonce_str: field("nonce_str")?,
        timestamp: field("timestamp")?,
        serial_no: field("serial_no")?,
        signature: field("signature")?,
    })
}

// ---- prepay parameters, as WeChat validates them ---------------------------------

pub(super) fn is_out_trade_no_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*')
}

/// A string field's length in bytes within `min..=max`; `None` when absent or null.
pub(super) fn optional_text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
    label: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let Some(text) = value.as_str() else {
        return Err(ApiError::param(
            "body",
            pointer,
            label,
            "类型规则校验失败，应为字符串",
            Some(value),
        ));
    };
    let length = text.len();
    if length < min {
        let rule = format!("字符串规则校验失败，字节数 {length}，小于最小值 {min}");
        return Err(ApiError::param("body", pointer, label, &rule, Some(value)));
    }
    if length > max {
        let rule = format!("字符串规则校验失败，字节数 {length}，大于最大值 {max}");
        return Err(ApiError::param("body", pointer, label, &rule, Some(value)));
    }
    Ok(Some(text))
}

pub(super) fn required_text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
    label: &str,
    min: usize,
    max: usize,
) -> Result<&'a str, ApiError> {
    optional_text(object, key, pointer, label, min, max)?.ok_or_else(|| {
        ApiError::param(
            "body",
            pointer,
            label,
            "必填性规则校验失败，此字段为必填项",
            None,
        )
    })
}

pub(super) fn required_object<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    label: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let pointer = format!("/{key}");
    match object.get(key) {
        None | Some(Value::Null) => Err(ApiError::param(
            "body",
            &pointer,
            label,
            "必填性规则校验失败，此字段为必填项",
            None,
        )),
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(ApiError::param(
            "body",
            &pointer,
            label,
            "类型规则校验失败，应为对象",
            Some(other),
        )),
    }
}

pub(super) fn validate_prepay(
    trade_type: TradeType,
    body: &Value,
) -> Result<PrepayParams, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::param(
            "body",
            "",
            "请求体",
            "类型规则校验失败，应为对象",
            None,
        ));
    };
    let appid = required_text(object, "appid", "/appid", "应用ID", 1, 32)?;
    let mchid = required_text(object, "mchid", "/mchid", "直连商户号", 1, 32)?;
    let description = required_text(object, "description", "/description", "商品描述", 1, 127)?;
    let out_trade_no = required_text(object, "out_trade_no", "/out_trade_no", "商户订单号", 6, 32)?;
    if !out_trade_no.chars().all(is_out_trade_no_char) {
        return Err(ApiError::param(
            "body",
            "/out_trade_no",
            "商户订单号",
            "字符串规则校验失败，只能是数字、大小写字母_-|*",
            object.get("out_trade_no"),
        ));
    }
    let time_expire = optional_text(object, "time_expire", "/time_expire", "交易结束时间", 1, 64)?;
    if let Some(text) = time_expire
        && DateTime::parse_from_rfc3339(text).is_err()
    {
        return Err(ApiError::param(
            "body",
            "/time_expire",
            "交易结束时间",
            "时间格式规则校验失败，应为 RFC 3339 格式，如 2015-05-20T13:29:35+08:00",
            object.get("time_expire"),
        ));
    }
    let attach = optional_text(object, "attach", "/attach", "附加数据", 0, 128)?;
    let notify_url = required_text(object, "notify_url", "/notify_url", "通知地址", 1, 255)?;
    check_notify_url(notify_url, object.get("notify_url"))?;

    let amount = required_object(object, "amount", "订单金额")?;
    let total = match amount.get("total") {
        None | Some(Value::Null) => {
            return Err(ApiError::param(
                "body",
                "/amount/total",
                "总金额",
                "必填性规则校验失败，此字段为必填项",
                None,
            ));
        }
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::param(
                "body",
                "/amount/total",
                "总金额",
                "类型规则校验失败，应为整数（单位：分）",
                Some(value),
            )
        })?,
    };
    if total < 1 {
        let rule = format!("整数规则校验失败，值 {total}，小于最小值 1");
        return Err(ApiError::param(
            "body",
            "/amount/total",
            "总金额",
            &rule,
            amount.get("total"),
        ));
    }
    let currency = optional_text(amount, "currency", "/amount/currency", "货币类型", 1, 16)?;
    if currency.is_some_and(|currency| currency != "CNY") {
        return Err(ApiError::param(
            "body",
            "/amount/currency",
            "货币类型",
            "枚举规则校验失败，境内商户号仅支持 CNY",
            amount.get("currency"),
        ));
    }

    let openid = match trade_type {
        TradeType::Jsapi => {
            let payer = required_object(object, "payer", "支付者")?;
            Some(required_text(payer, "openid", "/payer/openid", "用户标识", 1, 128)?.to_owned())
        }
        TradeType::Native => None,
    };
    Ok(PrepayParams {
        trade_type,
        appid: appid.to_owned(),
        mchid: mchid.to_owned(),
        description: description.to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        time_expire: time_expire.map(str::to_owned),
        attach: attach.map(str::to_owned),
        notify_url: notify_url.to_owned(),
        total,
        openid,
    })
}

/// Public HTTPS without a query string; the sandbox also takes plain HTTP to a
/// loopback host, where the tests and the demo listen.
pub(super) fn check_notify_url(text: &str, value: Option<&Value>) -> Result<(), ApiError> {
    let refuse = |rule: &str| ApiError::param("body", "/notify_url", "通知地址", rule, value);
    let url = Url::parse(text).map_err(|_| refuse("URL 规则校验失败，不是合法的 URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("URL 规则校验失败，通知地址不能携带参数"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(refuse("URL 规则校验失败，通知地址必须为 HTTPS")),
    }
}

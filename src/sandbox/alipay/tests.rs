use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::post;

use super::*;

const APP_ID: &str = "9021000140600001";

/// Our side of the wire, written here with rsa directly.
fn app_sign(content: &str) -> String {
    let key = SigningKey::<Sha256>::new(
        rsa::PrivateKey::from_pkcs8_pem(APP_PRIVATE_KEY_PEM).expect("app key"),
    );
    rsa2_sign(&key, content)
}

fn alipay_public() -> VerifyingKey<Sha256> {
    VerifyingKey::new(rsa::PublicKey::from_public_key_pem(ALIPAY_PUBLIC_KEY_PEM).unwrap())
}

/// `(raw content, sign)` of `{"<member>":CONTENT,"sign":"SIGN"}`, cut by hand.
fn split_answer<'a>(body: &'a str, member: &str) -> (&'a str, Option<String>) {
    let rest = body
        .strip_prefix(&format!("{{\"{member}\":"))
        .unwrap_or_else(|| panic!("no {member} in {body}"));
    match rest.rsplit_once(",\"sign\":") {
        Some((content, sign)) => {
            let sign: String = serde_json::from_str(sign.strip_suffix('}').unwrap()).unwrap();
            (content, Some(sign))
        }
        None => (rest.strip_suffix('}').unwrap(), None),
    }
}

struct Reply {
    member: String,
    raw: String,
    sign: Option<String>,
    json: Value,
}

impl Reply {
    fn verifies(&self) -> bool {
        self.sign
            .as_deref()
            .is_some_and(|sign| rsa2_verify(&alipay_public(), &self.raw, sign))
    }

    fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    fn sub_code(&self) -> &str {
        self.json["sub_code"].as_str().unwrap_or_default()
    }

    /// A signed, verified success.
    fn ok(self) -> Self {
        assert!(self.verifies(), "unverified: {}", self.raw);
        assert_eq!(self.code(), "10000", "{}", self.raw);
        self
    }

    /// A signed, verified refusal with this code and sub_code.
    fn refused(self, code: &str, sub_code: &str) -> Self {
        assert!(self.verifies(), "unverified: {}", self.raw);
        assert_eq!(
            (self.code(), self.sub_code()),
            (code, sub_code),
            "{}",
            self.raw
        );
        self
    }
}

struct Probe {
    sandbox: AlipaySandbox,
    clock: Clock,
    http: reqwest::Client,
}

impl Probe {
    async fn start() -> Probe {
        let clock = Clock::system();
        let sandbox = AlipaySandbox::spawn(APP_ID, clock.clone()).await.unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Probe {
            sandbox,
            clock,
            http,
        }
    }

    /// The common parameters and `biz_content`, unsigned.
    fn params(&self, method: &str, biz: &Value) -> Vec<(String, String)> {
        [
            ("app_id", APP_ID.to_owned()),
            ("method", method.to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            ("timestamp", alipay_time(self.clock.now())),
            ("version", "1.0".to_owned()),
            (
                "notify_url",
                "https://pay.example.edu.cn/pay/notify/alipay".to_owned(),
            ),
            ("biz_content", biz.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn signed(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
        let content = {
            let mut pairs: Vec<&(String, String)> =
                params.iter().filter(|(_, v)| !v.is_empty()).collect();
            pairs.sort();
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        params.push(("sign".to_owned(), app_sign(&content)));
        params
    }

    /// POSTs `query` in the URL and `form` in the body.
    async fn send_split(
        &self,
        query: &[(String, String)],
        form: &[(String, String)],
        member: &str,
    ) -> Reply {
        let mut url = self.sandbox.base_url();
        url.query_pairs_mut().extend_pairs(query);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(url)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let (raw, sign) = split_answer(&text, member);
        Reply {
            member: member.to_owned(),
            raw: raw.to_owned(),
            sign,
            json: serde_json::from_str(raw).unwrap(),
        }
    }

    async fn send(&self, params: &[(String, String)], member: &str) -> Reply {
        self.send_split(&[], params, member).await
    }

    async fn call(&self, method: &str, biz: &Value) -> Reply {
        let params = Self::signed(self.params(method, biz));
        let member = format!("{}_response", method.replace('.', "_"));
        self.send(&params, &member).await
    }

    fn order(&self, number: &str, amount: &str) -> Value {
        json!({
            "out_trade_no": number,
            "total_amount": amount,
            "subject": "沙箱学院-2024学年学费",
            "product_code": "FACE_TO_FACE_PAYMENT",
            "time_expire": alipay_time(self.clock.now() + TimeDelta::minutes(15)),
        })
    }

    async fn precreate(&self, number: &str) -> String {
        let reply = self
            .call(methods::PRECREATE, &self.order(number, "1200.50"))
            .await
            .ok();
        reply.json["qr_code"].as_str().unwrap().to_owned()
    }

    async fn query(&self, number: &str) -> Reply {
        self.call(methods::QUERY, &json!({ "out_trade_no": number }))
            .await
    }

    async fn close(&self, number: &str) -> Reply {
        self.call(methods::CLOSE, &json!({ "out_trade_no": number }))
            .await
    }
}

fn with(params: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

#[tokio::test]
async fn precreate_is_answered_signed_over_its_exact_text_and_is_idempotent() {
    let probe = Probe::start().await;
    // One order, sent twice: its time_expire must not move between the calls.
    let order = probe.order("CP2024A1", "1200.50");
    let reply = probe.call(methods::PRECREATE, &order).await.ok();
    assert_eq!(reply.member, "alipay_trade_precreate_response");
    let qr_code = reply.json["qr_code"].as_str().unwrap().to_owned();
    assert!(
        qr_code.starts_with("https://qr.alipay.com/bax0"),
        "{qr_code}"
    );
    assert_eq!(qr_code.len(), "https://qr.alipay.com/".len() + 24);
    // Written with `\/` as the gateway does: only this exact text verifies.
    assert!(
        reply
            .raw
            .contains(r#""qr_code":"https:\/\/qr.alipay.com\/bax0"#)
    );
    assert!(reply.raw.starts_with(r#"{"code":"10000","msg":"Success","#));
    let reserialised = serde_json::to_string(&reply.json).unwrap();
    assert!(!rsa2_verify(
        &alipay_public(),
        &reserialised,
        reply.sign.as_deref().unwrap()
    ));

    let again = probe.call(methods::PRECREATE, &order).await.ok();
    assert_eq!(again.json["qr_code"], qr_code.as_str());
    probe
        .call(methods::PRECREATE, &probe.order("CP2024A1", "1200.51"))
        .await
        .refused("40004", sub_codes::CONTEXT_INCONSISTENT);
    assert_eq!(probe.sandbox.calls_to(methods::PRECREATE), 3);
    let trade = probe.sandbox.transaction("CP2024A1").unwrap();
    assert_eq!(trade.status, SandboxTradeStatus::NotScanned);
    assert_eq!(trade.total_fen, 120_050);
    assert_eq!(trade.qr_code, qr_code);
    assert_eq!(
        trade.notify_url.as_deref(),
        Some("https://pay.example.edu.cn/pay/notify/alipay")
    );
}

#[tokio::test]
async fn the_gateway_reads_the_query_and_the_body_together() {
    let probe = Probe::start().await;
    let params = Probe::signed(probe.params(methods::PRECREATE, &probe.order("CP2024Q1", "9.90")));
    let (form, query): (Vec<_>, Vec<_>) = params.into_iter().partition(|(k, _)| k == "biz_content");
    probe
        .send_split(&query, &form, "alipay_trade_precreate_response")
        .await
        .ok();
    assert_eq!(
        probe.sandbox.transaction("CP2024Q1").unwrap().total_fen,
        990
    );
}

/// Parameters, and the code and sub_code they are refused with.
type Case = (Vec<(String, String)>, &'static str, &'static str);

#[tokio::test]
async fn bad_requests_are_refused_as_the_gateway_refuses_them() {
    let probe = Probe::start().await;
    let base = probe.params(methods::PRECREATE, &probe.order("CP2024B1", "1.00"));
    let member = "alipay_trade_precreate_response";
    let cases: Vec<Case> = vec![
        (base.clone(), "40001", sub_codes::MISSING_SIGNATURE),
        (
            Probe::signed(with(&base, "sign_type", None)),
            "40001",
            sub_codes::MISSING_SIGNATURE_TYPE,
        ),
        (
            Probe::signed(with(&base, "sign_type", Some("RSA"))),
            "40002",
            sub_codes::INVALID_SIGNATURE_TYPE,
        ),
        (
            Probe::signed(with(&base, "charset", Some("GBK"))),
            "40002",
            sub_codes::INVALID_CHARSET,
        ),
        (
            Probe::signed(with(&base, "format", Some("XML"))),
            "40002",
            sub_codes::INVALID_FORMAT,
        ),
        (
            Probe::signed(with(&base, "timestamp", None)),
            "40001",
            sub_codes::MISSING_TIMESTAMP,
        ),
        (
            Probe::signed(with(
                &base,
                "timestamp",
                Some(&alipay_time(probe.clock.now() - TimeDelta::minutes(20))),
            )),
            "40002",
            sub_codes::INVALID_TIMESTAMP,
        ),
        (
            Probe::signed(with(&base, "timestamp", Some("2024-06-15T10:00:00+08:00"))),
            "40002",
            sub_codes::INVALID_TIMESTAMP,
        ),
        (
            Probe::signed(with(&base, "version", Some("2.0"))),
            "40002",
            sub_codes::INVALID_PARAMETER,
        ),
        (
            Probe::signed(with(&base, "version", None)),
            "40001",
            sub_codes::MISSING_VERSION,
        ),
        // Signed, then a parameter changed.
        (
            with(
                &Probe::signed(base.clone()),
                "notify_url",
                Some("https://evil.example/notify"),
            ),
            "40002",
            sub_codes::INVALID_SIGNATURE,
        ),
        // Signed with a key that is not the app's.
        (
            {
                let mut params = base.clone();
                let content = sorted_content(&params, &["sign"], true);
                params.push(("sign".into(), rsa2_sign(&KEYS.alipay, &content)));
                params
            },
            "40002",
            sub_codes::INVALID_SIGNATURE,
        ),
        // `sign_type` left out of the signed content (the notification rule).
        (
            {
                let mut params = base.clone();
                let content = sorted_content(&params, &["sign", "sign_type"], true);
                params.push(("sign".into(), app_sign(&content)));
                params
            },
            "40002",
            sub_codes::INVALID_SIGNATURE,
        ),
    ];
    for (params, code, sub_code) in cases {
        let reply = probe.send(&params, member).await;
        reply.refused(code, sub_code);
    }
    let reply = probe
        .send(
            &Probe::signed(with(&base, "sign", Some("bm90IGEgc2lnbmF0dXJl"))),
            member,
        )
        .await
        .refused("40002", sub_codes::INVALID_SIGNATURE);
    assert!(
        reply.json["sub_msg"]
            .as_str()
            .unwrap()
            .contains("网关生成的验签字符串为：app_id=9021000140600001&biz_content="),
        "{}",
        reply.raw
    );
    // Another app: the gateway has no key to sign with for it.
    let reply = probe
        .send(
            &Probe::signed(with(&base, "app_id", Some("2021000000000009"))),
            member,
        )
        .await;
    assert_eq!(
        (reply.code(), reply.sub_code()),
        ("40002", sub_codes::INVALID_APP_ID)
    );
    assert!(reply.sign.is_none());
    // An unknown method comes back as error_response.
    let unknown = Probe::signed(with(&base, "method", Some("alipay.trade.pay")));
    probe
        .send(&unknown, "error_response")
        .await
        .refused("40002", sub_codes::INVALID_METHOD);
    assert!(probe.sandbox.transactions().is_empty());
    assert_eq!(probe.sandbox.calls_to(methods::PRECREATE), 15);
    assert_eq!(probe.sandbox.calls_to("alipay.trade.pay"), 1);
}

#[tokio::test]
async fn precreate_parameters_are_checked() {
    let probe = Probe::start().await;
    let now = probe.clock.now();
    let good = probe.order("CP2024P1", "1.00");
    let changed = |name: &str, value: Value| {
        let mut biz = good.clone();
        if value.is_null() {
            biz.as_object_mut().unwrap().remove(name);
        } else {
            biz[name] = value;
        }
        biz
    };
    let bad = [
        changed("total_amount", json!("0")),
        changed("total_amount", json!("0.00")),
        changed("total_amount", json!("0.001")),
        changed("total_amount", json!("-1.00")),
        changed("total_amount", json!("1e2")),
        changed("total_amount", json!("1,000.00")),
        changed("total_amount", json!("100000000.01")),
        changed("total_amount", json!(12.5)),
        changed("total_amount", Value::Null),
        changed("subject", Value::Null),
        changed("subject", json!("学".repeat(257))),
        changed("out_trade_no", json!("CP-2024")),
        changed("out_trade_no", json!("C".repeat(65))),
        changed("out_trade_no", Value::Null),
        changed("product_code", json!("FAST_INSTANT_TRADE_PAY")),
        changed(
            "time_expire",
            json!(alipay_time(now - TimeDelta::minutes(1))),
        ),
        changed("time_expire", json!(alipay_time(now + TimeDelta::days(16)))),
        changed("time_expire", json!("2024/06/15 10:00")),
        {
            let mut biz = changed("time_expire", Value::Null);
            biz["timeout_express"] = json!("1.5h");
            biz
        },
    ];
    for biz in bad {
        probe
            .call(methods::PRECREATE, &biz)
            .await
            .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
    }
    let params = Probe::signed(with(
        &probe.params(methods::PRECREATE, &good),
        "notify_url",
        Some("ftp://pay.example.edu.cn/notify"),
    ));
    probe
        .send(&params, "alipay_trade_precreate_response")
        .await
        .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
    let params = Probe::signed(with(
        &probe.params(methods::PRECREATE, &good),
        "biz_content",
        Some("not json"),
    ));
    probe
        .send(&params, "alipay_trade_precreate_response")
        .await
        .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
    assert!(probe.sandbox.transactions().is_empty());

    let mut relative = changed("time_expire", Value::Null);
    relative["timeout_express"] = json!("30m");
    probe.call(methods::PRECREATE, &relative).await.ok();
    let trade = probe.sandbox.transaction("CP2024P1").unwrap();
    assert_eq!(trade.pay_before, trade.created_at + TimeDelta::minutes(30));
    let defaulted = probe.order("CP2024P2", "0.01");
    let mut defaulted = defaulted.as_object().unwrap().clone();
    defaulted.remove("time_expire");
    probe
        .call(methods::PRECREATE, &Value::Object(defaulted))
        .await
        .ok();
    let trade = probe.sandbox.transaction("CP2024P2").unwrap();
    assert_eq!(trade.pay_before, trade.created_at + TimeDelta::hours(3));
    assert_eq!(trade.scan_before, trade.created_at + TimeDelta::hours(2));
}

#[tokio::test]
async fn query_and_close_follow_alipays_states() {
    let probe = Probe::start().await;
    // Precreated, not scanned: no trade at Alipay yet.
    probe.precreate("CP2024S1").await;
    probe
        .query("CP2024S1")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    let scanned = probe.sandbox.scan("CP2024S1").unwrap();
    let trade_no = scanned.trade_no.clone().unwrap();
    assert_eq!(trade_no.len(), 28);
    assert!(trade_no.bytes().all(|b| b.is_ascii_digit()));
    let waiting = probe.query("CP2024S1").await.ok();
    assert_eq!(waiting.json["trade_status"], "WAIT_BUYER_PAY");
    assert_eq!(waiting.json["trade_no"], trade_no.as_str());
    assert_eq!(waiting.json["total_amount"], "1200.50");
    assert!(waiting.json.get("send_pay_date").is_none());
    let by_trade_no = probe
        .call(methods::QUERY, &json!({ "trade_no": trade_no }))
        .await
        .ok();
    assert_eq!(by_trade_no.json["out_trade_no"], "CP2024S1");
    let closed = probe.close("CP2024S1").await.ok();
    assert_eq!(closed.json["trade_no"], trade_no.as_str());
    assert_eq!(
        probe.query("CP2024S1").await.ok().json["trade_status"],
        "TRADE_CLOSED"
    );
    probe
        .close("CP2024S1")
        .await
        .refused("40004", sub_codes::TRADE_STATUS_ERROR);
    let qr = probe
        .call(methods::PRECREATE, &probe.order("CP2024S1", "1200.50"))
        .await
        .refused("40004", sub_codes::TRADE_HAS_CLOSE);
    assert!(qr.json.get("qr_code").is_none());
    assert_eq!(
        probe.sandbox.pay_silently("CP2024S1"),
        Err(AlipayPayError::Closed("CP2024S1".into()))
    );

    // Closed before the scan: "no such trade", and nothing was closed: the code
    // can still be scanned and paid (documented); with the reported lock, not.
    probe.precreate("CP2024S2").await;
    probe
        .close("CP2024S2")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    probe
        .query("CP2024S2")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    let scanned = probe.sandbox.scan("CP2024S2").unwrap();
    assert_eq!(scanned.status, SandboxTradeStatus::WaitBuyerPay);
    probe.sandbox.lock_codes_closed_before_scan(true);
    probe.precreate("CP2024S4").await;
    probe
        .close("CP2024S4")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    assert_eq!(
        probe.sandbox.scan("CP2024S4"),
        Err(AlipayPayError::Closed("CP2024S4".into()))
    );
    probe.sandbox.lock_codes_closed_before_scan(false);

    // Paid.
    probe.precreate("CP2024S3").await;
    let paid = probe.sandbox.pay_silently("CP2024S3").unwrap();
    let reply = probe.query("CP2024S3").await.ok();
    assert_eq!(reply.json["trade_status"], "TRADE_SUCCESS");
    assert_eq!(reply.json["trade_no"], paid.trade_no.as_str());
    assert_eq!(reply.json["buyer_pay_amount"], "1200.50");
    assert_eq!(reply.json["buyer_user_id"], BUYER_ID);
    assert_eq!(
        reply.json["send_pay_date"],
        alipay_time(paid.gmt_payment).as_str()
    );
    probe
        .close("CP2024S3")
        .await
        .refused("40004", sub_codes::TRADE_STATUS_ERROR);
    probe
        .call(methods::PRECREATE, &probe.order("CP2024S3", "1200.50"))
        .await
        .refused("40004", sub_codes::TRADE_HAS_SUCCESS);
    assert_eq!(
        probe.sandbox.pay_silently("CP2024S3"),
        Err(AlipayPayError::AlreadyPaid("CP2024S3".into()))
    );
    probe
        .query("CP2024S9")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    probe
        .call(methods::QUERY, &json!({}))
        .await
        .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
}

#[tokio::test]
async fn orders_cannot_be_paid_after_they_expire() {
    let probe = Probe::start().await;
    probe.precreate("CP2024E1").await; // time_expire: 15 minutes
    probe.precreate("CP2024E2").await;
    probe.sandbox.scan("CP2024E2").unwrap();
    probe.clock.advance(Duration::from_secs(16 * 60));
    let trade = probe.sandbox.transaction("CP2024E1").unwrap();
    assert_eq!(trade.status, SandboxTradeStatus::TradeClosed);
    assert_eq!(
        probe.sandbox.pay_silently("CP2024E1"),
        Err(AlipayPayError::Expired(
            "CP2024E1".into(),
            trade.scan_before
        ))
    );
    probe
        .query("CP2024E1")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);
    // Scanned, then expired: Alipay closed it.
    assert_eq!(
        probe.query("CP2024E2").await.ok().json["trade_status"],
        "TRADE_CLOSED"
    );
    assert!(matches!(
        probe.sandbox.pay_silently("CP2024E2"),
        Err(AlipayPayError::Expired(..))
    ));
    probe
        .close("CP2024E2")
        .await
        .refused("40004", sub_codes::TRADE_STATUS_ERROR);

    // The code itself lasts two hours, whatever time_expire says.
    let mut biz = probe.order("CP2024E3", "5.00");
    biz["time_expire"] = json!(alipay_time(probe.clock.now() + TimeDelta::hours(5)));
    probe.call(methods::PRECREATE, &biz).await.ok();
    probe.clock.advance(Duration::from_secs(2 * 3600 + 60));
    assert!(matches!(
        probe.sandbox.scan("CP2024E3"),
        Err(AlipayPayError::Expired(..))
    ));
}

struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(String, String)>>>,
    answer: Arc<Mutex<(u16, String)>>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Our notification endpoint, reduced to recording `(content type, body)`
    /// and answering what it is told (`200 success` at first).
    async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let answer = Arc::new(Mutex::new((200, "success".to_owned())));
        let app = Router::new().route(
            "/pay/notify/alipay",
            post({
                let received = received.clone();
                let answer = answer.clone();
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let content_type = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.lock().unwrap().push((content_type, body));
                    let (status, body) = answer.lock().unwrap().clone();
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let url = format!(
            "http://{}/pay/notify/alipay",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            received,
            answer,
            server,
        }
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    async fn wait_for(&self, count: usize) -> Vec<(String, String)> {
        for _ in 0..300 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{count} notifications never arrived");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Probe {
    async fn precreate_to(&self, number: &str, notify_url: &str) -> String {
        let params = Probe::signed(with(
            &self.params(methods::PRECREATE, &self.order(number, "1200.50")),
            "notify_url",
            Some(notify_url),
        ));
        let reply = self
            .send(&params, "alipay_trade_precreate_response")
            .await
            .ok();
        reply.json["qr_code"].as_str().unwrap().to_owned()
    }
}

fn form_params(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Alipay's rule, independently: sorted, without sign and sign_type.
fn notification_verifies(params: &[(String, String)]) -> bool {
    let mut pairs: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "sign" && k != "sign_type")
        .collect();
    pairs.sort();
    let content = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    rsa2_verify(&alipay_public(), &content, param(params, "sign"))
}

#[tokio::test]
async fn paying_sends_a_signed_form_notification() {
    let probe = Probe::start().await;
    let receiver = Receiver::start().await;
    probe.precreate_to("CP2024N1", &receiver.url).await;
    let paid = probe.sandbox.pay("CP2024N1").await.unwrap();
    assert_eq!(paid.notification_answers, vec![(200, "success".to_owned())]);
    assert_eq!(paid.trade_no.len(), 28);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let (content_type, body) = &received[0];
    assert!(content_type.starts_with("application/x-www-form-urlencoded"));
    let params = form_params(body);
    assert!(notification_verifies(&params), "{body}");
    assert_eq!(param(&params, "notify_type"), "trade_status_sync");
    assert_eq!(param(&params, "trade_status"), "TRADE_SUCCESS");
    assert_eq!(param(&params, "app_id"), APP_ID);
    assert_eq!(param(&params, "auth_app_id"), APP_ID);
    assert_eq!(param(&params, "out_trade_no"), "CP2024N1");
    assert_eq!(param(&params, "trade_no"), paid.trade_no);
    assert_eq!(param(&params, "total_amount"), "1200.50");
    assert_eq!(param(&params, "sign_type"), "RSA2");
    assert_eq!(param(&params, "subject"), "沙箱学院-2024学年学费");
    assert_eq!(param(&params, "buyer_id"), BUYER_ID);
    assert_eq!(param(&params, "gmt_payment"), alipay_time(paid.gmt_payment));
    let notify_id = param(&params, "notify_id").to_owned();
    assert!(!notify_id.is_empty());
    let trade = probe.sandbox.transaction("CP2024N1").unwrap();
    assert_eq!(trade.status, SandboxTradeStatus::TradeSuccess);
    assert_eq!(trade.notify_id.as_deref(), Some(notify_id.as_str()));

    // Sent again: the same notify_id, signed afresh.
    probe.sandbox.send_notification("CP2024N1").await.unwrap();
    let again = form_params(&receiver.received()[1].1);
    assert!(notification_verifies(&again));
    assert_eq!(param(&again, "notify_id"), notify_id);
    assert_eq!(
        probe.sandbox.notification_answers(),
        vec![
            ("CP2024N1".to_owned(), 200, "success".to_owned()),
            ("CP2024N1".to_owned(), 200, "success".to_owned()),
        ]
    );
    assert_eq!(
        probe.sandbox.send_notification("CP2024N9").await,
        Err(AlipayPayError::UnknownOrder("CP2024N9".into()))
    );
}

#[tokio::test]
async fn notifications_count_only_when_answered_exactly_success() {
    let probe = Probe::start().await;
    let receiver = Receiver::start().await;
    probe.precreate_to("CP2024R1", &receiver.url).await;
    receiver.answer(200, "SUCCESS");
    probe.sandbox.set_notification_copies(3);
    let paid = probe.sandbox.pay("CP2024R1").await.unwrap();
    assert_eq!(paid.notification_answers.len(), 3);
    // Alipay's schedule, on its clock: nothing before 4 minutes, then one retry.
    assert_eq!(probe.sandbox.deliver_due_retries().await, 0);
    probe.clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(probe.sandbox.deliver_due_retries().await, 1);
    assert_eq!(receiver.received().len(), 4);
    // 20 minutes on, two retries are due (at 14 and 24 minutes): the first is
    // answered `success`, so the second is never sent.
    probe.clock.advance(Duration::from_secs(20 * 60));
    receiver.answer(200, "success");
    assert_eq!(
        probe.sandbox.deliver_due_retries().await,
        1,
        "stops at `success`"
    );
    probe.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(probe.sandbox.deliver_due_retries().await, 0);
    assert_eq!(receiver.received().len(), 5);
    let answers = probe.sandbox.notification_answers();
    assert_eq!(answers.last().unwrap().2, "success");
    assert_eq!(answers.iter().filter(|a| a.2 == "SUCCESS").count(), 4);
    for (_, body) in receiver.received() {
        assert!(notification_verifies(&form_params(&body)));
    }
    assert!(!is_acknowledged(500, "success"));
    assert!(!is_acknowledged(200, "success\n"));
    assert!(is_acknowledged(200, "success"));

    // No notify_url: nothing is sent.
    let params = Probe::signed(with(
        &probe.params(methods::PRECREATE, &probe.order("CP2024R2", "1.00")),
        "notify_url",
        None,
    ));
    probe
        .send(&params, "alipay_trade_precreate_response")
        .await
        .ok();
    assert!(
        probe
            .sandbox
            .pay("CP2024R2")
            .await
            .unwrap()
            .notification_answers
            .is_empty()
    );
}

#[tokio::test]
async fn tampered_notifications_differ_as_intended() {
    let probe = Probe::start().await;
    probe.precreate("CP2024T1").await;
    let genuine = form_params(
        &probe
            .sandbox
            .notification_for("CP2024T1", AlipayTamper::None)
            .unwrap(),
    );
    assert!(notification_verifies(&genuine));
    assert_eq!(param(&genuine, "trade_status"), "TRADE_SUCCESS");
    // Describing a payment did not make one.
    assert_eq!(
        probe.sandbox.transaction("CP2024T1").unwrap().status,
        SandboxTradeStatus::NotScanned
    );
    let form = |tamper| form_params(&probe.sandbox.notification_for("CP2024T1", tamper).unwrap());
    let amount = form(AlipayTamper::WrongAmount("0.01".into()));
    assert!(notification_verifies(&amount));
    assert_eq!(param(&amount, "total_amount"), "0.01");
    let app = form(AlipayTamper::WrongAppId);
    assert!(notification_verifies(&app));
    assert_ne!(param(&app, "app_id"), APP_ID);
    assert_eq!(param(&app, "app_id"), param(&app, "auth_app_id"));
    let forged = form(AlipayTamper::BadSignature);
    assert!(!notification_verifies(&forged));
    let other = form(AlipayTamper::UnknownOrder("CP2024ZZ".into()));
    assert!(notification_verifies(&other));
    assert_eq!(param(&other, "out_trade_no"), "CP2024ZZ");
    let closed = form(AlipayTamper::TradeStatus("TRADE_CLOSED".into()));
    assert!(notification_verifies(&closed));
    assert_eq!(param(&closed, "trade_status"), "TRADE_CLOSED");
    assert_eq!(
        probe
            .sandbox
            .notification_for("CP2024T9", AlipayTamper::None),
        Err(AlipayPayError::UnknownOrder("CP2024T9".into()))
    );
    // Once paid, the genuine notification is the payment's.
    let paid = probe.sandbox.pay_silently("CP2024T1").unwrap();
    let real = form(AlipayTamper::None);
    assert_eq!(param(&real, "trade_no"), paid.trade_no);
    assert_eq!(
        param(&real, "notify_id"),
        probe
            .sandbox
            .transaction("CP2024T1")
            .unwrap()
            .notify_id
            .unwrap()
    );
}

#[tokio::test]
async fn the_cashier_scans_pays_notifies_and_links_back() {
    let probe = Probe::start().await;
    let receiver = Receiver::start().await;
    let qr_code = probe.precreate_to("CP2024C1", &receiver.url).await;
    let back = "https://pay.example.edu.cn/pc/pay/result?no=CP2024C1";
    let page = probe
        .http
        .get(probe.sandbox.cashier_url(&qr_code, Some(back)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("确认支付") && html.contains("¥1200.50"),
        "{html}"
    );
    assert!(html.contains("沙箱学院-2024学年学费"));
    assert_eq!(
        probe.sandbox.transaction("CP2024C1").unwrap().status,
        SandboxTradeStatus::WaitBuyerPay
    );
    let paid = probe
        .http
        .post(probe.sandbox.base_url().join(CASHIER_PATH).unwrap())
        .form(&[("qr_code", qr_code.as_str()), ("return_to", back)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(paid.contains("支付成功") && paid.contains(back), "{paid}");
    let received = receiver.wait_for(1).await;
    assert!(notification_verifies(&form_params(&received[0].1)));
    assert_eq!(
        probe.sandbox.transaction("CP2024C1").unwrap().status,
        SandboxTradeStatus::TradeSuccess
    );
    let again = probe
        .http
        .get(
            probe
                .sandbox
                .cashier_url(&qr_code, Some("javascript:alert(1)")),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("该交易已支付") && !again.contains("javascript"));
    let unknown = probe
        .http
        .get(
            probe
                .sandbox
                .cashier_url("https://qr.alipay.com/nothing", None),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // A code closed before it was scanned, where Alipay locks it (as reported).
    probe.sandbox.lock_codes_closed_before_scan(true);
    let dead = probe.precreate("CP2024C2").await;
    probe.close("CP2024C2").await;
    let page = probe
        .http
        .get(probe.sandbox.cashier_url(&dead, None))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("本笔交易已关闭"), "{page}");
}

#[tokio::test]
async fn injected_failures_and_spoilt_answers() {
    let probe = Probe::start().await;
    probe.precreate("CP2024F1").await;
    probe
        .sandbox
        .fail_next(methods::QUERY, "20000", sub_codes::UNKNOWN_ERROR, 1);
    probe
        .sandbox
        .fail_next(methods::QUERY, "40004", sub_codes::SYSTEM_ERROR, 1);
    let unavailable = probe
        .query("CP2024F1")
        .await
        .refused("20000", sub_codes::UNKNOWN_ERROR);
    assert_eq!(unavailable.json["msg"], "Service Currently Unavailable");
    probe
        .query("CP2024F1")
        .await
        .refused("40004", sub_codes::SYSTEM_ERROR);
    probe
        .query("CP2024F1")
        .await
        .refused("40004", sub_codes::TRADE_NOT_EXIST);

    // Scanned, so that there is a trade to close.
    probe.sandbox.scan("CP2024F1").unwrap();
    let tampers = Arc::new(AtomicUsize::new(0));
    for tamper in [
        AlipayResponseTamper::BadSignature,
        AlipayResponseTamper::Unsigned,
        AlipayResponseTamper::Edited,
    ] {
        probe
            .sandbox
            .tamper_next_responses(methods::CLOSE, tamper, 1);
        let reply = probe.close("CP2024F1").await;
        assert!(!reply.verifies(), "{tamper:?}: {}", reply.raw);
        tampers.fetch_add(1, Ordering::SeqCst);
    }
    // The first close took effect though its answer could not be believed.
    assert_eq!(
        probe.sandbox.transaction("CP2024F1").unwrap().status,
        SandboxTradeStatus::TradeClosed
    );
    assert!(probe.close("CP2024F1").await.verifies());
    assert_eq!(tampers.load(Ordering::SeqCst), 3);
    let calls = probe.sandbox.calls();
    assert_eq!(calls.len(), 8);
    assert_eq!(calls[1].sub_code.as_deref(), Some(sub_codes::UNKNOWN_ERROR));
    assert_eq!(calls[0].code, "10000");
}

#[test]
fn prices_and_timeouts_read_as_alipay_reads_them() {
    assert_eq!(price_fen("1200.50"), Some(120_050));
    assert_eq!(price_fen("1200.5"), Some(120_050));
    assert_eq!(price_fen("0.01"), Some(1));
    assert_eq!(price_fen("100000000"), Some(10_000_000_000));
    for bad in [
        "0",
        "0.00",
        "5.",
        ".5",
        "1.234",
        "-1",
        "1e2",
        "",
        "100000000.01",
    ] {
        assert_eq!(price_fen(bad), None, "{bad}");
    }
    let now = DateTime::parse_from_rfc3339("2024-06-15T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(timeout_express("90m", now), Some(TimeDelta::minutes(90)));
    assert_eq!(timeout_express("2h", now), Some(TimeDelta::hours(2)));
    assert_eq!(timeout_express("15d", now), Some(TimeDelta::days(15)));
    // 10:00 in Beijing: until midnight.
    assert_eq!(timeout_express("1c", now), Some(TimeDelta::hours(14)));
    for bad in ["1.5h", "0m", "m", "10s", "-5m", ""] {
        assert_eq!(timeout_express(bad, now), None, "{bad}");
    }
}

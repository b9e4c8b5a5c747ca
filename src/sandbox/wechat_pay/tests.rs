use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use axum::routing::post;
use reqwest::header::HeaderMap as ReqwestHeaders;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};

use super::*;
use crate::pay::wechatpay::keys::tests::{GO_SDK_PRIVATE_PEM, GO_SDK_SIGNATURE_OF_SOURCE};

const APPID: &str = "wxd678efh567hg6787";
const MCHID: &str = "1900000109";
const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
const APIV3_KEY: &str = "abcdefghijklmnopqrstuvwxyz123456";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

fn merchant() -> SandboxMerchant {
    SandboxMerchant {
        appid: APPID.to_owned(),
        mchid: MCHID.to_owned(),
        merchant_serial: SERIAL.to_owned(),
        apiv3_key: APIV3_KEY.to_owned(),
    }
}

/// Our side of the wire, written here with rsa directly.
fn merchant_signer() -> SigningKey<Sha256> {
    SigningKey::new(rsa::PrivateKey::from_pkcs8_pem(MERCHANT_PRIVATE_KEY_PEM).unwrap())
}

fn merchant_sign(message: &str) -> String {
    let signature: Signature = merchant_signer().sign(message.as_bytes());
    STANDARD.encode(signature.to_bytes())
}

fn public_key(pem: &str) -> VerifyingKey<Sha256> {
    VerifyingKey::new(rsa::PublicKey::from_public_key_pem(pem).unwrap())
}

/// WeChat's answer/notification check: `TS\nNONCE\nBODY\n` with the public key.
fn signature_verifies(key_pem: &str, get: impl Fn(&str) -> Option<String>, body: &str) -> bool {
    let (Some(timestamp), Some(nonce), Some(signature)) = (
        get("Wechatpay-Timestamp"),
        get("Wechatpay-Nonce"),
        get("Wechatpay-Signature"),
    ) else {
        return false;
    };
    let message = format!("{timestamp}\n{nonce}\n{body}\n");
    let Ok(raw) = STANDARD.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    public_key(key_pem)
        .verify(message.as_bytes(), &signature)
        .is_ok()
}

fn decrypt(resource: &Value) -> Value {
    let cipher = Aes256Gcm::new_from_slice(APIV3_KEY.as_bytes()).unwrap();
    let nonce = resource["nonce"].as_str().unwrap().as_bytes();
    let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce).unwrap();
    let sealed = STANDARD
        .decode(resource["ciphertext"].as_str().unwrap())
        .unwrap();
    let aad = resource["associated_data"].as_str().unwrap().as_bytes();
    let plain = cipher
        .decrypt(&nonce, Payload { msg: &sealed, aad })
        .unwrap();
    serde_json::from_slice(&plain).unwrap()
}

struct Answer {
    status: u16,
    headers: ReqwestHeaders,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    fn verifies(&self) -> bool {
        signature_verifies(
            WECHATPAY_PUBLIC_KEY_PEM,
            |name| self.header(name),
            &self.body,
        )
    }

    /// Checks the status and that the answer is signed by the sandbox.
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.verifies(), "unsigned answer: {}", self.body);
        assert_eq!(
            self.header("Wechatpay-Serial").as_deref(),
            Some(SANDBOX_PUBLIC_KEY_ID)
        );
        assert!(self.header("Request-ID").is_some());
        self
    }

    fn expect_error(self, status: u16, code: &str) -> Value {
        let answer = self.expect(status);
        let json = answer.json();
        assert_eq!(json["code"], code, "{json}");
        json
    }
}

/// One request, with every part of the signature under the test's control.
struct Request {
    method: Method,
    uri: String,
    body: String,
    mchid: String,
    serial: String,
    timestamp: i64,
    nonce: String,
    signature: Option<String>,
    accept: Option<&'static str>,
    content_type: Option<&'static str>,
    reversed_fields: bool,
    authorization: Option<String>,
    wechatpay_serial: Option<&'static str>,
}

impl Request {
    fn signed_message(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            self.method, self.uri, self.timestamp, self.nonce, self.body
        )
    }

    fn authorization(&self) -> String {
        if let Some(raw) = &self.authorization {
            return raw.clone();
        }
        let signature = self
            .signature
            .clone()
            .unwrap_or_else(|| merchant_sign(&self.signed_message()));
        let mut fields = [
            format!("mchid=\"{}\"", self.mchid),
            format!("nonce_str=\"{}\"", self.nonce),
            format!("timestamp=\"{}\"", self.timestamp),
            format!("serial_no=\"{}\"", self.serial),
            format!("signature=\"{signature}\""),
        ];
        if self.reversed_fields {
            fields.reverse();
        }
        format!("WECHATPAY2-SHA256-RSA2048 {}", fields.join(","))
    }
}

struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    status: Arc<AtomicU16>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Our notification endpoint, reduced to recording and answering `status`.
    async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(204));
        let app = Router::new().route(
            "/pay/notify/wechat",
            post({
                let received = received.clone();
                let status = status.clone();
                move |headers: HeaderMap, body: String| async move {
                    received.lock().unwrap().push((headers, body));
                    let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    if code.is_success() {
                        code.into_response()
                    } else {
                        (code, r#"{"code":"FAIL","message":"失败"}"#).into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let url = format!(
            "http://{}/pay/notify/wechat",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            received,
            status,
            server,
        }
    }

    fn received(&self) -> Vec<(HeaderMap, String)> {
        self.received.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, String)> {
        for _ in 0..200 {
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

struct Probe {
    sandbox: WechatPaySandbox,
    clock: Clock,
    http: reqwest::Client,
    notify_url: String,
}

impl Probe {
    async fn start() -> Probe {
        let clock = Clock::system();
        let sandbox = WechatPaySandbox::spawn(merchant(), clock.clone())
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Probe {
            sandbox,
            clock,
            http,
            notify_url: "https://pay.example.edu.cn/pay/notify/wechat".to_owned(),
        }
    }

    fn request(&self, method: Method, uri: &str, body: Option<&Value>) -> Request {
        Request {
            method,
            uri: uri.to_owned(),
            body: body.map(Value::to_string).unwrap_or_default(),
            mchid: MCHID.to_owned(),
            serial: SERIAL.to_owned(),
            timestamp: self.clock.now().timestamp(),
            nonce: random_string(ALPHANUMERIC, 32),
            signature: None,
            accept: Some("application/json"),
            content_type: body.map(|_| "application/json"),
            reversed_fields: false,
            authorization: None,
            wechatpay_serial: Some(SANDBOX_PUBLIC_KEY_ID),
        }
    }

    async fn send(&self, request: &Request) -> Answer {
        let url = format!(
            "{}{}",
            self.sandbox.base_url().as_str().trim_end_matches('/'),
            request.uri
        );
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .header("Authorization", request.authorization())
            .header("User-Agent", "campus-pay-test");
        if let Some(accept) = request.accept {
            builder = builder.header("Accept", accept);
        }
        if let Some(content_type) = request.content_type {
            builder = builder.header("Content-Type", content_type);
        }
        if let Some(serial) = request.wechatpay_serial {
            builder = builder.header("Wechatpay-Serial", serial);
        }
        if request.method == Method::POST {
            builder = builder.body(request.body.clone());
        }
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, uri: &str, body: &Value) -> Answer {
        self.send(&self.request(Method::POST, uri, Some(body)))
            .await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(&self.request(Method::GET, uri, None)).await
    }

    fn order(&self, number: &str) -> Value {
        json!({
            "appid": APPID,
            "mchid": MCHID,
            "description": "某某职业技术学院-2025学年学费",
            "out_trade_no": number,
            "attach": "student=20250001",
            "notify_url": self.notify_url,
            "amount": { "total": 150_000, "currency": "CNY" },
            "payer": { "openid": OPENID },
        })
    }

    async fn jsapi(&self, number: &str) -> String {
        let answer = self
            .post(paths::JSAPI, &self.order(number))
            .await
            .expect(200);
        answer.json()["prepay_id"].as_str().unwrap().to_owned()
    }

    async fn native(&self, number: &str) -> String {
        let mut body = self.order(number);
        body.as_object_mut().unwrap().remove("payer");
        let answer = self.post(paths::NATIVE, &body).await.expect(200);
        answer.json()["code_url"].as_str().unwrap().to_owned()
    }

    async fn query(&self, number: &str) -> Answer {
        self.get(&format!("{}?mchid={MCHID}", paths::query(number)))
            .await
    }

    async fn close(&self, number: &str) -> Answer {
        self.post(&paths::close(number), &json!({ "mchid": MCHID }))
            .await
    }
}

#[tokio::test]
async fn a_correctly_signed_prepay_is_accepted_and_answered_signed() {
    let probe = Probe::start().await;
    let prepay_id = probe.jsapi("CP2025090100000001").await;
    assert!(prepay_id.starts_with("wx"), "{prepay_id}");
    assert_eq!(prepay_id.len(), 36);

    // Field order in Authorization does not matter.
    let mut body = probe.order("CP2025090100000002");
    body.as_object_mut().unwrap().remove("payer");
    let mut request = probe.request(Method::POST, paths::NATIVE, Some(&body));
    request.reversed_fields = true;
    let answer = probe.send(&request).await.expect(200);
    let code_url = answer.json()["code_url"].as_str().unwrap().to_owned();
    assert!(
        code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
        "{code_url}"
    );

    let transactions = probe.sandbox.transactions();
    assert_eq!(transactions.len(), 2);
    assert_eq!(transactions[0].trade_type, TradeType::Jsapi);
    assert_eq!(transactions[0].openid.as_deref(), Some(OPENID));
    assert_eq!(transactions[0].prepay_ids, vec![prepay_id]);
    assert_eq!(transactions[1].trade_type, TradeType::Native);
    assert_eq!(transactions[1].code_urls, vec![code_url]);
    assert_eq!(probe.sandbox.calls_to(paths::JSAPI), 1);
    let call = &probe.sandbox.calls()[0];
    assert_eq!(call.status, 200);
    assert_eq!(
        call.wechatpay_serial.as_deref(),
        Some(SANDBOX_PUBLIC_KEY_ID)
    );
}

#[tokio::test]
async fn bad_authorizations_are_refused_with_sign_error() {
    let probe = Probe::start().await;
    let body = probe.order("CP2025090100000003");
    let now = probe.clock.now().timestamp();
    let fresh = || probe.request(Method::POST, paths::JSAPI, Some(&body));

    let mut cases: Vec<(&str, Request)> = Vec::new();
    let mut request = fresh();
    request.signature = Some(merchant_sign(
        "POST\n/v3/pay/transactions/jsapi\n1\n2\n{}\n",
    ));
    cases.push(("signature over another message", request));
    let mut request = fresh();
    let message = request.signed_message();
    let wrong_key = SigningKey::<Sha256>::new(
        rsa::PrivateKey::from_pkcs8_pem(WECHATPAY_PRIVATE_KEY_PEM).unwrap(),
    );
    let signature: Signature = wrong_key.sign(message.as_bytes());
    request.signature = Some(STANDARD.encode(signature.to_bytes()));
    cases.push(("signature by another key", request));
    let mut request = fresh();
    request.signature = Some("not base64 at all".to_owned());
    cases.push(("garbage signature", request));
    let mut request = fresh();
    request.serial = "0000000000000000000000000000000000000000".to_owned();
    cases.push(("wrong serial", request));
    let mut request = fresh();
    request.mchid = "1900000999".to_owned();
    cases.push(("wrong mchid", request));
    let mut request = fresh();
    request.timestamp = now - 301;
    cases.push(("stale timestamp", request));
    let mut request = fresh();
    request.timestamp = now + 400;
    cases.push(("future timestamp", request));
    let mut request = fresh();
    request.authorization = Some(
        request
            .authorization()
            .replace("WECHATPAY2-SHA256-RSA2048", "Bearer"),
    );
    cases.push(("wrong scheme", request));
    let mut request = fresh();
    request.authorization = Some(request.authorization().replace(",serial_no=", ",serial="));
    cases.push(("missing field", request));
    let mut request = fresh();
    request.authorization = Some(String::new());
    cases.push(("empty header", request));

    for (case, request) in &cases {
        let json = probe
            .send(request)
            .await
            .expect_error(401, codes::SIGN_ERROR);
        let information = &json["detail"]["sign_information"];
        assert!(
            information["truncated_sign_message"].is_string(),
            "{case}: {json}"
        );
        assert_eq!(information["method"], "POST", "{case}");
    }
    let json = probe
        .send(&cases[0].1)
        .await
        .expect_error(401, codes::SIGN_ERROR);
    let truncated = json["detail"]["sign_information"]["truncated_sign_message"]
        .as_str()
        .unwrap();
    assert!(
        truncated.starts_with("POST\n/v3/pay/transactions/jsapi\n"),
        "{truncated}"
    );
    assert!(truncated.ends_with("\n{\n"), "{truncated}");
    assert!(probe.sandbox.transactions().is_empty());

    // A nonce is good once.
    let request = fresh();
    probe.send(&request).await.expect(200);
    probe
        .send(&request)
        .await
        .expect_error(401, codes::SIGN_ERROR);
    assert_eq!(probe.sandbox.transactions().len(), 1);

    // Missing Authorization on a GET.
    let url = format!(
        "{}{}?mchid={MCHID}",
        probe.sandbox.base_url().as_str().trim_end_matches('/'),
        paths::query("CP2025090100000003")
    );
    let response = probe
        .http
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let answer = Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    };
    answer.expect_error(401, codes::SIGN_ERROR);
}

#[tokio::test]
async fn calls_need_json_accept_and_content_type_and_the_sandbox_key_serial() {
    let probe = Probe::start().await;
    let body = probe.order("CP2025090100000004");
    // Without an Accept of its own, reqwest sends `*/*`: not what WeChat asks for.
    let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
    request.accept = None;
    probe
        .send(&request)
        .await
        .expect_error(400, codes::INVALID_REQUEST);
    let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
    request.content_type = Some("text/plain");
    probe
        .send(&request)
        .await
        .expect_error(400, codes::INVALID_REQUEST);
    let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
    request.wechatpay_serial = Some("5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
    probe
        .send(&request)
        .await
        .expect_error(400, codes::INVALID_REQUEST);
    assert!(probe.sandbox.transactions().is_empty());

    let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
    request.content_type = Some("application/json; charset=utf-8");
    request.wechatpay_serial = None;
    probe.send(&request).await.expect(200);
}

#[tokio::test]
async fn prepay_parameters_are_checked_field_by_field() {
    let probe = Probe::start().await;
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("/appid", |body| body["appid"] = Value::Null),
        ("/description", |body| body["description"] = json!("")),
        ("/description", |body| {
            body["description"] = json!("学".repeat(43))
        }),
        ("/description", |body| {
            body.as_object_mut().unwrap().remove("description");
        }),
        ("/out_trade_no", |body| {
            body["out_trade_no"] = json!("12345")
        }),
        ("/out_trade_no", |body| {
            body["out_trade_no"] = json!("1".repeat(33))
        }),
        ("/out_trade_no", |body| {
            body["out_trade_no"] = json!("CP 2025 0901")
        }),
        ("/out_trade_no", |body| {
            body["out_trade_no"] = json!("学费202509010001")
        }),
        ("/out_trade_no", |body| {
            body["out_trade_no"] = json!(20250901000001_i64)
        }),
        ("/time_expire", |body| {
            body["time_expire"] = json!("2025-09-01 12:00:00")
        }),
        ("/attach", |body| body["attach"] = json!("a".repeat(129))),
        ("/notify_url", |body| {
            body["notify_url"] = json!("https://pay.example.edu.cn/notify?order=1");
        }),
        ("/notify_url", |body| {
            body["notify_url"] = json!("http://pay.example.edu.cn/notify");
        }),
        ("/notify_url", |body| {
            body["notify_url"] = json!(format!("https://pay.example.edu.cn/{}", "n".repeat(240)));
        }),
        ("/notify_url", |body| {
            body["notify_url"] = json!("/pay/notify/wechat")
        }),
        ("/amount", |body| body["amount"] = json!(150_000)),
        ("/amount/total", |body| body["amount"]["total"] = json!(0)),
        ("/amount/total", |body| body["amount"]["total"] = json!(-1)),
        ("/amount/total", |body| {
            body["amount"]["total"] = json!("150000")
        }),
        ("/amount/total", |body| {
            body["amount"]["total"] = json!(1500.5)
        }),
        ("/amount/currency", |body| {
            body["amount"]["currency"] = json!("USD")
        }),
        ("/payer", |body| {
            body.as_object_mut().unwrap().remove("payer");
        }),
        ("/payer/openid", |body| body["payer"]["openid"] = json!("")),
    ];
    for (field, edit) in cases {
        let mut body = probe.order("CP2025090100000005");
        edit(&mut body);
        let json = probe
            .post(paths::JSAPI, &body)
            .await
            .expect_error(400, codes::PARAM_ERROR);
        assert_eq!(json["detail"]["field"], field, "{json}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(&format!("/body{field}")), "{message}");
    }
    assert!(probe.sandbox.transactions().is_empty());

    let mut body = probe.order("CP2025090100000005");
    body["appid"] = json!("wx0000000000000000");
    probe
        .post(paths::JSAPI, &body)
        .await
        .expect_error(400, codes::APPID_MCHID_NOT_MATCH);
    let mut body = probe.order("CP2025090100000005");
    body["mchid"] = json!("1900000999");
    probe
        .post(paths::JSAPI, &body)
        .await
        .expect_error(400, codes::INVALID_REQUEST);
    let mut request = probe.request(Method::POST, paths::JSAPI, None);
    request.body = "{not json".to_owned();
    request.content_type = Some("application/json");
    probe
        .send(&request)
        .await
        .expect_error(400, codes::PARAM_ERROR);

    // What is allowed at the edges passes.
    let mut body = probe.order("Ab_-|*12");
    body["description"] = json!(format!("{}x", "学".repeat(42)));
    body["attach"] = json!("a".repeat(128));
    body["notify_url"] = json!("http://127.0.0.1:8080/pay/notify/wechat");
    body["time_expire"] = json!("2099-01-01T00:00:00+08:00");
    body["amount"].as_object_mut().unwrap().remove("currency");
    probe.post(paths::JSAPI, &body).await.expect(200);
    let mut body = probe.order("CP2025090100000006");
    body["notify_url"] = json!("http://localhost:8080/pay/notify/wechat");
    probe.post(paths::JSAPI, &body).await.expect(200);
}

#[tokio::test]
async fn prepay_again_with_the_same_parameters_gives_a_fresh_handle_for_the_same_order() {
    let probe = Probe::start().await;
    let first = probe.jsapi("CP2025090100000007").await;
    let second = probe.jsapi("CP2025090100000007").await;
    assert_ne!(first, second);
    let transactions = probe.sandbox.transactions();
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].prepay_ids, vec![first, second]);

    let mut changed = probe.order("CP2025090100000007");
    changed["amount"]["total"] = json!(150_001);
    let json = probe
        .post(paths::JSAPI, &changed)
        .await
        .expect_error(400, codes::INVALID_REQUEST);
    assert!(json["message"].as_str().unwrap().contains("订单号重复"));
    let mut native = probe.order("CP2025090100000007");
    native.as_object_mut().unwrap().remove("payer");
    probe
        .post(paths::NATIVE, &native)
        .await
        .expect_error(400, codes::INVALID_REQUEST);

    let first = probe.native("CP2025090100000008").await;
    let second = probe.native("CP2025090100000008").await;
    assert_ne!(first, second);
    assert_eq!(probe.sandbox.transactions().len(), 2);
}

#[tokio::test]
async fn query_and_close_follow_wechats_states() {
    let probe = Probe::start().await;
    probe
        .query("CP2025090100000009")
        .await
        .expect_error(404, codes::ORDER_NOT_EXIST);
    probe
        .close("CP2025090100000009")
        .await
        .expect_error(404, codes::ORDER_NOT_EXIST);
    probe
        .get(&paths::query("CP2025090100000009"))
        .await
        .expect_error(400, codes::PARAM_ERROR);

    probe.jsapi("CP2025090100000009").await;
    let json = probe.query("CP2025090100000009").await.expect(200).json();
    assert_eq!(json["trade_state"], "NOTPAY");
    assert_eq!(json["trade_state_desc"], "订单未支付");
    assert_eq!(json["amount"]["total"], 150_000);
    assert_eq!(json["appid"], APPID);
    assert_eq!(json["mchid"], MCHID);
    assert!(json.get("transaction_id").is_none());

    let answer = probe.close("CP2025090100000009").await.expect(204);
    assert!(answer.body.is_empty());
    let json = probe.query("CP2025090100000009").await.expect(200).json();
    assert_eq!(json["trade_state"], "CLOSED");
    probe.close("CP2025090100000009").await.expect(204);
    probe
        .post(paths::JSAPI, &probe.order("CP2025090100000009"))
        .await
        .expect_error(400, codes::ORDER_CLOSED);
    assert_eq!(
        probe.sandbox.pay_silently("CP2025090100000009"),
        Err(PayError::Closed("CP2025090100000009".to_owned()))
    );

    probe.jsapi("CP2025090100000010").await;
    let paid = probe.sandbox.pay_silently("CP2025090100000010").unwrap();
    assert_eq!(paid.transaction_id.len(), 28);
    assert!(paid.transaction_id.chars().all(|c| c.is_ascii_digit()));
    let json = probe.query("CP2025090100000010").await.expect(200).json();
    assert_eq!(json, paid.transaction);
    assert_eq!(json["trade_state"], "SUCCESS");
    assert_eq!(json["trade_state_desc"], "支付成功");
    assert_eq!(json["trade_type"], "JSAPI");
    assert_eq!(json["transaction_id"], paid.transaction_id);
    assert_eq!(json["payer"]["openid"], OPENID);
    assert_eq!(json["attach"], "student=20250001");
    assert_eq!(json["amount"]["payer_total"], 150_000);
    assert_eq!(json["amount"]["currency"], "CNY");
    let success_time = json["success_time"].as_str().unwrap();
    assert!(success_time.ends_with("+08:00"), "{success_time}");
    assert!(DateTime::parse_from_rfc3339(success_time).is_ok());
    let by_id = format!(
        "{}{}?mchid={MCHID}",
        paths::TRANSACTION_ID_PREFIX,
        paid.transaction_id
    );
    assert_eq!(probe.get(&by_id).await.expect(200).json(), json);

    probe
        .close("CP2025090100000010")
        .await
        .expect_error(400, codes::ORDER_PAID);
    probe
        .post(paths::JSAPI, &probe.order("CP2025090100000010"))
        .await
        .expect_error(400, codes::ORDER_PAID);
    assert_eq!(
        probe.sandbox.pay_silently("CP2025090100000010"),
        Err(PayError::AlreadyPaid("CP2025090100000010".to_owned()))
    );
    // `|` and `*` may arrive percent-encoded in the path.
    probe.jsapi("CP|2025*0011").await;
    let json = probe
        .get(&format!("{}?mchid={MCHID}", paths::query("CP%7C2025*0011")))
        .await
        .expect(200)
        .json();
    assert_eq!(json["out_trade_no"], "CP|2025*0011");
}

#[tokio::test]
async fn orders_cannot_be_paid_after_time_expire() {
    let probe = Probe::start().await;
    let expire = wechat_time(probe.clock.now() + TimeDelta::minutes(2));
    let mut body = probe.order("CP2025090100000012");
    body["time_expire"] = json!(format_time(&expire));
    probe.post(paths::JSAPI, &body).await.expect(200);

    let mut soon = probe.order("CP2025090100000013");
    soon["time_expire"] = json!(format_time(&wechat_time(probe.clock.now())));
    probe.post(paths::JSAPI, &soon).await.expect(200);
    let bumped = probe.sandbox.transaction("CP2025090100000013").unwrap();
    assert_eq!(bumped.pay_before - bumped.created_at, MIN_ORDER_LIFETIME);

    probe.clock.advance(Duration::from_secs(180));
    let refused = probe.sandbox.pay_silently("CP2025090100000012");
    assert!(matches!(refused, Err(PayError::Expired(..))), "{refused:?}");
    // WeChat does not close an expired order by itself: the query says NOTPAY.
    let json = probe.query("CP2025090100000012").await.expect(200).json();
    assert_eq!(json["trade_state"], "NOTPAY");
    probe.close("CP2025090100000012").await.expect(204);
}

#[tokio::test]
async fn paying_sends_a_signed_encrypted_notification_of_the_transaction() {
    let mut probe = Probe::start().await;
    let receiver = Receiver::start().await;
    probe.notify_url = receiver.url.clone();
    probe.jsapi("CP2025090100000014").await;
    let paid = probe.sandbox.pay("CP2025090100000014").await.unwrap();
    assert_eq!(paid.notification_answers, vec![(204, String::new())]);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert!(signature_verifies(WECHATPAY_PUBLIC_KEY_PEM, get, body));
    assert_eq!(
        get("Wechatpay-Serial").as_deref(),
        Some(SANDBOX_PUBLIC_KEY_ID)
    );
    assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
    let timestamp: i64 = get("Wechatpay-Timestamp").unwrap().parse().unwrap();
    assert!((probe.clock.now().timestamp() - timestamp).abs() <= 5);

    let notification: Value = serde_json::from_str(body).unwrap();
    let transaction = probe.sandbox.transaction("CP2025090100000014").unwrap();
    assert_eq!(notification["id"], json!(transaction.notification_id));
    assert_eq!(notification["event_type"], "TRANSACTION.SUCCESS");
    assert_eq!(notification["resource_type"], "encrypt-resource");
    assert_eq!(notification["summary"], "支付成功");
    assert!(
        notification["create_time"]
            .as_str()
            .unwrap()
            .ends_with("+08:00")
    );
    let resource = &notification["resource"];
    assert_eq!(resource["algorithm"], "AEAD_AES_256_GCM");
    assert_eq!(resource["original_type"], "transaction");
    assert_eq!(resource["associated_data"], "transaction");
    let nonce = resource["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 12);
    assert!(nonce.chars().all(|c| c.is_ascii_alphanumeric()));

    let plaintext = decrypt(resource);
    assert_eq!(plaintext, paid.transaction);
    let queried = probe.query("CP2025090100000014").await.expect(200).json();
    assert_eq!(plaintext, queried);
    assert_eq!(
        probe.sandbox.notification_answers(),
        vec![("CP2025090100000014".to_owned(), 204, String::new())]
    );
}

#[tokio::test]
async fn notifications_can_be_duplicated_refused_retried_late_or_lost() {
    let mut probe = Probe::start().await;
    let receiver = Receiver::start().await;
    probe.notify_url = receiver.url.clone();
    // No retries until the part about them.
    probe.sandbox.set_notification_retries(Vec::new());

    receiver.answer(500);
    probe.sandbox.set_notification_copies(3);
    probe.jsapi("CP2025090100000015").await;
    let paid = probe.sandbox.pay("CP2025090100000015").await.unwrap();
    assert_eq!(paid.notification_answers.len(), 3);
    assert!(
        paid.notification_answers
            .iter()
            .all(|(status, _)| *status == 500)
    );
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|(_, body)| *body == received[0].1));
    let answers = probe.sandbox.notification_answers();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|(number, status, body)| {
        number == "CP2025090100000015" && *status == 500 && body.contains("FAIL")
    }));

    receiver.answer(200);
    let again = probe
        .sandbox
        .send_notification("CP2025090100000015")
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|(status, _)| *status == 200));
    let received = receiver.received();
    let id = |body: &str| serde_json::from_str::<Value>(body).unwrap()["id"].clone();
    assert_eq!(id(&received[3].1), id(&received[0].1));

    // Lost: paid, and nothing arrives.
    probe.sandbox.set_notification_copies(1);
    probe.jsapi("CP2025090100000016").await;
    probe.sandbox.pay_silently("CP2025090100000016").unwrap();
    assert_eq!(receiver.received().len(), 6);
    probe.jsapi("CP2025090100000017").await;
    assert_eq!(
        probe.sandbox.send_notification("CP2025090100000017").await,
        Err(PayError::NotPaid("CP2025090100000017".to_owned()))
    );

    // Refused, then retried on WeChat's schedule, on its clock, until acknowledged.
    probe
        .sandbox
        .set_notification_retries(NOTIFICATION_RETRIES.to_vec());
    receiver.answer(503);
    let paid = probe.sandbox.pay("CP2025090100000017").await.unwrap();
    assert_eq!(paid.notification_answers[0].0, 503);
    assert_eq!(probe.sandbox.deliver_due_retries().await, 0, "not yet 15 s");
    probe.clock.advance(Duration::from_secs(30));
    assert_eq!(
        probe.sandbox.deliver_due_retries().await,
        2,
        "at 15 s and 30 s"
    );
    receiver.answer(204);
    probe.clock.advance(Duration::from_secs(30));
    assert_eq!(
        probe.sandbox.deliver_due_retries().await,
        1,
        "at 60 s, acknowledged"
    );
    probe.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(probe.sandbox.deliver_due_retries().await, 0, "stopped");
    assert_eq!(receiver.received().len(), 10);
    let answers = probe.sandbox.notification_answers();
    let last = answers.last().unwrap();
    assert_eq!((last.0.as_str(), last.1), ("CP2025090100000017", 204));

    // Late.
    probe
        .sandbox
        .set_notification_delay(Duration::from_millis(200));
    probe.jsapi("CP2025090100000018").await;
    let started = Instant::now();
    probe.sandbox.pay("CP2025090100000018").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Unreachable: recorded with status 0.
    probe.sandbox.set_notification_delay(Duration::ZERO);
    probe.notify_url = "http://127.0.0.1:9/pay/notify/wechat".to_owned();
    probe.jsapi("CP2025090100000019").await;
    let paid = probe.sandbox.pay("CP2025090100000019").await.unwrap();
    assert_eq!(paid.notification_answers[0].0, 0);
}

#[tokio::test]
async fn tampered_notifications_differ_as_intended() {
    let probe = Probe::start().await;
    probe.jsapi("CP2025090100000020").await;
    let paid = probe.sandbox.pay_silently("CP2025090100000020").unwrap();
    let notification_for = |tamper| {
        probe
            .sandbox
            .notification_for("CP2025090100000020", tamper)
            .unwrap()
    };
    let verifies = |notification: &Notification, pem: &str| {
        signature_verifies(
            pem,
            |name| notification.header(name).map(str::to_owned),
            &notification.body,
        )
    };
    let plaintext = |notification: &Notification| {
        let body: Value = serde_json::from_str(&notification.body).unwrap();
        decrypt(&body["resource"])
    };

    let genuine = notification_for(Tamper::None);
    assert!(verifies(&genuine, WECHATPAY_PUBLIC_KEY_PEM));
    assert_eq!(plaintext(&genuine), paid.transaction);
    assert_eq!(genuine.header("content-type"), Some("application/json"));

    let wrong_amount = notification_for(Tamper::WrongAmount(1));
    assert!(verifies(&wrong_amount, WECHATPAY_PUBLIC_KEY_PEM));
    let resource = plaintext(&wrong_amount);
    assert_eq!(resource["amount"]["total"], 1);
    assert_eq!(resource["amount"]["payer_total"], 1);
    assert_eq!(resource["out_trade_no"], "CP2025090100000020");

    let probe_signature = notification_for(Tamper::Signtest);
    assert!(
        probe_signature
            .header("Wechatpay-Signature")
            .unwrap()
            .starts_with(SIGNTEST_PREFIX)
    );
    assert!(!verifies(&probe_signature, WECHATPAY_PUBLIC_KEY_PEM));
    assert_eq!(plaintext(&probe_signature), paid.transaction);

    let stale = notification_for(Tamper::StaleTimestamp);
    assert!(verifies(&stale, WECHATPAY_PUBLIC_KEY_PEM));
    let timestamp: i64 = stale
        .header("Wechatpay-Timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!(probe.clock.now().timestamp() - timestamp > CLOCK_SKEW_SECS);

    let forged = notification_for(Tamper::WrongKey);
    assert_eq!(
        forged.header("Wechatpay-Serial"),
        Some(SANDBOX_PUBLIC_KEY_ID)
    );
    assert!(!verifies(&forged, WECHATPAY_PUBLIC_KEY_PEM));
    assert!(verifies(&forged, MERCHANT_PUBLIC_KEY_PEM));

    let unknown = notification_for(Tamper::UnknownOrder("CP2099123100000001".to_owned()));
    assert!(verifies(&unknown, WECHATPAY_PUBLIC_KEY_PEM));
    let resource = plaintext(&unknown);
    assert_eq!(resource["out_trade_no"], "CP2099123100000001");
    assert_ne!(
        resource["transaction_id"],
        paid.transaction["transaction_id"]
    );

    // For an unpaid order: the payment as it would be; the order stays unpaid.
    probe.jsapi("CP2025090100000021").await;
    let forged = probe
        .sandbox
        .notification_for("CP2025090100000021", Tamper::WrongKey)
        .unwrap();
    let resource = plaintext(&forged);
    assert_eq!(resource["trade_state"], "SUCCESS");
    assert_eq!(resource["out_trade_no"], "CP2025090100000021");
    let state = probe
        .sandbox
        .transaction("CP2025090100000021")
        .unwrap()
        .trade_state;
    assert_eq!(state, TradeState::NotPay);
    assert_eq!(
        probe
            .sandbox
            .notification_for("CP2099123100000001", Tamper::None),
        Err(PayError::UnknownOrder("CP2099123100000001".to_owned()))
    );
}

#[tokio::test]
async fn the_cashier_pays_notifies_and_links_back() {
    let mut probe = Probe::start().await;
    let receiver = Receiver::start().await;
    probe.notify_url = receiver.url.clone();
    probe.sandbox.set_payee_name("某某职业技术学院");
    let prepay_id = probe.jsapi("CP2025090100000022").await;
    let return_to = "http://127.0.0.1:8080/h5/orders/CP2025090100000022?from=cashier&x=1";
    let url = probe
        .sandbox
        .cashier_url_for_prepay(&prepay_id, Some(return_to));
    let page = probe.http.get(url.clone()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    for expected in ["微信支付 沙箱", "某某职业技术学院", "¥1500.00", "确认支付"]
    {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }

    let mut cashier = probe.sandbox.base_url();
    cashier.set_path(paths::CASHIER);
    let form = [("prepay_id", prepay_id.as_str()), ("return_to", return_to)];
    let paid_page = probe
        .http
        .post(cashier.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(paid_page.status(), StatusCode::OK);
    let paid_page = paid_page.text().await.unwrap();
    assert!(paid_page.contains("支付成功"), "{paid_page}");
    assert!(paid_page.contains("from=cashier&amp;x=1"), "{paid_page}");
    let transaction = probe.sandbox.transaction("CP2025090100000022").unwrap();
    assert_eq!(transaction.trade_state, TradeState::Success);
    receiver.wait_for(1).await;

    let again = probe
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("该订单已支付"), "{again}");
    let twice = probe
        .http
        .post(cashier.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(twice.text().await.unwrap().contains("该订单已支付"));

    let code_url = probe.native("CP2025090100000023").await;
    let url = probe
        .sandbox
        .cashier_url_for_code_url(&code_url, Some("javascript:alert(1)"));
    let page = probe
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("确认支付") && page.contains("扫码支付"),
        "{page}"
    );
    assert!(!page.contains("javascript:"), "{page}");
    let form = [("code_url", code_url.as_str())];
    probe.http.post(cashier).form(&form).send().await.unwrap();
    let transaction = probe.sandbox.transaction("CP2025090100000023").unwrap();
    assert_eq!(transaction.openid.as_deref(), Some(NATIVE_PAYER_OPENID));

    let url = probe
        .sandbox
        .cashier_url_for_prepay("wx_never_issued", None);
    let missing = probe.http.get(url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("订单不存在"));
}

#[tokio::test]
async fn a_hung_request_is_held_then_handled() {
    let probe = Probe::start().await;
    probe
        .sandbox
        .hang_next(paths::JSAPI, Duration::from_millis(300), 1);
    let order = probe.order("CP2025090100000031");
    let (answer, held_meanwhile) = tokio::join!(probe.post(paths::JSAPI, &order), async {
        while probe.sandbox.held_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe.sandbox.transactions().len()
    });
    assert_eq!(held_meanwhile, 0, "nothing happens while held");
    assert_eq!(answer.status, 200);
    assert_eq!(probe.sandbox.held_requests(), 0);
    assert_eq!(probe.sandbox.transactions().len(), 1);
    // Only the next one hangs.
    probe.query("CP2025090100000031").await.expect(200);
}

#[tokio::test]
async fn injected_failures_and_spoilt_answers() {
    let probe = Probe::start().await;
    probe
        .sandbox
        .fail_next(paths::JSAPI, 500, codes::SYSTEM_ERROR, 1);
    probe
        .post(paths::JSAPI, &probe.order("CP2025090100000024"))
        .await
        .expect_error(500, codes::SYSTEM_ERROR);
    assert!(probe.sandbox.transactions().is_empty());
    probe.jsapi("CP2025090100000024").await;

    probe.sandbox.fail_next(
        &paths::query("CP2025090100000024"),
        429,
        "FREQUENCY_LIMITED",
        1,
    );
    probe
        .query("CP2025090100000024")
        .await
        .expect_error(429, "FREQUENCY_LIMITED");
    probe.query("CP2025090100000024").await.expect(200);
    assert_eq!(probe.sandbox.calls_to(paths::QUERY_BY_OUT_TRADE_NO), 2);
    assert_eq!(
        probe.sandbox.calls_to(&paths::query("CP2025090100000024")),
        2
    );

    // The prepay happens; its answer cannot be trusted.
    for tamper in [
        ResponseTamper::Signtest,
        ResponseTamper::WrongKey,
        ResponseTamper::StaleTimestamp,
        ResponseTamper::UnknownSerial,
    ] {
        probe
            .sandbox
            .tamper_next_responses(paths::NATIVE, tamper, 1);
        let number = format!("CP20250901{:08}", probe.sandbox.transactions().len());
        let mut body = probe.order(&number);
        body.as_object_mut().unwrap().remove("payer");
        let answer = probe.post(paths::NATIVE, &body).await;
        assert_eq!(answer.status, 200);
        assert!(answer.json()["code_url"].is_string());
        let trusted = answer.verifies()
            && answer.header("Wechatpay-Serial").as_deref() == Some(SANDBOX_PUBLIC_KEY_ID)
            && answer
                .header("Wechatpay-Timestamp")
                .and_then(|ts| ts.parse::<i64>().ok())
                .is_some_and(|ts| (probe.clock.now().timestamp() - ts).abs() < CLOCK_SKEW_SECS);
        assert!(!trusted, "{tamper:?}");
        assert!(probe.sandbox.transaction(&number).is_some());
    }

    probe
        .get(paths::CERTIFICATES)
        .await
        .expect_error(404, codes::RESOURCE_NOT_EXISTS);
    probe
        .get("/v3/refund/domestic/refunds/R1")
        .await
        .expect_error(404, codes::RESOURCE_NOT_EXISTS);
}

/// wechat-anchors.md §3.6 (a): the official Go SDK's RSA-SHA256 signature of
/// "source"; (e): the doc example's request message with the same key.
#[test]
fn the_sandboxs_own_signer_matches_the_official_vectors() {
    let key = pem_der(GO_SDK_PRIVATE_PEM)
        .and_then(|der| RsaKeyPair::from_pkcs8(&der).ok())
        .expect("the Go SDK's key");
    assert_eq!(rsa_sign(&key, b"source"), GO_SDK_SIGNATURE_OF_SOURCE);
    assert_eq!(
        rsa_sign(
            &key,
            b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
        ),
        "RjVFHMcrr9NsM4SiNmpFx6QPR99WztxatBshmr/6f7pXnt2YSPAhmNrEEAjWgpOcf5Zxbwl2qdPACOsEOeGrnLD81nVK3ucJq50iD0FAyF11knd1C9ic7zV9Jg3zao0+Wx3yAI6jXx6NLBEfNNspCazrQ+IHsUi04tubSBsT+4LHT9j0rL9axFBl7jVYe7uZ1ZQzap8EokLHDQbYw6qPEOs85+a2rnudh3TCPe81oUfe0zPqwEE6sWxxeSCYx+1mbURsOAN4Z8/uKgOIZxbDAkqYWFb7VOaHFeejC1rsxUc7wkw0zQWxae1giswROXii1DorwdJ3CGlPchx0PyDjkQ=="
    );
}

/// wechat-anchors.md §3.6 (e): AES-256-GCM with a 32-byte key, as WeChat encrypts
/// a notification's resource.
#[test]
fn the_sandboxs_own_encryption_matches_the_vector() {
    let plaintext = r#"{"mchid":"1900000109","out_trade_no":"WWZY2025090100000001","trade_state":"SUCCESS","amount":{"total":150000,"currency":"CNY"}}"#;
    assert_eq!(
        aes_gcm_encrypt(
            b"abcdefghijklmnopqrstuvwxyz123456",
            b"0123456789ab",
            b"transaction",
            plaintext.as_bytes()
        ),
        "AQfVc95VzuOgKLrKsAYA5B2Bg91aK1qdga4OeqwaqnU2dVU6/ZcynFIosEIAQ0T+4t+FN58ZsEzucGk2p6lxnO1ZkGYAGuMLGFclCmWIYvZz89KY3boPm0hGFrrr4BuQ999GFeud99MTBAs1Zy+VJEYYw99b7QZW/WZ9LTYGGwNZxvv8Qb4yvXrLV4sjD54="
    );
}

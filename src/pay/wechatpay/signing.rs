//! What we sign: every API request (the `Authorization` header) and the JSAPI
//! parameters the page hands to `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`.

use rand::RngExt;
use serde::{Deserialize, Serialize};
use url::Url;

use super::keys::MerchantKey;

/// The only scheme WeChat Pay v3 knows.
pub const AUTHORIZATION_SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

/// Nonces are 32 characters of `[0-9A-Z]` (WeChat allows up to 32).
const NONCE_LEN: usize = 32;
const NONCE_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A fresh random nonce for a request or for `nonceStr`.
pub fn new_nonce() -> String {
    let mut rng = rand::rng();
    (0..NONCE_LEN)
        .map(|_| {
            let index = rng.random_range(0..NONCE_ALPHABET.len());
            char::from(NONCE_ALPHABET[index])
        })
        .collect()
}

/// The URL as the signature sees it: the path, then `?query` when there is one.
/// No scheme, no host.
pub fn canonical_url(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{}", url.path(), query),
        None => url.path().to_owned(),
    }
}

/// `METHOD\nCANONICAL_URL\nTIMESTAMP\nNONCE\nBODY\n`: five lines, the last one
/// terminated too. `body` is exactly the bytes sent; empty for a GET.
pub fn request_signature_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{canonical_url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// Who signs our requests: the merchant id, the serial number of the merchant API
/// certificate (`serial_no`), and its private key.
#[derive(Debug)]
pub struct RequestSigner {
    pub mchid: String,
    pub merchant_serial: String,
    pub key: MerchantKey,
}

impl RequestSigner {
    /// The `Authorization` header value for one request.
    pub fn authorization(
        &self,
        method: &str,
        canonical_url: &str,
        body: &str,
        timestamp: i64,
        nonce: &str,
    ) -> String {
        let message = request_signature_message(method, canonical_url, timestamp, nonce, body);
        let signature = self.key.sign_sha256_base64(message.as_bytes());
        authorization_value(&AuthorizationFields {
            schema: AUTHORIZATION_SCHEMA,
            mchid: &self.mchid,
            nonce,
            timestamp,
            serial_no: &self.merchant_serial,
            signature: &signature,
        })
    }
}

struct AuthorizationFields<'a> {
    schema: &'a str,
    mchid: &'a str,
    nonce: &'a str,
    timestamp: i64,
    serial_no: &'a str,
    signature: &'a str,
}

fn authorization_value(fields: &AuthorizationFields<'_>) -> String {
    format!(
        r#"{} mchid="{}",nonce_str="{}",timestamp="{}",serial_no="{}",signature="{}""#,
        fields.schema,
        fields.mchid,
        fields.nonce,
        fields.timestamp,
        fields.serial_no,
        fields.signature
    )
}

/// The object the page passes to `getBrandWCPayRequest`, names exactly as WeChat
/// wants them (`appId`, `timeStamp`, `nonceStr`, `package`, `signType`, `paySign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsapiPayParams {
    pub app_id: String,
    /// Seconds since the epoch, as a string.
    pub time_stamp: String,
    pub nonce_str: String,
    /// `prepay_id=…`
    pub package: String,
    /// Always `RSA` in v3.
    pub sign_type: String,
    pub pay_sign: String,
}

impl JsapiPayParams {
    /// Signs `appId\ntimeStamp\nnonceStr\npackage\n` with the merchant key.
    pub fn sign(
        key: &MerchantKey,
        app_id: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Self {
        let time_stamp = timestamp.to_string();
        let package = format!("prepay_id={prepay_id}");
        let message = pay_sign_message(app_id, &time_stamp, nonce, &package);
        Self {
            app_id: app_id.to_owned(),
            time_stamp,
            nonce_str: nonce.to_owned(),
            package,
            sign_type: "RSA".to_owned(),
            pay_sign: key.sign_sha256_base64(message.as_bytes()),
        }
    }
}

/// `appId\ntimeStamp\nnonceStr\npackage\n`
pub fn pay_sign_message(app_id: &str, time_stamp: &str, nonce: &str, package: &str) -> String {
    format!("{app_id}\n{time_stamp}\n{nonce}\n{package}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pay::wechatpay::keys::WechatPayPublicKey;
    use crate::pay::wechatpay::keys::tests::{
        GO_SDK_PRIVATE_PEM, MERCHANT_PRIVATE_PEM, MERCHANT_PUBLIC_PEM,
    };

    fn go_sdk_key() -> MerchantKey {
        MerchantKey::from_pem(GO_SDK_PRIVATE_PEM).expect("Go SDK test key")
    }

    /// wechat-anchors §3.6 (b), wechatpay-go `wechat_pay_credential_test.go`: the
    /// mock signer returns `"Sign:" + message`; everything else is ours.
    #[test]
    fn authorization_shape_matches_the_go_sdk() {
        let cases = [
            (
                "GET",
                "",
                r#"WECHATPAY2-Mock mchid="1234567890",nonce_str="A1B2C3D4E5F6G7",timestamp="1624523846",serial_no="0123456789ABC",signature="Sign:GET
/v3/certificates
1624523846
A1B2C3D4E5F6G7

""#,
            ),
            (
                "POST",
                "Hello World!\n",
                r#"WECHATPAY2-Mock mchid="1234567890",nonce_str="A1B2C3D4E5F6G7",timestamp="1624523846",serial_no="0123456789ABC",signature="Sign:POST
/v3/certificates
1624523846
A1B2C3D4E5F6G7
Hello World!

""#,
            ),
        ];
        for (method, body, expected) in cases {
            let message = request_signature_message(
                method,
                "/v3/certificates",
                1624523846,
                "A1B2C3D4E5F6G7",
                body,
            );
            let header = authorization_value(&AuthorizationFields {
                schema: "WECHATPAY2-Mock",
                mchid: "1234567890",
                nonce: "A1B2C3D4E5F6G7",
                timestamp: 1624523846,
                serial_no: "0123456789ABC",
                signature: &format!("Sign:{message}"),
            });
            assert_eq!(header, expected, "{method}");
        }
    }

    /// wechat-anchors §3.6 (e): the official doc's request example, signed with the
    /// Go SDK test key.
    #[test]
    fn request_signature_vector() {
        let signer = RequestSigner {
            mchid: "1900009191".to_owned(),
            merchant_serial: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C".to_owned(),
            key: go_sdk_key(),
        };
        let header = signer.authorization(
            "GET",
            "/v3/certificates",
            "",
            1554208460,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
        );
        assert_eq!(
            header,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="RjVFHMcrr9NsM4SiNmpFx6QPR99WztxatBshmr/6f7pXnt2YSPAhmNrEEAjWgpOcf5Zxbwl2qdPACOsEOeGrnLD81nVK3ucJq50iD0FAyF11knd1C9ic7zV9Jg3zao0+Wx3yAI6jXx6NLBEfNNspCazrQ+IHsUi04tubSBsT+4LHT9j0rL9axFBl7jVYe7uZ1ZQzap8EokLHDQbYw6qPEOs85+a2rnudh3TCPe81oUfe0zPqwEE6sWxxeSCYx+1mbURsOAN4Z8/uKgOIZxbDAkqYWFb7VOaHFeejC1rsxUc7wkw0zQWxae1giswROXii1DorwdJ3CGlPchx0PyDjkQ==""#
        );
    }

    /// wechat-anchors §3.6 (e): the official JSAPI doc example, signed with the Go
    /// SDK test key.
    #[test]
    fn pay_sign_vector() {
        let params = JsapiPayParams::sign(
            &go_sdk_key(),
            "wx8888888888888888",
            "wx201410272009395522657a690389285100",
            1414561699,
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        );
        assert_eq!(
            params.pay_sign,
            "UV+EKQ3OdnOkUbbKaVi53s/67T59JbHx9gc9MaWoQEOaiZH+uYMByfW2MWXTZW1gnOXl1CqwzHtx7QUxfatSdSxgBhbNhJx1QaxkP0zSXAgXIoWPAktOlj9n/phfOH95rNl8bHzRDUoNAMQmfQy8SHGooKtEU6/87nWXHhcYarv/nmtgAJcwsV+lGJQ4jLZhGl5BaAvpLW1Xg8yYg1DXNjik2SPK8d+4FRSkW671wIvxXQCYqG3mi3FvxP5XJ3OBVbPk4GRf/8wi2r2eiqXYd5e4mRMIAOGxqape9Cm46kxrjlHF0uM+wSir4Nychn2H5geUh2YvE8vJJMAqmkN2gg=="
        );
        assert_eq!(
            params.package,
            "prepay_id=wx201410272009395522657a690389285100"
        );
        assert_eq!(params.time_stamp, "1414561699");
    }

    #[test]
    fn jsapi_params_serialise_with_wechat_names() {
        let params = JsapiPayParams::sign(
            &go_sdk_key(),
            "wx8888888888888888",
            "wx2014",
            1414561699,
            "NONCE",
        );
        let json = serde_json::to_value(&params).expect("json");
        let mut names: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "appId",
                "nonceStr",
                "package",
                "paySign",
                "signType",
                "timeStamp"
            ]
        );
        assert_eq!(json["signType"], "RSA");
        assert_eq!(json["timeStamp"], "1414561699");
    }

    #[test]
    fn sandbox_merchant_signature_verifies_with_its_public_half() {
        let signer = RequestSigner {
            mchid: "1900000109".to_owned(),
            merchant_serial: "SANDBOX".to_owned(),
            key: MerchantKey::from_pem(MERCHANT_PRIVATE_PEM).expect("merchant key"),
        };
        let body = r#"{"mchid":"1900000109"}"#;
        let header = signer.authorization("POST", "/v3/pay/transactions/jsapi", body, 1, "N");
        let signature = header
            .split("signature=\"")
            .nth(1)
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("signature field");
        let public = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_PEM).expect("public");
        let message = request_signature_message("POST", "/v3/pay/transactions/jsapi", 1, "N", body);
        assert!(public.verify_sha256(message.as_bytes(), signature));
    }

    #[test]
    fn canonical_url_is_path_and_query() {
        let url = Url::parse(
            "https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/A1?mchid=1900000109",
        )
        .expect("url");
        assert_eq!(
            canonical_url(&url),
            "/v3/pay/transactions/out-trade-no/A1?mchid=1900000109"
        );
        let url = Url::parse("https://api.mch.weixin.qq.com/v3/certificates").expect("url");
        assert_eq!(canonical_url(&url), "/v3/certificates");
    }

    #[test]
    fn nonces_are_32_upper_alphanumerics_and_differ() {
        let first = new_nonce();
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| NONCE_ALPHABET.contains(&b)));
        assert_ne!(first, new_nonce());
    }
}

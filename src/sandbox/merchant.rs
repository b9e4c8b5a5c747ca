//! The demo school's WeChat Pay merchant, as the demo and the tests configure
//! campus-pay against [`super::wechat_pay::WechatPaySandbox`]: its ids, its APIv3 key,
//! and the key files `CAMPUSPAY_WECHATPAY_*_FILE` point at. The keys are the published
//! sandbox keys (`src/sandbox/keys/README.md`): never for production.

use std::path::{Path, PathBuf};

use super::wechat_pay::{
    MERCHANT_PRIVATE_KEY_PEM, SANDBOX_PUBLIC_KEY_ID, SandboxMerchant, WECHATPAY_PUBLIC_KEY_PEM,
};

pub const MCHID: &str = "1900000109";
pub const MERCHANT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
/// 32 ASCII bytes, as WeChat Pay's APIv3 keys are.
pub const APIV3_KEY: &str = "campuspaysandboxapiv3key32bytes0";

/// The merchant as the sandbox must know it, for the official account `appid`.
pub fn sandbox_merchant(appid: &str) -> SandboxMerchant {
    SandboxMerchant {
        appid: appid.to_owned(),
        mchid: MCHID.to_owned(),
        merchant_serial: MERCHANT_SERIAL.to_owned(),
        apiv3_key: APIV3_KEY.to_owned(),
    }
}

/// The two key files, written under `dir`.
pub struct KeyFiles {
    pub private_key: PathBuf,
    pub wechatpay_public_key: PathBuf,
}

pub fn write_key_files(dir: &Path) -> std::io::Result<KeyFiles> {
    std::fs::create_dir_all(dir)?;
    let files = KeyFiles {
        private_key: dir.join("sandbox_merchant_private_key.pem"),
        wechatpay_public_key: dir.join("sandbox_wechatpay_public_key.pem"),
    };
    std::fs::write(&files.private_key, MERCHANT_PRIVATE_KEY_PEM)?;
    std::fs::write(&files.wechatpay_public_key, WECHATPAY_PUBLIC_KEY_PEM)?;
    Ok(files)
}

/// The `CAMPUSPAY_WECHATPAY_*` settings for a sandbox at `api_base`.
pub fn settings(api_base: &str, files: &KeyFiles) -> Vec<(&'static str, String)> {
    vec![
        ("CAMPUSPAY_WECHATPAY_MCHID", MCHID.to_owned()),
        (
            "CAMPUSPAY_WECHATPAY_CERT_SERIAL",
            MERCHANT_SERIAL.to_owned(),
        ),
        (
            "CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE",
            files.private_key.display().to_string(),
        ),
        ("CAMPUSPAY_WECHATPAY_APIV3_KEY", APIV3_KEY.to_owned()),
        (
            "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_FILE",
            files.wechatpay_public_key.display().to_string(),
        ),
        (
            "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_ID",
            SANDBOX_PUBLIC_KEY_ID.to_owned(),
        ),
        ("CAMPUSPAY_WECHATPAY_API_BASE", api_base.to_owned()),
    ]
}

/// The demo school's Alipay app against [`super::alipay::AlipaySandbox`] (spawned
/// with [`super::alipay::SANDBOX_APP_ID`]) at `gateway`: writes the app private key
/// and the sandbox's Alipay public key under `dir` and returns the
/// `CAMPUSPAY_ALIPAY_*` settings. Published sandbox keys: never for production.
pub fn alipay_settings(gateway: &str, dir: &Path) -> std::io::Result<Vec<(&'static str, String)>> {
    use super::alipay::{ALIPAY_PUBLIC_KEY_PEM, APP_PRIVATE_KEY_PEM, SANDBOX_APP_ID};
    std::fs::create_dir_all(dir)?;
    let private_key = dir.join("sandbox_alipay_app_private_key.pem");
    let public_key = dir.join("sandbox_alipay_public_key.pem");
    std::fs::write(&private_key, APP_PRIVATE_KEY_PEM)?;
    std::fs::write(&public_key, ALIPAY_PUBLIC_KEY_PEM)?;
    Ok(vec![
        ("CAMPUSPAY_ALIPAY_APPID", SANDBOX_APP_ID.to_owned()),
        (
            "CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE",
            private_key.display().to_string(),
        ),
        (
            "CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE",
            public_key.display().to_string(),
        ),
        ("CAMPUSPAY_ALIPAY_GATEWAY", gateway.to_owned()),
        // The sandbox sends its merchant's PID as `seller_id`, as Alipay does.
        (
            "CAMPUSPAY_ALIPAY_SELLER_ID",
            super::alipay::SELLER_ID.to_owned(),
        ),
    ])
}

/// The demo school's ABC merchant against [`super::abc::AbcSandbox`] at `gateway`:
/// writes the merchant's PKCS#12 file (as the bank issues it) and the sandbox's
/// TrustPay certificate under `dir` and returns the `CAMPUSPAY_ABC_*` settings.
/// Published sandbox keys: never for production.
pub fn abc_settings(gateway: &str, dir: &Path) -> std::io::Result<Vec<(&'static str, String)>> {
    use super::abc::{MERCHANT_ID, MERCHANT_P12, MERCHANT_P12_PASSWORD, TRUSTPAY_CERT_PEM};
    std::fs::create_dir_all(dir)?;
    let merchant_key = dir.join("sandbox_abc_merchant.p12");
    let trustpay_cert = dir.join("sandbox_abc_trustpay_cert.pem");
    std::fs::write(&merchant_key, MERCHANT_P12)?;
    std::fs::write(&trustpay_cert, TRUSTPAY_CERT_PEM)?;
    Ok(vec![
        ("CAMPUSPAY_ABC_MERCHANT_ID", MERCHANT_ID.to_owned()),
        (
            "CAMPUSPAY_ABC_CERT_FILE",
            merchant_key.display().to_string(),
        ),
        (
            "CAMPUSPAY_ABC_CERT_PASSWORD",
            MERCHANT_P12_PASSWORD.to_owned(),
        ),
        (
            "CAMPUSPAY_ABC_TRUSTPAY_CERT_FILE",
            trustpay_cert.display().to_string(),
        ),
        ("CAMPUSPAY_ABC_GATEWAY", gateway.to_owned()),
    ])
}

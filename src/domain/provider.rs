//! The payment providers and the ways a student pays through each: one place for the
//! names the pages, the metrics, the routes and the stored rows use. A payment channel
//! is a (provider, method) pair; adding a provider starts with a variant here.

/// Who takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    WechatPay,
    Alipay,
    /// The Agricultural Bank of China.
    Abc,
}

/// How the student pays through a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Inside the WeChat official account (JSAPI).
    InAccount,
    /// By scanning a code shown on the PC portal.
    Scan,
    /// On the provider's own payment page.
    Page,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::WechatPay, Provider::Alipay, Provider::Abc];

    /// The provider's code: stored in `payment_notifications.channel` and
    /// `reconciliation_runs.channel`, given to `--channel`, the `channel` label of the
    /// payment metrics (the dashboard and alert rules name it) and the last segment of
    /// its notification path. Never change one.
    pub fn code(self) -> &'static str {
        match self {
            Provider::WechatPay => "wechat",
            Provider::Alipay => "alipay",
            Provider::Abc => "abc",
        }
    }

    pub fn parse(code: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.code() == code)
    }

    /// As the finance office and the receipt name it.
    pub fn label(self) -> &'static str {
        match self {
            Provider::WechatPay => "微信支付",
            Provider::Alipay => "支付宝",
            Provider::Abc => "中国农业银行",
        }
    }

    /// The `upstream` label of the metrics of our calls to it.
    pub fn upstream(self) -> &'static str {
        match self {
            Provider::WechatPay => "wechatpay",
            Provider::Alipay => "alipay",
            Provider::Abc => "abc",
        }
    }

    /// Where it sends its payment notifications.
    pub fn notify_path(self) -> &'static str {
        match self {
            Provider::WechatPay => "/pay/notify/wechat",
            Provider::Alipay => "/pay/notify/alipay",
            Provider::Abc => "/pay/notify/abc",
        }
    }
}

/// A payment channel as the console names it.
pub fn channel_label(provider: Provider, method: Method) -> &'static str {
    match (provider, method) {
        (Provider::WechatPay, Method::InAccount) => "微信（公众号内）",
        (Provider::WechatPay, _) => "微信（扫码）",
        (Provider::Alipay, _) => "支付宝",
        (Provider::Abc, Method::Scan) => "中国农业银行（扫码）",
        (Provider::Abc, _) => "中国农业银行（网页）",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_back_and_name_the_notification_path() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.code()), Some(provider));
            assert!(provider.notify_path().ends_with(provider.code()));
        }
        assert_eq!(Provider::parse("wechatpay"), None);
    }
}

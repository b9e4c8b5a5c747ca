//! A student's browser, as far as the server can tell: one session cookie, forms
//! posted as browsers post them, redirects followed by hand so that tests can look at
//! each step.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use super::TestApp;

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the hidden `csrf` field of the page's form.
    pub fn csrf(&self) -> String {
        hidden_value(&self.body, "csrf").expect("the page has a CSRF field")
    }

    pub fn redirects_to(&self, path: &str) -> bool {
        self.status.is_redirection() && self.location.as_deref() == Some(path)
    }
}

/// The `value` of `<input … name="{name}" value="…">`.
pub fn hidden_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub session: Option<String>,
    /// The address nginx would report (`X-Real-IP`), so tests can play many clients.
    pub address: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            session: None,
            address: "203.0.113.7".into(),
        }
    }

    /// `url` may be a path on the app, or the app's public URL (as OAuth returns).
    fn absolute(&self, url: &str) -> String {
        if let Some(path) = url.strip_prefix(super::PUBLIC_URL) {
            format!("{}{path}", self.app.url)
        } else if url.starts_with('/') {
            format!("{}{url}", self.app.url)
        } else {
            url.to_owned()
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.app.client.get(self.absolute(url));
        self.send(request).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let request = self.app.client.post(self.absolute(url)).form(form);
        self.send(request).await
    }

    pub async fn get_bytes(&mut self, url: &str) -> (StatusCode, Vec<u8>) {
        let mut request = self.app.client.get(self.absolute(url));
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("cp_session={session}"));
        }
        let response = request.send().await.expect("request sent");
        self.remember_cookie(&response);
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        request = request.header("x-real-ip", &self.address);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("cp_session={session}"));
        }
        let response = request.send().await.expect("request sent");
        self.remember_cookie(&response);
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: response.text().await.expect("body"),
        }
    }

    fn remember_cookie(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let Some(pair) = value.split(';').next() else {
                continue;
            };
            if let Some(id) = pair.strip_prefix("cp_session=") {
                self.session = (!id.is_empty()).then(|| id.to_owned());
            }
        }
    }

    /// The WeChat round trip of `/h5` for `openid`: the app's redirect to WeChat, the
    /// sandbox's authorize page, and the callback. Returns the callback's answer.
    pub async fn wechat_oauth(&mut self, openid: &str) -> Page {
        let start = self.get("/h5").await;
        assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
        let authorize = start.location.expect("a redirect to WeChat");
        let authorize = authorize.replace("#wechat_redirect", "") + "&sandbox_openid=" + openid;
        let wechat = self
            .app
            .client
            .get(&authorize)
            .send()
            .await
            .expect("the sandbox answers");
        assert_eq!(wechat.status(), StatusCode::FOUND);
        let back = wechat.headers()[LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned();
        self.get(&back).await
    }
}

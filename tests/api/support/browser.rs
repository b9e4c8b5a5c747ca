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
    /// `cp_session` for a student's browser, `cp_admin` for the console's.
    pub cookie_name: &'static str,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            session: None,
            address: "203.0.113.7".into(),
            cookie_name: "cp_session",
        }
    }

    /// A browser on the console: it holds the `cp_admin` cookie.
    pub fn console(app: &'a TestApp) -> Browser<'a> {
        Browser {
            cookie_name: "cp_admin",
            address: "198.51.100.20".into(),
            ..Browser::new(app)
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

    /// Posts a form as a request nginx named `request_id` (`X-Request-Id`).
    pub async fn post_with_request_id(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        request_id: &str,
    ) -> Page {
        let request = self
            .app
            .client
            .post(self.absolute(url))
            .header("x-request-id", request_id)
            .form(form);
        self.send(request).await
    }

    /// Posts a `multipart/form-data` form (a file upload).
    pub async fn post_multipart(&mut self, url: &str, form: reqwest::multipart::Form) -> Page {
        let request = self.app.client.post(self.absolute(url)).multipart(form);
        self.send(request).await
    }

    /// A GET whose answer is a download: status, `Content-Type`, bytes.
    pub async fn download(&mut self, url: &str) -> (StatusCode, String, Vec<u8>) {
        let mut request = self
            .app
            .client
            .get(self.absolute(url))
            .header("x-real-ip", &self.address);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("{}={session}", self.cookie_name));
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            content_type,
            response.bytes().await.expect("body").to_vec(),
        )
    }

    pub async fn get_bytes(&mut self, url: &str) -> (StatusCode, Vec<u8>) {
        let mut request = self.app.client.get(self.absolute(url));
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("{}={session}", self.cookie_name));
        }
        let response = request.send().await.expect("request sent");
        self.remember_cookie(&response);
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        request = request.header("x-real-ip", &self.address);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("{}={session}", self.cookie_name));
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
            let Some((name, id)) = pair.split_once('=') else {
                continue;
            };
            if name == self.cookie_name {
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

/// The password every signed-in test student chooses at first login.
pub const NEW_PASSWORD: &str = "Campus2026pay";

impl<'a> Browser<'a> {
    /// A student bound in WeChat as `openid`, past the first password change, on the
    /// fee list.
    pub async fn signed_in_h5(
        app: &'a TestApp,
        openid: &str,
        id_card: &str,
        initial: &str,
    ) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let back = browser.wechat_oauth(openid).await;
        assert!(back.redirects_to("/h5"), "{:?}", back.location);
        assert!(browser.get("/h5").await.redirects_to("/h5/bind"));
        let form = browser.get("/h5/bind").await;
        let bound = browser
            .post(
                "/h5/bind",
                &[
                    ("csrf", &form.csrf()),
                    ("id_card", id_card),
                    ("id_card_again", id_card),
                    ("password", initial),
                ],
            )
            .await;
        assert!(
            bound.redirects_to("/h5/password"),
            "{:?} {}",
            bound.location,
            bound.body
        );
        browser.choose_password("/h5").await;
        browser
    }

    /// A student signed in on the PC portal (captcha read from the cache), past the
    /// first password change.
    pub async fn signed_in_pc(app: &'a TestApp, id_card: &str, initial: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let signed_in = browser.pc_login(id_card, initial).await;
        assert!(
            signed_in.redirects_to("/password"),
            "{:?} {}",
            signed_in.location,
            signed_in.body
        );
        browser.choose_password("").await;
        browser
    }

    /// Posts the PC portal's login form (the captcha's answer read from the cache, as a
    /// second instance would) and returns the answer.
    pub async fn pc_login(&mut self, id_card: &str, password: &str) -> Page {
        let page = self.get("/").await;
        let (status, _) = self.get_bytes("/captcha").await;
        assert_eq!(status, StatusCode::OK);
        let session = self.session.clone().expect("a session");
        let answer = self
            .app
            .state
            .cache
            .get(&campus_pay::web::students::captcha_key(&session))
            .await
            .expect("cache")
            .expect("captcha answer");
        self.post(
            "/login",
            &[
                ("csrf", &page.csrf()),
                ("id_card", id_card),
                ("password", password),
                ("captcha", &answer),
            ],
        )
        .await
    }

    async fn choose_password(&mut self, prefix: &str) {
        let form = self.get(&format!("{prefix}/password")).await;
        let chosen = self
            .post(
                &format!("{prefix}/password"),
                &[
                    ("csrf", &form.csrf()),
                    ("new_password", NEW_PASSWORD),
                    ("new_password_again", NEW_PASSWORD),
                ],
            )
            .await;
        assert!(
            chosen.redirects_to(&format!("{prefix}/fees")),
            "{:?}",
            chosen.location
        );
    }

    /// The ids of the ticked items on a fee list page, in page order.
    pub fn item_ids(page: &Page) -> Vec<String> {
        let marker = "name=\"item\" id=\"item-";
        page.body
            .match_indices(marker)
            .map(|(at, _)| {
                let rest = &page.body[at + marker.len()..];
                rest[..rest.find('"').expect("id ends")].to_owned()
            })
            .collect()
    }
}

/// The text of the element with `id` (its first text run), e.g. the order number.
pub fn element_text(body: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\">");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('<')?;
    Some(body[start..start + end].to_owned())
}

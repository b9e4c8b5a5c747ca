//! The finance office in tests: admins created as `campus-pay admin add` creates them,
//! and a console browser signed in as one.

use campus_pay::domain::password::hash_password;
use campus_pay::store::{AdminRole, AuditQuery, AuditRecord};
use reqwest::StatusCode;

use super::TestApp;
use super::browser::{Browser, Page};

/// Every test admin's password.
pub const ADMIN_PASSWORD: &str = "Finance-2026-office";
/// A `finance` admin (changes everything) and a `viewer` (reads only).
pub const FINANCE: &str = "caiwu";
pub const VIEWER: &str = "chakan";

impl TestApp {
    /// Creates `username` with `role` and [`ADMIN_PASSWORD`].
    pub async fn create_admin(&self, username: &str, role: AdminRole) {
        let hash = hash_password(ADMIN_PASSWORD).expect("hashes");
        let created = self
            .state
            .store
            .create_admin(username, &hash, role, self.clock.now())
            .await
            .expect("admin stored");
        assert!(created, "{username} is new");
    }

    /// A console browser signed in as a new admin `username` with `role`.
    pub async fn console_as(&self, username: &str, role: AdminRole) -> Browser<'_> {
        self.create_admin(username, role).await;
        let mut browser = Browser::console(self);
        let signed_in = browser.sign_in_to_console(username, ADMIN_PASSWORD).await;
        assert!(
            signed_in.redirects_to("/admin"),
            "{:?} {}",
            signed_in.location,
            signed_in.body
        );
        browser
    }

    /// The audit rows whose action starts with `prefix`, newest first.
    pub async fn audit_rows(&self, prefix: &str) -> Vec<AuditRecord> {
        let (rows, _) = self
            .state
            .store
            .audit_log(&AuditQuery {
                action_prefix: Some(prefix.to_owned()),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .expect("audit log reads");
        rows
    }
}

impl Browser<'_> {
    /// Loads the sign-in form and posts it, with the captcha's answer (read from the
    /// cache, as a second instance would) when the form asks for one.
    pub async fn sign_in_to_console(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let captcha = if form.body.contains("name=\"captcha\"") {
            self.console_captcha().await
        } else {
            String::new()
        };
        self.post(
            "/admin/login",
            &[
                ("csrf", &form.csrf()),
                ("username", username),
                ("password", password),
                ("captcha", &captcha),
            ],
        )
        .await
    }

    /// Loads the console's captcha picture and returns its answer from the cache.
    pub async fn console_captcha(&mut self) -> String {
        let (status, png) = self.get_bytes("/admin/captcha").await;
        assert_eq!(status, StatusCode::OK);
        assert!(png.starts_with(b"\x89PNG"));
        let session = self.session.clone().expect("a console session");
        self.app
            .state
            .cache
            .get(&campus_pay::web::students::captcha_key(&session))
            .await
            .expect("cache")
            .expect("the captcha's answer is in the cache")
    }

    /// The CSRF token of this console session, read off the home page.
    pub async fn console_csrf(&mut self) -> String {
        let home = self.get("/admin").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        home.csrf()
    }
}

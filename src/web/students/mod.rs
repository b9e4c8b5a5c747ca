//! The students' pages: the H5 pages opened from the account's menu (`/h5…`) and the
//! PC portal (`/`…). Both walk the same steps (sign in, first password change, the fee
//! list, confirmation); they differ in how a student proves who they are: WeChat
//! OAuth plus a one-time binding on mobile, a login with a captcha on PC.

pub(crate) mod captcha;
mod fees;
mod oauth;
mod password;
mod paying;
mod portal;
mod receipt;
pub(crate) mod remark;
mod signin;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use super::AppState;
use super::error::AppError;
use super::session::{Session, Sessions, SignedInOn, student_generation};
use super::views::{self, Surface};
use crate::store::StudentAccount;

pub use self::captcha::captcha_key;
pub use self::signin::{client_address, hash_new_password};

pub fn router() -> Router<AppState> {
    Router::new()
        // Mobile, inside WeChat.
        .route("/h5", get(oauth::entry))
        .route("/h5/oauth/callback", get(oauth::callback))
        .route("/h5/bind", get(oauth::bind_form).post(oauth::bind))
        .route(
            "/h5/password",
            get(|s, h| password::form(Surface::Mobile, s, h))
                .post(|s, c, h, f| password::change(Surface::Mobile, s, c, h, f)),
        )
        .route("/h5/fees", get(|s, h| fees::list(Surface::Mobile, s, h)))
        .route(
            "/h5/confirm",
            post(|s, h, f| fees::confirm(Surface::Mobile, s, h, f)),
        )
        .route("/h5/pay", post(paying::jsapi))
        .route(
            "/h5/orders/{number}",
            get(|s, h, p| paying::result(Surface::Mobile, s, h, p)),
        )
        .route(
            "/h5/orders/{number}/status",
            get(|s, h, p| paying::status(Surface::Mobile, s, h, p)),
        )
        .route(
            "/h5/orders/{number}/receipt",
            get(|s, h, p| receipt::receipt(Surface::Mobile, s, h, p)),
        )
        // PC portal.
        .route("/", get(portal::home))
        .route("/captcha", get(captcha::image))
        .route("/login", post(portal::login))
        .route("/logout", post(portal::logout))
        .route(
            "/password",
            get(|s, h| password::form(Surface::Pc, s, h))
                .post(|s, c, h, f| password::change(Surface::Pc, s, c, h, f)),
        )
        .route("/fees", get(|s, h| fees::list(Surface::Pc, s, h)))
        .route(
            "/confirm",
            post(|s, h, f| fees::confirm(Surface::Pc, s, h, f)),
        )
        .route("/pay", post(paying::choose))
        .route("/pay/wechat", post(paying::wechat_qr))
        .route("/pay/alipay", post(paying::alipay_qr))
        .route("/pay/abc/scan", post(paying::abc_qr))
        .route("/pay/abc/page", post(paying::abc_page))
        .route(
            "/orders/{number}",
            get(|s, h, p| paying::result(Surface::Pc, s, h, p)),
        )
        .route(
            "/orders/{number}/status",
            get(|s, h, p| paying::status(Surface::Pc, s, h, p)),
        )
        .route(
            "/orders/{number}/receipt",
            get(|s, h, p| receipt::receipt(Surface::Pc, s, h, p)),
        )
        // What the pages load.
        .route("/assets/app.css", get(stylesheet))
        .route("/assets/fees.js", get(fees_script))
        .route("/assets/pay.js", get(pay_script))
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../../h5/app.css"),
    )
}

async fn fees_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../h5/fees.js"),
    )
}

async fn pay_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../h5/pay.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

impl AppState {
    /// Sessions in this app's cache, with `Secure` cookies when served over https.
    pub fn sessions(&self) -> Sessions {
        Sessions::new(
            self.cache.clone(),
            self.config.public_url.scheme() == "https",
        )
    }
}

/// A page, with the session's cookie when one is given, never cached (it shows a
/// student's details or a form's token).
fn page_response(
    state: &AppState,
    status: StatusCode,
    session: Option<&Session>,
    markup: Markup,
) -> Response {
    let mut response = (status, markup).into_response();
    no_store(response.headers_mut());
    if let Some(session) = session {
        state.sessions().set_cookie(response.headers_mut(), session);
    }
    response
}

/// `303 See Other` to `to`, with the session's cookie when one is given.
fn redirect(state: &AppState, session: Option<&Session>, to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    no_store(response.headers_mut());
    if let Some(session) = session {
        state.sessions().set_cookie(response.headers_mut(), session);
    }
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Saves the session, then redirects with its cookie.
async fn save_and_redirect(
    state: &AppState,
    session: &mut Session,
    to: &str,
) -> Result<Response, AppError> {
    state.sessions().save(session, state.clock.now()).await?;
    Ok(redirect(state, Some(session), to))
}

/// A form posted without the session's CSRF token: refused, nothing done.
fn csrf_refused(state: &AppState, surface: Surface) -> Response {
    tracing::warn!("form refused: CSRF token missing or wrong");
    page_response(
        state,
        StatusCode::FORBIDDEN,
        None,
        views::message_page(
            surface,
            &state.config.school_name,
            "页面已过期",
            "页面已过期或来源不明，请返回重新操作。",
            (surface.entry(), "返回"),
        ),
    )
}

/// A page with one message and a link, with a status.
fn message(
    state: &AppState,
    surface: Surface,
    status: StatusCode,
    title: &str,
    text: &str,
    link: (&str, &str),
) -> Response {
    page_response(
        state,
        status,
        None,
        views::message_page(surface, &state.config.school_name, title, text, link),
    )
}

/// Where a request for a student's page stands.
enum Gate {
    /// Signed in, password chosen: the page may be shown.
    Open(Box<Session>, Box<StudentAccount>),
    /// Somewhere else first (sign in, change the password).
    Elsewhere(Response),
}

/// Which session surface a page belongs to.
fn signed_in_on(surface: Surface) -> SignedInOn {
    match surface {
        Surface::Pc => SignedInOn::Pc,
        Surface::Mobile => SignedInOn::H5,
    }
}

/// Marks `session` as the student's, signed in on `surface` in the student's current
/// session generation. The caller renews the session id first.
async fn sign_in_student(
    state: &AppState,
    session: &mut Session,
    student_id: i64,
    surface: Surface,
    password_typed: bool,
) -> Result<(), AppError> {
    let generation = student_generation(&state.cache, student_id).await?;
    session.data.sign_in_student(
        student_id,
        signed_in_on(surface),
        generation,
        password_typed,
        state.clock.now(),
    );
    Ok(())
}

/// Lets a signed-in student through. A session opens only the pages of the surface it
/// signed in on, and only while what signed it in still holds: on mobile the session's
/// WeChat user must still be the one bound to the student, and on both, no password
/// change, reset or unbinding may have ended the student's sessions since.
/// `allow_initial_password`: the password page itself.
async fn gate(
    state: &AppState,
    headers: &HeaderMap,
    surface: Surface,
    allow_initial_password: bool,
) -> Result<Gate, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let session = sessions.load(headers, now).await?;
    let Some(mut session) = session else {
        return Ok(Gate::Elsewhere(redirect(state, None, surface.entry())));
    };
    let Some(student_id) = session.data.student_id else {
        return Ok(Gate::Elsewhere(redirect(state, None, surface.entry())));
    };
    if session.data.signed_in_on != Some(signed_in_on(surface)) {
        // Another surface's session (or one from before surfaces were recorded): not
        // signed in here. Left as it is: on its own surface it may still be good.
        tracing::info!(
            student = student_id,
            "session refused: signed in on another surface"
        );
        return Ok(Gate::Elsewhere(redirect(state, None, surface.entry())));
    }
    let student = state.store.find_student(student_id).await?;
    let still_bound = |student: &StudentAccount| match surface {
        Surface::Pc => true,
        Surface::Mobile => {
            session.data.openid.is_some() && student.wechat_openid == session.data.openid
        }
    };
    let Some(student) = student.filter(still_bound) else {
        // The binding moved (another WeChat, the office's unbinding): this WeChat user
        // is back at the binding form.
        tracing::info!(student = student_id, "session ended: the binding moved");
        session.data.forget_student();
        return Ok(Gate::Elsewhere(
            save_and_redirect(state, &mut session, surface.entry()).await?,
        ));
    };
    let generation = student_generation(&state.cache, student_id).await?;
    if !session.data.student_sign_in_holds(&generation, now) {
        // A password change, a reset or an unbinding ended it (or it is too old): only
        // signing in again brings the student back, on mobile through WeChat's OAuth.
        tracing::info!(
            student = student_id,
            "session ended: its sign-in no longer holds"
        );
        session.data.sign_out_student();
        return Ok(Gate::Elsewhere(
            save_and_redirect(state, &mut session, surface.entry()).await?,
        ));
    }
    if student.must_change_password && !allow_initial_password {
        return Ok(Gate::Elsewhere(redirect(
            state,
            None,
            &surface.path("/password"),
        )));
    }
    Ok(Gate::Open(Box::new(session), Box::new(student)))
}

/// Where a student goes right after signing in.
fn after_sign_in(surface: Surface, student: &StudentAccount) -> String {
    if student.must_change_password {
        surface.path("/password")
    } else {
        surface.path("/fees")
    }
}

//! `/h5`: who is this WeChat user? Silent OAuth (`snsapi_base`) gives the openid; a
//! student binds it once with ID number and password, and is recognised from then on.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand::RngExt as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::signin::{SignInRefused, check_credentials, client_address};
use super::{
    after_sign_in, csrf_refused, message, page_response, redirect, remark, save_and_redirect,
    sign_in_student,
};
use crate::domain::id_card::IdCardNumber;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::session::SignedInOn;
use crate::web::views::Surface;
use crate::web::views::signin::{self as signin_views, FormState};
use crate::wechat::api::{ApiError, oauth_authorize_url};

/// WeChat's answers for a code that was used or never valid: authorize again.
const CODE_USED: i64 = 40163;
const CODE_INVALID: i64 = 40029;

/// `GET /h5`: the menu's target.
pub async fn entry(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let mut session = sessions.load_or_create(&headers, now).await?;
    if let Some(openid) = session.data.openid.clone() {
        let signed_in_here = session.data.signed_in_on == Some(SignedInOn::H5);
        if session.data.student_id.is_none() || !signed_in_here {
            // Recognised by the binding: the WeChat user this session's OAuth proved.
            let student = state.store.find_student_by_openid(&openid).await?;
            match student {
                Some(student) => {
                    sign_in_student(&state, &mut session, student.id, Surface::Mobile, false)
                        .await?;
                }
                None => session.data.student_id = None,
            }
        }
        let to = match session.data.student_id {
            Some(_) => "/h5/fees",
            None => "/h5/bind",
        };
        return save_and_redirect(&state, &mut session, to).await;
    }
    let Some(account) = state.account.clone() else {
        return Ok(message(
            &state,
            Surface::Mobile,
            StatusCode::SERVICE_UNAVAILABLE,
            "暂不可用",
            "公众号尚未配置，请在电脑上登录缴费。",
            ("/", "电脑端缴费"),
        ));
    };
    // WeChat allows [a-zA-Z0-9] in `state`.
    let oauth_state = hex::encode(rand::rng().random::<[u8; 16]>());
    session.data.oauth_state = Some(oauth_state.clone());
    state.sessions().save(&mut session, now).await?;
    let redirect_uri = state
        .config
        .public_url
        .join("/h5/oauth/callback")
        .map_err(|error| anyhow::anyhow!("public URL cannot take a path: {error}"))?;
    let authorize = oauth_authorize_url(
        &state.config.wechat_oauth_base,
        &account.appid,
        &redirect_uri,
        &oauth_state,
    );
    let mut response = redirect(&state, Some(&session), &authorize);
    *response.status_mut() = StatusCode::FOUND;
    Ok(response)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

/// `GET /h5/oauth/callback?code=…&state=…`: WeChat's return. The state must be the one
/// this session sent; the code is exchanged once; then a redirect to the clean `/h5`
/// so that the code never sits in the address bar or the history.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let session = sessions.load(&headers, now).await?;
    let expected = session
        .as_ref()
        .and_then(|session| session.data.oauth_state.clone());
    let state_matches = matches!(&expected, Some(expected)
        if !query.state.is_empty() && bool::from(expected.as_bytes().ct_eq(query.state.as_bytes())));
    let (Some(mut session), true) = (session, state_matches) else {
        tracing::warn!("OAuth callback refused: state missing or not this session's");
        return Ok(authorize_again(&state));
    };
    session.data.oauth_state = None;
    let Some(account) = state.account.clone() else {
        return Ok(authorize_again(&state));
    };
    if query.code.is_empty() {
        // The student refused, or WeChat sent them back without a code.
        return save_and_redirect(&state, &mut session, "/h5").await;
    }
    let identity = match account.api.oauth_exchange_code(&query.code).await {
        Ok(identity) => identity,
        Err(ApiError::Upstream { errcode, .. })
            if errcode == CODE_USED || errcode == CODE_INVALID =>
        {
            tracing::warn!(errcode, "OAuth code refused by WeChat");
            sessions.save(&mut session, now).await?;
            return Ok(authorize_again(&state));
        }
        Err(error) => {
            tracing::error!(error = %error, "OAuth code exchange failed");
            return Ok(message(
                &state,
                Surface::Mobile,
                StatusCode::BAD_GATEWAY,
                "微信暂时无法响应",
                "微信授权暂时失败，请稍后重试。",
                ("/h5", "重试"),
            ));
        }
    };
    if identity.is_snapshot_user {
        return Ok(message(
            &state,
            Surface::Mobile,
            StatusCode::OK,
            "请使用完整服务",
            "当前为预览页面，请点击页面底部的“使用完整服务”后再缴费。",
            ("/h5", "重新进入"),
        ));
    }
    // Who the session belongs to changed: a new id, so an id planted earlier is useless.
    sessions.renew(&mut session).await?;
    let student = state.store.find_student_by_openid(&identity.openid).await?;
    session.data.sign_out_student();
    session.data.openid = Some(identity.openid);
    if let Some(student) = student {
        sign_in_student(&state, &mut session, student.id, Surface::Mobile, false).await?;
    }
    save_and_redirect(&state, &mut session, "/h5").await
}

fn authorize_again(state: &AppState) -> Response {
    message(
        state,
        Surface::Mobile,
        StatusCode::BAD_REQUEST,
        "授权已失效",
        "微信授权已失效，请从公众号菜单“学生缴费”重新进入。",
        ("/h5", "重新进入"),
    )
}

/// `GET /h5/bind`.
pub async fn bind_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let session = state.sessions().load(&headers, state.clock.now()).await?;
    let Some(session) = session.filter(|session| session.data.openid.is_some()) else {
        return Ok(redirect(&state, None, "/h5"));
    };
    if session.data.student_id.is_some() {
        return Ok(redirect(&state, None, "/h5/fees"));
    }
    let markup = signin_views::bind(
        &state.config.school_name,
        &session.data.csrf,
        &FormState::default(),
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

#[derive(Deserialize)]
pub struct BindForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id_card: String,
    #[serde(default)]
    id_card_again: String,
    #[serde(default)]
    password: String,
}

/// `POST /h5/bind`.
pub async fn bind(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<BindForm>,
) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let session = sessions.load(&headers, now).await?;
    let Some(mut session) = session else {
        return Ok(redirect(&state, None, "/h5"));
    };
    if !session.csrf_matches(&form.csrf) {
        return Ok(csrf_refused(&state, Surface::Mobile));
    }
    let Some(openid) = session.data.openid.clone() else {
        return Ok(redirect(&state, None, "/h5"));
    };
    if !same_id_card(&form.id_card, &form.id_card_again) {
        let refused = SignInRefused::Form("两次输入的身份证号不一致".to_owned());
        return Ok(bind_refused(&state, &session.data.csrf, &form, &refused));
    }
    let address = client_address(Some(peer), &headers);
    let student = match check_credentials(
        &state,
        &form.id_card,
        &form.password,
        address,
        Some(&openid),
    )
    .await?
    {
        Ok(student) => student,
        Err(refused) => return Ok(bind_refused(&state, &session.data.csrf, &form, &refused)),
    };
    let outcome = state.store.bind_wechat(student.id, &openid, now).await?;
    tracing::info!(
        student = student.id,
        rebound = outcome.replaced_openid.is_some(),
        "student bound WeChat"
    );
    remark::set_in_background(&state, &openid, &student);
    sessions.renew(&mut session).await?;
    sign_in_student(&state, &mut session, student.id, Surface::Mobile, true).await?;
    if outcome.replaced_openid.is_some() {
        session.data.notice =
            Some("你的信息原先绑定在另一个微信号上，该微信号已解除绑定。".to_owned());
    }
    save_and_redirect(
        &state,
        &mut session,
        &after_sign_in(Surface::Mobile, &student),
    )
    .await
}

/// The two typed ID numbers are the same number (`x` and `X` alike).
fn same_id_card(first: &str, second: &str) -> bool {
    match (IdCardNumber::parse(first), IdCardNumber::parse(second)) {
        (Ok(first), Ok(second)) => first == second,
        // A malformed number is reported by the credential check with its reason.
        _ => first.trim().eq_ignore_ascii_case(second.trim()),
    }
}

fn bind_refused(
    state: &AppState,
    csrf: &str,
    form: &BindForm,
    refused: &SignInRefused,
) -> Response {
    let status = match refused {
        SignInRefused::Form(_) => StatusCode::BAD_REQUEST,
        SignInRefused::WrongCredentials => StatusCode::UNAUTHORIZED,
        SignInRefused::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    let markup = signin_views::bind(
        &state.config.school_name,
        csrf,
        &FormState {
            error: Some(refused.message()),
            notice: None,
            id_card: form.id_card.trim(),
        },
    );
    page_response(state, status, None, markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_id_numbers_compare_with_x_in_either_case() {
        assert!(same_id_card("11010519491231002x", "11010519491231002X"));
        assert!(!same_id_card("11010519491231002X", "440524188001010014"));
    }
}

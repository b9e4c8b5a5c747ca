//! Checking a student's ID number and password, the same way for the PC portal and
//! the H5 binding: the guess counted first, one answer for "no such student" and
//! "wrong password", argon2 off the async threads and in turn.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::domain::id_card::IdCardNumber;
use crate::domain::password;
use crate::store::StudentAccount;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::login_guard::{Attempt, LoginGuard};

pub const WRONG_CREDENTIALS: &str = "身份证号或密码错误";

/// Why a sign-in did not go through; each has the sentence the page shows.
#[derive(Debug)]
pub enum SignInRefused {
    /// The form itself is wrong (a typo in the ID number, fields that differ).
    Form(String),
    /// Unknown ID number or wrong password: the same words for both.
    WrongCredentials,
    /// Locked or throttled.
    Locked(String),
}

impl SignInRefused {
    pub fn message(&self) -> &str {
        match self {
            SignInRefused::Form(message) | SignInRefused::Locked(message) => message,
            SignInRefused::WrongCredentials => WRONG_CREDENTIALS,
        }
    }
}

/// Checks the ID number and password. The guess is counted against the account and
/// the client before the password is looked at (see [`LoginGuard::reserve`]), and kept
/// as a failure, cleared by a success, or given back when it could not be checked.
/// `Err(AppError)` only for infrastructure failures and a server too busy to hash.
pub async fn check_credentials(
    state: &AppState,
    id_card: &str,
    password: &str,
    address: Option<IpAddr>,
    openid: Option<&str>,
) -> Result<Result<StudentAccount, SignInRefused>, AppError> {
    let id_card = match IdCardNumber::parse(id_card) {
        Ok(id_card) => id_card,
        Err(error) => return Ok(Err(SignInRefused::Form(error.to_string()))),
    };
    let guard = LoginGuard::new(state.cache.clone(), "student");
    let attempt = Attempt {
        account: id_card.as_str(),
        address,
        openid,
    };
    let reservation = match guard.reserve(&attempt).await? {
        Ok(reservation) => reservation,
        Err(refusal) => {
            tracing::info!(id_card = %id_card, "sign-in refused: locked");
            return Ok(Err(SignInRefused::Locked(refusal.message())));
        }
    };
    let checked = async {
        let student = state
            .store
            .find_student_by_id_card(id_card.as_str())
            .await?;
        let matches =
            password_matches(state, student.clone(), &id_card, password.to_owned()).await?;
        Ok::<_, AppError>(student.filter(|_| matches))
    }
    .await;
    match checked {
        Ok(Some(student)) => {
            guard.succeeded(reservation).await?;
            tracing::info!(student = student.id, "student signed in");
            Ok(Ok(student))
        }
        Ok(None) => {
            guard.failed(reservation);
            tracing::info!(id_card = %id_card, "sign-in refused: wrong credentials");
            Ok(Err(SignInRefused::WrongCredentials))
        }
        Err(error) => {
            // Not checked (busy, database down): the guess does not count.
            if let Err(cache) = guard.release(reservation).await {
                tracing::warn!(error = %cache, "cannot give back a sign-in count");
            }
            Err(error)
        }
    }
}

/// Whether `password` opens the account. Always does one argon2 verification, even for
/// an unknown ID number or an initial password, so that timing tells nothing; in turn
/// with every other hash of the process.
async fn password_matches(
    state: &AppState,
    student: Option<StudentAccount>,
    id_card: &IdCardNumber,
    password: String,
) -> Result<bool, AppError> {
    let initial = password::initial_password(id_card);
    let matches = state
        .password_work
        .run(move || match student {
            None => {
                password::verify_password(&password, dummy_hash());
                false
            }
            Some(student) if !student.password_hash.is_empty() => {
                password::verify_password(&password, &student.password_hash)
            }
            Some(student) => match &student.initial_password_hash {
                Some(hash) => password::verify_password(&password, hash),
                None => {
                    password::verify_password(&password, dummy_hash());
                    bool::from(password.as_bytes().ct_eq(initial.as_bytes()))
                }
            },
        })
        .await?;
    Ok(matches)
}

/// A real argon2 hash of nothing anyone knows, to spend the same time on misses.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        password::hash_password(&super::super::session::random_token(24)).unwrap_or_default()
    })
}

/// Hashes a new password, in turn with every other hash of the process.
pub async fn hash_new_password(state: &AppState, new_password: String) -> Result<String, AppError> {
    state
        .password_work
        .run(move || password::hash_password(&new_password))
        .await?
        .map_err(|error| AppError::Internal(anyhow::anyhow!("password hashing failed: {error}")))
}

/// The client's address: the peer, or nginx's `X-Real-IP` when the peer is the local
/// proxy (a header from anyone else is ignored: it would let a guesser pick its own
/// counter).
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !peer.is_loopback() {
        return Some(peer);
    }
    headers
        .get("x-real-ip")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .or(Some(peer))
}

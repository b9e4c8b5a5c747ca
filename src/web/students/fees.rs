//! The fee list and the confirmation step; `paying` takes over from there.

use std::collections::{HashMap, HashSet};

use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Gate, csrf_refused, gate, message, page_response};
use crate::domain::id_card::IdCardNumber;
use crate::store::{FeeItemStatus, Gender, StudentAccount};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::Surface;
use crate::web::views::fees::{FeeLine, FeeList, StudentHeader, confirm as confirm_view, fee_list};

/// `GET /h5/fees`, `GET /fees`.
pub async fn list(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (mut session, student) = match gate(&state, &headers, surface, false).await? {
        Gate::Open(session, student) => (session, student),
        Gate::Elsewhere(response) => return Ok(response),
    };
    let records = state.store.fee_items_of(student.id).await?;
    let list = FeeList::from_records(&records, state.clock.now());
    let notice = session.data.notice.take();
    // An open order at the bank can still be paid there: say so before anything else.
    // (Only items in an order can be held: no query otherwise.)
    let in_order = records
        .iter()
        .any(|record| record.status == FeeItemStatus::InOrder);
    let bank_hold = match in_order {
        true => super::paying::bank_hold(&state, student.id).await?,
        false => None,
    };
    if notice.is_some() {
        state
            .sessions()
            .save(&mut session, state.clock.now())
            .await?;
    }
    let markup = fee_list(
        surface,
        &state.config.school_name,
        &session.data.csrf,
        &header_of(&student),
        &list,
        bank_hold.map(|held| held.text).or(notice).as_deref(),
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

/// No student has anywhere near this many items in one term; a form with more ticked
/// is not a person's, and is refused before any of it is compared.
pub(super) const MAX_TICKED_ITEMS: usize = 64;

/// The posted form: its CSRF token and the ticked item ids (a repeated field, which
/// `Form` cannot read).
pub(super) struct TickedItems {
    pub(super) csrf: String,
    pub(super) items: Vec<i64>,
    malformed: bool,
    /// More than [`MAX_TICKED_ITEMS`] distinct ids: reading stopped there.
    pub(super) too_many: bool,
}

pub(super) fn read_ticked(form: &[u8]) -> TickedItems {
    let mut ticked = TickedItems {
        csrf: String::new(),
        items: Vec::new(),
        malformed: false,
        too_many: false,
    };
    // A set, not `items.contains`: a 2 MiB form of ids was once compared pairwise.
    let mut seen = HashSet::new();
    for (key, value) in url::form_urlencoded::parse(form) {
        match key.as_ref() {
            "csrf" => ticked.csrf = value.into_owned(),
            "item" => match value.parse() {
                Ok(id) if seen.contains(&id) => {}
                Ok(_) if seen.len() >= MAX_TICKED_ITEMS => {
                    ticked.too_many = true;
                    break;
                }
                Ok(id) => {
                    seen.insert(id);
                    ticked.items.push(id);
                }
                Err(_) => ticked.malformed = true,
            },
            _ => {}
        }
    }
    ticked
}

/// The answer to a form with more than [`MAX_TICKED_ITEMS`] items: 422, nothing read
/// further, nothing changed.
pub(super) fn too_many_items(state: &AppState, surface: Surface) -> Response {
    message(
        state,
        surface,
        StatusCode::UNPROCESSABLE_ENTITY,
        "请重新选择",
        "所选项目过多，请返回重新选择。",
        (&surface.path("/fees"), "返回缴费项目"),
    )
}

/// The ticked items, each still the student's and still payable; or the message why not.
pub(super) async fn payable_selection(
    state: &AppState,
    student: &StudentAccount,
    ticked: &TickedItems,
) -> Result<Result<Vec<FeeLine>, &'static str>, AppError> {
    if ticked.malformed {
        return Ok(Err("所选项目无效，请返回重新选择。"));
    }
    if ticked.items.is_empty() {
        return Ok(Err("请至少勾选一个缴费项目。"));
    }
    let records = state.store.fee_items_of(student.id).await?;
    let list = FeeList::from_records(&records, state.clock.now());
    let payable: HashMap<i64, FeeLine> = list
        .payable
        .into_values()
        .flatten()
        .map(|line| (line.id, line))
        .collect();
    let mut chosen = Vec::with_capacity(ticked.items.len());
    for id in &ticked.items {
        match payable.get(id) {
            Some(line) => chosen.push(line.clone()),
            None => return Ok(Err("所选项目已缴费或正在支付，请返回刷新后重新选择。")),
        }
    }
    Ok(Ok(chosen))
}

/// `POST /h5/confirm`, `POST /confirm`: 确认支付.
pub async fn confirm(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Result<Response, AppError> {
    let (session, student) = match gate(&state, &headers, surface, false).await? {
        Gate::Open(session, student) => (session, student),
        Gate::Elsewhere(response) => return Ok(response),
    };
    let ticked = read_ticked(&form);
    if ticked.too_many {
        return Ok(too_many_items(&state, surface));
    }
    if !session.csrf_matches(&ticked.csrf) {
        return Ok(csrf_refused(&state, surface));
    }
    match payable_selection(&state, &student, &ticked).await? {
        Ok(lines) => {
            let markup = confirm_view(
                surface,
                &state.config.school_name,
                &session.data.csrf,
                &lines,
                None,
            );
            Ok(page_response(&state, StatusCode::OK, None, markup))
        }
        Err(reason) => Ok(message(
            &state,
            surface,
            StatusCode::CONFLICT,
            "请重新选择",
            reason,
            (&surface.path("/fees"), "返回缴费项目"),
        )),
    }
}

fn header_of(student: &StudentAccount) -> StudentHeader {
    let masked_id_card = IdCardNumber::parse(&student.id_card)
        .map(|id| id.masked())
        .unwrap_or_else(|_| "******************".to_owned());
    StudentHeader {
        name: student.name.clone(),
        gender: match student.gender {
            Gender::Male => "男",
            Gender::Female => "女",
        },
        masked_id_card,
        grade: student.grade,
        class_name: student.class_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticked_items_are_read_from_repeated_fields() {
        let ticked = read_ticked(b"csrf=abc&item=3&item=5&item=3");
        assert_eq!(ticked.csrf, "abc");
        assert_eq!(ticked.items, [3, 5]);
        assert!(!ticked.malformed);
        assert!(read_ticked(b"item=x").malformed);
    }

    #[test]
    fn more_than_the_cap_of_distinct_items_is_too_many() {
        let form = |count: usize| {
            (0..count)
                .map(|id| format!("item={id}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let at_cap = read_ticked(form(MAX_TICKED_ITEMS).as_bytes());
        assert!(!at_cap.too_many);
        assert_eq!(at_cap.items.len(), MAX_TICKED_ITEMS);
        let over = read_ticked(form(MAX_TICKED_ITEMS + 1).as_bytes());
        assert!(over.too_many);
        // Repeats of a few ids are not "many": they are one set.
        let repeats = "item=1&item=2&".repeat(10_000);
        let ticked = read_ticked(repeats.as_bytes());
        assert!(!ticked.too_many);
        assert_eq!(ticked.items, [1, 2]);
    }
}

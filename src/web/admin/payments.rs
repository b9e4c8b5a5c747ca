//! The console's payments: orders by state, channel and day; one order with its items
//! and notifications; the exceptions the office resolves with a note; the CSV export.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::paging::PageNumber;
use super::{Console, csv_bytes, csv_download, csv_writer, redirect};
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::store::{PaymentFilter, PaymentRow, ResolveOutcome};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::payments as views;
use crate::web::views::admin::{Section, beijing};

const PER_PAGE: u64 = 50;
/// Exceptions shown per kind (open, and resolved).
const EXCEPTIONS_SHOWN: u64 = 200;
const RESOLVED_SHOWN: u64 = 50;
/// The export reads the orders this many at a time, to bound memory.
const EXPORT_CHUNK: u64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/payments", get(list))
        .route("/admin/payments/export.csv", get(export))
        .route("/admin/payments/exceptions", get(exceptions))
        .route(
            "/admin/payments/exceptions/order/{id}/resolve",
            post(resolve_order),
        )
        .route(
            "/admin/payments/exceptions/notification/{id}/resolve",
            post(resolve_notification),
        )
        .route("/admin/payments/{out_trade_no}", get(detail))
        .route(
            "/admin/payments/{out_trade_no}/refund",
            post(super::refunds::refund),
        )
}

/// The filters as the query string carries them.
#[derive(Debug, Default, Deserialize)]
struct FilterQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: PageNumber,
}

impl FilterQuery {
    fn view(&self) -> views::Filter<'_> {
        views::Filter {
            status: self.status.trim(),
            channel: self.channel.trim(),
            from: self.from.trim(),
            to: self.to.trim(),
            q: self.q.trim(),
        }
    }

    /// The store's filter; a message for the office when a part cannot be read.
    fn parse(&self) -> Result<PaymentFilter, &'static str> {
        let view = self.view();
        let status = match view.status {
            "" => None,
            code => Some(
                views::STATUSES
                    .iter()
                    .find(|(_, known)| *known == code)
                    .map(|(status, _)| *status)
                    .ok_or("没有这种订单状态")?,
            ),
        };
        let channel = match view.channel {
            "" => None,
            code => Some(
                views::CHANNELS
                    .iter()
                    .find(|(_, known)| *known == code)
                    .map(|(channel, _)| *channel)
                    .ok_or("没有这个支付渠道")?,
            ),
        };
        let created_from = beijing_day(view.from)?.map(|day| day.0);
        let created_before = beijing_day(view.to)?.map(|day| day.1);
        if let (Some(from), Some(before)) = (created_from, created_before)
            && from >= before
        {
            return Err("开始日期应不晚于结束日期");
        }
        Ok(PaymentFilter {
            status,
            channel,
            created_from,
            created_before,
            number: (!view.q.is_empty()).then(|| view.q.to_owned()),
        })
    }
}

/// A day's [start, end) in UTC.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// A `YYYY-MM-DD` day in Beijing as [start, end) in UTC; nothing for an empty field.
fn beijing_day(input: &str) -> Result<Option<Span>, &'static str> {
    if input.is_empty() {
        return Ok(None);
    }
    const BAD_DATE: &str = "日期应写成 YYYY-MM-DD，如 2026-09-01";
    let day = NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| BAD_DATE)?;
    let next = day.succ_opt().ok_or(BAD_DATE)?;
    let midnight = |day: NaiveDate| {
        beijing_offset()
            .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|at| at.with_timezone(&Utc))
            .ok_or(BAD_DATE)
    };
    Ok(Some((midnight(day)?, midnight(next)?)))
}

async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<FilterQuery>,
) -> Result<Response, AppError> {
    let page = query.page.get();
    let open_exceptions = state.store.payment_exceptions(false, 1).await?;
    let open_exceptions = open_exceptions.orders_total + open_exceptions.notifications_total;
    let filter = match query.parse() {
        Ok(filter) => filter,
        Err(message) => {
            let content = views::list(&views::ListPage {
                filter: query.view(),
                error: Some(message),
                rows: &[],
                totals: Default::default(),
                page: 1,
                per_page: PER_PAGE,
                open_exceptions,
            });
            let mut response = console.page(&state, Section::Payments, "缴费记录", content);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let rows = state
        .store
        .payments_page(&filter, PER_PAGE, query.page.offset(PER_PAGE))
        .await?;
    let totals = state.store.payments_totals(&filter).await?;
    let content = views::list(&views::ListPage {
        filter: query.view(),
        error: None,
        rows: &rows,
        totals,
        page,
        per_page: PER_PAGE,
        open_exceptions,
    });
    Ok(console.page(&state, Section::Payments, "缴费记录", content))
}

async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
    Query(query): Query<OrderQuery>,
) -> Result<Response, AppError> {
    let notice = (!query.refund.is_empty()).then_some("退款申请已提交，并记入操作日志。");
    order_page(
        &state,
        &console,
        &out_trade_no,
        StatusCode::OK,
        None,
        notice,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
struct OrderQuery {
    /// A refund just went through, for the notice.
    #[serde(default)]
    refund: String,
}

/// The order page, with its 退款 section.
pub(super) async fn order_page(
    state: &AppState,
    console: &Console,
    out_trade_no: &str,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, AppError> {
    let detail = state
        .store
        .payment_detail(out_trade_no)
        .await?
        .ok_or(AppError::NotFound)?;
    let section = super::refunds::section(state, console, &detail, error, notice).await?;
    let content = maud::html! {
        (views::detail(&detail, console.can_change(), console.csrf()))
        (crate::web::views::admin::flagged::section(&detail, console.can_change()))
        (section)
    };
    let title = format!("订单 {}", detail.order.out_trade_no);
    let mut response = console.page(state, Section::Payments, &title, content);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct ExceptionsQuery {
    /// Which resolution just went through, for the notice.
    #[serde(default)]
    done: String,
}

async fn exceptions(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ExceptionsQuery>,
) -> Result<Response, AppError> {
    let notice = (!query.done.is_empty()).then_some("已标记为已处理，并记入操作日志。");
    exceptions_page(&state, &console, StatusCode::OK, None, notice).await
}

async fn exceptions_page(
    state: &AppState,
    console: &Console,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, AppError> {
    let open = state
        .store
        .payment_exceptions(false, EXCEPTIONS_SHOWN)
        .await?;
    let resolved = state.store.payment_exceptions(true, RESOLVED_SHOWN).await?;
    let content = views::exceptions(&views::ExceptionsPage {
        open: &open,
        resolved: &resolved,
        can_change: console.can_change(),
        csrf: console.csrf(),
        error,
        notice,
    });
    let mut response = console.page(state, Section::Payments, "异常处理", content);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// The note, trimmed: required, at most [`views::MAX_NOTE_CHARS`] characters.
fn check_note(input: &str) -> Result<&str, &'static str> {
    let note = input.trim();
    if note.is_empty() {
        return Err("请填写处理说明");
    }
    if note.chars().count() > views::MAX_NOTE_CHARS {
        return Err("处理说明不能超过500字");
    }
    Ok(note)
}

#[derive(Debug, Clone, Copy)]
enum ExceptionKind {
    Order,
    Notification,
}

async fn resolve_order(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, AppError> {
    resolve(state, console, ExceptionKind::Order, id, form).await
}

async fn resolve_notification(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, AppError> {
    resolve(state, console, ExceptionKind::Notification, id, form).await
}

async fn resolve(
    state: AppState,
    console: Console,
    kind: ExceptionKind,
    id: i64,
    form: ResolveForm,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let note = match check_note(&form.note) {
        Ok(note) => note,
        Err(message) => {
            return exceptions_page(
                &state,
                &console,
                StatusCode::BAD_REQUEST,
                Some(message),
                None,
            )
            .await;
        }
    };
    let now = state.clock.now();
    let outcome = match kind {
        ExceptionKind::Order => {
            let entry = console.audit("order.resolve_exception", format!("order:{id}"));
            state
                .store
                .resolve_order_exception(id, note, entry, now)
                .await
        }
        ExceptionKind::Notification => {
            let entry = console.audit("notification.resolve", format!("notification:{id}"));
            state.store.resolve_notification(id, note, entry, now).await
        }
    }?;
    match outcome {
        ResolveOutcome::Resolved => {
            tracing::info!(admin = %console.admin.username, ?kind, id, "payment exception resolved");
            Ok(redirect("/admin/payments/exceptions?done=1"))
        }
        ResolveOutcome::AlreadyResolved => {
            let message = "这条异常已经处理过，未作更改。";
            exceptions_page(&state, &console, StatusCode::CONFLICT, Some(message), None).await
        }
        ResolveOutcome::NotFound => Err(AppError::NotFound),
    }
}

const EXPORT_HEADER: [&str; 12] = [
    "订单号",
    "身份证号",
    "姓名",
    "年级",
    "班级",
    "渠道",
    "金额(元)",
    "状态",
    "创建时间",
    "支付时间",
    "渠道交易号",
    "异常",
];

/// Every order the filters select, as CSV for Excel. A read (viewers may), but
/// personal data leaving the system: the audit log records who took what.
async fn export(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<FilterQuery>,
) -> Result<Response, AppError> {
    let filter = query
        .parse()
        .map_err(|message| AppError::BadRequest(message.to_owned()))?;
    let mut writer = csv_writer();
    write_csv(&mut writer, EXPORT_HEADER)?;
    let mut after_id = 0;
    let mut rows = 0u64;
    loop {
        let chunk = state
            .store
            .payments_after(&filter, after_id, EXPORT_CHUNK)
            .await?;
        for row in &chunk {
            write_csv(&mut writer, export_record(row))?;
        }
        rows += chunk.len() as u64;
        match chunk.last() {
            Some(last) if chunk.len() as u64 == EXPORT_CHUNK => after_id = last.id,
            _ => break,
        }
    }
    let view = query.view();
    let entry = console.audit("payments.export", "payments").after(json!({
        "filters": {
            "status": view.status,
            "channel": view.channel,
            "from": view.from,
            "to": view.to,
            "q": view.q,
        },
        "rows": rows,
    }));
    state.store.record_audit(&entry, state.clock.now()).await?;
    let filename = format!(
        "payments-{}.csv",
        state
            .clock
            .now()
            .with_timezone(&beijing_offset())
            .format("%Y%m%d-%H%M%S")
    );
    Ok(csv_download(&filename, csv_bytes(writer)?))
}

fn export_record(row: &PaymentRow) -> [String; 12] {
    let exception = match (&row.exception, &row.resolution) {
        (Some(exception), Some(_)) => format!("{exception}（已处理）"),
        (Some(exception), None) => exception.clone(),
        (None, _) => String::new(),
    };
    [
        row.out_trade_no.clone(),
        views::masked_id_card(&row.id_card),
        row.student_name.clone(),
        row.grade.to_string(),
        row.class_name.clone(),
        row.channel.label().to_owned(),
        Fen(row.amount_fen).to_string(),
        views::status_label(row.status).to_owned(),
        beijing(row.created_at),
        row.paid_at.map(beijing).unwrap_or_default(),
        excel_text(row.channel_trade_no.as_deref().unwrap_or_default()),
        exception,
    ]
}

/// A long number kept as text: Excel shows a 28-digit transaction number as
/// `4.2E+27` and loses its digits, unless the cell starts with a tab.
pub fn excel_text(value: &str) -> String {
    if value.len() > 11 && value.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("\t{value}")
    } else {
        value.to_owned()
    }
}

/// Writes one row, every text cell neutralised against formulas (`super::formula_safe`).
pub fn write_csv<I, T>(writer: &mut csv::Writer<Vec<u8>>, record: I) -> Result<(), AppError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    writer
        .write_record(
            record
                .into_iter()
                .map(|cell| super::formula_safe(cell.as_ref()).into_owned()),
        )
        .map_err(|error| AppError::Internal(anyhow::anyhow!("cannot write the CSV: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beijing_day_starts_at_four_pm_utc_the_day_before() {
        let (start, end) = beijing_day("2026-09-01").expect("valid").expect("a day");
        assert_eq!(start.to_rfc3339(), "2026-08-31T16:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-09-01T16:00:00+00:00");
        assert_eq!(beijing_day("").expect("empty is fine"), None);
        assert!(beijing_day("2026/09/01").is_err());
        assert!(beijing_day("2026-02-30").is_err());
    }

    #[test]
    fn notes_are_required_and_at_most_500_characters() {
        assert_eq!(check_note("  已退款  "), Ok("已退款"));
        assert!(check_note("   ").is_err());
        assert!(check_note(&"退".repeat(500)).is_ok());
        assert!(check_note(&"退".repeat(501)).is_err());
    }

    #[test]
    fn long_numbers_stay_text_in_excel() {
        assert_eq!(
            excel_text("4200000000202609010000000003"),
            "\t4200000000202609010000000003"
        );
        assert_eq!(excel_text("2026090122001"), "\t2026090122001");
        assert_eq!(excel_text("CP20260901"), "CP20260901");
        assert_eq!(excel_text(""), "");
    }

    #[test]
    fn filters_are_read_or_refused_with_a_reason() {
        let query = FilterQuery {
            status: "paid".into(),
            channel: "wechat_native".into(),
            from: "2026-09-01".into(),
            to: "2026-09-01".into(),
            ..FilterQuery::default()
        };
        let filter = query.parse().expect("valid");
        assert_eq!(filter.status, Some(crate::store::OrderStatus::Paid));
        assert_eq!(
            filter.channel,
            Some(crate::store::PaymentChannel::WechatNative)
        );
        let bad = FilterQuery {
            status: "lost".into(),
            ..FilterQuery::default()
        };
        assert!(bad.parse().is_err());
        let backwards = FilterQuery {
            from: "2026-09-02".into(),
            to: "2026-09-01".into(),
            ..FilterQuery::default()
        };
        assert!(backwards.parse().is_err());
    }
}

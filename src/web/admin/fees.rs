//! The console's fees: imports through the browser (upload → preview with every bad
//! row → apply), the item listing, and one item's waive / defer / restore.
//!
//! An upload is checked exactly as `campus-pay import` checks a file: the file's own
//! checks, then a dry run against the database, so that one preview lists every bad
//! row. The bytes are kept in the cache under a random token bound to the admin; the
//! preview's 确认导入 posts the token, and applying takes it out of the cache first,
//! so the same upload is never imported twice. Applying parses and checks again, in
//! the import's own transaction: a file with a bad row never goes in.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::paging::PageNumber;
use super::{Console, redirect};
use crate::domain::fee_item::{check_reason, deferral_end};
use crate::import::{
    ImportRejected, ImportSummary, RowProblem, parse_fees_partially, parse_students_partially,
    read_table_bytes,
};
use crate::store::{
    FeeItemChange, FeeItemQuery, FeeItemStatus, ImportFailure, ImportedFile, StoreError,
};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::session::random_token;
use crate::web::views::admin::Section;
use crate::web::views::admin::fees as views;

const PER_PAGE: u64 = 50;
/// The largest upload body. A term's roll of a whole college is a few megabytes.
const UPLOAD_LIMIT_BYTES: usize = 10 * 1024 * 1024;
/// How long an uploaded file waits for 确认导入.
const KEEP_UPLOAD: std::time::Duration = std::time::Duration::from_secs(30 * 60);
const TOKEN_BYTES: usize = 24;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/fees", get(overview))
        .route(
            "/admin/fees/upload",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT_BYTES)),
        )
        .route("/admin/fees/apply", post(apply))
        .route("/admin/fees/items/{id}", get(show_item))
        .route("/admin/fees/items/{id}/waive", post(waive))
        .route("/admin/fees/items/{id}/defer", post(defer))
        .route("/admin/fees/items/{id}/restore", post(restore))
}

/// What a file holds: students or fee items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ImportKind {
    Students,
    Fees,
}

impl ImportKind {
    fn parse(value: &str) -> Option<ImportKind> {
        match value {
            "students" => Some(ImportKind::Students),
            "fees" => Some(ImportKind::Fees),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ImportKind::Students => "学生名单",
            ImportKind::Fees => "收费项目",
        }
    }
}

// ---------------------------------------------------------------------------------
// The overview: upload form and item listing.

#[derive(Debug, Default, Deserialize)]
struct ListFilter {
    #[serde(default)]
    year: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: PageNumber,
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn parse_status(value: &str) -> Option<FeeItemStatus> {
    match value {
        "unpaid" => Some(FeeItemStatus::Unpaid),
        "in_order" => Some(FeeItemStatus::InOrder),
        "paid" => Some(FeeItemStatus::Paid),
        "waived" => Some(FeeItemStatus::Waived),
        "deferred" => Some(FeeItemStatus::Deferred),
        _ => None,
    }
}

async fn overview(
    State(state): State<AppState>,
    console: Console,
    Query(filter): Query<ListFilter>,
) -> Result<Response, AppError> {
    let page = filter.page.get();
    let query = FeeItemQuery {
        academic_year: non_empty(&filter.year),
        item: non_empty(&filter.item),
        status: parse_status(&filter.status),
        limit: PER_PAGE,
        offset: filter.page.offset(PER_PAGE),
    };
    let (rows, total) = state.store.list_fee_items(&query).await?;
    let (years, items) = state.store.fee_item_choices().await?;
    let content = views::overview(
        console.csrf(),
        console.can_change(),
        None,
        &views::ItemFilter {
            year: &filter.year,
            item: &filter.item,
            status: &filter.status,
        },
        &views::Choices {
            years: &years,
            items: &items,
        },
        &views::ItemPage {
            rows: &rows,
            page,
            per_page: PER_PAGE,
            total,
        },
        state.clock.now(),
    );
    Ok(console.page(&state, Section::Fees, "导入与收费项目", content))
}

// ---------------------------------------------------------------------------------
// Upload and preview.

/// The fields of the upload form.
#[derive(Default)]
struct UploadForm {
    csrf: String,
    kind: Option<ImportKind>,
    file: Option<(String, Vec<u8>)>,
}

/// Why the upload form could not be read.
enum UploadUnreadable {
    TooLarge,
    Malformed,
}

async fn read_upload(mut multipart: Multipart) -> Result<UploadForm, UploadUnreadable> {
    let mut form = UploadForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(form),
            Err(error) => return Err(unreadable(error.status())),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "csrf" => form.csrf = field.text().await.map_err(|e| unreadable(e.status()))?,
            "kind" => {
                let value = field.text().await.map_err(|e| unreadable(e.status()))?;
                form.kind = ImportKind::parse(value.trim());
            }
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(|e| unreadable(e.status()))?;
                if !file_name.is_empty() {
                    form.file = Some((file_name, bytes.to_vec()));
                }
            }
            // Unknown fields are read past (and count towards the body limit).
            _ => {
                field.bytes().await.map_err(|e| unreadable(e.status()))?;
            }
        }
    }
}

fn unreadable(status: StatusCode) -> UploadUnreadable {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        UploadUnreadable::TooLarge
    } else {
        UploadUnreadable::Malformed
    }
}

/// The upload page again, with why the upload was refused.
fn upload_refused(
    state: &AppState,
    console: &Console,
    status: StatusCode,
    message: &str,
) -> Response {
    let content = views::upload_form(console.csrf(), console.can_change(), Some(message));
    let mut response = console.page(state, Section::Fees, "导入", content);
    *response.status_mut() = status;
    response
}

async fn upload(
    State(state): State<AppState>,
    console: Console,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let form = match multipart {
        Ok(multipart) => read_upload(multipart).await,
        Err(_) => Err(UploadUnreadable::Malformed),
    };
    let form = match form {
        Ok(form) => form,
        Err(UploadUnreadable::TooLarge) => {
            let message = format!(
                "文件太大：上传不能超过 {}MB。请分批导入，或删去多余的列和工作表。",
                UPLOAD_LIMIT_BYTES / 1024 / 1024
            );
            return Ok(upload_refused(
                &state,
                &console,
                StatusCode::PAYLOAD_TOO_LARGE,
                &message,
            ));
        }
        Err(UploadUnreadable::Malformed) => {
            return Ok(upload_refused(
                &state,
                &console,
                StatusCode::BAD_REQUEST,
                "无法读取上传的表单，请重新选择文件上传。",
            ));
        }
    };
    console.authorize_change(&form.csrf)?;
    let Some(kind) = form.kind else {
        return Ok(upload_refused(
            &state,
            &console,
            StatusCode::BAD_REQUEST,
            "请选择导入类型（学生名单或收费项目）。",
        ));
    };
    let Some((file_name, bytes)) = form.file else {
        return Ok(upload_refused(
            &state,
            &console,
            StatusCode::BAD_REQUEST,
            "请选择要上传的文件。",
        ));
    };
    let file_name = plain_file_name(&file_name);
    let checked = match check_file(&state, kind, &file_name, &bytes).await? {
        Ok(checked) => checked,
        Err(unreadable) => {
            return Ok(upload_refused(
                &state,
                &console,
                StatusCode::BAD_REQUEST,
                &unreadable,
            ));
        }
    };
    let kept = KeptUpload {
        admin_id: console.admin.id,
        kind,
        file_name: file_name.clone(),
        applicable: checked.problems.is_empty(),
        bytes: BASE64.encode(&bytes),
    };
    let token = random_token(TOKEN_BYTES);
    let value = serde_json::to_string(&kept)?;
    state
        .cache
        .set(&upload_key(&token), &value, KEEP_UPLOAD)
        .await?;
    let sha256 = sha256_hex(&bytes);
    let file = views::PreviewFile {
        kind_label: kind.label(),
        file_name: &file_name,
        sha256: &sha256,
        rows: checked.rows,
        token: &token,
    };
    let outcome = match checked.summary {
        Some(summary) if checked.problems.is_empty() => views::PreviewOutcome::Ready(summary),
        _ => views::PreviewOutcome::Bad(&checked.problems),
    };
    let content = views::preview(console.csrf(), &file, &outcome);
    Ok(console.page(&state, Section::Fees, "导入预览", content))
}

/// The name the browser gave, without any directory part (old browsers send one).
fn plain_file_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .trim()
        .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What checking a file found: its data rows, every bad row, and (when the
/// database had no objection to the good rows) what applying would do.
struct Checked {
    rows: usize,
    problems: Vec<RowProblem>,
    summary: Option<ImportSummary>,
}

/// Reads and checks a file as `campus-pay import` does, applying it only when asked
/// and no row is bad. `Err(message)`: the file cannot be read at all (type,
/// encoding, size), said in words for the office.
async fn check_file(
    state: &AppState,
    kind: ImportKind,
    file_name: &str,
    bytes: &[u8],
) -> Result<Result<Checked, String>, AppError> {
    run_import(state, kind, file_name, bytes, None).await
}

async fn run_import(
    state: &AppState,
    kind: ImportKind,
    file_name: &str,
    bytes: &[u8],
    apply_as: Option<&ImportedFile<'_>>,
) -> Result<Result<Checked, String>, AppError> {
    // Unpacking and reading a file of up to 50 MiB is work for a blocking thread,
    // not for the workers that answer every other request.
    let (name, owned) = (file_name.to_owned(), bytes.to_vec());
    let read = tokio::task::spawn_blocking(move || read_table_bytes(&name, &owned))
        .await
        .map_err(|error| {
            AppError::Internal(anyhow::anyhow!("reading an upload failed: {error}"))
        })?;
    let table = match read {
        Ok(table) => table,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let rows = table.rows.len();
    let now = state.clock.now();
    let (mut problems, outcome) = match kind {
        ImportKind::Students => {
            let parsed = parse_students_partially(&table);
            let apply = apply_as.is_some() && parsed.problems.is_empty();
            let outcome = state
                .store
                .import_students_from(&parsed.rows, now, apply, apply_as)
                .await;
            (parsed.problems, outcome)
        }
        ImportKind::Fees => {
            let parsed = parse_fees_partially(&table);
            let apply = apply_as.is_some() && parsed.problems.is_empty();
            let outcome = state
                .store
                .import_fees_from(&parsed.rows, now, apply, apply_as)
                .await;
            (parsed.problems, outcome)
        }
    };
    let summary = match outcome {
        Ok(summary) => Some(summary),
        Err(ImportFailure::Rejected(rejected)) => {
            problems.extend(rejected.problems);
            None
        }
        Err(failure) => return Err(AppError::Internal(failure.into())),
    };
    Ok(Ok(Checked {
        rows,
        problems: ImportRejected::new(problems).problems,
        summary,
    }))
}

/// An upload waiting for 确认导入, as kept in the cache.
#[derive(Debug, Serialize, Deserialize)]
struct KeptUpload {
    /// Only the admin who uploaded it may apply it.
    admin_id: i64,
    kind: ImportKind,
    file_name: String,
    /// False when the preview found bad rows: no apply is offered, and none accepted.
    applicable: bool,
    /// The file's bytes, base64.
    bytes: String,
}

fn upload_key(token: &str) -> String {
    format!("admin:fees:upload:{token}")
}

// ---------------------------------------------------------------------------------
// Apply.

#[derive(Debug, Deserialize)]
struct ApplyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

fn apply_refused(
    state: &AppState,
    console: &Console,
    status: StatusCode,
    message: &str,
    problems: &[RowProblem],
) -> Response {
    let content = views::apply_refused(message, problems);
    let mut response = console.page(state, Section::Fees, "未导入", content);
    *response.status_mut() = status;
    response
}

const UPLOAD_GONE: &str =
    "这个预览已经导入过、已过期（30分钟）或不存在，未导入任何数据。请重新上传文件。";

async fn apply(
    State(state): State<AppState>,
    console: Console,
    Form(form): Form<ApplyForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let Some(kept) = take_upload(&state, &console, form.token.trim()).await? else {
        return Ok(apply_refused(
            &state,
            &console,
            StatusCode::CONFLICT,
            UPLOAD_GONE,
            &[],
        ));
    };
    if !kept.applicable {
        return Ok(apply_refused(
            &state,
            &console,
            StatusCode::CONFLICT,
            "这个文件有问题行，不能导入，未导入任何数据。请改正后重新上传。",
            &[],
        ));
    }
    let bytes = BASE64
        .decode(kept.bytes.as_bytes())
        .map_err(|_| anyhow::anyhow!("a kept upload is not base64"))?;
    let sha256 = sha256_hex(&bytes);
    let source = ImportedFile {
        actor: &console.admin.username,
        file_name: &kept.file_name,
        sha256: &sha256,
    };
    let checked = match run_import(&state, kept.kind, &kept.file_name, &bytes, Some(&source)).await
    {
        Ok(Ok(checked)) => checked,
        Ok(Err(unreadable)) => {
            return Ok(apply_refused(
                &state,
                &console,
                StatusCode::CONFLICT,
                &unreadable,
                &[],
            ));
        }
        Err(error) => {
            // Nothing was written: keep the upload so that 确认导入 can be tried again.
            restore_upload(&state, &form.token, &kept).await;
            return Err(error);
        }
    };
    match checked.summary {
        Some(summary) if checked.problems.is_empty() => {
            tracing::info!(admin = %console.admin.username, kind = ?kept.kind, rows = checked.rows, "import applied from the console");
            let content = views::applied(kept.kind.label(), &kept.file_name, &summary);
            Ok(console.page(&state, Section::Fees, "导入完成", content))
        }
        _ => Ok(apply_refused(
            &state,
            &console,
            StatusCode::CONFLICT,
            "数据库中的情况已有变化，文件现在有问题行，未导入任何数据。请改正后重新上传。",
            &checked.problems,
        )),
    }
}

/// Takes the admin's kept upload out of the cache: of two applies of the same token
/// only one gets it. Another admin's token is left alone (and refused).
async fn take_upload(
    state: &AppState,
    console: &Console,
    token: &str,
) -> Result<Option<KeptUpload>, AppError> {
    if token.is_empty() {
        return Ok(None);
    }
    let key = upload_key(token);
    let Some(value) = state.cache.get(&key).await? else {
        return Ok(None);
    };
    let Ok(kept) = serde_json::from_str::<KeptUpload>(&value) else {
        return Ok(None);
    };
    if kept.admin_id != console.admin.id {
        tracing::warn!(admin = %console.admin.username, "apply refused: another admin's upload");
        return Ok(None);
    }
    let taken = state.cache.delete_if_equals(&key, &value).await?;
    Ok(taken.then_some(kept))
}

async fn restore_upload(state: &AppState, token: &str, kept: &KeptUpload) {
    let Ok(value) = serde_json::to_string(kept) else {
        return;
    };
    if let Err(error) = state
        .cache
        .set(&upload_key(token.trim()), &value, KEEP_UPLOAD)
        .await
    {
        tracing::warn!(?error, "cannot keep an upload after a failed apply");
    }
}

// ---------------------------------------------------------------------------------
// One item: waive, defer, restore.

/// What a change came to, carried back to the item's page in `?done=`.
#[derive(Debug, Clone, Copy)]
enum Done {
    Waived,
    Deferred,
    Restored,
}

impl Done {
    fn key(self) -> &'static str {
        match self {
            Done::Waived => "waived",
            Done::Deferred => "deferred",
            Done::Restored => "restored",
        }
    }

    fn from_key(key: &str) -> Option<Done> {
        match key {
            "waived" => Some(Done::Waived),
            "deferred" => Some(Done::Deferred),
            "restored" => Some(Done::Restored),
            _ => None,
        }
    }

    fn notice(self) -> &'static str {
        match self {
            Done::Waived => "已减免该项目。",
            Done::Deferred => "已设为缓缴（绿色通道）。",
            Done::Restored => "已恢复为待缴。",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ItemQuery {
    #[serde(default)]
    done: String,
}

async fn show_item(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(query): Query<ItemQuery>,
) -> Result<Response, AppError> {
    let notice = Done::from_key(&query.done).map(Done::notice);
    item_page(&state, &console, id, StatusCode::OK, None, notice).await
}

async fn item_page(
    state: &AppState,
    console: &Console,
    id: i64,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, AppError> {
    let detail = state
        .store
        .fee_item_detail(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let title = format!("{} {}", detail.academic_year, detail.item);
    let content = views::item(
        &detail,
        console.csrf(),
        console.can_change(),
        state.clock.now(),
        error,
        notice,
    );
    let mut response = console.page(state, Section::Fees, &title, content);
    *response.status_mut() = status;
    Ok(response)
}

/// The audit target of an item.
fn target(id: i64) -> String {
    format!("fee_item:{id}")
}

/// The item's page after a change: back there with a notice, or the page again with
/// why it was refused.
async fn after_change(
    state: &AppState,
    console: &Console,
    id: i64,
    outcome: Result<FeeItemChange, StoreError>,
    done: Done,
) -> Result<Response, AppError> {
    let refused = match outcome? {
        FeeItemChange::Changed => {
            return Ok(redirect(&format!(
                "{}?done={}",
                views::item_path(id),
                done.key()
            )));
        }
        FeeItemChange::NotFound => return Err(AppError::NotFound),
        FeeItemChange::Refused(status) => refusal(status, done),
        FeeItemChange::ChangedMeanwhile => {
            "该项目刚刚有变化（可能学生正在支付），未修改。请查看最新状态后再操作。"
        }
    };
    item_page(
        state,
        console,
        id,
        StatusCode::CONFLICT,
        Some(refused),
        None,
    )
    .await
}

fn refusal(status: FeeItemStatus, done: Done) -> &'static str {
    match (status, done) {
        (FeeItemStatus::Paid, _) => "该项目已缴费，不能修改。",
        (FeeItemStatus::InOrder, _) => "该项目正在支付中（有未关闭的订单），不能修改。",
        (FeeItemStatus::Waived, Done::Waived) => "该项目已减免。",
        (FeeItemStatus::Waived, _) => "该项目已减免，请先恢复为待缴。",
        (FeeItemStatus::Deferred, Done::Deferred) => {
            "该项目正在缓缴中；要改日期，请先恢复为待缴再设缓缴。"
        }
        (FeeItemStatus::Unpaid, Done::Restored) => "该项目本来就是待缴。",
        _ => "该项目当前状态不允许这个操作。",
    }
}

#[derive(Debug, Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn waive(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let reason = match check_reason(&form.reason) {
        Ok(reason) => reason,
        Err(error) => return invalid(&state, &console, id, &error.to_string()).await,
    };
    let audit = console.audit("fee_item.waive", target(id));
    let outcome = state
        .store
        .waive_fee_item(id, &reason, audit, state.clock.now())
        .await;
    after_change(&state, &console, id, outcome, Done::Waived).await
}

#[derive(Debug, Deserialize)]
struct DeferForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    reason: String,
}

async fn defer(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(form): Form<DeferForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let now = state.clock.now();
    let checked: Result<(DateTime<Utc>, String), _> =
        deferral_end(&form.until, now).and_then(|until| Ok((until, check_reason(&form.reason)?)));
    let (until, reason) = match checked {
        Ok(checked) => checked,
        Err(error) => return invalid(&state, &console, id, &error.to_string()).await,
    };
    let audit = console.audit("fee_item.defer", target(id));
    let outcome = state
        .store
        .defer_fee_item(id, until, &reason, audit, now)
        .await;
    after_change(&state, &console, id, outcome, Done::Deferred).await
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn restore(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let audit = console.audit("fee_item.restore", target(id));
    let outcome = state
        .store
        .restore_fee_item(id, audit, state.clock.now())
        .await;
    after_change(&state, &console, id, outcome, Done::Restored).await
}

/// A form that does not pass its checks: the item's page again, saying why.
async fn invalid(
    state: &AppState,
    console: &Console,
    id: i64,
    message: &str,
) -> Result<Response, AppError> {
    item_page(
        state,
        console,
        id,
        StatusCode::BAD_REQUEST,
        Some(message),
        None,
    )
    .await
}

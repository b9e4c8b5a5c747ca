//! The console's arrears: what is owed by grade, class or major, the students of a
//! group, and their list as CSV for the counsellors.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::paging::PageNumber;
use super::payments::write_csv;
use super::{Console, csv_bytes, csv_download, csv_writer};
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::store::{ArrearsGrouping, ArrearsScope, ArrearsStudent, MajorScope};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::arrears as views;
use crate::web::views::admin::payments::masked_id_card;

const PER_PAGE: u64 = 50;
/// The export reads the students this many at a time, to bound memory.
const EXPORT_CHUNK: u64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/arrears", get(totals))
        .route("/admin/arrears/students", get(students))
        .route("/admin/arrears/export.csv", get(export))
}

#[derive(Debug, Default, Deserialize)]
struct ScopeQuery {
    #[serde(default)]
    by: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    major: String,
    #[serde(default)]
    page: PageNumber,
}

impl ScopeQuery {
    fn view(&self) -> views::Scope<'_> {
        views::Scope {
            grade: self.grade.trim(),
            class: self.class.trim(),
            major: self.major.trim(),
        }
    }

    fn grouping(&self) -> ArrearsGrouping {
        match self.by.as_str() {
            "class" => ArrearsGrouping::Class,
            "major" => ArrearsGrouping::Major,
            _ => ArrearsGrouping::Grade,
        }
    }

    /// The store's scope; a message for the office when the grade cannot be read.
    fn parse(&self) -> Result<ArrearsScope, &'static str> {
        let view = self.view();
        let grade = match view.grade.trim_end_matches('级') {
            "" => None,
            grade => {
                let year: i32 = grade.parse().map_err(|_| "年级应为入学年份，如 2026")?;
                // `26` as the rolls and the remarks write it.
                Some(if (0..100).contains(&year) {
                    2000 + year
                } else {
                    year
                })
            }
        };
        let major = match view.major {
            "" => None,
            views::NO_MAJOR => Some(MajorScope::Missing),
            major => Some(MajorScope::Named(major.to_owned())),
        };
        Ok(ArrearsScope {
            grade,
            class_name: (!view.class.is_empty()).then(|| view.class.to_owned()),
            major,
        })
    }
}

async fn totals(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ScopeQuery>,
) -> Result<Response, AppError> {
    let grouping = query.grouping();
    let (scope, error) = match query.parse() {
        Ok(scope) => (Some(scope), None),
        Err(message) => (None, Some(message)),
    };
    let groups = match &scope {
        Some(scope) => {
            state
                .store
                .arrears_groups(grouping, scope, state.clock.now())
                .await?
        }
        None => Vec::new(),
    };
    let content = views::groups(&views::GroupsPage {
        grouping,
        scope: query.view(),
        error,
        groups: &groups,
    });
    let mut response = console.page(&state, Section::Arrears, "欠费统计", content);
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

async fn students(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ScopeQuery>,
) -> Result<Response, AppError> {
    let scope = query
        .parse()
        .map_err(|message| AppError::BadRequest(message.to_owned()))?;
    let page = query.page.get();
    let now = state.clock.now();
    let total = state.store.count_students_owing(&scope, now).await?;
    let students = state
        .store
        .students_owing(&scope, now, PER_PAGE, query.page.offset(PER_PAGE))
        .await?;
    let content = views::students(&views::StudentsPage {
        scope: query.view(),
        students: &students,
        page,
        per_page: PER_PAGE,
        total,
    });
    Ok(console.page(&state, Section::Arrears, "欠费学生名单", content))
}

const EXPORT_HEADER: [&str; 8] = [
    "年级",
    "班级",
    "专业",
    "学号",
    "姓名",
    "身份证号",
    "欠费项目",
    "欠费金额(元)",
];

/// The students owing in the scope, for the counsellors. A read (viewers may), but
/// personal data leaving the system: the audit log records who took what.
async fn export(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ScopeQuery>,
) -> Result<Response, AppError> {
    let scope = query
        .parse()
        .map_err(|message| AppError::BadRequest(message.to_owned()))?;
    let now = state.clock.now();
    let mut writer = csv_writer();
    write_csv(&mut writer, EXPORT_HEADER)?;
    let mut rows = 0u64;
    loop {
        let chunk = state
            .store
            .students_owing(&scope, now, EXPORT_CHUNK, rows)
            .await?;
        for student in &chunk {
            write_csv(&mut writer, export_record(student))?;
        }
        rows += chunk.len() as u64;
        if (chunk.len() as u64) < EXPORT_CHUNK {
            break;
        }
    }
    let view = query.view();
    let entry = console.audit("arrears.export", "arrears").after(json!({
        "scope": { "grade": view.grade, "class": view.class, "major": view.major },
        "rows": rows,
    }));
    state.store.record_audit(&entry, now).await?;
    let filename = format!(
        "arrears-{}.csv",
        now.with_timezone(&beijing_offset()).format("%Y%m%d-%H%M%S")
    );
    Ok(csv_download(&filename, csv_bytes(writer)?))
}

fn export_record(student: &ArrearsStudent) -> [String; 8] {
    [
        student.grade.to_string(),
        student.class_name.clone(),
        student.major.clone().unwrap_or_default(),
        student.student_no.clone().unwrap_or_default(),
        student.name.clone(),
        masked_id_card(&student.id_card),
        views::owed_summary(&student.items, |fen| Fen(fen).to_string()),
        Fen(student.owed_fen).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(grade: &str, major: &str) -> ScopeQuery {
        ScopeQuery {
            grade: grade.into(),
            major: major.into(),
            ..ScopeQuery::default()
        }
    }

    #[test]
    fn grades_are_read_as_the_rolls_write_them() {
        assert_eq!(query("2026", "").parse().expect("ok").grade, Some(2026));
        assert_eq!(query("26", "").parse().expect("ok").grade, Some(2026));
        assert_eq!(query("2026级", "").parse().expect("ok").grade, Some(2026));
        assert_eq!(query("", "").parse().expect("ok").grade, None);
        assert!(query("汽修", "").parse().is_err());
    }

    #[test]
    fn the_missing_major_is_a_scope_of_its_own() {
        assert_eq!(
            query("", views::NO_MAJOR).parse().expect("ok").major,
            Some(MajorScope::Missing)
        );
        assert_eq!(
            query("", "电子商务").parse().expect("ok").major,
            Some(MajorScope::Named("电子商务".into()))
        );
    }
}

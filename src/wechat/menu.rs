//! Menu definitions. `menus/*.json` are the menu API's own JSON; `{PUBLIC_URL}` in
//! any string becomes the deployment's public URL. A menu is checked against
//! WeChat's limits here, so that a bad file is refused with every problem named
//! instead of one errcode at a time from WeChat.

use std::fmt;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};
use url::Url;

/// What `campus-pay menu push` sends when given no file.
pub const DEFAULT_MENU_PATH: &str = "menus/default.json";

/// The `key`s of the default menu's click buttons. The webhook answers each one,
/// and a test checks that `menus/default.json` uses exactly these.
pub mod keys {
    /// 缴费流程
    pub const PAY_GUIDE: &str = "PAY_GUIDE";
    /// 常见问题
    pub const PAY_FAQ: &str = "PAY_FAQ";
    /// 联系我们
    pub const CONTACT: &str = "CONTACT";
}

pub const MENU_KEYS: [&str; 3] = [keys::PAY_GUIDE, keys::PAY_FAQ, keys::CONTACT];

const PUBLIC_URL_PLACEHOLDER: &str = "{PUBLIC_URL}";

const TOP_BUTTONS: RangeInclusive<usize> = 1..=3;
const SUB_BUTTONS: RangeInclusive<usize> = 1..=5;
const TOP_NAME_MAX_BYTES: usize = 16;
const SUB_NAME_MAX_BYTES: usize = 60;
const KEY_MAX_BYTES: usize = 128;
const URL_MAX_BYTES: usize = 1024;

/// The button types the menu API documents.
pub const BUTTON_TYPES: [&str; 12] = [
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "article_view_limited",
    "miniprogram",
];

#[derive(Debug, thiserror::Error)]
pub enum MenuError {
    #[error("the menu is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the menu breaks WeChat's limits: {}", list(.0))]
    Invalid(Vec<MenuProblem>),
}

/// One broken rule, at a JSON path such as `button[1].sub_button[0].name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuProblem {
    pub path: String,
    pub problem: String,
}

impl fmt::Display for MenuProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// On one line: the CLI reports every problem in a single line.
fn list(problems: &[MenuProblem]) -> String {
    let items: Vec<String> = problems.iter().map(ToString::to_string).collect();
    items.join("; ")
}

/// Reads a menu file's text, puts `public_url` in place of `{PUBLIC_URL}` and checks
/// it; the result is what to send to `menu/create`.
pub fn load_menu(json_text: &str, public_url: &Url) -> Result<Value, MenuError> {
    let mut menu: Value = serde_json::from_str(json_text)?;
    // "{PUBLIC_URL}/h5" must not become "https://host//h5".
    let public_url = public_url.as_str().trim_end_matches('/');
    substitute_public_url(&mut menu, public_url);
    let problems = validate_menu(&menu);
    if problems.is_empty() {
        Ok(menu)
    } else {
        Err(MenuError::Invalid(problems))
    }
}

/// Every problem WeChat would refuse the menu for; empty when it is fine.
pub fn validate_menu(menu: &Value) -> Vec<MenuProblem> {
    let mut checker = Checker::default();
    checker.menu(menu);
    checker.problems
}

fn substitute_public_url(value: &mut Value, public_url: &str) {
    match value {
        Value::String(text) if text.contains(PUBLIC_URL_PLACEHOLDER) => {
            *text = text.replace(PUBLIC_URL_PLACEHOLDER, public_url);
        }
        Value::Array(items) => {
            for item in items {
                substitute_public_url(item, public_url);
            }
        }
        Value::Object(fields) => {
            for field in fields.values_mut() {
                substitute_public_url(field, public_url);
            }
        }
        _ => {}
    }
}

/// The fields a button of this type cannot work without.
fn required_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "view" => &["url"],
        "media_id" => &["media_id"],
        "article_id" | "article_view_limited" => &["article_id"],
        // `url` is what clients too old for mini programs open instead.
        "miniprogram" => &["url", "appid", "pagepath"],
        // click, scancode_*, pic_*, location_select: WeChat sends the key back in the event.
        _ => &["key"],
    }
}

fn has_sub_buttons(fields: &Map<String, Value>) -> bool {
    // WeChat's own exports write `"sub_button": []` on plain buttons.
    match fields.get("sub_button") {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
        None => false,
    }
}

/// The string fields an action button may carry.
const ACTION_FIELDS: [&str; 6] = ["key", "url", "media_id", "article_id", "appid", "pagepath"];

fn text<'v>(fields: &'v Map<String, Value>, field: &str) -> Option<&'v str> {
    fields.get(field).and_then(Value::as_str)
}

fn is_web_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

#[derive(Default)]
struct Checker {
    problems: Vec<MenuProblem>,
}

impl Checker {
    fn report(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(MenuProblem {
            path: path.into(),
            problem: problem.into(),
        });
    }

    fn menu(&mut self, menu: &Value) {
        let Some(buttons) = menu.get("button") else {
            self.report("button", "missing: a menu has 1 to 3 buttons");
            return;
        };
        let Some(buttons) = buttons.as_array() else {
            self.report("button", "must be an array");
            return;
        };
        self.count("button", buttons.len(), TOP_BUTTONS);
        for (i, button) in buttons.iter().enumerate() {
            self.top_button(&format!("button[{i}]"), button);
        }
    }

    fn top_button(&mut self, path: &str, button: &Value) {
        let Some(fields) = self.object(path, button) else {
            return;
        };
        self.name(path, fields, TOP_NAME_MAX_BYTES);
        if has_sub_buttons(fields) {
            self.group(path, fields);
        } else {
            self.action(path, fields);
        }
    }

    /// A top button that opens sub-buttons; WeChat ignores any action it has.
    fn group(&mut self, path: &str, fields: &Map<String, Value>) {
        if fields.contains_key("type") {
            self.report(
                format!("{path}.type"),
                "a button with sub_buttons has no type",
            );
        }
        let subs_path = format!("{path}.sub_button");
        let Some(subs) = fields.get("sub_button").and_then(Value::as_array) else {
            self.report(subs_path, "must be an array");
            return;
        };
        self.count(&subs_path, subs.len(), SUB_BUTTONS);
        for (i, sub) in subs.iter().enumerate() {
            self.sub_button(&format!("{subs_path}[{i}]"), sub);
        }
    }

    fn sub_button(&mut self, path: &str, button: &Value) {
        let Some(fields) = self.object(path, button) else {
            return;
        };
        self.name(path, fields, SUB_NAME_MAX_BYTES);
        if has_sub_buttons(fields) {
            self.report(
                format!("{path}.sub_button"),
                "menus have two levels; a sub-button has no sub_buttons",
            );
        }
        self.action(path, fields);
    }

    /// A button that does something: its type and the fields that type needs.
    fn action(&mut self, path: &str, fields: &Map<String, Value>) {
        let type_path = format!("{path}.type");
        let kind = match fields.get("type") {
            None => {
                return self.report(type_path, "missing: a button needs a type, or sub_buttons");
            }
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return self.report(type_path, "must be a string"),
        };
        if !BUTTON_TYPES.contains(&kind) {
            return self.report(type_path, format!("\"{kind}\" is not a WeChat button type"));
        }
        for field in ACTION_FIELDS {
            if fields.get(field).is_some_and(|value| !value.is_string()) {
                self.report(format!("{path}.{field}"), "must be a string");
            }
        }
        self.byte_limit(&format!("{path}.key"), text(fields, "key"), KEY_MAX_BYTES);
        self.byte_limit(&format!("{path}.url"), text(fields, "url"), URL_MAX_BYTES);
        for field in required_fields(kind) {
            let field_path = format!("{path}.{field}");
            match text(fields, field) {
                // Present but not a string: reported above.
                None if fields.contains_key(*field) => {}
                None | Some("") => {
                    self.report(field_path, format!("missing: a {kind} button needs one"))
                }
                Some(url) if *field == "url" && !is_web_url(url) => {
                    self.report(field_path, format!("\"{url}\" is not an http(s) URL"));
                }
                Some(_) => {}
            }
        }
    }

    fn name(&mut self, path: &str, fields: &Map<String, Value>, max_bytes: usize) {
        let name_path = format!("{path}.name");
        match fields.get("name") {
            None => self.report(name_path, "missing"),
            Some(Value::String(name)) if name.is_empty() => self.report(name_path, "empty"),
            Some(Value::String(name)) => self.byte_limit(&name_path, Some(name), max_bytes),
            Some(_) => self.report(name_path, "must be a string"),
        }
    }

    fn count(&mut self, path: &str, count: usize, allowed: RangeInclusive<usize>) {
        if count < *allowed.start() {
            self.report(
                path,
                format!("{count} buttons, at least {}", allowed.start()),
            );
        } else if count > *allowed.end() {
            self.report(path, format!("{count} buttons, at most {}", allowed.end()));
        }
    }

    /// WeChat counts bytes of UTF-8: a Chinese character is 3.
    fn byte_limit(&mut self, path: &str, text: Option<&str>, max_bytes: usize) {
        if let Some(text) = text
            && text.len() > max_bytes
        {
            self.report(path, format!("{} bytes, at most {max_bytes}", text.len()));
        }
    }

    fn object<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        let fields = value.as_object();
        if fields.is_none() {
            self.report(path, "must be an object");
        }
        fields
    }
}

/// Why a menu was not pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a menu WeChat accepts", path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: MenuError,
    },
    #[error("WeChat refused the menu")]
    Refused(#[source] super::api::ApiError),
}

/// What `campus-pay menu push` and the console's 推送菜单 both do: reads the file,
/// puts `public_url` in, checks the menu and sends it to menu/create. Returns the
/// menu as sent.
pub async fn push_menu(
    api: &super::api::ApiClient,
    path: &std::path::Path,
    public_url: &Url,
) -> Result<Value, PushError> {
    let text = std::fs::read_to_string(path).map_err(|source| PushError::Read {
        path: path.to_owned(),
        source,
    })?;
    let menu = load_menu(&text, public_url).map_err(|source| PushError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    api.menu_create(&menu).await.map_err(PushError::Refused)?;
    Ok(menu)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    const DEFAULT_MENU: &str = include_str!("../../menus/default.json");

    fn public_url() -> Url {
        Url::parse("https://pay.example.edu.cn").unwrap()
    }

    /// The problems found in `menu`, as their messages.
    fn problems(menu: Value) -> Vec<String> {
        validate_menu(&menu)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn click(name: &str, key: &str) -> Value {
        json!({"type": "click", "name": name, "key": key})
    }

    fn view(name: &str, url: &str) -> Value {
        json!({"type": "view", "name": name, "url": url})
    }

    fn click_keys(menu: &Value) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut stack = vec![menu];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(fields) => {
                    if fields.get("type") == Some(&json!("click")) {
                        keys.insert(fields["key"].as_str().unwrap().to_owned());
                    }
                    stack.extend(fields.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        keys
    }

    #[test]
    fn the_default_menu_loads_with_the_public_url_in_place() {
        let menu = load_menu(DEFAULT_MENU, &public_url()).unwrap();
        assert_eq!(menu["button"][0]["name"], "学生缴费");
        assert_eq!(menu["button"][0]["type"], "view");
        assert_eq!(menu["button"][0]["url"], "https://pay.example.edu.cn/h5");
        assert_eq!(menu["button"][1]["name"], "缴费指南");
        assert_eq!(
            menu["button"][1]["sub_button"][2]["url"],
            "https://pay.example.edu.cn/"
        );
        assert_eq!(menu["button"][2]["key"], keys::CONTACT);
        assert!(!menu.to_string().contains(PUBLIC_URL_PLACEHOLDER));
    }

    #[test]
    fn the_default_menu_uses_exactly_the_keys_the_webhook_answers() {
        let menu: Value = serde_json::from_str(DEFAULT_MENU).unwrap();
        let expected: BTreeSet<String> = MENU_KEYS.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(click_keys(&menu), expected);
    }

    #[test]
    fn the_public_url_is_joined_without_doubling_slashes_and_keeps_its_path() {
        let text = r#"{"button":[{"type":"view","name":"缴费","url":"{PUBLIC_URL}/h5"}]}"#;
        let with_path = Url::parse("https://www.example.edu.cn/campus-pay/").unwrap();
        let menu = load_menu(text, &with_path).unwrap();
        assert_eq!(
            menu["button"][0]["url"],
            "https://www.example.edu.cn/campus-pay/h5"
        );
        let bare = Url::parse("http://127.0.0.1:8080").unwrap();
        let menu = load_menu(text, &bare).unwrap();
        assert_eq!(menu["button"][0]["url"], "http://127.0.0.1:8080/h5");
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        let error = load_menu("{\"button\": [", &public_url()).unwrap_err();
        assert!(matches!(error, MenuError::NotJson(_)), "{error:?}");
    }

    #[test]
    fn a_menu_needs_a_button_array() {
        assert_eq!(
            problems(json!({})),
            ["button: missing: a menu has 1 to 3 buttons"]
        );
        assert_eq!(
            problems(json!({"button": {}})),
            ["button: must be an array"]
        );
    }

    #[test]
    fn a_menu_has_one_to_three_top_buttons() {
        assert_eq!(
            problems(json!({"button": []})),
            ["button: 0 buttons, at least 1"]
        );
        let four = vec![
            click("一", "A"),
            click("二", "B"),
            click("三", "C"),
            click("四", "D"),
        ];
        assert_eq!(
            problems(json!({ "button": four })),
            ["button: 4 buttons, at most 3"]
        );
    }

    #[test]
    fn a_group_has_one_to_five_sub_buttons() {
        let six: Vec<Value> = (0..6).map(|i| click("子菜单", &format!("K{i}"))).collect();
        assert_eq!(
            problems(json!({"button": [{"name": "组", "sub_button": six}]})),
            ["button[0].sub_button: 6 buttons, at most 5"]
        );
        // An empty list is a plain button, which then needs a type.
        assert_eq!(
            problems(json!({"button": [{"name": "组", "sub_button": []}]})),
            ["button[0].type: missing: a button needs a type, or sub_buttons"]
        );
    }

    #[test]
    fn top_button_names_are_at_most_16_bytes() {
        assert!(problems(json!({"button": [click("学生缴费(PC)", "K")]})).is_empty());
        assert_eq!(
            problems(json!({"button": [click("学生缴费系统入", "K")]})),
            ["button[0].name: 21 bytes, at most 16"]
        );
    }

    #[test]
    fn sub_button_names_are_at_most_60_bytes() {
        let long_name = "缴".repeat(22);
        let menu = json!({"button": [
            click("联系", "C"),
            {"name": "指南", "sub_button": [click(&long_name, "K")]},
        ]});
        assert_eq!(
            problems(menu),
            ["button[1].sub_button[0].name: 66 bytes, at most 60"]
        );
    }

    #[test]
    fn names_are_required_and_not_empty() {
        let menu = json!({"button": [{"type": "click", "key": "K"}, click("", "K2")]});
        assert_eq!(
            problems(menu),
            ["button[0].name: missing", "button[1].name: empty"]
        );
    }

    #[test]
    fn keys_are_at_most_128_bytes() {
        let key = "K".repeat(129);
        assert_eq!(
            problems(json!({"button": [click("联系", &key)]})),
            ["button[0].key: 129 bytes, at most 128"]
        );
        assert!(problems(json!({"button": [click("联系", &"K".repeat(128))]})).is_empty());
    }

    #[test]
    fn urls_are_at_most_1024_bytes() {
        let url = format!("https://pay.example.edu.cn/{}", "a".repeat(1000));
        assert_eq!(
            problems(json!({"button": [view("缴费", &url)]})),
            ["button[0].url: 1027 bytes, at most 1024"]
        );
    }

    #[test]
    fn types_must_be_documented_ones() {
        assert_eq!(
            problems(
                json!({"button": [{"type": "view_limited", "name": "图文", "media_id": "M"}]})
            ),
            ["button[0].type: \"view_limited\" is not a WeChat button type"]
        );
    }

    #[test]
    fn every_documented_type_is_accepted_with_its_fields() {
        let buttons: Vec<Value> = BUTTON_TYPES
            .iter()
            .map(|kind| {
                json!({
                    "type": kind, "name": "按钮", "key": "K", "url": "https://example.com/",
                    "media_id": "M", "article_id": "A", "appid": "wx0", "pagepath": "pages/index",
                })
            })
            .collect();
        for group in buttons.chunks(4) {
            let menu = json!({"button": [{"name": "组", "sub_button": group}]});
            assert_eq!(problems(menu), Vec::<String>::new());
        }
    }

    #[test]
    fn view_buttons_need_an_http_url() {
        let menu = json!({"button": [
            {"type": "view", "name": "缴费"},
            view("门户", "/h5"),
            view("文件", "ftp://example.com/"),
        ]});
        assert_eq!(
            problems(menu),
            [
                "button[0].url: missing: a view button needs one",
                "button[1].url: \"/h5\" is not an http(s) URL",
                "button[2].url: \"ftp://example.com/\" is not an http(s) URL",
            ]
        );
    }

    #[test]
    fn click_buttons_need_a_key() {
        let menu = json!({"button": [{"type": "click", "name": "联系"}, click("指南", "")]});
        assert_eq!(
            problems(menu),
            [
                "button[0].key: missing: a click button needs one",
                "button[1].key: missing: a click button needs one",
            ]
        );
    }

    #[test]
    fn a_button_with_sub_buttons_has_no_type() {
        let menu = json!({"button": [
            {"type": "click", "key": "K", "name": "指南", "sub_button": [click("流程", "P")]},
        ]});
        assert_eq!(
            problems(menu),
            ["button[0].type: a button with sub_buttons has no type"]
        );
    }

    #[test]
    fn menus_have_two_levels_only() {
        let menu = json!({"button": [
            {"name": "指南", "sub_button": [
                {"type": "click", "name": "流程", "key": "P", "sub_button": [click("更深", "D")]},
            ]},
        ]});
        assert_eq!(
            problems(menu),
            [
                "button[0].sub_button[0].sub_button: menus have two levels; a sub-button has no sub_buttons"
            ]
        );
    }

    #[test]
    fn values_of_the_wrong_kind_are_named() {
        let menu = json!({"button": [{"type": "click", "name": 7, "key": "K"}, "联系"]});
        assert_eq!(
            problems(menu),
            [
                "button[0].name: must be a string",
                "button[1]: must be an object"
            ]
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let text = r#"{"button": [
            {"type": "view", "name": "学生缴费系统入口", "url": "{PUBLIC_URL}/h5"},
            {"name": "指南", "sub_button": [{"type": "click", "name": "流程"}]},
            {"type": "telephone", "name": "联系"}
        ]}"#;
        let Err(MenuError::Invalid(found)) = load_menu(text, &public_url()) else {
            panic!("the menu should be refused");
        };
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "button[0].name",
                "button[1].sub_button[0].key",
                "button[2].type"
            ]
        );
        let message = MenuError::Invalid(found).to_string();
        assert!(
            message.contains("button[0].name: 24 bytes, at most 16"),
            "{message}"
        );
    }
}

//! Sign-in pages: the PC portal's login, the H5 binding, the first password change.

use maud::{Markup, html};

use super::{Surface, alerts, card_class, office_note, page};

/// What a form shows again after a refusal (never the password).
#[derive(Debug, Default, Clone)]
pub struct FormState<'a> {
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub id_card: &'a str,
}

/// `/`: 身份证号, 密码, 验证码, 登录.
pub fn portal_login(school: &str, csrf: &str, form: &FormState<'_>) -> Markup {
    page(
        Surface::Pc,
        school,
        "学生缴费登录",
        html! {
            div class="card narrow" {
                (alerts(form.error, form.notice))
                form method="post" action="/login" autocomplete="off" {
                    input type="hidden" name="csrf" value=(csrf);
                    div class="cells" {
                        div class="cell" {
                            label for="id_card" { "身份证号" }
                            input id="id_card" name="id_card" type="text" maxlength="18" required
                                placeholder="请输入18位身份证号" value=(form.id_card);
                        }
                        div class="cell" {
                            label for="password" { "密码" }
                            input id="password" name="password" type="password" maxlength="64" required
                                placeholder="初始密码为身份证号后六位";
                        }
                        div class="cell captcha" {
                            label for="captcha" { "验证码" }
                            input id="captcha" name="captcha" type="text" maxlength="8" required
                                autocomplete="off" placeholder="请输入右侧字符";
                            a href="/" title="看不清？换一张" {
                                img id="captcha-image" src="/captcha" alt="验证码图片，点击换一张" width="120" height="40";
                            }
                        }
                    }
                    div class="btn-area" { button class="btn" type="submit" id="login-button" { "登录" } }
                }
                p class="tips" { "初始密码为身份证号后六位（末位X为大写），首次登录须修改密码。" }
                (office_note())
            }
        },
    )
}

/// `/h5/bind`: the first visit from WeChat.
pub fn bind(school: &str, csrf: &str, form: &FormState<'_>) -> Markup {
    page(
        Surface::Mobile,
        school,
        "绑定学生信息",
        html! {
            (alerts(form.error, form.notice))
            form method="post" action="/h5/bind" autocomplete="off" {
                input type="hidden" name="csrf" value=(csrf);
                p class="cells-title" { "首次使用请绑定本人信息，以后进入将直接显示缴费项目" }
                div class="cells" {
                    div class="cell" {
                        label for="id_card" { "身份证号" }
                        input id="id_card" name="id_card" type="text" maxlength="18" required
                            placeholder="请输入身份证号" value=(form.id_card);
                    }
                    div class="cell" {
                        label for="id_card_again" { "确认身份证号" }
                        input id="id_card_again" name="id_card_again" type="text" maxlength="18" required
                            placeholder="请再次确认输入";
                    }
                    div class="cell" {
                        label for="password" { "密码" }
                        input id="password" name="password" type="password" maxlength="64" required
                            placeholder="初始密码为身份证号后六位";
                    }
                }
                div class="btn-area" { button class="btn" type="submit" id="bind-button" { "绑定" } }
            }
            p class="tips" { "初始密码为身份证号后六位（末位X为大写）。绑定后，公众号会将你的备注设为“年级+班级+姓名”。" }
            (office_note())
        },
    )
}

/// The first-login password change, on either surface.
/// `/password`; `ask_current`: the form asks for the current password (every change
/// but the first-login one right after typing it to sign in).
pub fn change_password(
    surface: Surface,
    school: &str,
    csrf: &str,
    error: Option<&str>,
    ask_current: bool,
) -> Markup {
    page(
        surface,
        school,
        "设置新密码",
        html! {
            div class=(card_class(surface, true)) {
                (alerts(error, None))
                p class="cells-title" { "你仍在使用初始密码，请先设置新密码" }
                form method="post" action=(surface.path("/password")) autocomplete="off" {
                    input type="hidden" name="csrf" value=(csrf);
                    div class="cells" {
                        @if ask_current {
                            div class="cell" {
                                label for="current_password" { "当前密码" }
                                input id="current_password" name="current_password" type="password" maxlength="64" required
                                    autocomplete="current-password" placeholder="请输入当前密码";
                            }
                        }
                        div class="cell" {
                            label for="new_password" { "新密码" }
                            input id="new_password" name="new_password" type="password" maxlength="64" required
                                placeholder="至少8位，含字母和数字";
                        }
                        div class="cell" {
                            label for="new_password_again" { "确认新密码" }
                            input id="new_password_again" name="new_password_again" type="password" maxlength="64" required
                                placeholder="请再次输入新密码";
                        }
                    }
                    div class="btn-area" { button class="btn" type="submit" id="password-button" { "确定" } }
                }
                p class="tips" { "新密码至少8位，须同时包含字母和数字，且不能是身份证号的一部分。" }
                (office_note())
            }
        },
    )
}

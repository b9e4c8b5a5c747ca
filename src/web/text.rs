//! The words the pages and the account use, from the college's manual (CONTRACT.md,
//! "Wording"). Pages and tests share these constants.

pub const MENU_STUDENT_PAYMENT: &str = "学生缴费";
pub const OFFICE_LOCATION: &str = "行树楼103室 计财处结算中心1号窗口";
pub const REMARK_EXAMPLE: &str = "18汽修张三";

//! After a binding, the follower's remark becomes grade+class+name (CONTRACT.md, "The
//! remark rule"), set in the background so the student never waits on WeChat, and
//! retried when WeChat fails.

use std::time::Duration;

use crate::domain::remark::remark_for;
use crate::store::StudentAccount;
use crate::web::AppState;

/// Waits before the second and third tries.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

pub fn set_in_background(state: &AppState, openid: &str, student: &StudentAccount) {
    let Some(account) = state.account.clone() else {
        return;
    };
    let remark = remark_for(student.grade, &student.class_name, &student.name);
    let openid = openid.to_owned();
    let store = state.store.clone();
    let clock = state.clock.clone();
    let student_id = student.id;
    state.background.spawn(async move {
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match account.api.update_remark(&openid, &remark).await {
                Ok(()) => {
                    if let Err(error) = store.set_follower_remark(&openid, &remark, clock.now()).await {
                        tracing::warn!(error = ?error, student = student_id, "remark set but not recorded");
                    }
                    tracing::info!(student = student_id, "follower remark set");
                    return;
                }
                Err(error) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(error = %error, student = student_id, "setting the remark failed; retrying");
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        // The daily follower check corrects drifted remarks of bound students.
                        tracing::error!(error = %error, student = student_id, "setting the remark failed; the follower check will retry");
                        return;
                    }
                },
            }
        }
    });
}

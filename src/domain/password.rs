//! Students' passwords: the initial one, the rule for a new one, and hashing.
//!
//! The initial password is the last six characters of the ID number (`X` upper
//! case), unless the import gave another (the manual's `000000`). A student on the
//! initial password must choose a new one that follows [`check_new_password`].
//!
//! Hashes are argon2id PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with the
//! argon2 crate's default parameters; verification takes the parameters from the
//! stored string, so raising them later leaves old hashes valid. The salt comes from
//! the operating system's random number generator: the one place in `domain` that
//! reads something it was not given, accepted because a salt must be unpredictable
//! and its value never matters to a test.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::id_card::IdCardNumber;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 64;

/// Why a new password is refused. Messages are shown to the student as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("新密码至少8位，且须同时包含字母和数字")]
    TooWeak,
    #[error("新密码不能超过64位")]
    TooLong,
    #[error("新密码不能取自身份证号")]
    FromIdCard,
}

/// Hashing failed: only on a broken random number generator or absurd parameters,
/// or (for a caller hashing off the async runtime) when the runtime shut down first.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("cannot hash the password")]
    Argon2(#[source] argon2::password_hash::Error),
    #[error("password hashing was interrupted by the shutdown")]
    Interrupted,
}

/// The default initial password: the last six characters of the ID number.
pub fn initial_password(id_card: &IdCardNumber) -> String {
    id_card.last_six().to_owned()
}

/// The rule for a password the student chooses: 8 to 64 characters, at least one
/// ASCII letter and one digit, and not taken from the ID number (neither a part of
/// it, case aside, nor containing its last six characters, the initial password).
pub fn check_new_password(new: &str, id_card: &IdCardNumber) -> Result<(), PasswordRuleError> {
    let chars = new.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordRuleError::TooLong);
    }
    let has_letter = new.chars().any(|c| c.is_ascii_alphabetic());
    let has_digit = new.chars().any(|c| c.is_ascii_digit());
    if chars < MIN_PASSWORD_CHARS || !has_letter || !has_digit {
        return Err(PasswordRuleError::TooWeak);
    }
    let upper = new.to_ascii_uppercase();
    if id_card.as_str().contains(&upper) || upper.contains(id_card.last_six()) {
        return Err(PasswordRuleError::FromIdCard);
    }
    Ok(())
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(PasswordHashError::Argon2)
}

/// Whether `password` matches the PHC string `phc`. False for a malformed or empty
/// string (the stored hash of a student still on the initial password is empty).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> IdCardNumber {
        IdCardNumber::parse("11010519491231002x").unwrap()
    }

    #[test]
    fn the_initial_password_is_the_last_six_with_an_upper_case_x() {
        assert_eq!(initial_password(&id()), "31002X");
    }

    #[test]
    fn a_good_new_password_passes() {
        for password in ["campus2026", "Abcdefg1", "1234567a", "密码密码abc123"] {
            assert_eq!(check_new_password(password, &id()), Ok(()), "{password}");
        }
    }

    #[test]
    fn weak_passwords_are_refused() {
        for password in [
            "",
            "abc123",
            "abcdefgh",
            "12345678",
            "密码密码密码密码",
            "1234567８",
        ] {
            assert_eq!(
                check_new_password(password, &id()),
                Err(PasswordRuleError::TooWeak),
                "{password}"
            );
        }
        assert_eq!(
            check_new_password(&format!("a1{}", "x".repeat(63)), &id()),
            Err(PasswordRuleError::TooLong)
        );
        assert_eq!(
            PasswordRuleError::TooWeak.to_string(),
            "新密码至少8位，且须同时包含字母和数字"
        );
    }

    #[test]
    fn passwords_taken_from_the_id_number_are_refused() {
        for password in ["31231002X", "91231002x", "abcd31002x", "X31002Xab1"] {
            assert_eq!(
                check_new_password(password, &id()),
                Err(PasswordRuleError::FromIdCard),
                "{password}"
            );
        }
        // Digits of the ID number, but not a part of it and without the last six.
        assert_eq!(check_new_password("a11010519", &id()), Ok(()));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("campus2026").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("campus2026", &phc));
        assert!(!verify_password("campus2027", &phc));
        let again = hash_password("campus2026").unwrap();
        assert_ne!(phc, again, "each hash has its own salt");
        assert!(verify_password("campus2026", &again));
    }

    #[test]
    fn a_malformed_or_empty_hash_verifies_nothing() {
        assert!(!verify_password("", ""));
        assert!(!verify_password("31002X", ""));
        assert!(!verify_password("31002X", "not a hash"));
        assert!(!verify_password(
            "31002X",
            "$argon2id$v=19$m=19456,t=2,p=1$bad"
        ));
        assert!(!verify_password(
            "x",
            "$2b$12$abcdefghijklmnopqrstuuN1rJb5K1/5mHhL6o3z2V8a1c9e6yQeG"
        ));
    }
}

//! The official account's SHA-1 signatures: the `signature` on every request to our
//! server URL, and the `msg_signature` over safe-mode ciphertexts (our replies' too).
//!
//! Both are `sha1(sort(parts).join(""))` in lowercase hex; only the parts differ.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Sorts the parts byte-wise, concatenates them and returns the SHA-1 in lowercase hex.
pub fn sign(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    // `str`'s ordering is byte-wise, which is what WeChat's samples do.
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether `expected_hex` is the signature of `parts`.
///
/// WeChat sends lowercase hex, so an uppercase signature does not match. The comparison
/// takes the same time wherever the first differing byte is.
pub fn verify(expected_hex: &str, parts: &[&str]) -> bool {
    let actual = sign(parts);
    actual.as_bytes().ct_eq(expected_hex.as_bytes()).into()
}

/// The `signature` query parameter of the server URL (GET check and every POST).
pub fn url_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sign(&[token, timestamp, nonce])
}

/// The `msg_signature` over a safe-mode `Encrypt` value.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sign(&[token, timestamp, nonce, encrypt])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Anchor 3.1: wechatpy `tests/test_utils.py`.
    const URL_TOKEN: &str = "test";
    const URL_TIMESTAMP: &str = "1410685589";
    const URL_NONCE: &str = "test";
    const URL_SIGNATURE: &str = "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff";

    #[test]
    fn url_signature_matches_the_wechatpy_vector() {
        assert_eq!(
            url_signature(URL_TOKEN, URL_TIMESTAMP, URL_NONCE),
            URL_SIGNATURE
        );
        assert!(verify(
            URL_SIGNATURE,
            &[URL_TOKEN, URL_TIMESTAMP, URL_NONCE]
        ));
    }

    #[test]
    fn a_signature_differing_in_its_last_digit_is_refused() {
        let wrong = "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe";
        assert!(!verify(wrong, &[URL_TOKEN, URL_TIMESTAMP, URL_NONCE]));
    }

    #[test]
    fn uppercase_empty_and_truncated_signatures_are_refused() {
        let parts = [URL_TOKEN, URL_TIMESTAMP, URL_NONCE];
        assert!(!verify(&URL_SIGNATURE.to_uppercase(), &parts));
        assert!(!verify("", &parts));
        assert!(!verify(&URL_SIGNATURE[..39], &parts));
        assert!(!verify(&format!("{URL_SIGNATURE}0"), &parts));
    }

    #[test]
    fn the_order_of_the_parts_does_not_matter() {
        assert_eq!(sign(&["b", "a", "c"]), sign(&["c", "b", "a"]));
        assert_eq!(sign(&["b", "a", "c"]), sign(&["abc"]));
    }

    #[test]
    fn parts_are_sorted_byte_wise_not_by_locale() {
        // 'Z' (0x5a) sorts before 'a' (0x61), and ASCII before any multi-byte UTF-8.
        assert_eq!(sign(&["a", "Z", "中"]), sign(&["Za中"]));
    }

    #[test]
    fn msg_signature_matches_the_official_python_sample() {
        // Anchor 3.2: the official WXBizMsgCrypt Python sample.
        let encrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
        assert_eq!(
            msg_signature("spamtest", "1409735669", "1320562132", encrypt),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
    }

    #[test]
    fn msg_signature_matches_the_derived_java_sample_vector() {
        // Anchor 3.3 [derived]: signature over the Java sample's first ciphertext.
        let encrypt = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";
        let expected = "82c962d39941aa48552f90ef55aa323dc620cc10";
        assert_eq!(
            msg_signature("pamtest", "1409304348", "xxxxxx", encrypt),
            expected
        );
        assert!(verify(
            expected,
            &["pamtest", "1409304348", "xxxxxx", encrypt]
        ));
    }
}

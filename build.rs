//! Tells the tests which backends this build is for, so that a test that needs
//! PostgreSQL or Redis is reported as ignored on the embedded pass instead of
//! returning early and counting as a pass.
//!
//! `cfg(pg_tests)`: `CAMPUSPAY_TEST_DATABASE_URL` was set when the crate was built;
//! `cfg(redis_tests)`: `CAMPUSPAY_TEST_REDIS_URL` was. `cargo test` with the other
//! environment reruns this script and rebuilds the crate (not its dependencies).

const BACKENDS: [(&str, &str); 2] = [
    ("CAMPUSPAY_TEST_DATABASE_URL", "pg_tests"),
    ("CAMPUSPAY_TEST_REDIS_URL", "redis_tests"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (variable, cfg) in BACKENDS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var(variable).is_ok_and(|value| !value.trim().is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

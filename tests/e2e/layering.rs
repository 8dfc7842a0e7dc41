//! The rules of `docs/architecture.md` ("Rules that must not break") that a
//! manifest can show: which crate may depend on which.

use std::path::Path;

use crate::TestResult;

/// The direct dependencies of the crate at `dir` (normal ones, not dev).
fn dependencies(dir: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir).join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path)?.parse()?;
    let names = manifest.get("dependencies").and_then(toml::Value::as_table).map(|deps| deps.keys().cloned().collect());
    Ok(names.unwrap_or_default())
}

fn assert_none_of(dir: &str, forbidden: &[&str], why: &str) -> TestResult {
    let deps = dependencies(dir)?;
    assert!(!deps.is_empty(), "{dir} lists no dependencies: wrong path?");
    for name in forbidden {
        assert!(!deps.iter().any(|dep| dep == name), "{dir} depends on {name}: {why}");
    }
    Ok(())
}

#[test]
fn the_domain_knows_no_transport_storage_or_web_framework() -> TestResult {
    let forbidden = ["tonic", "prost", "keyport-proto", "sea-orm", "sqlx", "axum", "actix-web", "hyper", "http"];
    assert_none_of("crates/keyport-core", &forbidden, "core holds the rules only")
}

#[test]
fn the_middleware_never_reaches_the_server_or_the_store() -> TestResult {
    let forbidden = ["keyport-server", "keyport-store", "keyport-core", "sea-orm"];
    for dir in ["crates/keyport-client", "crates/keyport-axum", "crates/keyport-actix"] {
        assert_none_of(dir, &forbidden, "apps talk to Keyport over gRPC only")?;
    }
    Ok(())
}

#[test]
fn the_adapters_build_on_the_framework_free_web_core() -> TestResult {
    for dir in ["crates/keyport-axum", "crates/keyport-actix"] {
        assert!(dependencies(dir)?.iter().any(|dep| dep == "keyport-client"), "{dir} without keyport-client");
    }
    assert_none_of("crates/keyport-axum", &["actix-web"], "one framework per adapter")?;
    assert_none_of("crates/keyport-actix", &["axum", "axum-core"], "one framework per adapter")
}

//! The plugin crates that live in their own cargo workspaces (the built-ins in
//! `plugins/`, the example in `examples/canary-plugin/`) carry native unit tests
//! written with the SDK's fake host. They are part of the suite: run them here,
//! so `cargo test --workspace` is the whole test suite.

use std::path::Path;
use std::process::Command;

fn cargo_test(manifest: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The variables cargo sets for this test would leak into the nested build.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .args(["test", "--manifest-path", manifest])
        // Native builds of the guest crates get their own target dir, beside the
        // wasm one, so they never fight the host build for a lock.
        .env("CARGO_TARGET_DIR", root.join("target").join("guest-native"))
        .current_dir(&root)
        .output()
        .expect("run cargo test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo test --manifest-path {manifest} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok"),
        "no tests ran in {manifest}:\n{stdout}"
    );
}

#[test]
fn built_in_plugins_pass_their_native_tests() {
    cargo_test("plugins/Cargo.toml");
}

#[test]
fn canary_example_passes_its_native_tests() {
    cargo_test("examples/canary-plugin/Cargo.toml");
}

//! Golden files for `edgeward check`: each `tests/config/invalid/NAME.yaml` sits
//! beside `NAME.expected`, the exact text a user sees. `UPDATE_GOLDEN=1` rewrites
//! the expectations after a deliberate change (review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

use edgeward_e2e::edgeward_bin;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(kind)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs `check` from the file's own directory so messages name it relatively.
fn check(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(edgeward_bin())
        .args(["check", "--config"])
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn invalid_configs_fail_with_the_expected_located_message() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let files = yaml_files(&dir("invalid"));
    assert!(files.len() >= 10, "golden files missing");
    let mut failures = Vec::new();
    for file in files {
        let (code, text) = check(&file);
        let expected_file = file.with_extension("expected");
        if update {
            std::fs::write(&expected_file, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if code != Some(1) || text != expected {
            failures.push(format!(
                "{}: exit {code:?}\n--- expected\n{expected}--- got\n{text}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_configs_and_examples_pass() {
    let mut files = yaml_files(&dir("valid"));
    files.extend(yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
    ));
    assert!(!files.is_empty());
    for file in files {
        let (code, text) = check(&file);
        assert_eq!(
            (code, text.as_str()),
            (Some(0), "ok\n"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn demo_config_is_a_valid_input_to_run() {
    let out = Command::new(edgeward_bin())
        .args(["demo", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let (code, text) = check(&file);
    assert_eq!((code, text.as_str()), (Some(0), "ok\n"));
}

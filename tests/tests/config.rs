//! Golden files for `edgeward check`: each `tests/config/invalid/NAME.yaml`
//! (exit 1) and `tests/config/warn/NAME.yaml` (valid, with warnings: exit 0)
//! sits beside `NAME.expected`, the exact text a user sees. `UPDATE_GOLDEN=1`
//! rewrites the expectations after a deliberate change (review the diff).

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

/// Runs every file of `tests/config/<kind>/` against its golden text and exit code.
fn golden(kind: &str, exit: i32, at_least: usize) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let files = yaml_files(&dir(kind));
    assert!(files.len() >= at_least, "golden files missing");
    let mut failures = Vec::new();
    for file in files {
        let (code, text) = check(&file);
        let expected_file = file.with_extension("expected");
        if update {
            std::fs::write(&expected_file, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if code != Some(exit) || text != expected {
            failures.push(format!(
                "{}: exit {code:?}\n--- expected\n{expected}--- got\n{text}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_configs_fail_with_the_expected_located_message() {
    golden("invalid", 1, 10);
}

#[test]
fn warnings_are_located_and_do_not_fail_check() {
    golden("warn", 0, 2);
}

/// `check` output for `args`, run in `tests/config/valid/`.
fn edgeward(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(edgeward_bin())
        .args(args)
        .current_dir(dir("valid"))
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn the_config_file_may_be_given_as_an_argument() {
    assert_eq!(edgeward(&["check", "full.yaml"]), (Some(0), "ok\n".into()));
    assert_eq!(
        edgeward(&["check", "full.yaml", "--config", "full.yaml"]),
        (Some(0), "ok\n".into())
    );
    let (code, text) = edgeward(&["check", "full.yaml", "--config", "cache.yaml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("two configuration files given: full.yaml and --config cache.yaml"),
        "{text}"
    );
    let (code, text) = edgeward(&["check"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("which configuration file?"), "{text}");
    // `run FILE` reads the file it is given: a broken one stops it with
    // the same located error as `check`.
    let broken = dir("invalid").join("unknown-key.yaml");
    let broken = broken.to_str().unwrap();
    let (code, text) = edgeward(&["run", broken]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("unknown-key.yaml:2:5: listeners[0].adress"),
        "{text}"
    );
}

#[test]
fn help_names_signals_environment_and_the_reference() {
    for args in [&["--help"][..], &["run", "--help"], &["check", "--help"]] {
        let (code, text) = edgeward(args);
        assert_eq!(code, Some(0), "{text}");
        for needed in [
            "SIGHUP",
            "SIGUSR2",
            "--upgrade",
            "SIGTERM, SIGINT",
            "RUST_LOG",
            "EDGEWARD_CACHE_DIR",
            "XDG_RUNTIME_DIR",
            "docs/configuration.md",
        ] {
            assert!(text.contains(needed), "{args:?}: no {needed}:\n{text}");
        }
    }
    let (_, text) = edgeward(&["check", "--help"]);
    assert!(text.contains("[FILE]"), "{text}");
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

//! Every ```` ```yaml ```` block of README.md is a config `edgeward check`
//! accepts, run by the real binary in a directory holding the files the
//! examples name (certificates, the admin token, the plugins they say were
//! built with the SDK, built here from source). A block that is meant as a
//! fragment says so on the line before it, with the reason:
//! `<!-- fragment: why -->`; it is then only checked to be YAML.

mod plugin_common;

use std::path::Path;
use std::process::Command;

use edgeward_e2e::{TestCert, edgeward_bin};
use plugin_common::{cargo_wasm, repo, sdk_examples};

struct Block {
    line: usize,
    text: String,
    fragment: Option<String>,
}

/// The YAML blocks of `markdown`, with the fragment marker before each, if any.
fn yaml_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut marker: Option<String> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(b) = current.as_mut() {
            if line.trim_end() == "```" {
                blocks.push(current.take().unwrap());
            } else {
                b.text.push_str(line);
                b.text.push('\n');
            }
            continue;
        }
        if line.trim_end() == "```yaml" {
            current = Some(Block {
                line: i + 1,
                text: String::new(),
                fragment: marker.take(),
            });
        } else if let Some(why) = line
            .trim()
            .strip_prefix("<!-- fragment:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            marker = Some(why.trim().to_owned());
        } else if !line.trim().is_empty() {
            marker = None;
        }
    }
    assert!(current.is_none(), "README.md has an unclosed ```yaml block");
    blocks
}

/// The plugins the README's examples load from `plugins/`, built from the
/// sources the README says they come from.
fn build_plugins(dir: &Path) {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let target = repo().join("target").join("example-canary");
    cargo_wasm(&repo().join("examples").join("canary-plugin"), &target);
    std::fs::copy(
        target.join("wasm32-wasip2/release/canary_plugin.wasm"),
        plugins.join("canary_plugin.wasm"),
    )
    .unwrap();

    let built = sdk_examples(
        &["count_orders"],
        &repo().join("target").join("sdk-examples"),
    );
    std::fs::copy(
        built.join("count_orders.wasm"),
        plugins.join("count_orders.wasm"),
    )
    .unwrap();
}

#[test]
fn every_readme_yaml_example_passes_check() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = yaml_blocks(&readme);
    assert!(blocks.len() >= 5, "README.md lost its examples");

    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new(&["shop.example.com", "localhost"]);
    std::fs::write(dir.path().join("shop.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("shop.key"), &cert.key_pem).unwrap();
    std::fs::write(
        dir.path().join("admin.token"),
        "4f3c2b1a09e8d7c6b5a4f3e2d1c0b9a8\n",
    )
    .unwrap();
    build_plugins(dir.path());

    let mut failures = Vec::new();
    for b in &blocks {
        if let Some(why) = &b.fragment {
            assert!(!why.is_empty(), "README.md:{}: a fragment says why", b.line);
            eprintln!("README.md:{}: a fragment ({why}): only parsed", b.line);
            if let Err(e) = serde_saphyr::from_str::<serde_json::Value>(&b.text) {
                failures.push(format!("README.md:{}: not YAML: {e}", b.line));
            }
            continue;
        }
        let file = dir.path().join(format!("readme-{}.yaml", b.line));
        std::fs::write(&file, &b.text).unwrap();
        let out = Command::new(edgeward_bin())
            .args(["check", "--config"])
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .expect("run edgeward check");
        if !out.status.success() {
            failures.push(format!(
                "README.md:{}: `edgeward check` failed:\n{}{}\n--- the block\n{}",
                b.line,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                b.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fragment_markers_are_read() {
    let md = "text\n<!-- fragment: only the cache keys -->\n\n```yaml\na: 1\n```\n\n```yaml\nb: 2\n```\n";
    let blocks = yaml_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].fragment.as_deref(), Some("only the cache keys"));
    assert_eq!((blocks[0].line, blocks[0].text.as_str()), (4, "a: 1\n"));
    assert_eq!(blocks[1].fragment, None);
}

//! `edgeward schema`: the JSON Schema editors validate `edgeward.yaml` with,
//! checked by a real JSON Schema validator (Python's `jsonschema`, draft
//! 2020-12) against every config we ship, and against the invalid golden
//! files of `tests/config/invalid`; and `docs/configuration.md`, the
//! reference rendered from the same schema, kept in step with it.
//!
//! YAML is read into JSON by `serde-saphyr`, the loader's own YAML 1.2
//! reader, so the validator sees exactly the values `check` sees (PyYAML's
//! YAML 1.1 would read `on`/`off` as booleans).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use edgeward_e2e::edgeward_bin;
use serde_json::{Value, json};

/// Invalid golden files whose mistake a schema cannot express: it is about
/// what a value refers to, files on disk, or how several values combine.
/// Each is checked to be *accepted* by the schema, so this list stays true.
const NOT_STRUCTURAL: &[(&str, &str)] = &[
    (
        "admin-on-listener",
        "the admin address colliding with a listener's is a relation between two keys",
    ),
    (
        "admin-open",
        "whether `token` is required depends on the address being loopback",
    ),
    (
        "bad-listener-address",
        "the schema says an address is a string; that it parses as ip:port is validation's",
    ),
    (
        "bad-plugin-limits",
        "`fallback-tags` and `on-error: fallback-tagged` need each other, and a duration's range is not a pattern",
    ),
    (
        "duplicate-listener",
        "two listeners on one address is a relation between list entries",
    ),
    (
        "h3-without-tls",
        "h3 in `protocols` needs a `tls:` block beside it",
    ),
    (
        "missing-certificate",
        "the certificate files do not exist: a fact about the disk",
    ),
    (
        "path-and-prefix",
        "`path` and `path-prefix` exclude each other",
    ),
    ("quic-without-h3", "a `quic:` block needs h3 in `protocols`"),
    (
        "rewrite-without-prefix",
        "a prefix rewrite needs `match.path-prefix` on the same route",
    ),
    (
        "several-problems",
        "an undefined upstream name, a host name's and a method's syntax and a path's leading `/` are validation's",
    ),
    (
        "unknown-upstream",
        "an upstream that is not defined is a dangling reference, not a shape",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(edgeward_bin())
        .args(args)
        .output()
        .expect("run edgeward");
    assert!(
        out.status.success(),
        "edgeward {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// YAML text as the JSON value an editor's validator sees.
fn to_json(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

const VALIDATE: &str = r#"
import json, sys
try:
    import jsonschema
except ImportError:
    print("NO-JSONSCHEMA")
    sys.exit(0)
job = json.load(sys.stdin)
jsonschema.Draft202012Validator.check_schema(job["schema"])
v = jsonschema.Draft202012Validator(job["schema"])
out = {}
for name, doc in job["instances"].items():
    out[name] = sorted(
        "/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in v.iter_errors(doc)
    )
print(json.dumps(out))
"#;

/// Each instance's schema errors (empty when valid), from Python's
/// `jsonschema`. `None` when it is not installed outside CI (CI installs it
/// through kubernetes-validate; there its absence fails the test).
fn validate(
    schema: &Value,
    instances: &BTreeMap<String, Value>,
) -> Option<BTreeMap<String, Vec<String>>> {
    let mut child = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let job = json!({ "schema": schema, "instances": instances });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the validator failed");
    let text = String::from_utf8(out.stdout).unwrap();
    if text.trim() == "NO-JSONSCHEMA" {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 has no jsonschema module (pip install jsonschema)"
        );
        eprintln!("skipped: python3 has no jsonschema module");
        return None;
    }
    Some(serde_json::from_str(&text).expect("validator output"))
}

fn schema() -> Value {
    serde_json::from_str(&run(&["schema"])).expect("`edgeward schema` prints JSON")
}

#[test]
fn the_schema_rejects_unknown_keys_and_names_its_dialect() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(s["required"], json!(["listeners"]));
    let listener = &s["$defs"]["ListenerConfig"];
    assert_eq!(listener["additionalProperties"], false);
    // Keys are spelt as the YAML spells them, and carry their doc comment.
    let keep_alive = &listener["properties"]["keep-alive"];
    assert!(
        keep_alive["description"]
            .as_str()
            .is_some_and(|d| d.contains("HTTP/1.1")),
        "{keep_alive}"
    );
    assert_eq!(keep_alive["default"], true);
    assert_eq!(
        listener["properties"]["idle-timeout"]["$ref"],
        "#/$defs/Duration"
    );
    assert_eq!(listener["properties"]["idle-timeout"]["default"], "60s");
}

#[test]
fn shipped_configs_are_valid_and_structural_mistakes_are_not() {
    let schema = schema();
    let mut valid = BTreeMap::new();
    valid.insert(
        "demo".to_owned(),
        to_json(&run(&["demo", "--print-config"])).expect("demo config is YAML"),
    );
    let config = repo().join("tests").join("config");
    for file in yaml_files(&config.join("valid"))
        .into_iter()
        .chain(yaml_files(&repo().join("examples")))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        valid.insert(name, to_json(&text).expect("valid configs are YAML"));
    }
    assert!(valid.len() >= 6, "configs missing: {:?}", valid.keys());

    let mut invalid = BTreeMap::new();
    let mut not_yaml = Vec::new();
    for file in yaml_files(&config.join("invalid")) {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        match to_json(&std::fs::read_to_string(&file).unwrap()) {
            Ok(v) => {
                invalid.insert(stem, v);
            }
            // An editor reports these as YAML errors before any schema runs.
            Err(_) => not_yaml.push(stem),
        }
    }
    assert!(invalid.len() >= 10, "golden files missing");
    for (name, _) in NOT_STRUCTURAL {
        assert!(
            invalid.contains_key(*name),
            "NOT_STRUCTURAL names {name}, which is not an invalid golden (any more?)"
        );
    }

    let Some(results) = validate(&schema, &valid) else {
        return;
    };
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, errors)| !errors.is_empty())
        .map(|(name, errors)| format!("{name}:\n  {}", errors.join("\n  ")))
        .collect();
    assert!(
        wrong.is_empty(),
        "valid configs the schema rejects:\n{}",
        wrong.join("\n")
    );

    let results = validate(&schema, &invalid).unwrap();
    let mut problems = Vec::new();
    for (name, errors) in &results {
        let semantic = NOT_STRUCTURAL.iter().find(|(n, _)| n == name);
        match (semantic, errors.is_empty()) {
            (None, true) => problems.push(format!(
                "{name}: the schema accepts it; make the schema catch its mistake, or \
                 list it in NOT_STRUCTURAL with the reason a schema cannot"
            )),
            (Some((_, why)), false) => problems.push(format!(
                "{name}: listed as not schema-detectable ({why}), but the schema rejects it \
                 ({}); remove it from NOT_STRUCTURAL",
                errors.join("; ")
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What the schema catches, for the record in the test output.
    for (name, errors) in results.iter().filter(|(_, e)| !e.is_empty()) {
        eprintln!("{name}: {}", errors.join("; "));
    }
    eprintln!("not YAML (the editor's parser reports them): {not_yaml:?}");
}

#[test]
fn the_reference_is_generated_from_the_schema_and_committed() {
    let generated = run(&["schema", "--markdown"]);
    let file = repo().join("docs").join("configuration.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/configuration.md is stale: run `edgeward schema --markdown > docs/configuration.md` \
         (or UPDATE_GOLDEN=1 cargo test -p edgeward-e2e --test schema) and review the diff"
    );
    // Keys operators asked about, each with a row that says something.
    for (section, key) in [
        ("listeners[]", "keep-alive"),
        ("listeners[].tls.certificates[]", "self-signed"),
        ("upstreams.<name>", "max-idle-per-endpoint"),
        ("upstreams.<name>", "idle-timeout"),
        ("upstreams.<name>", "unhealthy-cool-down"),
        ("plugins.<name>", "instances"),
        ("node", "zone"),
        ("routes[].match", "path"),
    ] {
        let body = section_of(&generated, section)
            .unwrap_or_else(|| panic!("no section `{section}` in the reference"));
        let row = body
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("no row for {key} in `{section}`"));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(
            cells.len() >= 5 && cells[4].trim_end_matches(" |").len() > 20,
            "{key} is documented too thinly: {row}"
        );
    }
}

/// The text of the section titled `` `path` ``.
fn section_of<'a>(doc: &'a str, path: &str) -> Option<&'a str> {
    let title = format!("## `{path}`\n");
    let start = doc.find(&title)?;
    let rest = &doc[start + title.len()..];
    Some(&rest[..rest.find("\n## ").unwrap_or(rest.len())])
}

//! Names that become metric label values — the node's name and region, route,
//! upstream and plugin names — are kept to characters that need no escaping and
//! read well in a query: ASCII letters, digits, `.`, `_`, `-`, `:` and `/`, at
//! most [`MAX_LEN`] characters. (The metrics still escape whatever they get.)

use serde_saphyr::{Location, Spanned};

use super::super::model::ConfigFile;
use super::Checker;

/// Longest name accepted as a label value.
pub(super) const MAX_LEN: usize = 128;

const ALLOWED: &str = "use ASCII letters, digits, '.', '_', '-', ':' or '/'";

/// Why `name` cannot be a label value, if it cannot.
pub(super) fn problem(name: &str) -> Option<String> {
    let quoted = format!("{:?}", shorten(name));
    if name.is_empty() {
        return Some(format!(
            "must not be empty (it is a metric label); {ALLOWED}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:/".contains(*c)))
    {
        return Some(format!(
            "{quoted} cannot be a metric label: {bad:?} is not allowed; {ALLOWED}"
        ));
    }
    if name.len() > MAX_LEN {
        return Some(format!(
            "{quoted} is {} characters long; a metric label takes at most {MAX_LEN}: shorten it",
            name.len()
        ));
    }
    None
}

/// At most 40 characters of `name`, for messages.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_owned(),
    }
}

/// Checks every name that becomes a label value.
pub(super) fn check(c: &mut Checker, raw: &ConfigFile) {
    let mut one = |at: &Location, path: String, name: &str| {
        if let Some(message) = problem(name) {
            c.issue(at, path, message);
        }
    };
    let spanned = |s: &Spanned<String>| (s.referenced, s.value.clone());
    if let Some((at, name)) = raw.node.name.as_ref().map(spanned)
        && name.len() > MAX_LEN
    {
        // Its characters are checked with the Via header's rules.
        one(&at, "node.name".into(), &name);
    }
    if let Some((at, region)) = raw.node.region.as_ref().map(spanned) {
        one(&at, "node.region".into(), &region);
    }
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some((at, name)) = r.value.name.as_ref().map(spanned) {
            one(&at, format!("routes[{i}].name"), &name);
        }
    }
    for (name, u) in &raw.upstreams {
        one(
            &u.referenced,
            format!("upstreams.{}", name.escape_debug()),
            name,
        );
    }
    for (name, p) in &raw.plugins {
        one(
            &p.referenced,
            format!("plugins.{}", name.escape_debug()),
            name,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_names() {
        for ok in [
            "api",
            "edge-eu-1",
            "eu-west-1",
            "orders.v2",
            "svc:8080",
            "team/api",
            "a_b",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        assert_eq!(problem(&"a".repeat(MAX_LEN)), None);
    }

    #[test]
    fn refuses_what_a_label_should_not_carry() {
        let e = problem("my route").unwrap();
        assert!(
            e.starts_with(
                "\"my route\" cannot be a metric label: ' ' is not allowed; use ASCII letters"
            ),
            "{e}"
        );
        let e = problem("a\"b\nc").unwrap();
        assert!(
            e.starts_with(r#""a\"b\nc" cannot be a metric label: '"'"#),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(problem("café").unwrap().contains("'é' is not allowed"));
        assert!(problem("").unwrap().starts_with("must not be empty"));
        let e = problem(&"x".repeat(MAX_LEN + 1)).unwrap();
        assert!(
            e.contains("is 129 characters long; a metric label takes at most 128"),
            "{e}"
        );
        assert!(e.contains("x…\""), "shortened: {e}");
    }

    fn load(yaml: &str) -> String {
        crate::config::load_str(yaml, std::path::Path::new("t.yaml"))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn issues_are_located_at_the_name() {
        let e = load(
            "node: {region: \"eu west\"}\nlisteners: [{address: 127.0.0.1:0}]\nupstreams:\n  \"bad up\": {endpoints: [127.0.0.1:1]}\nroutes:\n  - name: ok\n    upstream: \"bad up\"\n  - upstream: \"bad up\"\n    name: \"a/b c\"\n",
        );
        assert!(
            e.contains("t.yaml:1:16: node.region: \"eu west\" cannot be a metric label"),
            "{e}"
        );
        assert!(
            e.contains("t.yaml:4:13: upstreams.bad up: \"bad up\" cannot be"),
            "{e}"
        );
        assert!(
            e.contains("t.yaml:9:11: routes[1].name: \"a/b c\" cannot be"),
            "{e}"
        );
        assert!(!e.contains("routes[0]"), "{e}");
        let ok = load(
            "node: {region: eu-west-1, name: edge-1}\nlisteners: [{address: 127.0.0.1:0}]\nupstreams:\n  orders: {endpoints: [127.0.0.1:1]}\nroutes:\n  - {name: orders/v1, upstream: orders}\n",
        );
        assert_eq!(ok, "");
    }
}

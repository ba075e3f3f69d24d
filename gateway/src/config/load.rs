//! Reading YAML into the model, with syntax and type errors located.

use serde_saphyr::Location;

use super::error::{ConfigError, ConfigIssue};
use super::model::ConfigFile;

/// Parses `text` (named `file` in errors) into the raw model.
pub fn parse(file: &str, text: &str) -> Result<ConfigFile, ConfigError> {
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        ConfigError::Invalid {
            file: file.to_owned(),
            issues: vec![ConfigIssue {
                line: line as u32,
                column: column as u32,
                path: clean_path(&path),
                message: clean_message(&e.without_snippet().to_string()),
            }],
        }
    })
}

/// `Spanned` wrappers add a `.value` segment the operator never wrote; `.` alone
/// means the document root.
/// serde reports `?` for positions it cannot name (inside a syntax error): the
/// path stops there.
fn clean_path(path: &str) -> String {
    let p = path.replace(".value", "");
    let p = p.split(".?").next().unwrap_or("");
    if p == "." || p == "?" {
        String::new()
    } else {
        p.to_owned()
    }
}

/// The location is printed in front already; the raw message repeats it at the end.
/// Untagged enums only say "did not match any variant", which helps nobody.
fn clean_message(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.contains("untagged enum EndpointConfig") {
        return "expected an endpoint as `host:port` or `{address: host:port, weight: N}`".into();
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("required key \"{field}\" is missing; add it");
    }
    if let Some(ty) = msg.strip_prefix("invalid ") {
        let expected = match ty {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, e.g. 256",
            "bool" => "true or false",
            _ => return msg.to_owned(),
        };
        return format!("expected {expected}");
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        let expected = expected.trim_start_matches("one of ");
        let names: Vec<&str> = expected
            .split(',')
            .map(|s| s.trim().trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        let hint = super::error::did_you_mean(field, names.iter().copied());
        return format!(
            "unknown key \"{field}\"{hint}; remove it or use one of: {}",
            names.join(", ")
        );
    }
    msg.to_owned()
}

/// A location as (line, column), for issues raised after parsing.
/// Problems with no node of their own (a missing top-level key) point at 1:1.
pub fn at(loc: &Location) -> (u32, u32) {
    ((loc.line() as u32).max(1), (loc.column() as u32).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(text: &str) -> ConfigIssue {
        match parse("t.yaml", text) {
            Err(ConfigError::Invalid { mut issues, .. }) => issues.remove(0),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_is_located_with_path_and_hint() {
        let i = issue("listeners:\n  - address: 127.0.0.1:1\n    adress: x\n");
        assert_eq!((i.line, i.column), (3, 5));
        assert_eq!(i.path, "listeners[0].adress");
        assert!(
            i.message.contains("did you mean \"address\""),
            "{}",
            i.message
        );
    }

    #[test]
    fn syntax_error_is_located() {
        let i = issue("listeners: [\n");
        assert_eq!(i.line, 1);
        assert!(i.message.contains("unclosed"), "{}", i.message);
    }
}

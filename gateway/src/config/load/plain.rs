//! What the parser and serde report, said in the operator's words: YAML terms
//! a person writes (mapping, list, key), never the parser's states or our
//! Rust type names.

use serde_saphyr::granit_parser::{ErrorKind, ScanError};

use super::super::error::did_you_mean;

/// A syntax error in plain words.
pub(super) fn syntax(e: &ScanError) -> String {
    let said = match e.kind() {
        ErrorKind::UnexpectedEofFlowSequence => {
            "the file ends inside a `[` list: close it with `]`".to_owned()
        }
        ErrorKind::UnexpectedEofFlowMapping | ErrorKind::UnexpectedEofImplicitFlowMapping => {
            "the file ends inside a `{` mapping: close it with `}`".to_owned()
        }
        ErrorKind::UnexpectedEof
        | ErrorKind::UnexpectedEofBlockSequence
        | ErrorKind::UnexpectedEofBlockMapping => "the file ends in the middle of a value".into(),
        ErrorKind::ExpectedBlockMappingKey => {
            "expected a `key: value` line here; check this line's indentation against the keys above it".into()
        }
        ErrorKind::ExpectedBlockSequenceEntry => {
            "expected a `- item` line here; check this line's indentation against the list above it".into()
        }
        ErrorKind::ExpectedFlowMappingSeparator => {
            "expected `,` or `}` in this `{…}` mapping".into()
        }
        ErrorKind::ExpectedFlowSequenceSeparator => "expected `,` or `]` in this `[…]` list".into(),
        ErrorKind::ExpectedNodeContent => "a value is missing here".into(),
        ErrorKind::InvalidIndentation => {
            "this line's indentation does not fit the lines above it".into()
        }
        ErrorKind::SimpleKeyExpected | ErrorKind::InvalidSimpleKey => {
            "a key must fit on one line and be followed by `:`".into()
        }
        ErrorKind::TabNotAllowed | ErrorKind::TabInBlockIndentation => {
            "indent with spaces: YAML does not allow tabs here".into()
        }
        ErrorKind::UnknownAnchor => "this alias (`*name`) names no anchor (`&name`) above it".into(),
        ErrorKind::BlockEntryInFlowCollection => {
            "a `- item` line inside `[…]` or `{…}`: use either `- item` lines or `[a, b]`, not both".into()
        }
        ErrorKind::BlockSequenceEntryNotAllowed => {
            "a `- item` list cannot start here: put it on the lines under a `key:`".into()
        }
        ErrorKind::UnclosedFlowCollection { open } => {
            let close = if *open == '[' { ']' } else { '}' };
            format!("this `{open}` is never closed: add `{close}`")
        }
        ErrorKind::MismatchedFlowCollectionEnd { open, close } => {
            format!("`{open}` is closed by `{close}`: brackets must pair")
        }
        ErrorKind::UnclosedQuotedScalar => "this quoted value has no closing quote".into(),
        ErrorKind::MultipleDocumentsUnsupported => {
            "the file holds more than one YAML document (`---`); keep one".into()
        }
        // The remaining messages are the parser's own; they name what was
        // found without parser states.
        other => other.to_string(),
    };
    // Messages the parser builds itself (unclosed brackets, stray characters)
    // are already plain; the rest start with the state they were found in.
    match said.split_once(", ") {
        Some((state, rest)) if state.starts_with("while ") => rest.to_owned(),
        _ => said,
    }
}

/// A serde error in plain words.
pub(super) fn serde(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match e.without_snippet() {
        E::SerdeUnknownField {
            field, expected, ..
        } => unknown_key(field, expected),
        E::SerdeMissingField { field, .. } => {
            format!("required key \"{field}\" is missing; add it")
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(unexpected)
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "\"{variant}\" is not allowed here{}; use one of: {}",
            did_you_mean(variant, expected.iter().copied()),
            expected.join(", ")
        ),
        E::SerdeInvalidLength { len, expected, .. } => {
            format!("has {len} items, but expected {}", expected_words(expected))
        }
        E::InvalidScalar { ty, .. } => format!("expected {}", expected_words(ty)),
        E::InvalidBooleanStrict { .. } => "expected true or false".into(),
        E::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("the key \"{k}\" appears twice in this mapping; keep one"),
            None => "a key appears twice in this mapping; keep one".into(),
        },
        E::Message { msg, .. } if msg.contains("untagged enum EndpointConfig") => {
            "expected an endpoint as `host:port` or `{address: host:port, weight: N}`".into()
        }
        E::Message { msg, .. } if msg.contains("did not match any variant") => {
            "this value has none of the shapes this key accepts".into()
        }
        other => {
            let msg = other.to_string();
            match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_owned(),
                None => msg,
            }
        }
    }
}

fn unknown_key(field: &str, expected: &[&str]) -> String {
    let hint = did_you_mean(field, expected.iter().copied());
    if expected.is_empty() {
        return format!("unknown key \"{field}\"; this mapping takes no keys, remove it");
    }
    format!(
        "unknown key \"{field}\"{hint}; remove it or use one of: {}",
        expected.join(", ")
    )
}

/// serde's "expected …" in YAML terms; the derive names our structs and
/// enums, which mean nothing to an operator.
fn expected_words(expected: &str) -> String {
    let e = expected.trim_start_matches("a ").trim_start_matches("an ");
    let words = match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "unsigned integer" => {
            "a whole number, e.g. 256"
        }
        "i8" | "i16" | "i32" | "i64" | "isize" | "integer" => "a whole number",
        "f32" | "f64" | "floating point" => "a number",
        "bool" | "boolean" => "true or false",
        "string" | "str" | "borrowed string" | "char" => "a text value",
        "sequence" | "seq" => "a list (`- item` lines, or `[a, b]`)",
        "map" | "mapping" => "a mapping (`key: value` lines, or `{key: value}`)",
        _ if e.starts_with("struct ") => "a mapping (`key: value` lines, or `{key: value}`)",
        _ if e.starts_with("tuple") => "a list (`- item` lines, or `[a, b]`)",
        _ if e.starts_with("enum ") || e.starts_with("variant ") => {
            "one of the names this key allows"
        }
        _ if e.starts_with("unit") => "no value",
        _ => return scrub(expected),
    };
    words.to_owned()
}

/// serde's description of what was found, e.g. `string "x"`, `map`, `unit value`.
fn found_words(found: &str) -> String {
    match found {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" | "null" => "no value".into(),
        _ => {
            for (from, to) in [
                ("string ", "text "),
                ("integer ", "the number "),
                ("floating point ", "the number "),
                ("boolean ", ""),
            ] {
                if let Some(rest) = found.strip_prefix(from) {
                    return format!("{to}{rest}").replace('`', "");
                }
            }
            scrub(found)
        }
    }
}

/// Drops Rust type paths (`struct ListenerConfig`, `enum Protocol`) from
/// whatever text is left.
fn scrub(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| !w.ends_with("Config") && !w.ends_with("Yaml"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_never_reach_the_operator() {
        assert_eq!(
            expected_words("struct ListenerConfig"),
            "a mapping (`key: value` lines, or `{key: value}`)"
        );
        assert_eq!(expected_words("u32"), "a whole number, e.g. 256");
        assert_eq!(found_words("string \"many\""), "text \"many\"");
        assert_eq!(found_words("map"), "a mapping");
        assert_eq!(scrub("a struct RouteConfig"), "a struct");
    }

    #[test]
    fn parser_states_are_dropped() {
        let e = serde_saphyr::granit_parser::Parser::new_from_str("a: [1, 2\n")
            .find_map(Result::err)
            .expect("a syntax error");
        let said = syntax(&e);
        assert!(!said.contains("while parsing"), "{said}");
    }
}

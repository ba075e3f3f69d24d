//! The JSON Schema of `edgeward.yaml` (`edgeward schema`), generated from the
//! model's types and their doc comments, so an editor completes keys, shows
//! each key's documentation and default on hover, and flags mistakes while
//! the file is typed.
//!
//! Fields whose YAML form is not their Rust type (a [`serde_saphyr::Spanned`]
//! wrapper, a duration or size kept as text until validation) name their
//! schema with `#[schemars(with = …)]`, using the types below. After
//! generation, each key's `Default: …` and `e.g. …` sentences become the
//! schema's `default` and `examples` where they are literal values of the
//! key's type, so they are written once, in the doc comment.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

use super::model::ConfigFile;
use super::plugins::PluginSettings;
use super::units::{parse_duration, parse_size};

/// Units `parse_duration` (humantime) accepts, longest spelling first.
const DURATION_UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|\
    minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|\
    years|year|yrs|yr|y";

/// Units `parse_size` accepts.
const SIZE_UNITS: &str = "B|KiB|KB|K|k|MiB|MB|M|GiB|GB|G";

/// A duration written with its unit, as `config::parse_duration` reads it.
pub struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let span = format!("[0-9]+(\\.[0-9]+)?\\s*({DURATION_UNITS})");
        json_schema!({
            "description": "A duration with its unit: `500ms`, `30s`, `2m`, `1h 30m`, `1.5s` (ns, us, ms, s, m, h, d, w; a bare number is refused).",
            "type": "string",
            "pattern": format!("^\\s*{span}(\\s*{span})*\\s*$"),
        })
    }
}

/// A byte count, a whole number with an optional unit, as `config::parse_size` reads it.
pub struct Size;

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: a whole number with an optional unit, `65536`, `64KiB`, `16MiB`, `1GiB` (KiB, MiB and GiB are powers of 1024, as are K, KB, M, MB, G, GB).",
            "type": ["string", "integer"],
            "minimum": 0,
            "pattern": format!("^\\s*[0-9]+\\s*({SIZE_UNITS})?\\s*$"),
        })
    }
}

/// A name that becomes a metric label value (see `validate/names.rs`).
pub struct Label;

/// Characters and length `validate/names.rs` accepts in a label value.
const LABEL_PATTERN: &str = "^[A-Za-z0-9._:/-]{1,128}$";

impl JsonSchema for Label {
    fn schema_name() -> Cow<'static, str> {
        "Label".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A name that is also a metric label value: 1 to 128 ASCII letters, digits, `.`, `_`, `-`, `:` or `/`.",
            "type": "string",
            "pattern": LABEL_PATTERN,
        })
    }
}

/// A header value; YAML numbers and booleans are read as their text.
pub struct HeaderValue;

impl JsonSchema for HeaderValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "HeaderValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

impl JsonSchema for PluginSettings {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PluginSettings".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean"] },
        })
    }
}

/// A map from label-valued names (upstreams, plugins) to `T`.
pub fn named<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "propertyNames": { "pattern": LABEL_PATTERN },
        "additionalProperties": g.subschema_for::<T>(),
    })
}

/// The schema of `edgeward.yaml`, draft 2020-12.
pub fn json_schema() -> Value {
    let root = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<ConfigFile>();
    let mut value = root.to_value();
    drop_null(&mut value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("title".into(), "edgeward.yaml".into());
        let defs = obj.get("$defs").cloned().unwrap_or_default();
        literals(&mut value, &defs);
    }
    value
}

/// Removes the `null` every `Option` adds: `key:` with no value reads as
/// absent, but an editor should not offer `null` as a value for every key.
fn drop_null(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(drop_null);
        }
        return;
    };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(alts)) = obj.get_mut("anyOf") {
        alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
        if alts.len() == 1 {
            let only = alts.remove(0);
            obj.remove("anyOf");
            if let Value::Object(inner) = only {
                for (k, v) in inner {
                    obj.entry(k).or_insert(v);
                }
            }
        }
    }
    obj.values_mut().for_each(drop_null);
}

/// Fills `default` and `examples` of every property from its description.
fn literals(schema: &mut Value, defs: &Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for prop in props.values_mut() {
            annotate(prop, defs);
        }
    }
    for (_, v) in obj.iter_mut() {
        match v {
            Value::Object(_) => literals(v, defs),
            Value::Array(items) => items.iter_mut().for_each(|i| literals(i, defs)),
            _ => {}
        }
    }
}

fn annotate(prop: &mut Value, defs: &Value) {
    let Some(text) = prop.get("description").and_then(Value::as_str) else {
        return;
    };
    let default = values_after(text, "Default:")
        .into_iter()
        .next()
        .and_then(|d| literal(prop, defs, &d));
    let examples: Vec<Value> = values_after(text, "e.g.")
        .into_iter()
        .filter_map(|e| literal(prop, defs, &e))
        .collect();
    let Some(obj) = prop.as_object_mut() else {
        return;
    };
    if let Some(d) = default
        && !obj.contains_key("default")
    {
        obj.insert("default".into(), d);
    }
    if !examples.is_empty() && !obj.contains_key("examples") {
        obj.insert("examples".into(), Value::Array(examples));
    }
}

/// A value named right after a `marker`: a backquoted text, or one word.
struct Written {
    text: String,
    quoted: bool,
}

fn values_after(text: &str, marker: &str) -> Vec<Written> {
    text.match_indices(marker)
        .filter_map(|(i, _)| first_value(&text[i + marker.len()..]))
        .collect()
}

fn first_value(rest: &str) -> Option<Written> {
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('`') {
        return quoted.split_once('`').map(|(v, _)| Written {
            text: v.to_owned(),
            quoted: true,
        });
    }
    let word = rest
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ')')
        .next()?
        .trim_end_matches('.');
    (!word.is_empty()).then(|| Written {
        text: word.to_owned(),
        quoted: false,
    })
}

/// The written value as JSON, when it is a value `prop` allows. A bare word
/// is prose ("none", "unlimited") for a free-form string: only a backquoted
/// one counts there.
fn literal(prop: &Value, defs: &Value, w: &Written) -> Option<Value> {
    let value: Value = serde_saphyr::from_str(&w.text).ok()?;
    if !w.quoted && value.is_string() && free_text(prop, defs) {
        return None;
    }
    fits(&value, prop, defs).then_some(value)
}

/// A string schema with no enum and no format of its own.
fn free_text(schema: &Value, defs: &Value) -> bool {
    let s = resolve(schema, defs);
    s.get("type").and_then(Value::as_str) == Some("string")
        && s.get("enum").is_none()
        && s.get("pattern").is_none()
}

/// Whether `v` is valid against `schema`, for the keywords this schema uses.
fn fits(v: &Value, schema: &Value, defs: &Value) -> bool {
    match schema.get("$ref").and_then(Value::as_str) {
        Some("#/$defs/Duration") => {
            return v.as_str().is_some_and(|t| parse_duration(t).is_ok());
        }
        Some("#/$defs/Size") => {
            return v.is_u64() || v.as_str().is_some_and(|t| parse_size(t).is_ok());
        }
        Some("#/$defs/Label") => {
            return v.as_str().is_some_and(|t| {
                (1..=128).contains(&t.len())
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
            });
        }
        Some(_) => return fits(v, resolve(schema, defs), defs),
        None => {}
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        return options.contains(v);
    }
    if let Some(c) = schema.get("const") {
        return c == v;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            return alts.iter().any(|a| fits(v, a, defs));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    types.iter().any(|t| match (*t, v) {
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_u64() || n.is_i64(),
        ("number", Value::Number(_)) => true,
        ("array", Value::Array(items)) => schema
            .get("items")
            .is_none_or(|i| items.iter().all(|x| fits(x, i, defs))),
        ("object", Value::Object(map)) => {
            map.iter().all(
                |(k, x)| match schema.get("properties").and_then(|p| p.get(k)) {
                    Some(p) => fits(x, p, defs),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(allowed)) => *allowed,
                        Some(extra) => fits(x, extra, defs),
                        None => true,
                    },
                },
            )
        }
        _ => false,
    })
}

/// Follows one `$ref` into `$defs`.
fn resolve<'a>(prop: &'a Value, defs: &'a Value) -> &'a Value {
    match prop.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|n| defs.get(n))
            .unwrap_or(prop),
        None => prop,
    }
}

/// The `$defs` of `schema`, empty when it has none.
pub fn defs(schema: &Value) -> Map<String, Value> {
    schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of every block: (path, its schema).
    fn keys(schema: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let mut blocks: Vec<(String, &Value)> = vec![("".into(), schema)];
        if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
            blocks.extend(defs.iter().map(|(n, d)| (n.clone(), d)));
        }
        for (block, s) in blocks {
            let alts = s.get("anyOf").and_then(Value::as_array).cloned();
            let mut shapes = vec![s.clone()];
            shapes.extend(alts.unwrap_or_default());
            for shape in shapes {
                if let Some(props) = shape.get("properties").and_then(Value::as_object) {
                    for (k, p) in props {
                        out.push((format!("{block}.{k}"), p.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_key_is_documented_with_an_example_or_a_default() {
        let schema = json_schema();
        let defs = schema["$defs"].clone();
        let mut missing = Vec::new();
        for (path, p) in keys(&schema) {
            if p.get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                missing.push(format!("{path}: no doc comment"));
            }
            // A block's keys are documented in its own section; so are those
            // of a list or a map of blocks (`listeners`, `upstreams`, …).
            let is_block = |v: &Value| {
                let r = resolve(v, &defs);
                r.get("properties").is_some()
                    || r.get("anyOf").is_some()
                    || r.get("oneOf").is_some()
            };
            let r = resolve(&p, &defs);
            let block = r.get("properties").is_some()
                || r.get("items").is_some_and(&is_block)
                || r.get("additionalProperties")
                    .is_some_and(|a| a.is_object() && is_block(a));
            if !block && p.get("examples").is_none() && p.get("default").is_none() {
                missing.push(format!(
                    "{path}: neither `e.g. …` nor a literal `Default: …` in its doc comment"
                ));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn defaults_and_examples_are_read_from_the_doc_comments() {
        let schema = json_schema();
        let listener = &schema["$defs"]["ListenerConfig"]["properties"];
        assert_eq!(listener["idle-timeout"]["default"], "60s");
        assert_eq!(listener["max-header-size"]["default"], "64KiB");
        assert_eq!(listener["keep-alive"]["default"], true);
        assert_eq!(listener["max-connections"]["default"], 20000);
        assert_eq!(
            listener["protocols"]["default"],
            serde_json::json!(["h1", "h2"])
        );
        assert_eq!(
            listener["address"]["examples"],
            serde_json::json!(["0.0.0.0:443"])
        );
        // Prose is not a value: "Default: none" on a free-form string.
        let admin = &schema["$defs"]["AdminConfig"]["properties"];
        assert!(admin["token-file"].get("default").is_none(), "{admin}");
        let node = &schema["$defs"]["NodeConfig"]["properties"];
        assert_eq!(node["region"]["default"], "local");
        let route = &schema["$defs"]["RouteConfig"]["properties"];
        assert!(
            route["name"].get("default").is_none(),
            "route-<index> is not a name"
        );
    }

    #[test]
    fn unit_patterns_agree_with_the_parsers() {
        let schema = json_schema();
        let pattern = |name: &str| {
            schema["$defs"][name]["pattern"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (duration, size) = (pattern("Duration"), pattern("Size"));
        // The patterns name every unit the parsers take, longest first where
        // one spelling is a prefix of another.
        for unit in ["ms", "s", "m", "h", "d", "µs", "min", "hours"] {
            assert!(
                duration.contains(&format!("|{unit}|")) || duration.contains(&format!("({unit}|")),
                "{unit}"
            );
            assert!(parse_duration(&format!("3{unit}")).is_ok(), "{unit}");
        }
        for unit in ["KiB", "MiB", "GiB", "K", "B"] {
            assert!(size.contains(unit), "{unit}");
            assert!(parse_size(&format!("3{unit}")).is_ok(), "{unit}");
        }
    }
}

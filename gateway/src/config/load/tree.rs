//! The YAML document as a tree of located nodes, built from the parser's
//! events. Loading uses it to name the field an error is in (with the indexes
//! the operator wrote), to find duplicate keys, and to cut a broken entry out
//! of the text so the rest of the file can still be checked.

use serde_saphyr::granit_parser::{Event, Parser, ScanError, StructureStyle};

/// One node, with the characters (not bytes) it covers in the text.
#[derive(Debug)]
pub(super) struct Node {
    pub start: usize,
    pub end: usize,
    /// 1-based, as printed.
    pub line: usize,
    pub column: usize,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) enum Kind {
    /// A scalar's value; an alias counts as one too (it is never a key we check).
    Scalar(String),
    Seq {
        items: Vec<Node>,
        flow: bool,
    },
    Map {
        entries: Vec<(Node, Node)>,
        flow: bool,
    },
}

/// A syntax error, with the path of the field it is in.
#[derive(Debug)]
pub(super) struct Syntax {
    pub error: ScanError,
    pub path: String,
}

/// The document's root node, `None` when the text holds no document (empty,
/// or only comments).
pub(super) fn parse(text: &str) -> Result<Option<Node>, Syntax> {
    let mut parser = Parser::new_from_str(text);
    // Open collections: the node being built and, for a mapping, a key
    // waiting for its value.
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    let mut root = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|error| Syntax {
            error,
            path: open_path(&stack),
        })?;
        let at = |m: serde_saphyr::granit_parser::Marker| (m.index(), m.line(), m.col() + 1);
        let (start, line, column) = at(span.start);
        let node = match event {
            Event::Scalar(value, ..) => Some(Node {
                start,
                end: span.end.index(),
                line,
                column,
                kind: Kind::Scalar(value.into_owned()),
            }),
            Event::Alias(_) => Some(Node {
                start,
                end: span.end.index(),
                line,
                column,
                kind: Kind::Scalar(String::new()),
            }),
            Event::SequenceStart(style, ..) | Event::MappingStart(style, ..) => {
                let flow = style == StructureStyle::Flow;
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    Kind::Seq {
                        items: Vec::new(),
                        flow,
                    }
                } else {
                    Kind::Map {
                        entries: Vec::new(),
                        flow,
                    }
                };
                stack.push((
                    Node {
                        start,
                        end: start,
                        line,
                        column,
                        kind,
                    },
                    None,
                ));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop().map(|(mut node, _)| {
                let last = match &node.kind {
                    Kind::Seq { items, .. } => items.last().map(|n| n.end),
                    Kind::Map { entries, .. } => entries.last().map(|(_, v)| v.end),
                    Kind::Scalar(_) => None,
                };
                // A flow collection ends at its bracket; a block one at its
                // last child (its end event sits at the next token, which may
                // be lines further down, past comments).
                node.end = match &node.kind {
                    Kind::Seq { flow: true, .. } | Kind::Map { flow: true, .. } => {
                        span.end.index().max(last.unwrap_or(start))
                    }
                    _ => last.unwrap_or(node.start),
                };
                node
            }),
            _ => None,
        };
        let Some(node) = node else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some((parent, pending)) => match &mut parent.kind {
                Kind::Seq { items, .. } => items.push(node),
                Kind::Map { entries, .. } => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                Kind::Scalar(_) => {}
            },
        }
    }
    Ok(root)
}

/// Where the parser stopped: the keys and indexes of the collections open there.
fn open_path(stack: &[(Node, Option<Node>)]) -> String {
    let mut path = String::new();
    for (node, pending) in stack {
        match &node.kind {
            Kind::Map { .. } => {
                if let Some(key) = pending.as_ref().and_then(Node::scalar) {
                    path = join(&path, key);
                }
            }
            Kind::Seq { items, .. } => path = format!("{path}[{}]", items.len()),
            Kind::Scalar(_) => {}
        }
    }
    path
}

impl Node {
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    fn contains(&self, at: usize) -> bool {
        self.start <= at && at < self.end.max(self.start + 1)
    }
}

/// What an error points into: the field path the operator wrote, and the
/// characters to blank so the rest of the file can be read without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub path: String,
    /// Characters to blank: the whole entry or list item, separators included.
    pub cut: std::ops::Range<usize>,
    /// The entry sits in a list, or in a map of names (`upstreams:`,
    /// `plugins:`): cutting it shifts indexes or removes something that
    /// other sections refer to.
    pub whole_item: bool,
    /// The key of the entry (empty for a list item).
    pub key: String,
    /// Start of the mapping or list that holds the entry.
    pub parent_start: usize,
}

/// Maps whose keys are names other sections refer to.
const NAMED_MAPS: [&str; 3] = ["upstreams", "plugins", "scaling.services"];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Every entry and list item holding character `at`, outermost first, each
/// with its value and whether `at` is in its key.
fn chain<'a>(root: &'a Node, chars: &[char], at: usize) -> Vec<(Target, &'a Node, bool)> {
    let mut out = Vec::new();
    let mut node = root;
    let mut path = String::new();
    loop {
        let next = match &node.kind {
            Kind::Scalar(_) => None,
            Kind::Map { entries, flow } => entries.iter().find_map(|(k, v)| {
                let in_key = k.contains(at);
                if !in_key && !v.contains(at) {
                    return None;
                }
                let key = k.scalar().unwrap_or_default().to_owned();
                let t = Target {
                    cut: entry_range(chars, k.start, v.end.max(k.end), *flow),
                    whole_item: NAMED_MAPS.contains(&path.as_str()),
                    path: join(&path, &key),
                    key,
                    parent_start: node.start,
                };
                Some((t, v, in_key))
            }),
            Kind::Seq { items, flow } => items.iter().enumerate().find_map(|(i, v)| {
                v.contains(at).then(|| {
                    let t = Target {
                        cut: item_range(chars, v.start, v.end, *flow),
                        whole_item: true,
                        key: String::new(),
                        path: format!("{path}[{i}]"),
                        parent_start: node.start,
                    };
                    (t, v, false)
                })
            }),
        };
        let Some((t, child, in_key)) = next else {
            return out;
        };
        path = t.path.clone();
        node = child;
        out.push((t, child, in_key));
        if in_key {
            return out;
        }
    }
}

/// The innermost entry or list item whose key or value holds character `at`.
/// With `key_only`, it must be the key that holds it (an unknown key).
pub(super) fn target(root: &Node, chars: &[char], at: usize, key_only: bool) -> Option<Target> {
    let (t, _, in_key) = chain(root, chars, at).pop()?;
    (in_key || !key_only).then_some(t)
}

/// The mapping that starts at character `at` (a missing key is reported at
/// its mapping): its path, and the entry holding it (`None` for the root).
pub(super) fn map_at(root: &Node, chars: &[char], at: usize) -> Option<(String, Option<Target>)> {
    let inner = chain(root, chars, at)
        .into_iter()
        .rev()
        .find(|(_, v, _)| matches!(v.kind, Kind::Map { .. }) && (v.start == at || v.contains(at)));
    match inner {
        Some((t, _, _)) => Some((t.path.clone(), Some(t))),
        None => Some((String::new(), None)),
    }
}

/// A mapping entry from its key to its value's end, with the `:` and, in a
/// flow mapping, the `,` that follows.
fn entry_range(chars: &[char], start: usize, end: usize, flow: bool) -> std::ops::Range<usize> {
    let mut end = end.min(chars.len());
    // An empty value ends where its key does: take the colon too.
    let mut i = end;
    while i < chars.len() && chars[i] == ' ' {
        i += 1;
    }
    if i < chars.len() && chars[i] == ':' {
        end = i + 1;
    }
    if flow {
        end = past_comma(chars, end);
    }
    start..end
}

/// A list item, with its `-` in a block list or the following `,` in a flow one.
fn item_range(chars: &[char], start: usize, end: usize, flow: bool) -> std::ops::Range<usize> {
    let end = end.min(chars.len());
    if flow {
        return start..past_comma(chars, end);
    }
    let mut s = start;
    while s > 0 && chars[s - 1] == ' ' {
        s -= 1;
    }
    if s > 0 && chars[s - 1] == '-' {
        s -= 1;
    } else {
        s = start;
    }
    s..end
}

fn past_comma(chars: &[char], end: usize) -> usize {
    let mut i = end;
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if i < chars.len() && chars[i] == ',' {
        i + 1
    } else {
        end
    }
}

/// Every key that appears a second time in the same mapping: (first, again, path).
pub(super) fn duplicates<'a>(
    node: &'a Node,
    path: &str,
    out: &mut Vec<(&'a Node, &'a Node, String)>,
) {
    match &node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq { items, .. } => {
            for (i, v) in items.iter().enumerate() {
                duplicates(v, &format!("{path}[{i}]"), out);
            }
        }
        Kind::Map { entries, .. } => {
            for (i, (k, v)) in entries.iter().enumerate() {
                let name = k.scalar().unwrap_or_default();
                if let Some((first, _)) = entries[..i]
                    .iter()
                    .find(|(f, _)| k.scalar().is_some() && f.scalar() == Some(name))
                {
                    out.push((first, k, join(path, name)));
                }
                duplicates(v, &join(path, name), out);
            }
        }
    }
}

/// The entry of key node `key` as a [`Target`], for cutting a duplicate.
pub(super) fn entry_of(root: &Node, chars: &[char], key: &Node) -> Option<Target> {
    target(root, chars, key.start, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn paths_use_the_written_indexes_and_keys() {
        let text = "routes:\n  - name: a\n  - name: b\n    match: {host: x, path: /}\n";
        let root = parse(text).unwrap().unwrap();
        let c = chars(text);
        let at = text.find("path").unwrap();
        let t = target(&root, &c, at, true).unwrap();
        assert_eq!(t.path, "routes[1].match.path");
        assert_eq!(c[t.cut.clone()].iter().collect::<String>(), "path: /");
        let at = text.find("host").unwrap();
        let t = target(&root, &c, at, true).unwrap();
        assert_eq!(c[t.cut].iter().collect::<String>(), "host: x,");
    }

    #[test]
    fn a_block_item_is_cut_with_its_dash() {
        let text = "routes:\n  - name: a\n    upstream: u\n  - name: b\n";
        let root = parse(text).unwrap().unwrap();
        let c = chars(text);
        let t = target(&root, &c, text.find("upstream").unwrap(), false).unwrap();
        assert_eq!(t.path, "routes[0].upstream");
        let item = map_at(&root, &c, text.find("name: a").unwrap()).unwrap();
        assert_eq!(item.0, "routes[0]");
        let holder = item.1.unwrap();
        assert_eq!(
            c[holder.cut].iter().collect::<String>(),
            "- name: a\n    upstream: u"
        );
        assert!(holder.whole_item);
    }

    #[test]
    fn finds_duplicate_keys() {
        let text = "a: 1\nb: {c: 1, c: 2}\na: 3\n";
        let root = parse(text).unwrap().unwrap();
        let mut out = Vec::new();
        duplicates(&root, "", &mut out);
        let found: Vec<_> = out
            .iter()
            .map(|(f, d, p)| (f.line, d.line, p.as_str()))
            .collect();
        assert_eq!(found, [(2, 2, "b.c"), (1, 3, "a")]);
    }

    #[test]
    fn empty_text_has_no_root() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}

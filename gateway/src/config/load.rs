//! Reading YAML into the model, with every structural problem located.
//!
//! serde stops at the first error, so loading reads the text again after
//! each one with the broken entry blanked out (lines and columns stay put):
//! an unknown key is dropped, a value of the wrong shape is dropped with its
//! key, an entry missing a required key is dropped whole. Errors that only
//! follow from an earlier cut are not reported. A key whose indentation puts
//! it in the wrong mapping is reported as such, and read where it belongs.

use std::ops::Range;

use serde_saphyr::Location;

use super::error::{ConfigIssue, did_you_mean};
use super::model::ConfigFile;

mod indent;
mod plain;
mod tree;

/// Re-reads after this many problems stop: a file this broken needs a look
/// at the first ones anyway.
const MAX_PASSES: usize = 64;
/// Indentation repairs tried in one load.
const MAX_INDENT_FIXES: usize = 8;

/// What reading the structure found.
pub struct Parsed {
    /// The model, read from what was left once the broken parts were cut.
    pub raw: Option<ConfigFile>,
    pub issues: Vec<ConfigIssue>,
    /// Only single keys were cut: every list index and name in `raw` is the
    /// one the operator wrote, so the checks past the structure can run on
    /// it without reporting consequences of the cuts.
    pub whole: bool,
}

/// Reads `text` into the raw model, collecting every structural problem.
pub fn parse(text: &str) -> Parsed {
    collect(text, true)
}

/// One blanked-out entry, to recognise the errors it causes.
struct Cut {
    range: Range<usize>,
    key: String,
    /// The key was unknown (possibly a misspelling of a required one).
    unknown: bool,
}

struct Reader {
    chars: Vec<char>,
    issues: Vec<ConfigIssue>,
    cuts: Vec<Cut>,
    whole: bool,
}

impl Reader {
    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn push(&mut self, line: usize, column: usize, path: String, message: String) {
        self.issues.push(ConfigIssue {
            line: line.max(1) as u32,
            column: column.max(1) as u32,
            path,
            message,
        });
    }

    fn cut(&mut self, range: Range<usize>, key: String, unknown: bool) -> bool {
        let range = range.start.min(self.chars.len())..range.end.min(self.chars.len());
        let mut changed = false;
        for c in &mut self.chars[range.clone()] {
            if !c.is_whitespace() {
                *c = ' ';
                changed = true;
            }
        }
        self.cuts.push(Cut {
            range,
            key,
            unknown,
        });
        changed
    }

    /// Whether an earlier cut overlaps or touches `range`: a node left empty
    /// by blanking its only entry (`- adress: …` becomes `- `) is the cut's
    /// doing, not a second mistake.
    fn after_cut(&self, range: &Range<usize>) -> bool {
        self.cuts
            .iter()
            .any(|c| c.range.start <= range.end && c.range.end >= range.start)
    }

    /// Character index of a 1-based line and column.
    fn index(&self, loc: &Location) -> Option<usize> {
        let (line, column) = (loc.line() as usize, loc.column() as usize);
        if line == 0 {
            return None;
        }
        let mut at = 0;
        for _ in 1..line {
            at += self.chars[at..].iter().position(|c| *c == '\n')? + 1;
        }
        Some((at + column.saturating_sub(1)).min(self.chars.len()))
    }
}

fn collect(text: &str, fix_indent: bool) -> Parsed {
    let mut r = Reader {
        chars: text.chars().collect(),
        issues: Vec::new(),
        cuts: Vec::new(),
        whole: true,
    };
    let mut fixes = 0;
    let mut raw = None;
    for _ in 0..MAX_PASSES {
        let text = r.text();
        let root = match tree::parse(&text) {
            Err(syntax) => {
                if fix_indent && fixes < MAX_INDENT_FIXES {
                    let line = syntax.error.marker().line();
                    if let Some(fix) = indent::after_syntax(&text, line) {
                        fixes += 1;
                        r.issues.push(fix.issue);
                        r.chars = fix.text.chars().collect();
                        r.whole = false;
                        continue;
                    }
                }
                let m = syntax.error.marker();
                r.push(
                    m.line(),
                    m.col() + 1,
                    syntax.path,
                    plain::syntax(&syntax.error),
                );
                break;
            }
            Ok(root) => root,
        };
        let root = match root {
            Some(root) if !is_empty(&root) => root,
            _ if r.cuts.is_empty() && r.issues.is_empty() => {
                r.push(
                    1,
                    1,
                    String::new(),
                    "the file is empty: a configuration needs at least `listeners:` and, to forward traffic, `upstreams:` and `routes:`".into(),
                );
                break;
            }
            _ => break,
        };
        if !matches!(root.kind, tree::Kind::Map { .. }) {
            r.push(
                root.line,
                root.column,
                String::new(),
                "the file must be a mapping of top-level keys (`listeners:`, `upstreams:`, `routes:` …), not a single value or a list".into(),
            );
            break;
        }
        if cut_duplicates(&mut r, &root) {
            continue;
        }
        let e = match serde_saphyr::from_str::<ConfigFile>(&text) {
            Ok(model) => {
                raw = Some(model);
                break;
            }
            Err(e) => e,
        };
        let loc = e.location().unwrap_or(Location::UNKNOWN);
        let Some(at) = r.index(&loc) else {
            r.push(1, 1, String::new(), plain::serde(&e));
            break;
        };
        let (line, column) = (loc.line() as usize, loc.column() as usize);
        match e.without_snippet() {
            serde_saphyr::Error::SerdeUnknownField {
                field, expected, ..
            } => {
                // A near miss of a key this mapping takes is a typo, not a
                // key in the wrong place.
                let typo = !did_you_mean(field, expected.iter().copied()).is_empty();
                if fix_indent
                    && !typo
                    && fixes < MAX_INDENT_FIXES
                    && let Some(fix) = indent::misplaced(&text, line)
                {
                    fixes += 1;
                    r.issues.push(fix.issue);
                    r.chars = fix.text.chars().collect();
                    r.whole = false;
                    continue;
                }
                let Some(t) = tree::target(&root, &r.chars, at, true) else {
                    r.push(line, column, String::new(), plain::serde(&e));
                    break;
                };
                r.push(line, column, t.path.clone(), plain::serde(&e));
                r.whole &= !t.whole_item;
                if !r.cut(t.cut, field.clone(), true) {
                    break;
                }
            }
            serde_saphyr::Error::SerdeMissingField { field, .. } => {
                let Some((path, holder)) = tree::map_at(&root, &r.chars, at) else {
                    r.push(line, column, String::new(), plain::serde(&e));
                    break;
                };
                let span = holder.as_ref().map_or(0..r.chars.len(), |t| t.cut.clone());
                let caused = r.cuts.iter().any(|c| {
                    c.range.start >= span.start
                        && c.range.start <= span.end
                        && (c.key == *field
                            || (c.unknown && !did_you_mean(&c.key, [*field]).is_empty()))
                });
                if !caused {
                    r.push(line, column, path, plain::serde(&e));
                }
                // A mapping without a required key cannot be read: drop it
                // whole; the root cannot be dropped.
                let Some(t) = holder else { break };
                r.whole = false;
                if !r.cut(t.cut, t.key, false) {
                    break;
                }
            }
            _ => {
                let Some(t) = tree::target(&root, &r.chars, at, false) else {
                    // No node there: what is left where a cut blanked a whole entry.
                    if !r.after_cut(&(at..at)) {
                        r.push(line, column, String::new(), plain::serde(&e));
                    }
                    break;
                };
                if !r.after_cut(&t.cut) {
                    r.push(line, column, t.path.clone(), plain::serde(&e));
                }
                r.whole &= !t.whole_item;
                if !r.cut(t.cut, t.key, false) {
                    break;
                }
            }
        }
    }
    r.issues.sort_by_key(|i| (i.line, i.column));
    Parsed {
        raw,
        whole: r.whole,
        issues: r.issues,
    }
}

/// No document, or one holding only `~`/`null`/nothing.
fn is_empty(root: &tree::Node) -> bool {
    matches!(root.scalar(), Some("" | "~" | "null" | "Null" | "NULL"))
}

/// Reports every key given twice in one mapping and cuts the repeats, so
/// serde never sees them. Returns whether anything was cut.
fn cut_duplicates(r: &mut Reader, root: &tree::Node) -> bool {
    let mut found = Vec::new();
    tree::duplicates(root, "", &mut found);
    let mut cut = false;
    for (first, again, path) in found {
        let key = again.scalar().unwrap_or_default().to_owned();
        r.push(
            again.line,
            again.column,
            path,
            format!(
                "\"{key}\" is given twice in the same mapping, at line {} and line {}; keep one",
                first.line, again.line
            ),
        );
        if let Some(t) = tree::entry_of(root, &r.chars, again) {
            cut |= r.cut(t.cut, key, false);
        }
    }
    cut
}

/// A location as (line, column), for issues raised after parsing.
/// Problems with no node of their own (a missing top-level key) point at 1:1.
pub fn at(loc: &Location) -> (u32, u32) {
    ((loc.line() as u32).max(1), (loc.column() as u32).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ConfigIssue> {
        parse(text).issues
    }

    #[test]
    fn unknown_key_is_located_with_path_and_hint() {
        let i = issues("listeners:\n  - address: 127.0.0.1:1\n    adress: x\n").remove(0);
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
        let i = issues("listeners: [\n").remove(0);
        assert!(i.line <= 2, "{i:?}");
        assert!(i.message.contains("`]`"), "{}", i.message);
        assert!(!i.message.contains("while "), "{}", i.message);
    }

    #[test]
    fn every_structural_error_is_reported() {
        let text = "listeners:\n  - address: 127.0.0.1:1\n    max-connections: lots\n    colour: red\nupstreams:\n  u:\n    endpoints: [127.0.0.1:2]\n    protocol: h4\nroutes:\n  - upstream: u\n    match: {path-prefix: /, verb: GET}\n";
        let found: Vec<_> = issues(text).into_iter().map(|i| (i.line, i.path)).collect();
        assert_eq!(
            found,
            [
                (3, "listeners[0].max-connections".to_owned()),
                (4, "listeners[0].colour".to_owned()),
                (8, "upstreams.u.protocol".to_owned()),
                (11, "routes[0].match.verb".to_owned()),
            ]
        );
    }

    #[test]
    fn a_misspelt_required_key_is_reported_once() {
        let found = issues("listeners:\n  - adress: 127.0.0.1:1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "listeners[0].adress");
    }

    #[test]
    fn an_empty_file_says_so() {
        for text in ["", "\n\n", "# nothing yet\n", "---\n"] {
            let found = issues(text);
            assert_eq!(found.len(), 1, "{text:?}: {found:?}");
            assert!(
                found[0].message.starts_with("the file is empty"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_name_the_key_and_both_lines() {
        let found = issues("listeners:\n  - address: 127.0.0.1:1\nroutes: []\nlisteners: []\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].line, found[0].path.as_str()), (4, "listeners"));
        assert!(
            found[0].message.contains("at line 1 and line 4"),
            "{}",
            found[0].message
        );
        assert!(!found[0].message.contains("Policy"), "{}", found[0].message);
    }
}

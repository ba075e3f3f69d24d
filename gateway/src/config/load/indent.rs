//! Mis-indented keys. YAML reads a key by its indentation, so one indented
//! wrongly lands in another mapping (an unknown key there, a missing one
//! where it belongs) or breaks the parse a line away. The test is a
//! what-if: move the line to each indentation the lines above it open, and
//! keep the move that reads with fewer problems than the file as written.

use super::super::error::ConfigIssue;
use super::{collect, tree};

pub(super) struct Fix {
    /// The text with the line moved, same lines as before.
    pub text: String,
    pub issue: ConfigIssue,
    /// How many columns the line moved.
    moved: usize,
}

/// After a syntax error reported at `line` (1-based): the line at fault may
/// be this one or a neighbour.
pub(super) fn after_syntax(text: &str, line: usize) -> Option<Fix> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut best: Option<(usize, usize, Fix)> = None;
    for c in [line, line.saturating_sub(1), line + 1] {
        for (fix, problems) in candidates(&lines, c) {
            let closer = best
                .as_ref()
                .is_none_or(|(p, moved, _)| (problems, fix.moved) < (*p, *moved));
            if closer {
                best = Some((problems, fix.moved, fix));
            }
        }
    }
    best.map(|(_, _, fix)| fix)
}

/// After an unknown key at `line`: a fix only if the file reads better with
/// the key moved than as written.
pub(super) fn misplaced(text: &str, line: usize) -> Option<Fix> {
    let lines: Vec<&str> = text.split('\n').collect();
    let now = collect(text, false).issues.len();
    candidates(&lines, line)
        .into_iter()
        .filter(|(_, problems)| *problems < now)
        .min_by_key(|(fix, problems)| (*problems, fix.moved))
        .map(|(fix, _)| fix)
}

/// Each re-indentation of line `c` (1-based) to a level opened above it that
/// parses, with the number of problems the text then has.
fn candidates(lines: &[&str], c: usize) -> Vec<(Fix, usize)> {
    let Some(this) = c.checked_sub(1).and_then(|i| lines.get(i)) else {
        return Vec::new();
    };
    let trimmed = this.trim_start_matches(' ');
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Vec::new();
    }
    let n = this.len() - trimmed.len();
    let mut out = Vec::new();
    for (m, sibling) in open_levels(lines, c - 1) {
        if m == n {
            continue;
        }
        let text = shifted(lines, c - 1, n, m);
        let Ok(Some(root)) = tree::parse(&text) else {
            continue;
        };
        let problems = collect(&text, false).issues.len();
        let name = key_of(trimmed);
        let chars: Vec<char> = text.chars().collect();
        let at = text
            .split('\n')
            .take(c - 1)
            .map(|l| l.chars().count() + 1)
            .sum::<usize>()
            + m;
        let path = tree::target(&root, &chars, at, false)
            .map(|t| t.path)
            .unwrap_or_default();
        let what = match &name {
            Some(k) => format!("\"{k}\""),
            None => "this line".to_owned(),
        };
        out.push((
            Fix {
                text,
                moved: m.abs_diff(n),
                issue: ConfigIssue {
                    line: c as u32,
                    column: (n + 1) as u32,
                    path,
                    message: format!(
                        "{what} is indented {n} spaces, but its siblings (line {sibling}) use {m}: indent it {m} spaces"
                    ),
                },
            },
            problems,
        ));
    }
    out
}

/// The indentation levels open at line index `i`: those of the lines above
/// with nothing less indented between, and the content of `- ` items. Each
/// with the nearest line (1-based) that uses it.
fn open_levels(lines: &[&str], i: usize) -> Vec<(usize, usize)> {
    let mut levels: Vec<(usize, usize)> = Vec::new();
    let mut lowest = usize::MAX;
    for j in (0..i).rev() {
        let line = lines[j];
        let rest = line.trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        let ind = line.len() - rest.len();
        let mut level = ind;
        let mut rest = rest;
        let mut found = vec![ind];
        while let Some(after) = rest.strip_prefix('-') {
            let inner = after.trim_start_matches(' ');
            if inner.len() == after.len() {
                break;
            }
            level += 1 + after.len() - inner.len();
            found.push(level);
            rest = inner;
        }
        for l in found {
            if l <= lowest && !levels.iter().any(|(x, _)| *x == l) {
                levels.push((l, j + 1));
            }
        }
        lowest = lowest.min(ind);
        if lowest == 0 {
            break;
        }
    }
    levels
}

/// The text with line index `i` and the block under it moved from `n` to `m` spaces.
fn shifted(lines: &[&str], i: usize, n: usize, m: usize) -> String {
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    for (j, line) in lines.iter().enumerate().skip(i) {
        let rest = line.trim_start_matches(' ');
        let ind = line.len() - rest.len();
        let blank = rest.is_empty() || rest.starts_with('#');
        if j > i && !blank && ind <= n {
            break;
        }
        if blank && j > i {
            continue;
        }
        out[j] = format!("{}{}", " ".repeat(ind - n + m), rest);
    }
    out.join("\n")
}

/// The key a line starts, if it is a `key:` line.
fn key_of(line: &str) -> Option<String> {
    let line = line.trim_start_matches("- ");
    let (key, _) = line.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.contains(' ')).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_include_list_item_content() {
        let lines = [
            "routes:",
            "  - name: a",
            "    match:",
            "      host: x",
            "   upstream: u",
        ];
        let levels: Vec<_> = open_levels(&lines, 4).into_iter().map(|(l, _)| l).collect();
        assert_eq!(levels, [6, 4, 2, 0]);
    }

    #[test]
    fn shifting_moves_the_block_under_the_line() {
        let lines = ["a:", "  b:", " c:", "   d: 1", "e: 2"];
        assert_eq!(shifted(&lines, 2, 1, 2), "a:\n  b:\n  c:\n    d: 1\ne: 2");
    }
}

//! Configuration errors: each one says where (`file:line:column` and the field
//! path), what was wrong, and what to do.

use std::fmt;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub line: u32,
    pub column: u32,
    /// Field path such as `routes[2].upstream`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

/// Everything wrong with a configuration file, in file order.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, issues))]
    Invalid {
        file: String,
        issues: Vec<ConfigIssue>,
    },
}

fn render(file: &str, issues: &[ConfigIssue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{file}:{}:{}: ", issue.line, issue.column));
        if !issue.path.is_empty() {
            out.push_str(&issue.path);
            out.push_str(": ");
        }
        out.push_str(&issue.message);
    }
    out
}

/// What a valid configuration should still have a look at: each line
/// `warning: file:line:column: field: message`.
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    pub file: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for Warnings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in &self.issues {
            writeln!(
                f,
                "warning: {}",
                render(&self.file, std::slice::from_ref(issue))
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.path, self.message
        )
    }
}

/// `did you mean "x"?` for a misspelt reference, when one candidate is close.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(wanted, c), c))
        .filter(|(d, c)| *d <= (c.len().max(wanted.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!(" (did you mean \"{c}\"?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("prodcut", ["order", "product", "auth"]),
            " (did you mean \"product\"?)"
        );
        assert_eq!(did_you_mean("zzzzzz", ["order", "product"]), "");
    }
}

//! The plugin's `config:` map from the YAML, with typed, well-worded getters.
//!
//! Every error names the key and the bad value, because it ends up in the
//! gateway's startup error next to the plugin's name.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// The `config:` map handed to `init`, keys in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Wrap the pairs the host passed.
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Self { entries }
    }

    /// Build from borrowed pairs (handy in tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// All pairs, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, if set. The first occurrence wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `default`.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// Parse `key` with [`FromStr`]; `None` when unset.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|e| format!("config `{key}`: invalid value `{v}`: {e}"))
            })
            .transpose()
    }

    /// Parse `key`, or return `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// A boolean: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(format!(
                    "config `{key}`: invalid value `{v}`: expected true or false"
                )),
            },
        }
    }

    /// A duration such as `250ms`, `30s`, `5m`, `2h`, `1d`; a bare number is seconds.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, String> {
        self.get(key)
            .map(|v| {
                parse_duration(v).map_err(|e| format!("config `{key}`: invalid value `{v}`: {e}"))
            })
            .transpose()
    }

    /// Fail on any key not in `known`, suggesting the closest known key.
    pub fn allow_only(&self, known: &[&str]) -> Result<(), String> {
        for (k, _) in &self.entries {
            if !known.contains(&k.as_str()) {
                let hint = known
                    .iter()
                    .min_by_key(|c| edit_distance(k, c))
                    .filter(|c| edit_distance(k, c) <= 2)
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "config: unknown key `{k}` (known: {}){hint}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }
}

impl From<Vec<(String, String)>> for Config {
    fn from(entries: Vec<(String, String)>) -> Self {
        Self::new(entries)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a number followed by ms, s, m, h or d".to_owned())?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_getters_name_the_key_in_errors() {
        let c = Config::from_pairs(&[("percent", "ten"), ("ttl", "90s"), ("sticky", "yes")]);
        let err = c.parse::<u32>("percent").unwrap_err();
        assert!(err.contains("`percent`") && err.contains("`ten`"), "{err}");
        assert_eq!(c.duration("ttl").unwrap(), Some(Duration::from_secs(90)));
        assert!(c.bool_or("sticky", false).unwrap());
        assert_eq!(c.parse_or("missing", 7u32).unwrap(), 7);
    }

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_with_a_suggestion() {
        let c = Config::from_pairs(&[("cokie", "x")]);
        let err = c.allow_only(&["cookie", "max-age"]).unwrap_err();
        assert!(
            err.contains("`cokie`") && err.contains("did you mean `cookie`"),
            "{err}"
        );
        assert!(
            Config::from_pairs(&[("cookie", "x")])
                .allow_only(&["cookie"])
                .is_ok()
        );
    }
}

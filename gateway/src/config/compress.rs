//! `compression:` in YAML (global, or per route on top of the global one) and
//! its resolved form.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::parse_size;
use crate::encoding::Encoding;

/// Compression (br, gzip) of responses, negotiated from `Accept-Encoding`;
/// a route's block overrides the global block key by key.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CompressionYaml {
    /// Turn compression off for a route that inherits a global block. Default: true.
    pub enabled: Option<bool>,
    /// Responses whose known length is below this are sent as they are.
    /// Default: 1KiB.
    #[schemars(with = "Option<super::schema::Size>")]
    pub min_size: Option<Spanned<String>>,
    /// Media types worth compressing; one `*` allowed (`text/*`, `application/*+json`).
    /// e.g. `[text/*, application/json]`. Default: text, JSON, JavaScript,
    /// XML, SVG, wasm.
    #[schemars(with = "Option<Vec<String>>")]
    pub types: Option<Vec<Spanned<String>>>,
    /// Brotli quality (0–11) for responses that are not cached. Default: 4.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 11))]
    pub br_level: Option<Spanned<u32>>,
    /// Brotli quality for cached responses, compressed once. Default: 11
    /// (bodies over 256KiB use at most 9).
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 11))]
    pub br_cached_level: Option<Spanned<u32>>,
    /// Gzip level (1–9) for responses that are not cached. Default: 5.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 9))]
    pub gzip_level: Option<Spanned<u32>>,
    /// Gzip level for cached responses. Default: 9.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 9))]
    pub gzip_cached_level: Option<Spanned<u32>>,
}

pub const DEFAULT_TYPES: [&str; 9] = [
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/wasm",
    "application/x-javascript",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    pub min_size: u64,
    pub types: Vec<String>,
    pub br_level: u32,
    pub br_cached_level: u32,
    pub gzip_level: u32,
    pub gzip_cached_level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            min_size: 1024,
            types: DEFAULT_TYPES.map(String::from).to_vec(),
            br_level: 4,
            br_cached_level: 11,
            gzip_level: 5,
            gzip_cached_level: 9,
        }
    }
}

impl Compression {
    pub fn level(&self, encoding: Encoding, cached: bool) -> u32 {
        match (encoding, cached) {
            (Encoding::Brotli, false) => self.br_level,
            (Encoding::Brotli, true) => self.br_cached_level,
            (Encoding::Gzip, false) => self.gzip_level,
            (Encoding::Gzip, true) => self.gzip_cached_level,
            (Encoding::Identity, _) => 0,
        }
    }
}

/// Stored bodies above this are encoded at brotli quality 9 at most.
const BR_SLOW_ABOVE: usize = 256 << 10;

impl Compression {
    /// Level for a stored body of `len` bytes, encoded once. Brotli above
    /// quality 9 runs well under 1 MB/s, so a large body is capped at 9: its
    /// first br client would otherwise wait seconds.
    pub fn cached_level(&self, encoding: Encoding, len: usize) -> u32 {
        let level = self.level(encoding, true);
        if encoding == Encoding::Brotli && len > BR_SLOW_ABOVE {
            level.min(9)
        } else {
            level
        }
    }
}

/// Applies `y` over `base`; `None` when the block disables compression.
pub fn resolve(
    base: &Compression,
    y: &CompressionYaml,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<Compression> {
    let mut c = base.clone();
    if let Some(s) = &y.min_size {
        match parse_size(&s.value) {
            Ok(n) => c.min_size = n as u64,
            Err(e) => issues.push(Issue::new(&s.referenced, format!("{path}.min-size"), e)),
        }
    }
    if let Some(types) = &y.types {
        c.types = Vec::new();
        for t in types {
            let v = t.value.trim().to_ascii_lowercase();
            let ok = v
                .split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                && v.matches('*').count() <= 1;
            if ok {
                c.types.push(v);
            } else {
                issues.push(Issue::new(
                    &t.referenced,
                    format!("{path}.types"),
                    format!(
                        "\"{}\" is not a media type pattern; write e.g. \"text/*\" or \"application/json\"",
                        t.value
                    ),
                ));
            }
        }
    }
    let mut level = |f: &Option<Spanned<u32>>, name: &str, max: u32, slot: &mut u32| {
        if let Some(l) = f {
            if l.value > max {
                issues.push(Issue::new(
                    &l.referenced,
                    format!("{path}.{name}"),
                    format!("must be between 0 and {max}"),
                ));
            } else {
                *slot = l.value;
            }
        }
    };
    level(&y.br_level, "br-level", 11, &mut c.br_level);
    level(
        &y.br_cached_level,
        "br-cached-level",
        11,
        &mut c.br_cached_level,
    );
    level(&y.gzip_level, "gzip-level", 9, &mut c.gzip_level);
    level(
        &y.gzip_cached_level,
        "gzip-cached-level",
        9,
        &mut c.gzip_cached_level,
    );
    y.enabled.unwrap_or(true).then_some(c)
}

//! `Vary`: which request fields select among the stored responses for one URL.

use http::header::{self, HeaderMap, HeaderName};

/// The field names a response varies on, lower-case, sorted, without
/// `Accept-Encoding` (the gateway negotiates codings itself and keeps every
/// encoding of one stored response). `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for n in headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let n = n.trim();
        if n == "*" {
            return None;
        }
        if let Ok(name) = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            && name != header::ACCEPT_ENCODING
        {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// The secondary key: the request's values of the varied-on fields, with
/// whitespace around list members normalised (RFC 9111 §4.1 allows that).
pub fn secondary_key(names: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::new();
    for name in names {
        key.push_str(name.as_str());
        key.push(':');
        let values: Vec<String> = req
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect();
        key.push_str(&values.join(","));
        key.push('\n');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::h;

    #[test]
    fn vary_keys() {
        let resp = h(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", "Origin"),
        ]);
        let names = vary_names(&resp).unwrap();
        assert_eq!(names, vec![header::ACCEPT_LANGUAGE, header::ORIGIN]);
        let a = secondary_key(&names, &h(&[("accept-language", "en,  fr")]));
        let b = secondary_key(&names, &h(&[("accept-language", "en, fr")]));
        let c = secondary_key(&names, &h(&[("accept-language", "de")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

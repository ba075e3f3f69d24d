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

/// The secondary key: the request's values of the varied-on fields,
/// normalised where that cannot change their meaning (RFC 9111 §4.1): the
/// lines of a field joined as one list, whitespace around members and their
/// parameters dropped, and, when every member carries an explicit `q`
/// weight (so their order means nothing), the members sorted.
pub fn secondary_key(names: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::new();
    for name in names {
        key.push_str(name.as_str());
        key.push(':');
        let mut members: Vec<String> = req
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|m| {
                m.split(';')
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                        None => p.trim().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .filter(|m| !m.is_empty())
            .collect();
        let weighted = |m: &String| {
            m.split(';')
                .skip(1)
                .any(|p| p.len() > 2 && p[..2].eq_ignore_ascii_case("q="))
        };
        if members.len() > 1 && members.iter().all(weighted) {
            members.sort();
        }
        key.push_str(&members.join(","));
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
        let split = secondary_key(
            &names,
            &h(&[("accept-language", "en ; q=0.9"), ("accept-language", "fr")]),
        );
        assert_eq!(
            split,
            secondary_key(&names, &h(&[("accept-language", "en;q=0.9,fr")]))
        );
        // Explicit weights make the order meaningless; without them it stays.
        assert_eq!(
            secondary_key(&names, &h(&[("accept-language", "fr;q=0.5, en;q=0.9")])),
            secondary_key(&names, &h(&[("accept-language", "en;q=0.9,fr;q=0.5")]))
        );
        assert_ne!(
            secondary_key(&names, &h(&[("accept-language", "fr, en")])),
            secondary_key(&names, &h(&[("accept-language", "en, fr")]))
        );
    }
}

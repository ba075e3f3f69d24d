//! Answering from a stored entry: a 304 for a satisfied conditional request,
//! else the body in the negotiated encoding, each encoding made once and kept.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::Did;
use crate::body::{self, Body};
use crate::cache::fill::Head;
use crate::cache::{Entry, Join};
use crate::cache::{policy, range};
use crate::compress::{self, Encoding};
use crate::session::Session;

impl Session {
    /// Answers from a stored entry: 304 for a satisfied conditional request,
    /// else the negotiated variant, made once and kept.
    pub(super) async fn respond(
        &self,
        full: Arc<str>,
        entry: Arc<Entry>,
        head: &Head,
        did: Did,
    ) -> Response<Body> {
        let want = self.want;
        let mut enc = Encoding::Identity;
        let mut varies = false;
        let compression = self.route().compression.as_ref();
        if let Some(c) = compression
            && compress::eligible(
                &Method::GET,
                entry.status,
                &entry.headers,
                Some(entry.body.len() as u64),
                c.min_size,
                &c.types,
            )
            .is_ok()
        {
            varies = true;
            enc = want;
        }
        let conditional = entry.status == StatusCode::OK
            && (head.headers.contains_key(header::IF_NONE_MATCH)
                || head.headers.contains_key(header::IF_MODIFIED_SINCE))
            // Without Last-Modified, the stored Date stands in (RFC 9111 §4.3.2).
            && policy::not_modified(
                &head.headers,
                entry.etag.as_deref(),
                entry
                    .last_modified
                    .or_else(|| policy::date(&entry.headers, header::DATE)),
            );
        let mut bytes = None;
        if !conditional {
            let b = match (entry.variant(enc), compression) {
                (Some(b), _) => b,
                (None, Some(c)) => match self
                    .encode_variant(&full, &entry, enc, c.cached_level(enc, entry.body.len()))
                    .await
                {
                    Some(b) => b,
                    None => {
                        enc = Encoding::Identity;
                        entry.body.clone()
                    }
                },
                (None, None) => entry.body.clone(),
            };
            bytes = Some(b);
        }
        let mut h = entry.headers.clone();
        if varies {
            compress::negotiate::add_vary_accept_encoding(&mut h);
        }
        if enc != Encoding::Identity {
            compress::mark_encoded(&mut h, enc);
        }
        let age = entry.age().as_secs().min(1 << 31);
        let mut resp = match bytes {
            None => {
                let mut resp = Response::new(body::empty());
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                for name in policy::NOT_MODIFIED_FIELDS {
                    for v in h.get_all(&name) {
                        resp.headers_mut().append(name.clone(), v.clone());
                    }
                }
                resp
            }
            Some(b) => {
                // Ranges of the identity body of a complete 200 (only a GET
                // has ranges: RFC 9110 §14.2).
                let ranged = entry.status == StatusCode::OK
                    && enc == Encoding::Identity
                    && head.method == Method::GET;
                let selected = if ranged {
                    range::select(
                        &head.headers,
                        &range::Validators::of_entry(&entry),
                        b.len() as u64,
                    )
                } else {
                    range::Selected::Whole
                };
                let (status, b) = match selected {
                    range::Selected::Whole => (entry.status, b),
                    s => super::ranged::of_bytes(s, &mut h, b),
                };
                if entry.status == StatusCode::OK && enc == Encoding::Identity {
                    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                }
                // RFC 9110 §8.6: a 204 carries no Content-Length.
                if entry.status != StatusCode::NO_CONTENT {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                }
                let body = if head.method == Method::HEAD {
                    body::empty()
                } else {
                    body::full(b)
                };
                let mut resp = Response::new(body);
                *resp.status_mut() = status;
                *resp.headers_mut() = h;
                resp
            }
        };
        resp.headers_mut()
            .insert(header::AGE, HeaderValue::from(age));
        self.label(&mut resp, did, Some((&*entry).into()));
        *resp.version_mut() = head.version;
        resp
    }

    /// Encodes a stored body once (off the async threads: high levels are slow)
    /// and keeps the result in the entry.
    async fn encode_variant(
        &self,
        full: &Arc<str>,
        entry: &Arc<Entry>,
        enc: Encoding,
        level: u32,
    ) -> Option<bytes::Bytes> {
        // Concurrent first requests for one variant make it once; the others
        // wait and take the stored result.
        let flight_key: Arc<str> = format!("encode\u{0}{}\u{0}{full}", enc.token()).into();
        let _flight = match self.node.cache.join(&flight_key) {
            Join::Lead(f) => f,
            Join::Wait(w) => {
                w.done().await;
                if let Some(b) = self
                    .node
                    .cache
                    .store
                    .get(full)
                    .await
                    .and_then(|e| e.variant(enc))
                {
                    return Some(b);
                }
                return Box::pin(self.encode_variant(full, entry, enc, level)).await;
            }
        };
        let body = entry.body.clone();
        let out = tokio::task::spawn_blocking(move || compress::encode_all(enc, level, &body))
            .await
            .ok()?
            .ok()?;
        // Add the variant to whatever is stored now, if it is still this body
        // (a 304 keeps the body; a new response replaces it).
        let current = self.node.cache.store.get(full).await;
        let mut e = match current {
            Some(c) if c.body.as_ptr() == entry.body.as_ptr() => (*c).clone(),
            Some(_) => return Some(out),
            None => (**entry).clone(),
        };
        if e.variant(enc).is_none() {
            // An exact copy: the encoder's buffer may have spare capacity.
            e.variants.push((enc, bytes::Bytes::copy_from_slice(&out)));
            self.node.cache.store.put(full.clone(), e).await;
            self.node.cache.count(|c| &c.compressed_variants);
        }
        Some(out)
    }
}

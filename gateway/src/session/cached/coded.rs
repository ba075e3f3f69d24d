//! A fill whose upstream sent a coded body although the cache asked for
//! identity: decoded and stored as identity, or, when it cannot be decoded,
//! not stored and sent only to a client that accepts its coding. An identity
//! client never gets coded bytes.

use http::header;
use http::{Method, Response, StatusCode};

use super::fetch::Outcome;
use crate::body::{self, Body};
use crate::cache::decode;
use crate::cache::fill::{Head, etag, read_limited};
use crate::cache::{CacheKey, Entry, Flight};
use crate::session::Session;
use crate::session::error::ProxyError;

/// What [`Session::fill_coded`] needs besides the body.
pub(super) struct Coded {
    pub codings: Vec<String>,
    /// The entry to store, fields and all (the body is filled in here);
    /// `None` for a response that is not storable.
    pub entry: Option<Entry>,
    /// The client's head, as upstream sent it.
    pub client: http::response::Parts,
    pub cookies: Vec<http::HeaderValue>,
}

impl Session {
    pub(super) async fn fill_coded(
        &self,
        key: &CacheKey,
        head: &Head,
        coded: Coded,
        incoming: Body,
        flight: Option<Flight>,
    ) -> Outcome {
        let cache = &self.node.cache;
        let limit = cache.settings.max_object_size as usize;
        let Coded {
            codings,
            entry,
            mut client,
            cookies,
        } = coded;
        let client_takes_it = decode::accepts(&head.headers, &codings);
        // A storable response this cache will not keep because of its coding.
        let storable = entry.is_some();
        let refuse = || {
            if storable {
                cache.count(|c| &c.refused_coded);
            }
        };
        let raw = match read_limited(incoming, limit).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(prefixed)) => {
                // Too big to decode here: only a client that decodes it gets it.
                refuse();
                return if client_takes_it {
                    Outcome::Passed(Response::from_parts(client, prefixed))
                } else {
                    refused(key, &codings, "over max-object-size")
                };
            }
            Err(source) => {
                let endpoint = self.endpoint_name().unwrap_or_default();
                return Outcome::Failed(Err(ProxyError::from_body(
                    source,
                    &self.pool().name,
                    &endpoint,
                )));
            }
        };
        let plain = match decode::decode(&codings, raw.clone(), limit) {
            Ok(plain) => plain,
            Err(why) if client_takes_it => {
                refuse();
                tracing::debug!(key = %key.primary, %why, "coded body passed on, not stored");
                return Outcome::Passed(Response::from_parts(client, body::full(raw)));
            }
            Err(why) => {
                refuse();
                return refused(key, &codings, &why.to_string());
            }
        };
        // The decoded body is another representation than the one the origin
        // tagged: a strong validator no longer holds for it (RFC 9110 §8.8.1).
        let identity = |h: &mut http::HeaderMap| {
            h.remove(header::CONTENT_ENCODING);
            h.remove(header::CONTENT_LENGTH);
            if let Some(v) = h.get(header::ETAG).and_then(crate::encoding::weaken_etag) {
                h.insert(header::ETAG, v);
            }
        };
        let Some(mut entry) = entry else {
            identity(&mut client.headers);
            let mut resp = Response::from_parts(client, body::full(plain));
            if head.method == Method::HEAD {
                *resp.body_mut() = body::empty();
            }
            return Outcome::Passed(resp);
        };
        identity(&mut entry.headers);
        entry.etag = etag(&entry.headers);
        entry.body = plain;
        let (full, entry) = cache.store.insert(&key.primary, &head.headers, entry).await;
        cache.count(|c| &c.stored);
        drop(flight);
        Outcome::Stored(full, entry, cookies)
    }
}

/// The answer for an identity client when the coded body cannot be decoded.
fn refused(key: &CacheKey, codings: &[String], why: &str) -> Outcome {
    tracing::debug!(key = %key.primary, ?codings, why, "coded body refused");
    Outcome::Failed(Ok(body::local_response(
        StatusCode::BAD_GATEWAY,
        "text/plain; charset=utf-8",
        "upstream sent a content coding this client does not accept\n",
    )))
}

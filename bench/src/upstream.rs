//! The upstream every benchmark proxies to, so Edgeward and NGINX are measured
//! against the same server: `bench-upstream 127.0.0.1:9000`.
//!
//! `GET /bytes/<n>` (or any path ending in a number) answers `n` bytes of JSON-ish
//! text; paths under `/cached/` add `Cache-Control: public, max-age=600`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn body_of(n: usize) -> Bytes {
    let unit = b"{\"id\":12345,\"name\":\"edge product\",\"tags\":[\"a\",\"b\"],\"price\":19.99},";
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let take = unit.len().min(n - v.len());
        v.extend_from_slice(&unit[..take]);
    }
    Bytes::from(v)
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    small: &Bytes,
    large: &Bytes,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let n: usize = path
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let body = match n {
        1024 => small.clone(),
        102_400 => large.clone(),
        n => body_of(n.min(16 << 20)),
    };
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if path.starts_with("/cached/") {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=600"),
        );
    }
    resp
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let socket = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening {}", socket.local_addr()?);
    let (small, large) = (body_of(1024), body_of(102_400));
    let http = std::sync::Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = socket.accept().await?;
        let _ = stream.set_nodelay(true);
        let (small, large, http) = (small.clone(), large.clone(), http.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = answer(&req, &small, &large);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

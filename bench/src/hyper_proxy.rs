//! The framework's floor: the smallest reverse proxy stock hyper gives you, so the
//! harness can tell what Edgeward costs above hyper itself.
//! `bench-hyper-proxy LISTEN UPSTREAM WORKERS`, e.g. `127.0.0.1:19280 127.0.0.1:19000 2`.
//!
//! A hyper-util auto (h1 + h2c) server and the legacy pooled client, on a
//! multi-thread runtime with as many workers as the other proxies get. No header
//! work beyond what forwarding needs; this is deliberately what "~40 lines of
//! hyper" means, not a tuned proxy.

use std::convert::Infallible;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:19280".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:19000".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: String, upstream: String) -> std::io::Result<()> {
    let socket = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening {}", socket.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let http = std::sync::Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = socket.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, http, upstream) = (client.clone(), http.clone(), upstream.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    use http_body_util::BodyExt;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = match format!("http://{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(_) => return status(400),
    };
    *req.uri_mut() = uri;
    // An h2c request arrives as HTTP/2; the pooled upstream connection is HTTP/1.1.
    *req.version_mut() = http::Version::HTTP_11;
    match client.request(req).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(_) => status(502),
    }
}

fn status(code: u16) -> Response<Body> {
    use http_body_util::BodyExt;
    let mut resp = Response::new(
        http_body_util::Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
    resp
}

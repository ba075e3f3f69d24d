//! Tiny in-process upstream services for the demo: each instance answers JSON
//! naming its service and instance and echoing what it was asked.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::{self, Body};

/// A running demo instance; aborting its task on drop closes the port.
pub struct DemoService {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(service: &'static str, instance: String, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let forwarded_for = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the body to report its size; a demo upstream may buffer, the gateway does not.
    let received = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    let doc = serde_json::json!({
        "service": service,
        "instance": instance,
        "method": method,
        "path": path,
        "query": query,
        "body_bytes": received,
        "forwarded_for": forwarded_for,
    });
    let mut resp = Response::new(body::full(doc.to_string()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&instance) {
        h.insert("x-instance", v);
    }
    resp
}

/// Binds `addr` and serves `service`/`instance` until the returned handle drops.
pub async fn spawn_service(
    service: &'static str,
    instance: &str,
    addr: SocketAddr,
) -> std::io::Result<DemoService> {
    let socket = TcpListener::bind(addr).await?;
    let addr = socket.local_addr()?;
    let instance = instance.to_owned();
    let task = tokio::spawn(async move {
        let http = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = socket.accept().await else {
                continue;
            };
            let instance = instance.clone();
            let conn = http
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| {
                        let instance = instance.clone();
                        async move { Ok::<_, Infallible>(answer(service, instance, req).await) }
                    }),
                )
                .into_owned();
            tokio::spawn(conn);
        }
    });
    Ok(DemoService { addr, task })
}

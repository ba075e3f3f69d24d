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

/// `GET /api/products/{id}` on the product service: a catalogue document of a
/// few KiB, the same on every instance, cacheable for 30 s and tagged for purges.
/// The list `/api/products` is `no-store`, so it still shows the balancing.
fn product(instance: &str, req: &Request<Incoming>) -> Option<Response<Body>> {
    let id = req.uri().path().strip_prefix("/api/products/")?;
    let id: u32 = id.trim_end_matches('/').parse().ok()?;
    let etag = format!("\"product-{id}-v1\"");
    let conditional = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut resp = if conditional {
        let mut r = Response::new(body::empty());
        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(body::full(product_document(id).to_string()))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=30"),
    );
    h.insert(header::ETAG, header::HeaderValue::from_str(&etag).ok()?);
    h.insert(
        "cache-tag",
        header::HeaderValue::from_str(&format!("product-{id}, catalogue")).ok()?,
    );
    h.insert("x-instance", header::HeaderValue::from_str(instance).ok()?);
    Some(resp)
}

fn product_document(id: u32) -> serde_json::Value {
    let colours = ["graphite", "sand", "forest", "ocean", "ember"];
    let variants: Vec<_> = colours
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::json!({
                "sku": format!("EW-{id:05}-{}", c.to_uppercase()),
                "colour": c,
                "stock": (id as usize * 7 + i * 13) % 40,
                "price": { "amount": 4900 + id as usize % 50 * 100 + i * 250, "currency": "EUR" },
                "images": [
                    format!("https://img.example/products/{id}/{c}/front.webp"),
                    format!("https://img.example/products/{id}/{c}/side.webp"),
                ],
            })
        })
        .collect();
    let reviews: Vec<_> = (0..6)
        .map(|i| {
            serde_json::json!({
                "author": format!("customer-{}", id * 31 + i),
                "rating": 3 + (id + i) % 3,
                "title": "Does what it says",
                "body": "Sturdy, well finished and lighter than expected. The strap could be longer, but it has survived a season of daily commuting without a scratch.",
            })
        })
        .collect();
    serde_json::json!({
        "id": id,
        "name": format!("Edgeward Trail Pack {id}"),
        "brand": "Edgeward Outdoor",
        "category": ["outdoor", "bags", "backpacks"],
        "description": "A 24-litre everyday pack with a padded laptop sleeve, a water-resistant recycled shell and a hidden passport pocket. The back panel breathes on warm days and the hip belt tucks away when you do not need it. Repairable by design: every buckle and zip is replaceable.",
        "specs": {
            "volume_litres": 24, "weight_grams": 780 + id % 90,
            "dimensions_cm": { "height": 48, "width": 30, "depth": 18 },
            "materials": ["recycled polyester", "YKK zips", "aluminium frame sheet"],
            "warranty_years": 5,
        },
        "variants": variants,
        "rating": { "average": 4.4, "count": 120 + id },
        "reviews": reviews,
        "related": [id + 1, id + 2, id + 3],
    })
}

async fn answer(service: &'static str, instance: String, req: Request<Incoming>) -> Response<Body> {
    if service == "product"
        && let Some(resp) = product(&instance, &req)
    {
        return resp;
    }
    let list = service == "product" && req.uri().path().trim_end_matches('/') == "/api/products";
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
    if list {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
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

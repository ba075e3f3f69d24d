//! `edgeward demo` is what a new user runs first: it must work exactly as the
//! README says. The demo listens on fixed ports (8443, 8080, 9901), so this is the
//! only test that starts it.

use edgeward_e2e::Gateway;
use edgeward_e2e::client::{Client, curl};
use edgeward_e2e::h3client::H3Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_readme_curl_lines_and_rotates_product_instances() {
    let gw = Gateway::start_args(&["demo"]).await.unwrap();
    assert_eq!(gw.addr("https").port(), 8443);
    assert_eq!(gw.addr("http").port(), 8080);

    // Successive requests for the product list (`no-store`, so never cached)
    // rotate over the three instances.
    let c = Client::h1();
    let mut instances = Vec::new();
    for _ in 0..6 {
        let r = c.get("http://127.0.0.1:8080/api/products").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["service"], "product");
        assert_eq!(r.json()["path"], "/api/products");
        instances.push(r.json()["instance"].as_str().unwrap().to_owned());
    }
    let mut distinct = instances.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct,
        ["product-1", "product-2", "product-3"],
        "{instances:?}"
    );
    assert_eq!(
        instances[0..3],
        instances[3..6],
        "round robin order is stable"
    );

    // A product document is cached (`public, max-age=30`) and compressed.
    let first = c.get("http://127.0.0.1:8080/api/products/1").await.unwrap();
    assert_eq!(first.json()["id"], 1);
    assert!(first.body.len() > 2048, "a realistic document of a few KiB");
    let again = c.get("http://127.0.0.1:8080/api/products/1").await.unwrap();
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, first.body);
    let br = c
        .fetch(
            http::Request::get("http://127.0.0.1:8080/api/products/1")
                .header("accept-encoding", "br")
                .body(edgeward_e2e::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(br.body.len() < first.body.len() / 2);

    let r = Client::h2c()
        .get("http://127.0.0.1:8080/api/orders/7")
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.version), (200, http::Version::HTTP_2));
    assert_eq!(r.json()["service"], "order");
    let r = c.get("http://127.0.0.1:8080/auth/login").await.unwrap();
    assert_eq!(r.json()["service"], "auth");
    assert_eq!(
        c.get("http://127.0.0.1:9901/readyz").await.unwrap().status,
        200
    );

    // HTTP/3 on 8443/udp, advertised by the TCP side.
    assert!(
        first.header("alt-svc").is_none(),
        "plaintext listeners advertise nothing"
    );
    let h3 = H3Client::connect(gw.addr("https/h3")).await.unwrap();
    let r = h3.get("/api/orders/7").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["service"], "order");

    // The two lines the demo prints, run with real curl when it is installed.
    let https = [
        "-sk",
        "--http2",
        "-D",
        "-",
        "-w",
        "\n%{http_version}",
        "https://127.0.0.1:8443/api/products/1",
    ];
    if let Some(out) = curl(&https).await {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\"brand\":\"Edgeward Outdoor\"") && text.ends_with("\n2"),
            "{text}"
        );
        assert!(text.contains("alt-svc: h3=\":8443\""), "{text}");
    }
    if let Some(out) = curl(&[
        "-s",
        "--http2-prior-knowledge",
        "http://127.0.0.1:8080/api/orders/7",
    ])
    .await
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"service\":\"order\""), "{text}");
    }
}

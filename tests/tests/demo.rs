//! `edgeward demo` is what a new user runs first: it must work exactly as the
//! README says. The demo listens on fixed ports (8443, 8080, 9901), so this is the
//! only test that starts it.

use edgeward_e2e::Gateway;
use edgeward_e2e::client::{Client, curl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_readme_curl_lines_and_rotates_product_instances() {
    let gw = Gateway::start_args(&["demo"]).await.unwrap();
    assert_eq!(gw.addr("https").port(), 8443);
    assert_eq!(gw.addr("http").port(), 8080);

    // Successive product requests rotate over the three instances.
    let c = Client::h1();
    let mut instances = Vec::new();
    for _ in 0..6 {
        let r = c.get("http://127.0.0.1:8080/api/products/1").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["service"], "product");
        assert_eq!(r.json()["path"], "/api/products/1");
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

    // The two lines the demo prints, run with real curl when it is installed.
    if let Some(out) = curl(&[
        "-sk",
        "--http2",
        "-w",
        "\n%{http_version}",
        "https://127.0.0.1:8443/api/products/1",
    ])
    .await
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\"service\":\"product\"") && text.ends_with("\n2"),
            "{text}"
        );
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

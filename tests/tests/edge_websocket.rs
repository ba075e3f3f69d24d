//! WebSocket through the gateway with real WebSocket libraries on both ends
//! (tokio-tungstenite, and Python `websockets`):
//! RFC 6455 over an HTTP/1.1 upgrade, and RFC 8441 extended CONNECT over
//! HTTP/2 (which the gateway turns into an HTTP/1.1 upgrade upstream).

use std::net::SocketAddr;
use std::time::Duration;

use edgeward_e2e::{Gateway, empty};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message};

const LIMIT: Duration = Duration::from_secs(30);

/// A WebSocket echo server: text and binary messages come back as sent;
/// pings are answered and closes echoed by the library.
async fn echo_server() -> SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = socket.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let echo = matches!(m, Message::Text(_) | Message::Binary(_));
                    if echo && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn gateway(up: SocketAddr) -> Gateway {
    Gateway::start(&format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n    idle-timeout: 1s\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  ws:\n    endpoints: [\"{up}\"]\nroutes:\n  - name: ws\n    upstream: ws\n"
    ))
    .await
    .unwrap()
}

/// Echo of 1 B to 1 MiB messages, ping/pong, and a close code, over `ws`.
async fn exercise<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for size in [1usize, 125, 126, 65_535, 65_536, 1 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(Message::Binary(Bytes::from(data.clone())))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(got) => assert_eq!(got.as_ref(), &data[..], "size {size}"),
            other => panic!("size {size}: got {other:?}"),
        }
    }
    // Quiet for longer than the listener's idle-timeout: a tunnel keeps its
    // connection busy, so it stays open.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(Message::Text("héllo".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("héllo".into())
    );
    ws.send(Message::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Pong(p) => assert_eq!(p.as_ref(), b"p1"),
        other => panic!("expected pong, got {other:?}"),
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let mut code = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(Some(f)) = m {
            code = Some(u16::from(f.code));
        }
    }
    assert_eq!(code, Some(4001), "the close code did not come back");
}

#[tokio::test]
async fn websocket_echo_over_http1_upgrade() {
    let up = echo_server().await;
    let gw = gateway(up).await;
    tokio::time::timeout(LIMIT, async {
        let tcp = tokio::net::TcpStream::connect(gw.addr("http"))
            .await
            .unwrap();
        let url = format!("ws://{}/chat", gw.addr("http"));
        let (ws, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        assert_eq!(resp.status(), 101);
        assert!(resp.headers().contains_key("x-request-id"));
        exercise(ws).await;
    })
    .await
    .expect("bounded");
    let m = gw.metrics().await;
    assert_eq!(m.value("edgeward_upgrades_total", &[]), 1.0);
}

#[tokio::test]
async fn websocket_echo_over_http2_extended_connect() {
    let up = echo_server().await;
    let gw = gateway(up).await;
    let addr = gw.addr("http");
    tokio::time::timeout(LIMIT, async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        // A first exchange makes sure the server's SETTINGS (with
        // ENABLE_CONNECT_PROTOCOL) have arrived.
        let warm = http::Request::get(format!("http://{addr}/"))
            .body(empty())
            .unwrap();
        let _ = send.send_request(warm).await.unwrap();
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}/chat"))
            .header("sec-websocket-version", "13")
            .body(empty())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Client,
            None,
        )
        .await;
        exercise(ws).await;
    })
    .await
    .expect("bounded");
}

/// The Python `websockets` library (pinned in `.ci/run`) on both ends of the
/// HTTP/1.1 case, its server behind the HTTP/2 case: 1 B to 1 MiB messages,
/// text, ping/pong and a close code, as another implementation sees them.
const PY_WS: &str = r#"
import asyncio, json, sys
from websockets.asyncio.server import serve
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def echo(ws):
    try:
        async for m in ws:
            await ws.send(m)
    except ConnectionClosed:
        pass  # a 4001 close ends the loop as an "error"; the handshake was clean

async def server():
    async with serve(echo, "127.0.0.1", 0, max_size=2**21, ping_interval=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

async def client(url):
    async with connect(url, max_size=2**21, ping_interval=None, open_timeout=10) as ws:
        for size in [1, 125, 126, 65535, 65536, 1 << 20]:
            data = bytes(i % 251 for i in range(size))
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == data, f"size {size}: {len(got)} bytes back"
        await ws.send("héllo")
        assert await asyncio.wait_for(ws.recv(), 10) == "héllo"
        pong = await ws.ping(b"probe")
        await asyncio.wait_for(pong, 10)
        await ws.close(code=4001, reason="bye")
        print(json.dumps({"code": ws.close_code, "reason": ws.close_reason}), flush=True)

if sys.argv[1] == "server":
    asyncio.run(server())
else:
    asyncio.run(client(sys.argv[2]))
"#;

fn python_websockets() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "python3 with websockets is required in CI (.ci/run installs it)"
    );
    ok
}

#[tokio::test]
async fn python_websockets_client_and_server_through_the_gateway() {
    if !python_websockets() {
        eprintln!("skipping: python3 -m pip install websockets==17.4");
        return;
    }
    use tokio::io::AsyncBufReadExt;
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", PY_WS, "server"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the Python server starts")
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let up: SocketAddr = ([127, 0, 0, 1], port).into();
    let gw = gateway(up).await;
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new("python3")
            .args([
                "-c",
                PY_WS,
                "client",
                &format!("ws://{}/py", gw.addr("http")),
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("bounded")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["code"], 4001, "{result}");
    assert_eq!(result["reason"], "bye", "{result}");

    // HTTP/2 extended CONNECT to the same Python server.
    let addr = gw.addr("http");
    tokio::time::timeout(LIMIT, async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let warm = http::Request::get(format!("http://{addr}/"))
            .body(empty())
            .unwrap();
        let _ = send.send_request(warm).await.unwrap();
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}/py2"))
            .header("sec-websocket-version", "13")
            .body(empty())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Client,
            None,
        )
        .await;
        exercise(ws).await;
    })
    .await
    .expect("bounded");
    let m = gw.metrics().await;
    assert_eq!(m.value("edgeward_upgrades_total", &[]), 2.0);
}

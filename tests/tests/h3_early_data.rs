//! 0-RTT over HTTP/3. To make "this request arrived before the handshake
//! completed" deterministic, the client talks through a UDP relay that holds the
//! client's Handshake and 1-RTT packets (its TLS Finished and everything after)
//! until the test releases them: until then every request is early data.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgeward_e2e::h3client::{H3Client, client_config, insecure_tls};
use edgeward_e2e::{Gateway, Upstream};
use http::{Request, StatusCode};
use tokio::net::UdpSocket;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(60);

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("bounded exchange")
}

async fn gateway(up: &Upstream, quic: &str) -> Gateway {
    Gateway::start(&format!(
        "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    protocols: [h1, h2, h3]\n\
         \x20   tls:\n      certificates:\n        - self-signed: [localhost]\n{quic}\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    ))
    .await
    .unwrap()
}

/// QUIC v1 long-header packet types (RFC 9000 §17.2).
const ZERO_RTT: u8 = 1;
const HANDSHAKE: u8 = 2;

fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3f);
    for byte in b.get(1..len)? {
        v = (v << 8) | u64::from(*byte);
    }
    Some((v as usize, len))
}

/// What a client datagram carries, walking coalesced packets (RFC 9000 §12.2).
#[derive(Debug, Default, PartialEq)]
struct Carries {
    zero_rtt: bool,
    /// A Handshake or 1-RTT packet: the client's Finished or anything after it.
    past_first_flight: bool,
}

fn classify(mut d: &[u8]) -> Carries {
    let mut c = Carries::default();
    while let Some(&first) = d.first() {
        if first == 0 {
            break; // padding after the last packet
        }
        if first & 0x80 == 0 {
            c.past_first_flight = true; // short header: 1-RTT
            break;
        }
        let ty = (first & 0x30) >> 4;
        c.zero_rtt |= ty == ZERO_RTT;
        c.past_first_flight |= ty == HANDSHAKE;
        let parse = || -> Option<usize> {
            let mut i = 5;
            i += 1 + usize::from(*d.get(i)?);
            i += 1 + usize::from(*d.get(i)?);
            if ty == 0 {
                let (token, n) = varint(d.get(i..)?)?;
                i += n + token;
            }
            let (len, n) = varint(d.get(i..)?)?;
            Some(i + n + len)
        };
        match parse() {
            Some(end) if end <= d.len() => d = &d[end..],
            _ => break,
        }
    }
    c
}

type Queue = Arc<Mutex<Option<Vec<Vec<u8>>>>>;

/// A UDP relay between one client and the gateway. It starts out holding the
/// server's replies (so the client cannot leave its first flight: whatever it
/// sends goes as 0-RTT) and the client's handshake completion.
struct Relay {
    addr: SocketAddr,
    /// Client datagrams with 0-RTT packets forwarded so far.
    zero_rtt: watch::Receiver<usize>,
    client_held: Queue,
    server_held: Queue,
    front: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Queues `datagram` if `queue` is still holding; returns whether it did.
fn hold(queue: &Queue, datagram: &[u8], wanted: bool) -> bool {
    match queue.lock().unwrap().as_mut() {
        Some(q) if wanted => {
            q.push(datagram.to_vec());
            true
        }
        _ => false,
    }
}

impl Relay {
    async fn start(server: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let client_held: Queue = Arc::new(Mutex::new(Some(Vec::new())));
        let server_held: Queue = Arc::new(Mutex::new(Some(Vec::new())));
        let client = Arc::new(Mutex::new(None));
        let (zero_tx, zero_rtt) = watch::channel(0usize);
        let (f, b) = (front.clone(), back.clone());
        let (ch, sh, cl) = (client_held.clone(), server_held.clone(), client.clone());
        let task = tokio::spawn(async move {
            let mut up = vec![0u8; 65536];
            let mut down = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = f.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { continue };
                        *cl.lock().unwrap() = Some(from);
                        let datagram = &up[..n];
                        let carries = classify(datagram);
                        if !hold(&ch, datagram, carries.past_first_flight) {
                            let _ = b.send(datagram).await;
                            if carries.zero_rtt {
                                zero_tx.send_modify(|n| *n += 1);
                            }
                        }
                    }
                    r = b.recv(&mut down) => {
                        let Ok(n) = r else { continue };
                        let to = *cl.lock().unwrap();
                        if let Some(to) = to
                            && !hold(&sh, &down[..n], true)
                        {
                            let _ = f.send_to(&down[..n], to).await;
                        }
                    }
                }
            }
        });
        Self {
            addr,
            zero_rtt,
            client_held,
            server_held,
            front,
            back,
            client,
            task,
        }
    }

    /// Waits until more than `seen` client datagrams with 0-RTT packets went through.
    async fn zero_rtt_after(&self, seen: usize) -> usize {
        let mut rx = self.zero_rtt.clone();
        *rx.wait_for(|n| *n > seen).await.unwrap()
    }

    /// Delivers the server's replies from now on.
    async fn release_server(&self) {
        let queued = self.server_held.lock().unwrap().take().unwrap_or_default();
        let to = self.client.lock().unwrap().expect("client spoke first");
        for d in queued {
            self.front.send_to(&d, to).await.unwrap();
        }
    }

    /// Lets the client's handshake completion (and all later packets) through.
    async fn release_client(&self) {
        let queued = self.client_held.lock().unwrap().take().unwrap_or_default();
        for d in queued {
            self.back.send(&d).await.unwrap();
        }
    }
}

#[test]
fn classifies_first_flight_packets() {
    // Long header Initial: type 0, version 1, DCID len 1, SCID len 0, token len 0, length 1.
    let initial = [0xc0, 0, 0, 0, 1, 1, 9, 0, 0, 1, 0xaa];
    let zero_rtt = [0xd0, 0, 0, 0, 1, 1, 9, 0, 1, 0xbb];
    let handshake = [0xe0, 0, 0, 0, 1, 1, 9, 0, 1, 0xcc];
    assert_eq!(classify(&initial), Carries::default());
    assert_eq!(
        classify(&[&initial[..], &zero_rtt[..], &[0, 0, 0]].concat()),
        Carries {
            zero_rtt: true,
            past_first_flight: false
        }
    );
    assert!(classify(&[&initial[..], &handshake[..]].concat()).past_first_flight);
    assert!(classify(&[0x41, 1, 2, 3]).past_first_flight);
}

#[tokio::test]
async fn early_data_serves_safe_methods_and_answers_425_to_others() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "    quic:\n      zero-rtt: true\n").await;
    let h3_addr = gw.addr("edge/h3");
    let config = client_config(insecure_tls()).unwrap();

    // A full handshake first, so the client holds a resumption ticket.
    let first = H3Client::connect_config(h3_addr, "localhost", &config)
        .await
        .unwrap();
    assert_eq!(
        within(first.get("/warm")).await.unwrap().status,
        StatusCode::OK
    );
    drop(first);

    let relay = Relay::start(h3_addr).await;
    let (early, _accepted) = H3Client::connect_early(relay.addr, "localhost", &config)
        .await
        .unwrap()
        .expect("the gateway's ticket allows 0-RTT");
    // The h3 session setup (control streams) goes out as 0-RTT first.
    let setup = within(relay.zero_rtt_after(0)).await;
    let post = async {
        let req = Request::post(early.url("/early-post")).body(()).unwrap();
        early.send(req, [Bytes::from_static(b"pay")], None).await
    };
    let get = early.get("/early-get");
    // `join!` polls the requests first: their first poll writes head, body and FIN
    // into the connection before the relay lets the server's handshake through,
    // so the client can only send them as 0-RTT.
    let release = async {
        relay.zero_rtt_after(setup).await;
        relay.release_server().await;
    };
    let (post, get, ()) = within(async { tokio::join!(post, get, release) }).await;

    assert_eq!(post.unwrap().status, StatusCode::TOO_EARLY);
    let r = get.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json().unwrap()["headers"]["early-data"], "1");
    assert_eq!(up.hits(), 2, "the early POST never reached the upstream");

    relay.release_client().await;
    // Once the gateway has the client's Finished the same POST is served. The
    // gateway learns of it asynchronously, so, as RFC 8470 clients do, retry on 425.
    let served = within(async {
        loop {
            let post = Request::post(early.url("/late-post")).body(()).unwrap();
            let r = early
                .send(post, [Bytes::from_static(b"pay")], None)
                .await
                .unwrap();
            if r.status != StatusCode::TOO_EARLY {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(served.status, StatusCode::OK);
    assert!(
        served.json().unwrap()["headers"]
            .get("early-data")
            .is_none()
    );
}

#[tokio::test]
async fn early_data_is_off_by_default() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up, "").await;
    let h3_addr = gw.addr("edge/h3");
    let config = client_config(insecure_tls()).unwrap();
    let first = H3Client::connect_config(h3_addr, "localhost", &config)
        .await
        .unwrap();
    assert_eq!(
        within(first.get("/warm")).await.unwrap().status,
        StatusCode::OK
    );
    drop(first);
    let early = H3Client::connect_early(h3_addr, "localhost", &config)
        .await
        .unwrap();
    assert!(
        early.is_none(),
        "the gateway issued a ticket that allows early data"
    );
}

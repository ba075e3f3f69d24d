//! The access log: one line per request, apart from the application log and
//! whatever `--log` says. Lines are formatted on the request path and written
//! by one thread per destination, so a slow disk never stalls a request; when
//! the writer falls behind by [`QUEUE`] lines, further lines are dropped and
//! counted (the next written line says how many).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::access_log::{AccessLog, AccessLogFormat};

const QUEUE: usize = 64 << 10;

/// The TLS server name a connection's client sent, put in each request's
/// extensions by the listener.
#[derive(Clone, Debug)]
pub struct Sni(pub Arc<str>);

/// Everything one line says.
pub struct Entry<'a> {
    pub client: std::net::SocketAddr,
    pub listener: &'a str,
    pub protocol: &'static str,
    pub method: &'a str,
    pub uri: &'a str,
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub status: u16,
    pub route: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub cache: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: std::time::Duration,
    /// Until the upstream's response head.
    pub upstream: Option<std::time::Duration>,
    pub sni: Option<&'a str>,
}

struct Writer {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

fn writers() -> &'static Mutex<HashMap<Option<PathBuf>, Arc<Writer>>> {
    static W: OnceLock<Mutex<HashMap<Option<PathBuf>, Arc<Writer>>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

fn writer(path: &Option<PathBuf>) -> Option<Arc<Writer>> {
    let mut map = writers().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = map.get(path) {
        return Some(w.clone());
    }
    let mut out: Box<dyn Write + Send> = match path {
        None => Box::new(std::io::stdout()),
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e, "cannot open the access log");
                return None;
            }
        },
    };
    let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            let mut buf = std::io::BufWriter::new(&mut *out);
            while let Ok(line) = rx.recv() {
                let _ = buf.write_all(line.as_bytes());
                // Batch what is queued, then flush once.
                while let Ok(line) = rx.try_recv() {
                    let _ = buf.write_all(line.as_bytes());
                }
                let n = lost.swap(0, Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(buf, "{{\"dropped_lines\":{n}}}");
                }
                let _ = buf.flush();
            }
        })
        .ok()?;
    let w = Arc::new(Writer { tx, dropped });
    map.insert(path.clone(), w.clone());
    Some(w)
}

/// Formats `e` as `log` says and queues it for its writer.
pub fn write(log: &AccessLog, e: &Entry) {
    let Some(w) = writer(&log.path) else { return };
    let line = match log.format {
        AccessLogFormat::Json => json(e),
        AccessLogFormat::Combined => combined(e),
    };
    if let Err(TrySendError::Full(_)) = w.tx.try_send(line) {
        w.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn json(e: &Entry) -> String {
    let v = serde_json::json!({
        "time": httpdate::fmt_http_date(std::time::SystemTime::now()),
        "request_id": e.request_id,
        "client": e.client.to_string(),
        "listener": e.listener,
        "protocol": e.protocol,
        "method": e.method,
        "uri": e.uri,
        "host": e.host,
        "user_agent": e.user_agent,
        "referer": e.referer,
        "status": e.status,
        "route": e.route,
        "endpoint": e.endpoint,
        "cache": e.cache,
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "duration_ms": e.duration.as_secs_f64() * 1000.0,
        "upstream_ms": e.upstream.map(|d| d.as_secs_f64() * 1000.0),
        "tls_sni": e.sni,
    });
    format!("{v}\n")
}

/// `client - - [time] "METHOD uri PROTO" status bytes "referer" "user-agent" request-id duration_ms`.
fn combined(e: &Entry) -> String {
    let q = |s: Option<&str>| s.unwrap_or("-").replace('"', "\\\"");
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {:.3}\n",
        e.client.ip(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        e.method,
        e.uri.replace('"', "%22"),
        e.protocol,
        e.status,
        e.bytes_out,
        q(e.referer),
        q(e.user_agent),
        e.request_id.unwrap_or("-"),
        e.duration.as_secs_f64() * 1000.0,
    )
}

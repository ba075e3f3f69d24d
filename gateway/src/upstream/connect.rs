//! The upstream connector, counting the requests that wait for a new
//! connection: the service's share of queue depth that is not the
//! scale-from-zero hold. hyper's pool asks the connector only when no idle
//! connection can take a request, so a connect in progress is a request
//! waiting for a connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// [`HttpConnector`] plus the count of connects in progress.
#[derive(Clone, Debug)]
pub struct CountingConnector {
    inner: HttpConnector,
    connecting: Arc<AtomicU32>,
}

/// Decrements the count however the connect ends (done, failed, dropped).
struct Connecting(Arc<AtomicU32>);

impl Drop for Connecting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl CountingConnector {
    pub fn new(inner: HttpConnector, connecting: Arc<AtomicU32>) -> Self {
        Self { inner, connecting }
    }
}

type Connected = <HttpConnector as Service<Uri>>::Response;
type ConnectError = <HttpConnector as Service<Uri>>::Error;

impl Service<Uri> for CountingConnector {
    type Response = Connected;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        self.connecting.fetch_add(1, Relaxed);
        let guard = Connecting(self.connecting.clone());
        let connect = self.inner.call(dst);
        Box::pin(async move {
            let r = connect.await;
            drop(guard);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connect_counts_until_it_ends_however_it_ends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open: Uri = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up: Uri = format!("http://{}/", live.local_addr().unwrap())
            .parse()
            .unwrap();
        let n = Arc::new(AtomicU32::new(0));
        let mut c = CountingConnector::new(HttpConnector::new(), n.clone());
        let pending = c.call(up.clone());
        assert_eq!(n.load(Relaxed), 1, "counted from the call, before any poll");
        drop(pending);
        assert_eq!(n.load(Relaxed), 0, "a dropped connect is no longer waiting");
        let both = (c.call(up), c.call(open));
        assert_eq!(n.load(Relaxed), 2);
        let (ok, refused) = tokio::join!(both.0, both.1);
        assert!(ok.is_ok() && refused.is_err());
        assert_eq!(n.load(Relaxed), 0);
    }
}

//! A client's back-channel logout endpoint on loopback (OpenID Connect Back-Channel Logout
//! §2.5): it records the `logout_token` of every POST it receives and answers with the
//! statuses it was given, in order, then `200`. Tests see what the OP sent, how often, and
//! whether it retried.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

#[derive(Default)]
struct Inbox {
    tokens: Vec<String>,
    statuses: VecDeque<u16>,
}

/// A back-channel logout receiver serving on `127.0.0.1` until dropped.
pub struct LogoutReceiver {
    /// its URL (`http://127.0.0.1:PORT/backchannel`), to register as `backchannel_logout_uri`
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
    handle: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LogoutReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutReceiver")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, body: Bytes) -> StatusCode {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut inbox = inbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inbox.tokens.push(token);
    let status = inbox.statuses.pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl LogoutReceiver {
    /// Start one that answers `200` to everything.
    pub async fn start() -> Self {
        Self::answering(&[]).await
    }

    /// Start one that answers `statuses` in order to the first POSTs, then `200`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn answering(statuses: &[u16]) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox {
            tokens: Vec::new(),
            statuses: statuses.iter().copied().collect(),
        }));
        let app = axum::Router::new()
            .route("/backchannel", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!(
            "http://{}/backchannel",
            listener.local_addr().expect("address")
        );
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LogoutReceiver { url, inbox, handle }
    }

    /// The logout tokens received so far, in order (one per POST, retries included).
    pub fn received(&self) -> Vec<String> {
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tokens
            .clone()
    }

    /// Wait until `n` POSTs arrived, for at most `within`; what arrived by then.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LogoutReceiver {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

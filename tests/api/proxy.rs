//! A TCP proxy in front of Postgres that a test can pause (hold all traffic) or cut (drop every
//! connection and refuse new ones), to fake a database outage for one server only — or only for
//! its notification listener (the connections whose startup message names
//! `application_name=authd-listener`), to fake a silently stalled LISTEN connection.

use std::sync::Arc;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Open,
    Paused,
    Cut,
}

pub struct DbProxy {
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
    listener_mode: Arc<watch::Sender<Mode>>,
}

/// How the listener's connections introduce themselves (see `live::listener::listener_pool`).
const LISTENER_STARTUP: &[u8] = b"application_name\0authd-listener\0";

impl DbProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = watch::channel(Mode::Open);
        let (ltx, lrx) = watch::channel(Mode::Open);
        let upstream = upstream.to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut modes = Modes {
                    all: rx.clone(),
                    listener: None,
                };
                if modes.current() == Mode::Cut {
                    drop(client); // refused
                    continue;
                }
                let upstream = upstream.clone();
                let lrx = lrx.clone();
                tokio::spawn(async move {
                    // The startup message (plain text: the URL disables TLS) says who connects.
                    let mut first = vec![0u8; 16 * 1024];
                    let n = match client.read(&mut first).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    first.truncate(n);
                    if first
                        .windows(LISTENER_STARTUP.len())
                        .any(|w| w == LISTENER_STARTUP)
                    {
                        modes.listener = Some(lrx);
                    }
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(
                            pump(first, cr, sw, modes.clone()),
                            pump(Vec::new(), sr, cw, modes)
                        );
                    }
                });
            }
        });
        Self {
            port,
            mode: Arc::new(tx),
            listener_mode: Arc::new(ltx),
        }
    }

    /// A database URL that goes through the proxy (without TLS, so the proxy can tell the
    /// listener's connections from the others).
    pub fn url(&self, db_name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, db_name
        )
    }

    /// Every connection.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Only the notification listener's connections (LISTEN and heartbeat), on top of
    /// [`set`](Self::set).
    pub fn set_listener(&self, mode: Mode) {
        self.listener_mode.send_replace(mode);
    }
}

/// The modes that apply to one connection; the strictest wins.
#[derive(Clone)]
struct Modes {
    all: watch::Receiver<Mode>,
    listener: Option<watch::Receiver<Mode>>,
}

impl Modes {
    fn current(&mut self) -> Mode {
        let all = *self.all.borrow_and_update();
        let listener = self
            .listener
            .as_mut()
            .map_or(Mode::Open, |l| *l.borrow_and_update());
        match (all, listener) {
            (Mode::Cut, _) | (_, Mode::Cut) => Mode::Cut,
            (Mode::Paused, _) | (_, Mode::Paused) => Mode::Paused,
            _ => Mode::Open,
        }
    }

    /// Waits for any change; false once the proxy is gone.
    async fn changed(&mut self) -> bool {
        let Self { all, listener } = self;
        match listener {
            None => all.changed().await.is_ok(),
            Some(l) => tokio::select! {
                r = all.changed() => r.is_ok(),
                r = l.changed() => r.is_ok(),
            },
        }
    }

    /// Waits while paused; false when cut.
    async fn wait_open(&mut self) -> bool {
        loop {
            match self.current() {
                Mode::Open => return true,
                Mode::Cut => return false,
                Mode::Paused => {}
            }
            if !self.changed().await {
                return false;
            }
        }
    }
}

/// Copies one direction (starting with `first`); stops forwarding while paused, and drops the
/// connection when cut.
async fn pump(
    first: Vec<u8>,
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut modes: Modes,
) {
    if !first.is_empty() && (!modes.wait_open().await || to.write_all(&first).await.is_err()) {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !modes.wait_open().await {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            // Re-check the mode before reading; stop once the proxy is gone.
            open = modes.changed() => if open { continue } else { return },
        };
        // Bytes read before a pause are held until it ends.
        if !modes.wait_open().await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

//! A TCP proxy in front of Postgres that a test can pause (hold all traffic) or cut (drop every
//! connection and refuse new ones), to fake a database outage for one server only — or only for
//! its notification listener (the connections whose startup message names
//! `application_name=authd-listener`), to fake a silently stalled LISTEN connection. It also
//! counts what each pool sends (by the `application_name` of its connections), so a test can
//! see a request reach the database, or not, as it happens.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

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
    traffic: Traffic,
}

/// Per `application_name` (authd's request pool is `authd`, its listener `authd-listener`).
type Traffic = Arc<Mutex<HashMap<String, Sent>>>;

#[derive(Clone, Copy, Default, Debug)]
struct Sent {
    /// Every protocol message, the startup message included.
    messages: u64,
    /// Simple-protocol queries and extended-protocol executions.
    statements: u64,
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
        let traffic = Traffic::default();
        let counted = traffic.clone();
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
                let observer = Observer::new(counted.clone());
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
                            pump(first, cr, sw, modes.clone(), Some(observer)),
                            pump(Vec::new(), sr, cw, modes, None)
                        );
                    }
                });
            }
        });
        Self {
            port,
            mode: Arc::new(tx),
            listener_mode: Arc::new(ltx),
            traffic,
        }
    }

    /// Protocol messages the connections named `application_name` have sent so far (also while
    /// paused: they are counted on arrival, then held).
    pub fn messages(&self, application_name: &str) -> u64 {
        self.sent(application_name).messages
    }

    /// Statements (queries and executions) the connections named `application_name` have sent.
    pub fn statements(&self, application_name: &str) -> u64 {
        self.sent(application_name).statements
    }

    fn sent(&self, application_name: &str) -> Sent {
        let traffic = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        traffic.get(application_name).copied().unwrap_or_default()
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
}

/// Copies one direction (starting with `first`): bytes read while paused (or before a pause)
/// are held until it ends, and a cut drops the connection. It keeps reading while paused so
/// that `observer` (the client's side) sees what arrives as it arrives.
async fn pump(
    first: Vec<u8>,
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut modes: Modes,
    mut observer: Option<Observer>,
) {
    if let Some(o) = observer.as_mut() {
        o.feed(&first);
    }
    let mut held = first;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match modes.current() {
            Mode::Cut => return,
            Mode::Open if !held.is_empty() => {
                if to.write_all(&held).await.is_err() {
                    return;
                }
                held.clear();
            }
            Mode::Open | Mode::Paused => {}
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            // Re-check the mode; stop once the proxy is gone.
            open = modes.changed() => if open { continue } else { return },
        };
        if let Some(o) = observer.as_mut() {
            o.feed(&buf[..n]);
        }
        match modes.current() {
            Mode::Cut => return,
            Mode::Open if held.is_empty() => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Mode::Open | Mode::Paused => held.extend_from_slice(&buf[..n]),
        }
    }
}

/// Follows the frontend side of the Postgres wire protocol just enough to count messages: an
/// SSL/GSS request if any (the proxy's URL disables TLS, so it stays plain), the startup message
/// (which names the `application_name`), then typed, length-prefixed messages. Anything else
/// (TLS after all, a cancel request) stops the counting for that connection.
struct Observer {
    traffic: Traffic,
    buf: Vec<u8>,
    app: Option<String>,
    broken: bool,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const PROTOCOL_3: u32 = 196_608;

impl Observer {
    fn new(traffic: Traffic) -> Self {
        Self {
            traffic,
            buf: Vec::new(),
            app: None,
            broken: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            // Untyped messages before the startup message, typed ones after it.
            let (header, typed) = if self.app.is_none() {
                (8, false)
            } else {
                (5, true)
            };
            if self.buf.len() < header {
                return;
            }
            let at = usize::from(typed);
            let len = u32::from_be_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]) as usize;
            if !(4..=(1 << 24)).contains(&len) {
                self.broken = true;
                return;
            }
            let total = at + len;
            if self.buf.len() < total {
                return;
            }
            let message: Vec<u8> = self.buf.drain(..total).collect();
            if typed {
                let statement = matches!(message[0], b'Q' | b'E');
                self.count(statement);
                continue;
            }
            match u32::from_be_bytes([message[4], message[5], message[6], message[7]]) {
                SSL_REQUEST | GSSENC_REQUEST => {}
                PROTOCOL_3 => {
                    self.app = Some(application_name(&message[8..]));
                    self.count(false);
                }
                _ => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    fn count(&self, statement: bool) {
        let mut traffic = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        let sent = traffic
            .entry(self.app.clone().unwrap_or_default())
            .or_default();
        sent.messages += 1;
        sent.statements += u64::from(statement);
    }
}

/// The `application_name` among the startup message's NUL-terminated name/value pairs.
fn application_name(params: &[u8]) -> String {
    let mut fields = params.split(|b| *b == 0);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if name == b"application_name" {
            return String::from_utf8_lossy(value).into_owned();
        }
    }
    String::new()
}

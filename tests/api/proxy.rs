//! A TCP proxy in front of Postgres that a test can pause (hold all traffic) or cut (drop every
//! connection and refuse new ones), to fake a database outage for one server only.

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
}

impl DbProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = watch::channel(Mode::Open);
        let upstream = upstream.to_string();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mode = rx.clone();
                if *mode.borrow() == Mode::Cut {
                    drop(client); // refused
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(pump(cr, sw, mode.clone()), pump(sr, cw, mode));
                    }
                });
            }
        });
        Self {
            port,
            mode: Arc::new(tx),
        }
    }

    /// A database URL that goes through the proxy.
    pub fn url(&self, db_name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db_name)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Copies one direction; stops forwarding while paused, and drops the connection when cut.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Wait while paused; give up when cut.
        loop {
            match *mode.borrow_and_update() {
                Mode::Open => break,
                Mode::Cut => return,
                Mode::Paused => {}
            }
            if mode.changed().await.is_err() {
                return;
            }
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = mode.changed() => continue, // re-check the mode before reading
        };
        // Bytes read before a pause are held until it ends.
        loop {
            match *mode.borrow_and_update() {
                Mode::Open => break,
                Mode::Cut => return,
                Mode::Paused => {}
            }
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

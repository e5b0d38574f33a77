//! Fast failure while the database is down. sqlx retries a refused connection until the pool's
//! acquire timeout (3 s), so without this every request of an outage would wait 3 s for its
//! 503. A database-caused 503 makes us suspicious: a prober opens a real connection at once.
//! If that fails the database is marked down, and routes that need it answer 503 immediately
//! while the prober retries every 200 ms; the first connection that succeeds ends it. A pool
//! that is merely busy (its probe connects fine) never marks the database down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

const PROBE_EVERY: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct DbHealth {
    down: AtomicBool,
    probing: AtomicBool,
    options: PgConnectOptions,
}

impl DbHealth {
    pub fn new(options: PgConnectOptions) -> Arc<Self> {
        Arc::new(Self {
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            options,
        })
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// A request failed because of the database: check whether it answers (one prober at a
    /// time, however many requests report).
    pub fn suspect(self: &Arc<Self>) {
        if !self.probing.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().probe_until_up());
        }
    }

    async fn probe_until_up(self: Arc<Self>) {
        loop {
            let probe =
                tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(&self.options))
                    .await;
            if let Ok(Ok(conn)) = probe {
                let _ = conn.close().await;
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("database answers again");
                }
                self.probing.store(false, Ordering::Release);
                return;
            }
            if !self.down.swap(true, Ordering::AcqRel) {
                tracing::warn!("database unreachable; failing fast until it answers again");
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
}

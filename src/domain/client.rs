//! Where a request comes from.

use std::net::IpAddr;

/// Where a request comes from, as recorded on sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

pub const MAX_USER_AGENT_CHARS: usize = 256;

impl ClientInfo {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

//! Logs and metrics.

pub mod logs;
pub mod metrics;

pub use logs::{LogTarget, init};

//! Types that can only hold valid values: parse at the edge, never re-validate inside.

mod email;
mod password;

pub use email::Email;
pub use password::{NewPassword, Password, preload_common_passwords};

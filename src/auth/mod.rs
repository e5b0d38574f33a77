//! Credentials and tokens: passwords, access tokens, refresh tokens, the cookie, and the
//! extractors that authenticate requests.

pub mod cookies;
pub mod csrf;
pub mod extractors;
pub mod jwt;
pub mod password;
pub mod refresh;

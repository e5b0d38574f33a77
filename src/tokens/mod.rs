//! Token material: access tokens (JWTs, RFC 9068) and their signing keys, refresh tokens
//! (opaque, hashed, rotated), and the one place the refresh cookie is built and read.

pub mod cookies;
pub mod email;
pub mod jwt;
pub mod keypair;
pub mod keys;
pub mod refresh;

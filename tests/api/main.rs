//! authd's integration tests: one binary, a fresh database and a real server per test.

mod helpers;
mod hostile;
mod identities;
mod introspect;
mod keys;

mod admin;
mod audit;
mod browser_safety;
mod certs;
mod cleanup;
mod cli;
mod cookies;
mod credentials;
mod deletion;
mod email;
mod embedded;
mod errors;
mod faults;
mod feed;
mod login;
mod logout;
mod observability;
mod ops;
mod password;
mod pg_tls;
mod privileges;
mod proxy;
mod refresh;
mod register;
mod revocation;
mod sessions;
mod smtp;
mod tokens;
mod verifier;
mod verifier_tls;

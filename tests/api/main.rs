//! authd's integration tests: one binary, a fresh database and a real server per test.

mod helpers;
mod hostile;
mod identities;
mod introspect;
mod keys;

mod admin;
mod algs;
mod audit;
mod browser_safety;
mod cleanup;
mod cli;
mod cookies;
mod credentials;
mod deletion;
mod email;
mod errors;
mod faults;
mod feed;
mod login;
mod logout;
mod observability;
mod ops;
mod password;
mod privileges;
mod proxy;
mod refresh;
mod register;
mod revocation;
mod sessions;
mod smtp;
mod tokens;
mod verifier;
mod verify_examples;

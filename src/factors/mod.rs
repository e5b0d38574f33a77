//! Factors: ways to prove who someone is. Each one ends by handing a verified user id to the
//! session layer (`session::login`); none writes sessions itself.

pub mod argon2;
pub mod email;
pub mod password;

//! Factors: ways to prove who someone is. Each one ends by handing a verified user id to the
//! session layer (`session::login`); none writes sessions itself. [`reauth`] is the rule for
//! proving it again before a sensitive action on the signed-in account.

pub mod argon2;
pub mod email;
pub mod password;
pub mod reauth;

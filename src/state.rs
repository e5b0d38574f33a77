//! Shared application state, handed to handlers through `State<AppState>`.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::{cookies::CookieSettings, jwt::Jwt, password::PasswordHasher, refresh::SuccessorKey},
    config::Config,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub jwt: Arc<Jwt>,
    pub hasher: Arc<PasswordHasher>,
    pub successor_key: Arc<SuccessorKey>,
    pub cookies: Arc<CookieSettings>,
}

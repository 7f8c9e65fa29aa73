//! Agent accounts and console sessions: who an agent is, how they prove it
//! (argon2id password hashes, random session tokens kept only as SHA-256
//! digests), and for how long (`server.session_hours`).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::ServiceError;
use crate::store::{Agent, AgentRole, Store};

/// Shortest password accepted (NIST SP 800-63B's minimum for chosen secrets).
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 256;
const MAX_NAME_CHARS: usize = 32;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// 2–32 characters: lower-case letters, digits, `.`, `_`, `-`.
    pub login: String,
    /// The name shoppers see (1–32 characters).
    pub display_name: String,
    pub role: AgentRole,
    /// At least 8 characters.
    pub password: String,
}

/// Changes to an account; omitted fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub display_name: Option<String>,
    pub role: Option<AgentRole>,
    /// A new password ends the agent's sessions.
    pub password: Option<String>,
    /// Disabling ends the agent's sessions and returns their conversations to the queue.
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

/// A console session: send `token` as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    /// Unix seconds; after it the token is refused (401).
    pub expires_at: i64,
    pub agent: Agent,
}

pub struct Accounts {
    store: Arc<Store>,
    session_secs: i64,
}

impl Accounts {
    pub fn new(store: Arc<Store>, session_hours: u64) -> Accounts {
        Accounts { store, session_secs: (session_hours.max(1) * 3600) as i64 }
    }

    pub fn create(&self, req: &NewAgent) -> Result<Agent, ServiceError> {
        let login = req.login.trim();
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        if !(2..=32).contains(&login.len()) || !login.chars().all(valid) {
            return Err(ServiceError::Invalid(format!(
                "`login` {login:?} must be 2–32 lower-case letters, digits, '.', '_' or '-'"
            )));
        }
        let name = display_name(&req.display_name)?;
        let hash = hash_password(&req.password)?;
        Ok(self.store.create_agent(login, name, req.role, &hash)?)
    }

    pub fn list(&self) -> Result<Vec<Agent>, ServiceError> {
        Ok(self.store.agents()?)
    }

    pub fn update(&self, id: i64, req: &AgentUpdate) -> Result<Agent, ServiceError> {
        let name = req.display_name.as_deref().map(display_name).transpose()?;
        let hash = req.password.as_deref().map(hash_password).transpose()?;
        Ok(self.store.update_agent(id, name, req.role, hash.as_deref(), req.disabled)?)
    }

    /// A new session for the right login and password. A wrong password and
    /// an unknown login get the same answer (and the same work: a hash is
    /// verified either way), so logins cannot be probed.
    pub fn login(&self, req: &LoginRequest) -> Result<Session, ServiceError> {
        let found = self.store.agent_login(req.login.trim())?;
        let hash = found.as_ref().map_or(DUMMY_HASH.as_str(), |(_, h)| h.as_str());
        let verified = verify_password(&req.password, hash);
        let Some((agent, _)) = found.filter(|_| verified) else {
            return Err(ServiceError::Unauthorized("wrong login or password".into()));
        };
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let expires_at = self.store.now() + self.session_secs;
        self.store.create_session(&digest(&token), agent.id, expires_at)?;
        Ok(Session { token, expires_at, agent })
    }

    pub fn logout(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_session(&digest(token))?)
    }

    /// The agent a session token belongs to; None: unknown, expired, or the
    /// agent was disabled.
    pub fn agent(&self, token: &str) -> Result<Option<Agent>, ServiceError> {
        Ok(self.store.session_agent(&digest(token), self.store.now())?)
    }
}

fn display_name(name: &str) -> Result<&str, ServiceError> {
    let name = name.trim();
    if crate::kb::is_blank(name) || name.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::Invalid(format!("`display_name` must be 1–{MAX_NAME_CHARS} characters")));
    }
    Ok(name)
}

fn hash_password(password: &str) -> Result<String, ServiceError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(ServiceError::Invalid(format!(
            "`password` must be {MIN_PASSWORD_CHARS}–{MAX_PASSWORD_CHARS} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Invalid(format!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Verified against when the login is unknown, so that case costs the same.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not-a-real-password").expect("a valid password"));

/// Session tokens are stored as this digest only.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_salted_hashes_that_verify_only_the_right_password() {
        let a = hash_password("店小二 password").unwrap();
        let b = hash_password("店小二 password").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(verify_password("店小二 password", &a));
        assert!(!verify_password("店小二 passwor", &a));
        assert!(!verify_password("店小二 password", "not a hash"));
        assert!(hash_password("short").is_err());
    }
}

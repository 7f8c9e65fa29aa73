//! The services' one error type. Each variant is one kind of failure with a
//! stable machine-readable code; `api/error.rs` maps kinds to HTTP in one
//! place and the CLI prints the message.

use crate::engine::EngineError;
use crate::kb::KbError;
use crate::retrieval::RetrievalError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or names something that cannot exist.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Missing, wrong or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Known caller, not allowed to do this (an agent on an admin route).
    #[error("{0}")]
    Forbidden(String),
    /// The request is valid but conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The knowledge files on the server have problems: the live knowledge
    /// base stays as it was and nothing was stored.
    #[error("the knowledge files have problems; nothing changed: {0}")]
    KbFiles(KbError),
    /// Building the new engine failed (index, model, disk): nothing changed.
    #[error("rebuilding the knowledge base failed; nothing changed: {0}")]
    Rebuild(EngineError),
    /// Too much work queued or the deadline passed before it started.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Storage(StoreError),
    #[error("{0}")]
    Retrieval(#[from] RetrievalError),
}

impl ServiceError {
    /// Stable code per cause, documented in the README.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "invalid_input",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Unauthorized(_) => "unauthorized",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::KbFiles(_) => "kb_files_invalid",
            ServiceError::Rebuild(_) => "rebuild_failed",
            ServiceError::Busy(_) => "overloaded",
            ServiceError::Storage(_) => "storage_failed",
            ServiceError::Retrieval(_) => "retrieval_failed",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(what),
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Storage(other),
        }
    }
}

//! xiaoer (店小二): an e-commerce customer-service answer engine.
//!
//! Data flows one way: knowledge files ([`kb`]) → text analysis ([`text`]) →
//! index ([`index`]) → retrieval ([`retrieval`]) → evaluation / CLI.
//! See `ARCHITECTURE.md` for what each module owns and may depend on.

pub mod api;
pub mod commands;
pub mod config;
pub mod decision;
pub mod embed;
pub mod engine;
pub mod eval;
pub mod gaps;
pub mod index;
pub mod kb;
pub mod kb_calibration;
pub mod retrieval;
pub mod service;
pub mod store;
pub mod text;
pub mod vectors;

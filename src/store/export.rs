//! Conversations of a time window, message by message, for operators'
//! own analysis and audits (`GET /v1/conversations/export`).

use super::db::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One message of an exported conversation, with what the bot decided on
/// it (shopper messages the bot read).
#[derive(Debug, Clone, Serialize)]
pub struct ExportedMessage {
    pub conversation_id: String,
    pub locale: String,
    pub product_id: Option<String>,
    /// The conversation's status now.
    pub status: String,
    pub message_id: i64,
    /// Unix seconds …
    pub created_at: i64,
    /// … and the same in RFC 3339 (UTC), for spreadsheets.
    pub time: String,
    pub role: String,
    /// An agent's display name.
    pub author: Option<String>,
    pub text: String,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub faq_id: Option<String>,
    pub confidence: Option<f64>,
}

impl ExportedMessage {
    /// The CSV header: the fields, in order.
    pub const COLUMNS: [&str; 14] = [
        "conversation_id",
        "locale",
        "product_id",
        "status",
        "message_id",
        "created_at",
        "time",
        "role",
        "author",
        "text",
        "action",
        "reason",
        "faq_id",
        "confidence",
    ];

    /// The fields as CSV cells, in [`Self::COLUMNS`] order (absent ones empty).
    pub fn cells(&self) -> [String; 14] {
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.conversation_id.clone(),
            self.locale.clone(),
            or_empty(&self.product_id),
            self.status.clone(),
            self.message_id.to_string(),
            self.created_at.to_string(),
            self.time.clone(),
            self.role.clone(),
            or_empty(&self.author),
            self.text.clone(),
            or_empty(&self.action),
            or_empty(&self.reason),
            or_empty(&self.faq_id),
            self.confidence.map(|c| c.to_string()).unwrap_or_default(),
        ]
    }
}

impl Store {
    /// The messages of the conversations started in `[from, to)`, by
    /// conversation (oldest first), each in order.
    pub fn export_messages(&self, from: i64, to: i64) -> Result<Vec<ExportedMessage>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT c.id, c.locale, c.product_id, c.status, m.id, m.created_at, m.role, m.author, m.text,
                    d.action, d.reason, d.faq_id, d.confidence
             FROM conversations c JOIN messages m ON m.conversation_id = c.id
                  LEFT JOIN decisions d ON d.message_id = m.id
             WHERE c.created_at >= ?1 AND c.created_at < ?2
             ORDER BY c.created_at, c.id, m.id",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(ExportedMessage {
                conversation_id: r.get(0)?,
                locale: r.get(1)?,
                product_id: r.get(2)?,
                status: r.get(3)?,
                message_id: r.get(4)?,
                created_at: r.get(5)?,
                time: chrono::DateTime::from_timestamp(r.get(5)?, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
                role: r.get(6)?,
                author: r.get(7)?,
                text: r.get(8)?,
                action: r.get(9)?,
                reason: r.get(10)?,
                faq_id: r.get(11)?,
                confidence: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

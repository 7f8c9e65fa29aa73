//! Canned replies (快捷短语): store-wide ones and each agent's own; and the
//! texts agents sent as edited drafts, from which new ones are suggested.

use super::db::{self, OptionalExtension, Row, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Store, StoreError};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CannedReply {
    pub id: i64,
    /// What `/` in the reply box searches besides the text (e.g. "退货地址").
    pub title: String,
    pub text: String,
    /// Only its agent sees it; otherwise store-wide.
    pub personal: bool,
    /// The agent a personal reply belongs to.
    #[serde(skip)]
    pub agent_id: Option<i64>,
}

fn canned_row(r: &Row) -> db::Result<CannedReply> {
    let agent_id: Option<i64> = r.get(3)?;
    Ok(CannedReply { id: r.get(0)?, title: r.get(1)?, text: r.get(2)?, personal: agent_id.is_some(), agent_id })
}

const CANNED_SELECT: &str = "SELECT id, title, text, agent_id FROM canned_replies";

impl Store {
    /// The store-wide replies and `agent`'s own, store-wide first, by title.
    pub fn canned_replies(&self, agent: Option<i64>) -> Result<Vec<CannedReply>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(&format!(
            "{CANNED_SELECT} WHERE agent_id IS NULL OR agent_id = ?1 ORDER BY agent_id IS NOT NULL, title, id"
        ))?;
        Ok(stmt.query_map([agent], canned_row)?.collect::<Result<_, _>>()?)
    }

    pub fn canned_reply(&self, id: i64) -> Result<CannedReply, StoreError> {
        self.read()?
            .query_row(&format!("{CANNED_SELECT} WHERE id = ?1"), [id], canned_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("canned reply {id}")))
    }

    /// A new reply of `agent` (None: store-wide), added by `by`.
    pub fn add_canned_reply(
        &self,
        agent: Option<i64>,
        title: &str,
        text: &str,
        by: Option<i64>,
    ) -> Result<CannedReply, StoreError> {
        let conn = self.conn()?;
        let id = conn.query_row(
            "INSERT INTO canned_replies (agent_id, title, text, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id",
            params![agent, title, text, by, self.now()],
            |r| r.get(0),
        )?;
        let (title, text) = (title.to_string(), text.to_string());
        Ok(CannedReply { id, title, text, personal: agent.is_some(), agent_id: agent })
    }

    pub fn delete_canned_reply(&self, id: i64) -> Result<(), StoreError> {
        match self.conn()?.execute("DELETE FROM canned_replies WHERE id = ?1", [id])? {
            0 => Err(StoreError::NotFound(format!("canned reply {id}"))),
            _ => Ok(()),
        }
    }

    /// What agents sent as edited drafts since `since`, oldest first.
    pub fn edited_drafts(&self, since: i64) -> Result<Vec<String>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT final_text FROM feedback WHERE verdict = 'edited' AND final_text IS NOT NULL AND created_at >= ?1
             ORDER BY id",
        )?;
        Ok(stmt.query_map([since], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }
}

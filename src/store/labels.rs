//! What the store's traffic says about which FAQ answers which question: a
//! shopper's 👍/👎 on an automatic answer, an agent's verdict on a drafted
//! FAQ answer. The knowledge base's verifier learns from them.

use super::db::params;

use super::{Store, StoreError, Verdict};

/// A shopper question someone judged one FAQ's answer for.
#[derive(Debug, Clone)]
pub struct Judged {
    pub question: String,
    /// The conversation's product page.
    pub page: Option<String>,
    pub faq_id: String,
    pub judgement: Judgement,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub enum Judgement {
    /// The shopper's rating of the automatic answer.
    Rated { helpful: bool },
    /// The agent's verdict on the drafted answer, and what was sent.
    Draft { verdict: Verdict, draft: String, sent: Option<String> },
}

impl Store {
    /// The newest `limit` ratings and the newest `limit` verdicts on drafts
    /// (that had a shopper message to draft for), oldest first.
    pub fn judged(&self, limit: usize) -> Result<Vec<Judged>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT m.text, c.product_id, d.faq_id, r.helpful, r.created_at
             FROM ratings r JOIN decisions d ON d.id = r.decision_id JOIN messages m ON m.id = d.message_id
                  JOIN conversations c ON c.id = d.conversation_id
             WHERE d.faq_id IS NOT NULL ORDER BY r.created_at DESC, r.decision_id DESC LIMIT ?1",
        )?;
        let mut judged = stmt
            .query_map([limit as i64], |r| {
                Ok(Judged {
                    question: r.get(0)?,
                    page: r.get(1)?,
                    faq_id: r.get(2)?,
                    judgement: Judgement::Rated { helpful: r.get(3)? },
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT m.text, c.product_id, s.faq_id, f.verdict, s.text, f.final_text, f.created_at
             FROM feedback f JOIN suggestions s ON s.id = f.suggestion_id JOIN messages m ON m.id = s.message_id
                  JOIN conversations c ON c.id = s.conversation_id
             ORDER BY f.created_at DESC, f.id DESC LIMIT ?1",
        )?;
        let drafts = stmt.query_map(params![limit as i64], |r| {
            Ok(Judged {
                question: r.get(0)?,
                page: r.get(1)?,
                faq_id: r.get(2)?,
                judgement: Judgement::Draft { verdict: r.get(3)?, draft: r.get(4)?, sent: r.get(5)? },
                created_at: r.get(6)?,
            })
        })?;
        for d in drafts {
            judged.push(d?);
        }
        judged.sort_by_key(|j| j.created_at);
        Ok(judged)
    }
}

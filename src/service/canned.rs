//! Canned replies (快捷短语): store-wide ones (admins add them) and each
//! agent's own, searched as the agent types `/…` in the reply box; texts
//! agents keep sending as edited drafts are suggested as new ones.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ServiceError;
use crate::store::{Actor, CannedReply, Store};
use crate::text::fold;

/// Longest title (what `/` finds a reply by).
const MAX_TITLE_CHARS: usize = 40;
/// An edited draft text sent this many times is suggested as a canned reply …
const SUGGEST_AFTER: usize = 3;
/// … counting the sends of this many last days.
const SUGGEST_DAYS: i64 = 30;
/// At most this many suggestions, most sent first.
const MAX_SUGGESTIONS: usize = 10;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCannedReply {
    pub title: String,
    pub text: String,
    /// Only the agent adding it sees it (default: store-wide, which only admins may add).
    #[serde(default)]
    pub personal: bool,
}

/// An edited draft agents keep sending.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CannedSuggestion {
    pub text: String,
    /// How often it was sent in the last 30 days.
    pub sent: usize,
}

pub struct Canned {
    store: Arc<Store>,
    max_text_chars: usize,
}

impl Canned {
    pub fn new(store: Arc<Store>, max_text_chars: usize) -> Canned {
        Canned { store, max_text_chars }
    }

    /// The replies `actor` may use whose title or text contains `query`
    /// (case, full-width and traditional characters folded); all without one.
    pub fn search(&self, actor: &Actor, query: Option<&str>) -> Result<Vec<CannedReply>, ServiceError> {
        let mut replies = self.store.canned_replies(actor.agent_id())?;
        if let Some(q) = query.map(|q| fold(q.trim())).filter(|q| !q.is_empty()) {
            replies.retain(|r| fold(&r.title).contains(&q) || fold(&r.text).contains(&q));
        }
        Ok(replies)
    }

    pub fn add(&self, actor: &Actor, new: &NewCannedReply) -> Result<CannedReply, ServiceError> {
        let title = new.title.trim();
        let text = super::message_text(&new.text, self.max_text_chars)?;
        if crate::kb::is_blank(title) || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ServiceError::Invalid(format!("`title` must be 1 to {MAX_TITLE_CHARS} characters")));
        }
        let owner = match (new.personal, actor.agent_id()) {
            (true, None) => return Err(ServiceError::Invalid("the API key has no personal replies".into())),
            (true, Some(me)) => Some(me),
            (false, _) if !actor.is_admin() => {
                return Err(ServiceError::Forbidden("only admins add store-wide replies (set `personal`)".into()));
            }
            (false, _) => None,
        };
        Ok(self.store.add_canned_reply(owner, title, text, actor.agent_id())?)
    }

    /// Deletes a reply: one's own, or (admins) a store-wide one. Another
    /// agent's personal reply is "not found".
    pub fn delete(&self, actor: &Actor, id: i64) -> Result<(), ServiceError> {
        let reply = self.store.canned_reply(id)?;
        match reply.agent_id {
            Some(owner) if Some(owner) != actor.agent_id() => Err(ServiceError::NotFound(format!("canned reply {id}"))),
            None if !actor.is_admin() => Err(ServiceError::Forbidden("only admins delete store-wide replies".into())),
            _ => Ok(self.store.delete_canned_reply(id)?),
        }
    }

    /// Edited drafts sent at least three times in the last 30 days (the
    /// same text once blanks are collapsed) that are no canned reply yet.
    pub fn suggestions(&self, actor: &Actor) -> Result<Vec<CannedSuggestion>, ServiceError> {
        let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        let known: Vec<String> = self.store.canned_replies(actor.agent_id())?.iter().map(|r| squash(&r.text)).collect();
        let mut sent: HashMap<String, usize> = HashMap::new();
        for text in self.store.edited_drafts(self.store.now() - SUGGEST_DAYS * 86_400)? {
            *sent.entry(squash(&text)).or_default() += 1;
        }
        let mut out: Vec<CannedSuggestion> = sent
            .into_iter()
            .filter(|(text, n)| *n >= SUGGEST_AFTER && !known.contains(text))
            .map(|(text, sent)| CannedSuggestion { text, sent })
            .collect();
        out.sort_by(|a, b| b.sent.cmp(&a.sent).then_with(|| a.text.cmp(&b.text)));
        out.truncate(MAX_SUGGESTIONS);
        Ok(out)
    }
}

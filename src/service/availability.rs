//! Whether a human can take a handed-off shopper now: the store's service
//! hours (`[service]` in the configuration, China time by default) and the
//! agents present (a connected console not set away, on any replica). A
//! store without hours is served around the clock and keeps the plain
//! waiting notice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ServiceError, lock};
use crate::store::{SharedConsole, Store};

/// `[service]`: when agents work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    /// Daily service hours, `HH:MM-HH:MM` in `utc_offset` time (a window
    /// past midnight such as `20:00-02:00` is allowed). Empty (default): the
    /// store serves around the clock and a handoff always waits for an agent.
    pub hours: String,
    /// The store's time zone as an offset from UTC (default `+08:00`, China).
    pub utc_offset: String,
    /// Give each conversation handed to a human to the least-loaded present
    /// agent (a logged-in console, not away) at once, instead of leaving it in
    /// the queue for someone to take (default false).
    pub auto_assign: bool,
    /// The most conversations automatic assignment gives one agent at a time
    /// (default 5); beyond it they wait in the queue.
    pub max_conversations: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { hours: String::new(), utc_offset: "+08:00".into(), auto_assign: false, max_conversations: 5 }
    }
}

/// Parsed service hours.
#[derive(Debug, Clone, Copy)]
pub struct ServiceHours {
    open: NaiveTime,
    close: NaiveTime,
    zone: FixedOffset,
}

impl ServiceHours {
    /// `None` for a store open around the clock; an error names the bad key.
    pub fn parse(config: &ServiceConfig) -> Result<Option<ServiceHours>, ServiceError> {
        if config.hours.trim().is_empty() {
            return Ok(None);
        }
        let bad = |key: &str, value: &str, want: &str| {
            ServiceError::Invalid(format!("configuration `service.{key}` = {value:?}: expected {want}"))
        };
        let zone: FixedOffset =
            config.utc_offset.parse().map_err(|_| bad("utc_offset", &config.utc_offset, "e.g. +08:00"))?;
        let window = || bad("hours", &config.hours, "HH:MM-HH:MM, e.g. 09:00-22:00");
        let (open, close) = config.hours.split_once('-').ok_or_else(window)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| window());
        let (open, close) = (time(open)?, time(close)?);
        if open == close {
            return Err(window());
        }
        Ok(Some(ServiceHours { open, close, zone }))
    }

    fn local(&self, unix: i64) -> DateTime<FixedOffset> {
        self.zone.timestamp_opt(unix, 0).single().unwrap_or_else(|| self.zone.timestamp_opt(0, 0).unwrap())
    }

    pub fn is_open(&self, unix: i64) -> bool {
        let t = self.local(unix).time();
        match self.open < self.close {
            true => self.open <= t && t < self.close,
            false => t >= self.open || t < self.close,
        }
    }

    /// The next opening at or after `unix` (unix seconds).
    pub fn next_opening(&self, unix: i64) -> i64 {
        let local = self.local(unix);
        let today = local.date_naive().and_time(self.open);
        let at = match local.naive_local() <= today {
            true => today,
            false => today + Duration::days(1),
        };
        at.and_local_timezone(self.zone).single().map_or(unix, |d| d.timestamp())
    }

    /// `09:00-22:00` as shoppers read it.
    pub fn window(&self) -> String {
        format!("{}–{}", self.open.format("%H:%M"), self.close.format("%H:%M"))
    }

    /// An opening time `at` as shoppers read it at `now`, in the store's
    /// time: `09:00`, or `明天 09:00` / `tomorrow 09:00` when it is tomorrow.
    pub fn clock(&self, at: i64, now: i64, zh: bool) -> String {
        let time = self.local(at).format("%H:%M");
        match (self.local(at).date_naive() > self.local(now).date_naive(), zh) {
            (false, _) => time.to_string(),
            (true, true) => format!("明天 {time}"),
            (true, false) => format!("tomorrow {time}"),
        }
    }
}

/// Why nobody can take a handed-off shopper now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// Outside the store's service hours.
    OutsideHours,
    /// Within service hours, but no agent's console is connected (or all are away).
    NoAgent,
}

/// Told to a shopper handed off while no human can answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Offline {
    pub reason: OfflineReason,
    /// The service hours, e.g. `09:00–22:00` (store time).
    pub hours: String,
    /// When service resumes (unix seconds): the next opening outside hours,
    /// none when within hours and only the agents are missing.
    pub resumes_at: Option<i64>,
}

/// A console not refreshed for this long (its replica was killed) is gone.
const CONSOLE_STALE_MS: i64 = 5_000;

/// The agents' consoles connected now, each present or away: this
/// process's own, and the other replicas' as last read from the store
/// (`sync`, every second).
pub struct Presence {
    store: Arc<Store>,
    /// This process among the replicas.
    replica: String,
    consoles: Mutex<HashMap<u64, Console>>,
    /// Consoles that disconnected since the last `sync`.
    gone: Mutex<Vec<u64>>,
    /// The other replicas' consoles, and when they were read (a cache the
    /// store could not refresh for `CONSOLE_STALE_MS` counts no longer).
    others: Mutex<(Option<std::time::Instant>, Vec<SharedConsole>)>,
    next: AtomicU64,
}

struct Console {
    /// The console's own id (to set itself away).
    name: Option<String>,
    /// The logged-in agent (None: the API key).
    agent: Option<i64>,
    away: bool,
}

/// Keeps one console counted as connected until dropped (its stream ended).
pub struct Connected {
    presence: Arc<Presence>,
    id: u64,
}

impl Drop for Connected {
    fn drop(&mut self) {
        lock(&self.presence.consoles).remove(&self.id);
        lock(&self.presence.gone).push(self.id);
    }
}

impl Presence {
    pub fn new(store: Arc<Store>) -> Presence {
        Presence {
            store,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            consoles: Mutex::default(),
            gone: Mutex::default(),
            others: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    /// `agent`'s console connected; `name` (the console's own id) lets it set itself away.
    pub fn connect(self: &Arc<Self>, name: Option<String>, agent: Option<i64>) -> Connected {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.consoles).insert(id, Console { name, agent, away: false });
        Connected { presence: self.clone(), id }
    }

    /// Marks the console `name` away or back, whichever replica it is
    /// connected to. Blocking (the store).
    pub fn set_away(&self, name: &str, away: bool) -> Result<(), ServiceError> {
        let mut found = false;
        for c in lock(&self.consoles).values_mut().filter(|c| c.name.as_deref() == Some(name)) {
            c.away = away;
            found = true;
        }
        for c in lock(&self.others).1.iter_mut().filter(|c| c.name.as_deref() == Some(name)) {
            c.away = away;
            found = true;
        }
        // Stored for the other replicas (a console not stored yet is by the next `sync`, as it is here).
        let stored = self.store.set_console_away(name, away)?;
        (found || stored > 0).then_some(()).ok_or_else(|| ServiceError::NotFound(format!("connected console {name:?}")))
    }

    /// Consoles connected and not away.
    pub fn present(&self) -> usize {
        let here = lock(&self.consoles).values().filter(|c| !c.away).count();
        here + self.others().iter().filter(|c| !c.away).count()
    }

    /// The agents with a console connected and not away, by id.
    pub fn present_agents(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = lock(&self.consoles).values().filter(|c| !c.away).filter_map(|c| c.agent).collect();
        ids.extend(self.others().iter().filter(|c| !c.away).filter_map(|c| c.agent_id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Shares this process's consoles through the store and reads the other
    /// replicas' (and away flags set through them). Blocking.
    pub fn sync(&self) -> Result<(), ServiceError> {
        let slot = |id: u64| format!("{}:{id}", self.replica);
        let live: Vec<SharedConsole> = lock(&self.consoles)
            .iter()
            .map(|(id, c)| SharedConsole {
                slot: slot(*id),
                name: c.name.clone(),
                replica: self.replica.clone(),
                agent_id: c.agent,
                away: c.away,
            })
            .collect();
        let gone: Vec<String> = lock(&self.gone).drain(..).map(slot).collect();
        let now = chrono::Utc::now().timestamp_millis();
        let shared = self.store.sync_consoles(&live, &gone, now, now - CONSOLE_STALE_MS)?;
        let (mine, others): (Vec<_>, Vec<_>) = shared.into_iter().partition(|c| c.replica == self.replica);
        let mut consoles = lock(&self.consoles);
        for c in mine {
            let id = c.slot.rsplit(':').next().and_then(|n| n.parse::<u64>().ok());
            if let Some(local) = id.and_then(|id| consoles.get_mut(&id)) {
                local.away = c.away;
            }
        }
        *lock(&self.others) = (Some(std::time::Instant::now()), others);
        Ok(())
    }

    /// The other replicas' consoles, unless the last read is too old.
    fn others(&self) -> Vec<SharedConsole> {
        let others = lock(&self.others);
        let fresh = others.0.is_some_and(|at| at.elapsed().as_millis() < CONSOLE_STALE_MS as u128);
        if fresh { others.1.clone() } else { Vec::new() }
    }
}

/// Whether a human can answer now; `None` when one can (or the store has no hours).
pub fn offline(hours: Option<&ServiceHours>, presence: &Presence, now: i64) -> Option<Offline> {
    let hours = hours?;
    if !hours.is_open(now) {
        let resumes = hours.next_opening(now);
        return Some(Offline { reason: OfflineReason::OutsideHours, hours: hours.window(), resumes_at: Some(resumes) });
    }
    (presence.present() == 0).then(|| Offline {
        reason: OfflineReason::NoAgent,
        hours: hours.window(),
        resumes_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: &str) -> ServiceHours {
        ServiceHours::parse(&ServiceConfig { hours: h.into(), ..ServiceConfig::default() }).unwrap().unwrap()
    }

    // 2026-11-24 00:00 China time = 2026-11-23 16:00 UTC.
    const MIDNIGHT_CN: i64 = 1_795_449_600;

    #[test]
    fn day_and_overnight_windows_in_china_time() {
        let day = hours("09:00-22:00");
        assert!(!day.is_open(MIDNIGHT_CN + 3 * 3600), "03:00");
        assert!(day.is_open(MIDNIGHT_CN + 9 * 3600), "09:00 opens");
        assert!(!day.is_open(MIDNIGHT_CN + 22 * 3600), "22:00 closes");
        assert_eq!(day.next_opening(MIDNIGHT_CN + 3 * 3600), MIDNIGHT_CN + 9 * 3600);
        assert_eq!(day.next_opening(MIDNIGHT_CN + 23 * 3600), MIDNIGHT_CN + 33 * 3600, "tomorrow 09:00");
        assert_eq!(day.clock(MIDNIGHT_CN + 9 * 3600, MIDNIGHT_CN + 3 * 3600, true), "09:00");
        assert_eq!(day.clock(MIDNIGHT_CN + 33 * 3600, MIDNIGHT_CN + 23 * 3600, true), "明天 09:00");
        assert_eq!(day.clock(MIDNIGHT_CN + 33 * 3600, MIDNIGHT_CN + 23 * 3600, false), "tomorrow 09:00");
        let night = hours("20:00-02:00");
        assert!(night.is_open(MIDNIGHT_CN + 3600) && night.is_open(MIDNIGHT_CN + 21 * 3600));
        assert!(!night.is_open(MIDNIGHT_CN + 12 * 3600));
    }

    #[test]
    fn bad_hours_name_the_key_and_empty_means_always() {
        let cfg =
            |h: &str, z: &str| ServiceConfig { hours: h.into(), utc_offset: z.into(), ..ServiceConfig::default() };
        assert!(ServiceHours::parse(&cfg("", "+08:00")).unwrap().is_none());
        for (h, z, key) in [
            ("9点到22点", "+08:00", "hours"),
            ("09:00-09:00", "+08:00", "hours"),
            ("09:00-25:00", "+08:00", "hours"),
            ("09:00-22:00", "Beijing", "utc_offset"),
        ] {
            let e = ServiceHours::parse(&cfg(h, z)).unwrap_err().to_string();
            assert!(e.contains(&format!("service.{key}")), "{h} {z}: {e}");
        }
    }

    #[test]
    fn presence_counts_connected_consoles_not_away() {
        let p = Arc::new(Presence::new(Arc::new(Store::open_in_memory().unwrap())));
        let h = hours("09:00-22:00");
        let noon = MIDNIGHT_CN + 12 * 3600;
        assert_eq!(offline(Some(&h), &p, noon).map(|o| o.reason), Some(OfflineReason::NoAgent));
        let console = p.connect(Some("c1".into()), Some(7));
        let key_console = p.connect(None, None);
        let second_tab = p.connect(Some("c2".into()), Some(7));
        assert!(offline(Some(&h), &p, noon).is_none());
        assert_eq!(p.present_agents(), [7], "the API key is no agent; two tabs are one agent");
        drop((key_console, second_tab));
        p.set_away("c1", true).unwrap();
        assert_eq!(p.present(), 0);
        assert!(p.present_agents().is_empty());
        assert!(p.set_away("nobody", true).is_err());
        p.set_away("c1", false).unwrap();
        assert_eq!(p.present(), 1);
        assert_eq!(offline(Some(&h), &p, MIDNIGHT_CN).map(|o| o.reason), Some(OfflineReason::OutsideHours));
        drop(console);
        assert_eq!(p.present(), 0);
        assert!(offline(None, &p, noon).is_none(), "no hours: served around the clock");
    }
}

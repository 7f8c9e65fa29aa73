//! The storage layer on both databases: the same tests on an SQLite file
//! and on a real PostgreSQL (started by the harness), with two `Store`s on
//! one database standing for two replicas writing at once.

mod common;

use std::sync::Arc;

use common::pg;
use xiaoer::decision::{Action, Reason};
use xiaoer::kb::FaqEdit;
use xiaoer::store::{Actor, AgentRole, ConversationStatus, DecisionRecord, Store, StoreError, TurnRecord, Verdict};

/// Two stores on one new database of `kind`, as two replicas would open it.
fn replicas(kind: &str) -> (Arc<Store>, Arc<Store>) {
    let url = match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("db.sqlite3").display())
        }
        _ => pg::new_database(),
    };
    (Arc::new(Store::open_url(&url).unwrap()), Arc::new(Store::open_url(&url).unwrap()))
}

/// `n` threads at once, the even ones on replica `a`, the odd ones on `b`;
/// started, not yet joined (see `joined`).
fn on_both<T: Send + 'static>(
    a: &Arc<Store>,
    b: &Arc<Store>,
    n: usize,
    f: impl Fn(usize, Arc<Store>) -> T + Send + Sync + 'static,
) -> Vec<std::thread::JoinHandle<T>> {
    let f = Arc::new(f);
    (0..n)
        .map(|i| {
            let (store, f) = (if i % 2 == 0 { a.clone() } else { b.clone() }, f.clone());
            std::thread::spawn(move || f(i, store))
        })
        .collect()
}

fn joined<T>(threads: Vec<std::thread::JoinHandle<T>>) -> Vec<T> {
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn turn(conversation: &str, text: &str, handoff: bool) -> TurnRecord {
    TurnRecord {
        conversation_id: conversation.into(),
        text: text.into(),
        locale: "zh-CN".into(),
        product_id: Some("神仙水".into()),
        topic_question: Some(text.into()),
        decision: Some(DecisionRecord {
            action: if handoff { Action::Handoff } else { Action::Answer },
            reason: if handoff { Reason::HumanRequested } else { Reason::Confident },
            faq_id: (!handoff).then(|| "return-policy".to_string()),
            confidence: 0.97,
            candidates_json: r#"[{"faq_id":"return-policy","score":0.97,"bm25":12.5,"cosine":0.91}]"#.into(),
            choices: Vec::new(),
        }),
        bot_reply: (!handoff).then(|| "支持七天无理由退货 😊".to_string()),
        handoff_reason: handoff.then_some(Reason::HumanRequested),
        unresolved: false,
    }
}

/// Generates each test once per database.
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $(#[test] fn $name() { super::$name("sqlite") })+ }
        mod postgres { $(#[test] fn $name() { super::$name("postgres") })+ }
    };
}

on_both!(
    turns_through_two_replicas_at_once_are_all_stored,
    one_conversation_is_taken_by_one_agent_only,
    concurrent_knowledge_edits_get_one_version_each,
    text_and_numbers_round_trip,
    rate_limits_are_counted_once_across_replicas,
    events_and_consoles_are_shared,
    a_reader_following_the_log_misses_nothing_while_both_append,
);

fn turns_through_two_replicas_at_once_are_all_stored(kind: &str) {
    let (a, b) = replicas(kind);
    joined(on_both(&a, &b, 8, |i, store| {
        let id = format!("c{i}");
        store.create_conversation(&id, "zh-CN", None).unwrap();
        for n in 0..5 {
            store.record_turn(&turn(&id, &format!("亲，在吗？第{n}个问题：可以退货吗"), n == 4)).unwrap();
        }
    }));
    for i in 0..8 {
        let t = b.transcript(&format!("c{i}")).unwrap();
        // 5 shopper messages, 4 bot answers, 5 decisions; the last turn handed off.
        assert_eq!((t.messages.len(), t.decisions.len()), (9, 5));
        assert_eq!(t.conversation.status, ConversationStatus::Handoff);
    }
    assert_eq!(a.handoffs().unwrap().len(), 8);
    let stats = a.stats(0, i64::MAX).unwrap();
    assert_eq!((stats.conversations, stats.decisions), (8, 40));
    assert_eq!(stats.faqs[0].faq_id, "return-policy");
    // Hits count every message it ranked first for, handed off or not.
    assert_eq!((stats.faqs[0].answered, stats.faqs[0].hits), (32, 40));
}

fn one_conversation_is_taken_by_one_agent_only(kind: &str) {
    let (a, b) = replicas(kind);
    a.create_conversation("c", "zh-CN", None).unwrap();
    a.record_turn(&turn("c", "转人工", true)).unwrap();
    let agents: Vec<_> = (0..6)
        .map(|i| a.create_agent(&format!("agent{i}"), &format!("小{i}"), AgentRole::Agent, "hash").unwrap())
        .collect();
    let takes = on_both(&a, &b, agents.len(), move |i, store| {
        store.take("c", &Actor { agent: Some(agents[i].clone()) }).is_ok()
    });
    let won = joined(takes).into_iter().filter(|ok| *ok).count();
    assert_eq!(won, 1, "exactly one agent takes the conversation");
    let owner = b.conversation("c").unwrap().owner_id.expect("owned");
    // The others are refused by name, through either replica.
    let other = a.agents().unwrap().into_iter().find(|x| x.id != owner).unwrap();
    match b.take("c", &Actor { agent: Some(other) }) {
        Err(StoreError::Conflict(m)) => assert!(m.contains("handled by 小"), "{m}"),
        r => panic!("{r:?}"),
    }
}

fn concurrent_knowledge_edits_get_one_version_each(kind: &str) {
    let (a, b) = replicas(kind);
    let edits = on_both(&a, &b, 10, |i, store| {
        // Derive from the version read, store only if it is still current (as the service does).
        loop {
            let (_, version) = store.edits().unwrap();
            let edit = FaqEdit { id: format!("faq-{i}"), entry: None };
            match store.save_edits(&[edit], None, Some(version)) {
                Ok(v) => return v,
                Err(StoreError::StaleKnowledge { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut versions: Vec<i64> = joined(edits);
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>(), "every edit landed, each a version of its own");
    let (edits, version) = b.edits().unwrap();
    assert_eq!((edits.len(), version), (10, 10));
}

fn text_and_numbers_round_trip(kind: &str) {
    let (a, b) = replicas(kind);
    a.create_conversation("會話-①", "zh-TW", Some("ＳＫ－II 神仙水")).unwrap();
    let text = "亲~在吗？？ 我買的【神仙水230ml】訂單號：2024111100123 👉 還沒到 🙏\u{200b}";
    a.record_turn(&TurnRecord { product_id: None, ..turn("會話-①", text, false) }).unwrap();
    let t = b.transcript("會話-①").unwrap();
    assert_eq!(t.messages[0].text, text);
    assert_eq!(t.conversation.product_id.as_deref(), Some("ＳＫ－II 神仙水"));
    assert!((t.decisions[0].confidence - 0.97).abs() < 1e-6);
    let drafts = [xiaoer::store::Draft {
        faq_id: "return-policy".into(),
        question: "可以退货吗".into(),
        text: "您好，支持七天无理由退货。".into(),
        confidence: 0.5,
    }];
    let s = b.save_suggestions("會話-①", Some(t.messages[0].id), &drafts).unwrap();
    let f = a.record_feedback(&s[0].id, Verdict::Edited, Some("您好！支持7天无理由退货～"), &Actor::API_KEY).unwrap();
    assert_eq!(f.message.unwrap().text, "您好！支持7天无理由退货～");
    assert!(matches!(
        b.record_feedback(&s[0].id, Verdict::Accepted, None, &Actor::API_KEY),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(b.conversation("no-such"), Err(StoreError::NotFound(_))));
}

fn rate_limits_are_counted_once_across_replicas(kind: &str) {
    let (a, b) = replicas(kind);
    let now = 1_795_449_600_000;
    // 20 requests of one shopper at one instant through both replicas; a burst of 5.
    let requests = on_both(&a, &b, 20, move |_, store| store.rate_allow("203.0.113.9", now, 200, 5).unwrap());
    let allowed = joined(requests).into_iter().filter(|ok| *ok).count();
    assert_eq!(allowed, 5, "the burst is shared, not per replica");
    assert!(a.rate_allow("198.51.100.7", now, 200, 5).unwrap(), "another shopper has their own");
    assert!(!b.rate_allow("203.0.113.9", now + 199, 200, 5).unwrap());
    assert!(b.rate_allow("203.0.113.9", now + 200, 200, 5).unwrap(), "one more after an interval");
    assert!(!a.rate_allow("203.0.113.9", now + 200, 200, 5).unwrap());
}

fn events_and_consoles_are_shared(kind: &str) {
    let (a, b) = replicas(kind);
    assert_eq!(b.last_event_id().unwrap(), 0);
    let first = a.append_event("c1", "agent", r#"{"text":"您好"}"#).unwrap();
    let second = b.append_event("c2", "closed", "{}").unwrap();
    let third = a.append_event("c1", "closed", "{}").unwrap();
    assert!(first < second && second < third);
    let all: Vec<i64> = b.events_after(0, None, 10).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(all, [first, second, third]);
    let c1 = a.events_after(first, Some("c1"), 10).unwrap();
    assert_eq!((c1.len(), c1[0].id, c1[0].kind.as_str()), (1, third, "closed"));
    assert_eq!(a.events_after(0, None, 2).unwrap().len(), 2, "limited");

    let console = |slot: &str, replica: &str, away| xiaoer::store::SharedConsole {
        slot: slot.into(),
        name: Some(format!("tab-{slot}")),
        replica: replica.into(),
        agent_id: None,
        away,
    };
    a.sync_consoles(&[console("1", "A", false)], &[], 10_000, 5_000).unwrap();
    let seen = b.sync_consoles(&[console("2", "B", false)], &[], 10_500, 5_500).unwrap();
    assert_eq!(seen.len(), 2);
    // Set away through the other replica; a refresh keeps the stored flag.
    assert_eq!(b.set_console_away("tab-1", true).unwrap(), 1);
    let seen = a.sync_consoles(&[console("1", "A", false)], &[], 11_000, 6_000).unwrap();
    assert!(seen.iter().find(|c| c.slot == "1").unwrap().away);
    // A console gone, and one not refreshed in time (its replica killed), no longer count.
    let seen = a.sync_consoles(&[], &["1".into()], 20_000, 15_000).unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(a.set_console_away("tab-9", true).unwrap(), 0);
}

fn a_reader_following_the_log_misses_nothing_while_both_append(kind: &str) {
    let (a, b) = replicas(kind);
    let writers = on_both(&a, &b, 4, |i, store| {
        (0..25).map(|n| store.append_event(&format!("c{i}"), "agent", &format!("{n}")).unwrap()).collect::<Vec<_>>()
    });
    // Followed in small batches, as a replica's reader thread does, while they write.
    let (mut seen, mut cursor) = (Vec::new(), 0);
    let started = std::time::Instant::now();
    while seen.len() < 100 {
        assert!(started.elapsed().as_secs() < 60, "only {} of 100 events read", seen.len());
        for e in a.events_after(cursor, None, 7).unwrap() {
            cursor = e.id;
            seen.push(e.id);
        }
    }
    let mut written: Vec<i64> = joined(writers).into_iter().flatten().collect();
    written.sort();
    assert_eq!(seen, written, "read in order, none skipped, none twice");
}

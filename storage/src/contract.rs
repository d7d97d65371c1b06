//! The contract every store must pass, shipped with the crate so that each
//! implementation (in memory now, RocksDB and the replicated store later)
//! runs the same suite: `herald_storage::contract::run_all(|limits| make(limits))`.

use bytes::Bytes;

use crate::command::{Command, DropReason, Outcome, Target};
use crate::mem::QueueLimits;
use crate::model::{Message, Subscription, Will};
use crate::store::Store;

/// Runs every contract check against stores made by `make`.
pub fn run_all(make: &dyn Fn(QueueLimits) -> Store) {
    open_creates_then_resumes(make);
    open_records_the_owner(make);
    clean_start_discards(make);
    close_keeps_or_removes(make);
    publish_appends_once_shared(make);
    queue_limits_refuse_the_newest(make);
    ack_and_pubrec(make);
    inbound_qos2_ids(make);
    retained_set_replace_delete(make);
    same_commands_same_state(make);
    bodies_go_with_the_last_reference(make);
    indexed_apply_skips_what_was_applied(make);
    tickets_complete(make);
}

/// Applies one command; the in-process contract checks state, not durability.
fn apply(s: &Store, c: Command) -> Outcome {
    s.submit_one(c).0
}

fn msg(topic: &str, payload: &str) -> Message {
    Message {
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: 1,
        retain: false,
        properties: Bytes::new(),
        expires_at_ms: None,
    }
}

fn open(id: &str, epoch: u64, clean: bool) -> Command {
    Command::Open {
        client_id: id.to_owned(),
        epoch,
        clean_start: clean,
        protocol_level: 5,
        expiry_secs: 60,
        will: None,
        username: Some(format!("user-{id}")),
        now_ms: 1,
    }
}

fn close(id: &str, epoch: u64, expiry: u32) -> Command {
    Command::Close {
        client_id: id.to_owned(),
        epoch,
        expiry_secs: expiry,
        will: None,
        now_ms: 2,
    }
}

fn target(id: &str) -> Target {
    Target {
        client_id: id.to_owned(),
        qos: 1,
        retain: false,
        subscription_ids: vec![],
    }
}

fn present(o: &Outcome) -> bool {
    match o {
        Outcome::Opened {
            session_present, ..
        } => *session_present,
        other => panic!("expected Opened, got {other:?}"),
    }
}

fn appended(o: &Outcome) -> Vec<Result<u64, DropReason>> {
    match o {
        Outcome::Published { appended } => appended.clone(),
        other => panic!("expected Published, got {other:?}"),
    }
}

fn open_creates_then_resumes(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    assert!(!present(&s.submit_one(open("c", 1, false)).0));
    let sub = Subscription {
        options: 1,
        identifier: Some(9),
    };
    apply(
        &s,
        Command::Subscribe {
            client_id: "c".into(),
            filter: "a/+".into(),
            subscription: sub,
        },
    );
    apply(&s, close("c", 1, 60));
    let (o, _) = s.submit_one(open("c", 2, false));
    assert!(present(&o));
    let Outcome::Opened { session, .. } = o else {
        unreachable!()
    };
    assert_eq!(session.subscriptions.get("a/+"), Some(&sub));
    assert_eq!(session.connected_epoch, Some(2));
}

fn open_records_the_owner(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("c", 1, false));
    assert_eq!(
        s.session("c").expect("opened").owner.as_deref(),
        Some("user-c")
    );
    apply(&s, close("c", 1, 60));
    let mut anonymous = open("c", 2, false);
    if let Command::Open { username, .. } = &mut anonymous {
        *username = None;
    }
    let (o, _) = s.submit_one(anonymous);
    let Outcome::Opened { session, .. } = o else {
        unreachable!()
    };
    assert_eq!(session.owner, None, "the latest login owns the session");
    assert_eq!(s.session("c").expect("kept").owner, None);
}

fn clean_start_discards(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("c", 1, false));
    apply(
        &s,
        Command::Publish {
            message: msg("t", "x"),
            targets: vec![target("c")],
        },
    );
    let (o, _) = s.submit_one(open("c", 2, true));
    assert!(!present(&o));
    assert!(s.session("c").expect("reopened").queue.is_empty());
}

fn close_keeps_or_removes(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("c", 1, false));
    // A close by an epoch that no longer owns the session changes nothing.
    apply(&s, open("c", 2, false));
    let (o, _) = s.submit_one(close("c", 1, 0));
    assert_eq!(
        o,
        Outcome::Closed {
            removed: false,
            owned: false
        }
    );
    assert!(s.session("c").is_some());
    let (o, _) = s.submit_one(close("c", 2, 30));
    assert_eq!(
        o,
        Outcome::Closed {
            removed: false,
            owned: true
        }
    );
    let rec = s.session("c").expect("kept");
    assert_eq!(rec.connected_epoch, None);
    assert_eq!(rec.disconnected_at_ms, Some(2));
    apply(&s, open("c", 3, false));
    let (o, _) = s.submit_one(close("c", 3, 0));
    assert_eq!(
        o,
        Outcome::Closed {
            removed: true,
            owned: true
        }
    );
    assert!(s.session("c").is_none());
}

fn publish_appends_once_shared(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("a", 1, false));
    apply(&s, open("b", 2, false));
    let (o, _) = s.submit_one(Command::Publish {
        message: msg("t", "body"),
        targets: vec![target("a"), target("b"), target("missing")],
    });
    assert_eq!(appended(&o), vec![Ok(1), Ok(1), Err(DropReason::NoSession)]);
    let (o, _) = s.submit_one(Command::Publish {
        message: msg("t", "second"),
        targets: vec![target("a")],
    });
    assert_eq!(appended(&o), vec![Ok(2)]);
    let a = s.session("a").expect("a");
    let b = s.session("b").expect("b");
    // One body, referenced by both queues.
    assert!(std::sync::Arc::ptr_eq(
        &a.queue[&1].message,
        &b.queue[&1].message
    ));
    assert_eq!(a.queue.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    // Totals for the queue gauges: 3 entries of 5 + 7 + 5 bytes.
    assert_eq!(s.queue_totals(), (3, 17));
}

fn queue_limits_refuse_the_newest(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits {
        max_messages: 2,
        max_bytes: 1_000,
    });
    apply(&s, open("c", 1, false));
    for _ in 0..2 {
        apply(
            &s,
            Command::Publish {
                message: msg("t", "x"),
                targets: vec![target("c")],
            },
        );
    }
    let (o, _) = s.submit_one(Command::Publish {
        message: msg("t", "x"),
        targets: vec![target("c")],
    });
    assert_eq!(appended(&o), vec![Err(DropReason::QueueFullMessages)]);
    let s = make(QueueLimits {
        max_messages: 100,
        max_bytes: 10,
    });
    apply(&s, open("c", 1, false));
    let (o, _) = s.submit_one(Command::Publish {
        message: msg("t", "0123456789"),
        targets: vec![target("c")],
    });
    assert_eq!(appended(&o), vec![Err(DropReason::QueueFullBytes)]);
}

fn ack_and_pubrec(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("c", 1, false));
    apply(
        &s,
        Command::Publish {
            message: msg("t", "x"),
            targets: vec![target("c"), target("c")],
        },
    );
    let (o, _) = s.submit_one(Command::PubRec {
        client_id: "c".into(),
        seq: 2,
    });
    assert_eq!(o, Outcome::Done { existed: true });
    assert!(s.session("c").expect("c").queue[&2].pubrec_received);
    let (o, _) = s.submit_one(Command::Ack {
        client_id: "c".into(),
        seq: 1,
    });
    assert_eq!(o, Outcome::Done { existed: true });
    // Acknowledging twice is harmless.
    let (o, _) = s.submit_one(Command::Ack {
        client_id: "c".into(),
        seq: 1,
    });
    assert_eq!(o, Outcome::Done { existed: false });
    assert_eq!(
        s.session("c")
            .expect("c")
            .queue
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![2]
    );
}

fn inbound_qos2_ids(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("c", 1, false));
    let q = |received| Command::InboundQos2 {
        client_id: "c".into(),
        packet_id: 7,
        received,
    };
    assert_eq!(s.submit_one(q(true)).0, Outcome::Done { existed: false });
    assert_eq!(s.submit_one(q(true)).0, Outcome::Done { existed: true });
    assert!(s.session("c").expect("c").inbound_qos2.contains(&7));
    assert_eq!(s.submit_one(q(false)).0, Outcome::Done { existed: true });
    assert_eq!(s.submit_one(q(false)).0, Outcome::Done { existed: false });
}

fn retained_set_replace_delete(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    let set = |p: &str| Command::Retain {
        topic: Bytes::from_static(b"r"),
        message: Some(msg("r", p)),
    };
    apply(&s, set("one"));
    apply(&s, set("two"));
    assert_eq!(s.retained(), vec![msg("r", "two")]);
    apply(
        &s,
        Command::Retain {
            topic: Bytes::from_static(b"r"),
            message: None,
        },
    );
    assert!(s.retained().is_empty());
}

fn same_commands_same_state(make: &dyn Fn(QueueLimits) -> Store) {
    let commands = vec![
        open("a", 1, false),
        Command::Subscribe {
            client_id: "a".into(),
            filter: "#".into(),
            subscription: Subscription {
                options: 2,
                identifier: None,
            },
        },
        Command::Publish {
            message: msg("t", "x"),
            targets: vec![target("a")],
        },
        close("a", 1, 100),
        Command::Open {
            client_id: "b".into(),
            epoch: 2,
            clean_start: false,
            protocol_level: 4,
            expiry_secs: u32::MAX,
            will: Some(Will {
                message: msg("w", "gone"),
                delay_secs: 5,
            }),
            username: None,
            now_ms: 3,
        },
    ];
    let one = make(QueueLimits::default());
    let two = make(QueueLimits::default());
    let (o1, _) = one.submit(commands.clone());
    let (o2, _) = two.submit(commands);
    assert_eq!(o1, o2);
    let mut s1 = one.sessions();
    let mut s2 = two.sessions();
    s1.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    s2.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(s1, s2);
}

fn bodies_go_with_the_last_reference(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    apply(&s, open("a", 1, false));
    apply(&s, open("b", 2, false));
    apply(
        &s,
        Command::Publish {
            message: msg("t", "shared"),
            targets: vec![target("a"), target("b")],
        },
    );
    // A publish that reaches no queue stores no body.
    apply(
        &s,
        Command::Publish {
            message: msg("t", "lost"),
            targets: vec![target("nobody")],
        },
    );
    assert_eq!(s.message_bodies(), 1);
    apply(
        &s,
        Command::Ack {
            client_id: "a".into(),
            seq: 1,
        },
    );
    assert_eq!(s.message_bodies(), 1, "b still holds the body");
    // Ending a session releases what its queue held.
    apply(
        &s,
        Command::Discard {
            client_id: "b".into(),
        },
    );
    assert_eq!(s.message_bodies(), 0);
}

fn indexed_apply_skips_what_was_applied(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    let publish = Command::Publish {
        message: msg("t", "x"),
        targets: vec![target("c")],
    };
    let (o, t) = s.apply_indexed(10, open("c", 1, false));
    assert!(o.is_some());
    t.wait_blocking().expect("durable");
    let (o, _) = s.apply_indexed(11, publish.clone());
    assert_eq!(o.map(|o| appended(&o)), Some(vec![Ok(1)]));
    // The same command again (a log replayed after a restart): skipped.
    let (o, t) = s.apply_indexed(11, publish.clone());
    assert_eq!(o, None);
    t.wait_blocking()
        .expect("a skipped command is durable already");
    let (o, _) = s.apply_indexed(5, open("c", 9, true));
    assert_eq!(o, None);
    assert_eq!(s.last_applied(), 11);
    let c = s.session("c").expect("c");
    assert_eq!(c.queue.len(), 1, "applying twice appended once");
    assert_eq!(c.connected_epoch, Some(1), "the old open was not reapplied");
    // Local submissions take the next indexes.
    let _ = s.submit_one(publish);
    assert_eq!(s.last_applied(), 12);
}

fn tickets_complete(make: &dyn Fn(QueueLimits) -> Store) {
    let s = make(QueueLimits::default());
    assert!(s.is_healthy());
    let mut tickets = Vec::new();
    for i in 0..50 {
        let (_, t) = s.submit(vec![
            open(&format!("c{i}"), i, false),
            Command::Publish {
                message: msg("t", "x"),
                targets: vec![target(&format!("c{i}"))],
            },
        ]);
        tickets.push(t);
    }
    for t in tickets {
        t.wait_blocking().expect("every batch becomes durable");
    }
    assert!(s.is_healthy());
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_memory_store_passes_the_contract() {
        super::run_all(&crate::store::Store::in_memory);
    }
}

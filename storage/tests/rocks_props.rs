//! Property: for any sequence of commands, the RocksDB store answers
//! exactly as the in-memory state machine does, and after a restart holds
//! exactly the state the in-memory one reached (nothing lost, nothing
//! resurrected, bodies shared again).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use herald_storage::{
    Command, Message, QueueLimits, SessionRecord, Store, Subscription, Target, Will,
};
use proptest::prelude::*;

const IDS: [&str; 3] = ["a", "b", "c"];

fn id() -> impl Strategy<Value = String> {
    prop::sample::select(&IDS[..]).prop_map(str::to_owned)
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::sample::select(&["t/1", "t/2", "u"][..]),
        prop::collection::vec(any::<u8>(), 0..8),
        0u8..=2,
        any::<bool>(),
        prop::option::of(0u64..5_000),
    )
        .prop_map(|(topic, payload, qos, retain, exp)| Message {
            topic: Bytes::from_static(topic.as_bytes()),
            payload: Bytes::from(payload),
            qos,
            retain,
            properties: Bytes::new(),
            expires_at_ms: exp,
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            id(),
            1u64..5,
            any::<bool>(),
            3u8..=5,
            0u32..3,
            prop::option::of(message()),
            prop::option::of(prop::sample::select(&["alice", "bob", ""][..]))
        )
            .prop_map(
                |(client_id, epoch, clean_start, protocol_level, expiry_secs, will, user)| {
                    Command::Open {
                        client_id,
                        epoch,
                        clean_start,
                        protocol_level,
                        expiry_secs,
                        will: will.map(|message| Will {
                            message,
                            delay_secs: 2,
                        }),
                        username: user.map(str::to_owned),
                        now_ms: 10,
                    }
                }
            ),
        (id(), 1u64..5, 0u32..3).prop_map(|(client_id, epoch, expiry_secs)| Command::Close {
            client_id,
            epoch,
            expiry_secs,
            will: None,
            now_ms: 20,
        }),
        id().prop_map(|client_id| Command::Discard { client_id }),
        (
            id(),
            prop::sample::select(&["t/+", "#", "$share/g/u"][..]),
            any::<u8>()
        )
            .prop_map(|(client_id, filter, options)| Command::Subscribe {
                client_id,
                filter: filter.to_owned(),
                subscription: Subscription {
                    options,
                    identifier: Some(u32::from(options)),
                },
            }),
        (id(), prop::sample::select(&["t/+", "#"][..])).prop_map(|(client_id, filter)| {
            Command::Unsubscribe {
                client_id,
                filter: filter.to_owned(),
            }
        }),
        (message(), prop::collection::vec((id(), 0u8..=2), 0..4)).prop_map(|(message, t)| {
            Command::Publish {
                message,
                targets: t
                    .into_iter()
                    .map(|(client_id, qos)| Target {
                        client_id,
                        qos,
                        retain: false,
                        subscription_ids: vec![1],
                    })
                    .collect(),
            }
        }),
        (
            prop::sample::select(&["t/1", "u"][..]),
            prop::option::of(message())
        )
            .prop_map(|(topic, message)| Command::Retain {
                topic: Bytes::from_static(topic.as_bytes()),
                message,
            }),
        (id(), 1u64..6).prop_map(|(client_id, seq)| Command::Ack { client_id, seq }),
        (id(), 1u64..6).prop_map(|(client_id, seq)| Command::PubRec { client_id, seq }),
        (id(), 1u16..4, any::<bool>()).prop_map(|(client_id, packet_id, received)| {
            Command::InboundQos2 {
                client_id,
                packet_id,
                received,
            }
        }),
        id().prop_map(|client_id| Command::ClearWill { client_id }),
    ]
}

fn sessions(s: &Store) -> Vec<SessionRecord> {
    let mut v = s.sessions();
    v.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn rocks_matches_memory_and_survives_restart(
        commands in prop::collection::vec(command(), 0..40),
        batch in 1usize..5,
    ) {
        // Small limits, so that both overflow reasons occur too.
        let limits = QueueLimits { max_messages: 3, max_bytes: 20 };
        let dir = tempfile::tempdir().expect("tempdir");
        let mem = Store::in_memory(limits);
        {
            let rocks = Store::open(dir.path(), limits, false).expect("open");
            let mut last = None;
            for chunk in commands.chunks(batch) {
                let (o_mem, _) = mem.submit(chunk.to_vec());
                let (o_rocks, t) = rocks.submit(chunk.to_vec());
                prop_assert_eq!(o_mem, o_rocks);
                last = Some(t);
            }
            if let Some(t) = last {
                t.wait_blocking().expect("durable");
            }
        }
        let rocks = Store::open(dir.path(), limits, false).expect("reopen");
        prop_assert_eq!(sessions(&rocks), sessions(&mem));
        let mut r1 = rocks.retained();
        let mut r2 = mem.retained();
        r1.sort_by(|a, b| a.topic.cmp(&b.topic));
        r2.sort_by(|a, b| a.topic.cmp(&b.topic));
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(rocks.message_bodies(), mem.message_bodies());
        prop_assert_eq!(rocks.last_applied(), commands.len() as u64);
        // Entries with one message id share one loaded body.
        let mut bodies: HashMap<u64, Arc<Message>> = HashMap::new();
        for s in rocks.sessions() {
            for e in s.queue.values() {
                let first = bodies.entry(e.message_id).or_insert_with(|| Arc::clone(&e.message));
                prop_assert!(Arc::ptr_eq(first, &e.message));
            }
        }
        prop_assert_eq!(bodies.len(), rocks.message_bodies());
    }
}

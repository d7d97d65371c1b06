//! Property tests: the subscription index, its sharded wrapper and the
//! retained tree against brute-force oracles built on `topic::matches`.
//!
//! Topics and filters are drawn from a small alphabet of levels (the empty
//! level, `a`, `b`, `$SYS`, and for filters `+` and `#`) so that random
//! filters and topics collide often, and the `$` rule [MQTT-4.7.2-1], empty
//! levels and `#` matching its parent level are exercised on every run.

use std::collections::{BTreeMap, HashMap};

use herald::retained::RetainedTree;
use herald::topic::{matches, validate_filter, validate_topic_name, TopicLimits};
use herald::trie::{ShardedIndex, SubscriptionTrie};
use proptest::prelude::*;

type Key = u8;
type Opts = u8;

fn name_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("a"), Just("b"), Just("$SYS")]
}

fn filter_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("a"), Just("b"), Just("$SYS"), Just("+")]
}

/// A valid topic name of one to four levels (a single empty level would be
/// the empty, invalid, name [MQTT-4.7.3-1]).
fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..=4)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |t| !t.is_empty())
}

/// A valid filter: zero to four levels, then optionally a final `#`.
fn filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(filter_level(), 0..=4), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("filters are not empty", |f| !f.is_empty())
}

fn group() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("g1"), Just("g2")]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Key, Opts),
    Remove(String, Key),
    InsertShared(&'static str, String, Key, Opts),
    RemoveShared(&'static str, String, Key),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..4u8;
    prop_oneof![
        3 => (filter(), key.clone(), any::<u8>()).prop_map(|(f, k, v)| Op::Insert(f, k, v)),
        2 => (filter(), key.clone()).prop_map(|(f, k)| Op::Remove(f, k)),
        2 => (group(), filter(), key.clone(), any::<u8>())
            .prop_map(|(g, f, k, v)| Op::InsertShared(g, f, k, v)),
        1 => (group(), filter(), key).prop_map(|(g, f, k)| Op::RemoveShared(g, f, k)),
    ]
}

/// The live subscriptions, kept as plainly as possible.
#[derive(Default)]
struct Model {
    plain: HashMap<(String, Key), Opts>,
    /// (group, filter) → members in joining order.
    shared: BTreeMap<(String, String), Vec<(Key, Opts)>>,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Option<Opts> {
        match op {
            Op::Insert(f, k, v) => self.plain.insert((f.clone(), *k), *v),
            Op::Remove(f, k) => self.plain.remove(&(f.clone(), *k)),
            Op::InsertShared(g, f, k, v) => {
                let members = self.shared.entry((g.to_string(), f.clone())).or_default();
                match members.iter_mut().find(|(key, _)| key == k) {
                    Some((_, old)) => Some(std::mem::replace(old, *v)),
                    None => {
                        members.push((*k, *v));
                        None
                    }
                }
            }
            Op::RemoveShared(g, f, k) => {
                let id = (g.to_string(), f.clone());
                let members = self.shared.get_mut(&id)?;
                let position = members.iter().position(|(key, _)| key == k)?;
                let (_, old) = members.remove(position);
                if members.is_empty() {
                    self.shared.remove(&id);
                }
                Some(old)
            }
        }
    }

    fn len(&self) -> usize {
        self.plain.len() + self.shared.values().map(Vec::len).sum::<usize>()
    }

    /// Every (key, options) whose filter matches `topic`, sorted, once per
    /// matching filter.
    fn plain_matches(&self, topic: &str) -> Vec<(Key, Opts)> {
        let mut found: Vec<_> = self
            .plain
            .iter()
            .filter(|((f, _), _)| matches(f, topic))
            .map(|((_, k), v)| (*k, *v))
            .collect();
        found.sort_unstable();
        found
    }

    /// Every matching shared subscription with its members, sorted by
    /// (group, filter).
    fn shared_matches(&self, topic: &str) -> Vec<SharedMatch> {
        self.shared
            .iter()
            .filter(|((_, f), _)| matches(f, topic))
            .map(|((g, f), members)| (g.clone(), f.clone(), members.clone()))
            .collect()
    }
}

type SharedMatch = (String, String, Vec<(Key, Opts)>);

fn apply_trie(trie: &mut SubscriptionTrie<Key, Opts>, op: &Op) -> Option<Opts> {
    match op {
        Op::Insert(f, k, v) => trie.insert(f, *k, *v),
        Op::Remove(f, k) => trie.remove(f, k),
        Op::InsertShared(g, f, k, v) => trie.insert_shared(g, f, *k, *v),
        Op::RemoveShared(g, f, k) => trie.remove_shared(g, f, k),
    }
}

fn apply_sharded(index: &ShardedIndex<Key, Opts>, op: &Op) -> Option<Opts> {
    match op {
        Op::Insert(f, k, v) => index.insert(f, *k, *v),
        Op::Remove(f, k) => index.remove(f, k),
        Op::InsertShared(g, f, k, v) => index.insert_shared(g, f, *k, *v),
        Op::RemoveShared(g, f, k) => index.remove_shared(g, f, k),
    }
}

fn trie_plain(trie: &SubscriptionTrie<Key, Opts>, topic: &str) -> Vec<(Key, Opts)> {
    let mut found = Vec::new();
    trie.for_each_match(topic, |k, v| found.push((*k, *v)));
    found.sort_unstable();
    found
}

fn sharded_plain(index: &ShardedIndex<Key, Opts>, topic: &str) -> Vec<(Key, Opts)> {
    let mut found = Vec::new();
    index.for_each_match(topic, |k, v| found.push((*k, *v)));
    found.sort_unstable();
    found
}

fn trie_shared(trie: &SubscriptionTrie<Key, Opts>, topic: &str) -> Vec<SharedMatch> {
    let mut found = Vec::new();
    trie.for_each_shared_match(topic, |g| {
        let members = g.members().map(|(k, v)| (*k, *v)).collect();
        found.push((g.group().to_owned(), g.filter().to_owned(), members));
    });
    found.sort();
    found
}

fn sharded_shared(index: &ShardedIndex<Key, Opts>, topic: &str) -> Vec<SharedMatch> {
    let mut found = Vec::new();
    index.for_each_shared_match(topic, |g| {
        let members = g.members().map(|(k, v)| (*k, *v)).collect();
        found.push((g.group().to_owned(), g.filter().to_owned(), members));
    });
    found.sort();
    found
}

proptest! {
    /// The generators only produce what the broker would accept, so the
    /// properties below are about valid input.
    #[test]
    fn generated_topics_and_filters_are_valid(t in topic(), f in filter()) {
        let limits = TopicLimits::default();
        prop_assert_eq!(validate_topic_name(&t, &limits), Ok(()));
        prop_assert_eq!(validate_filter(&f, &limits), Ok(()));
    }

    /// After any sequence of subscribes and unsubscribes, the trie and the
    /// sharded index report exactly the live subscriptions whose filter
    /// matches, plain and shared, with the options last set.
    #[test]
    fn index_matches_brute_force(
        ops in prop::collection::vec(op(), 0..40),
        topics in prop::collection::vec(topic(), 1..8),
        shards in 1..5usize,
    ) {
        let mut model = Model::default();
        let mut trie = SubscriptionTrie::new();
        let index = ShardedIndex::new(shards);
        for op in &ops {
            let expected = model.apply(op);
            prop_assert_eq!(apply_trie(&mut trie, op), expected, "trie {:?}", op);
            prop_assert_eq!(apply_sharded(&index, op), expected, "sharded {:?}", op);
        }
        prop_assert_eq!(trie.len(), model.len());
        prop_assert_eq!(index.len(), model.len());
        for topic in &topics {
            let expected = model.plain_matches(topic);
            prop_assert_eq!(&trie_plain(&trie, topic), &expected, "plain, topic {:?}", topic);
            prop_assert_eq!(&sharded_plain(&index, topic), &expected, "sharded, topic {:?}", topic);
            let expected = model.shared_matches(topic);
            prop_assert_eq!(&trie_shared(&trie, topic), &expected, "shared, topic {:?}", topic);
            prop_assert_eq!(&sharded_shared(&index, topic), &expected, "sharded shared, topic {:?}", topic);
        }

        // Removing every live subscription empties both.
        let plain: Vec<_> = model.plain.keys().cloned().collect();
        for (f, k) in plain {
            prop_assert!(trie.remove(&f, &k).is_some());
            prop_assert!(index.remove(&f, &k).is_some());
        }
        for ((g, f), members) in &model.shared {
            for (k, _) in members {
                prop_assert!(trie.remove_shared(g, f, k).is_some());
                prop_assert!(index.remove_shared(g, f, k).is_some());
            }
        }
        prop_assert!(trie.is_empty());
        prop_assert!(index.is_empty());
        for topic in &topics {
            prop_assert!(trie_plain(&trie, topic).is_empty());
            prop_assert!(trie_shared(&trie, topic).is_empty());
        }
    }

    /// `pick` with every member accepted cycles through the members in
    /// order, whatever the group's history.
    #[test]
    fn pick_cycles_through_members(
        ops in prop::collection::vec((any::<bool>(), 0..6u8), 1..30),
    ) {
        let mut trie = SubscriptionTrie::new();
        for (join, key) in &ops {
            if *join {
                trie.insert_shared("g", "t", *key, ());
            } else {
                trie.remove_shared("g", "t", key);
            }
        }
        trie.for_each_shared_match("t", |group| {
            let members: Vec<u8> = group.members().map(|(k, _)| *k).collect();
            let first = *group.pick(|_, _| true).expect("a matched group has members").0;
            let start = members.iter().position(|k| *k == first).expect("picked a member");
            for i in 1..2 * members.len() {
                let picked = *group.pick(|_, _| true).expect("a matched group has members").0;
                assert_eq!(picked, members[(start + i) % members.len()]);
            }
        });
    }

    /// The retained tree behaves as a map from topic to value, and its
    /// wildcard lookup returns exactly the entries a full scan would.
    #[test]
    fn retained_matches_brute_force(
        ops in prop::collection::vec((any::<bool>(), topic(), any::<u32>()), 0..40),
        filters in prop::collection::vec(filter(), 1..8),
    ) {
        let mut model: HashMap<String, u32> = HashMap::new();
        let mut tree = RetainedTree::new();
        for (insert, topic, value) in &ops {
            if *insert {
                prop_assert_eq!(tree.insert(topic, *value), model.insert(topic.clone(), *value));
            } else {
                prop_assert_eq!(tree.remove(topic), model.remove(topic));
            }
        }
        prop_assert_eq!(tree.len(), model.len());
        prop_assert_eq!(tree.is_empty(), model.is_empty());
        for (_, topic, _) in &ops {
            prop_assert_eq!(tree.get(topic), model.get(topic));
        }
        for filter in &filters {
            let mut expected: Vec<_> = model
                .iter()
                .filter(|(topic, _)| matches(filter, topic))
                .map(|(topic, value)| (topic.clone(), *value))
                .collect();
            expected.sort();
            let mut found = Vec::new();
            tree.for_each_match(filter, |topic, value| found.push((topic.to_owned(), *value)));
            found.sort();
            prop_assert_eq!(found, expected, "filter {:?}", filter);
        }
    }
}

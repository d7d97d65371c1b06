//! The subscription index: which subscriptions match a published topic.
//!
//! # Topic-matching rules
//!
//! These are the rules this file implements; [`crate::topic::matches`] is the
//! brute-force statement of the same rules that the property tests compare
//! against.
//!
//! - A topic name and a topic filter are split into levels at every `/`.
//!   Levels may be empty: `/a` has the levels `""` and `"a"`, `a//b` has three
//!   levels and `a/` has two. Levels are compared byte for byte: no case
//!   folding and no normalisation [MQTT-4.7.3-4].
//! - A literal filter level matches only the identical topic level.
//! - `+` matches exactly one level, whatever its content, including an empty
//!   one: `a/+` matches `a/b` and `a/`, not `a` nor `a/b/c`.
//! - `#` is always the last filter level and matches any number of levels,
//!   zero included: `a/#` matches `a`, `a/` and `a/b/c`; `#` alone matches
//!   every topic.
//! - A topic whose first level starts with `$` (such as `$SYS/...`) is not
//!   matched by a filter whose first level is `+` or `#` [MQTT-4.7.2-1];
//!   a filter starting with the literal level (`$SYS/#`) does match it.
//! - A shared subscription `$share/{group}/{filter}` matches by `{filter}`
//!   alone; the `$share/{group}` prefix only names the group
//!   [MQTT-4.8.2-1, MQTT-4.8.2-2].
//! - One topic may match several filters of the same subscriber (`a/+` and
//!   `a/#` both match `a/b`): every match is reported and the caller decides
//!   how to deliver overlapping subscriptions.
//!
//! # Shape of the tree
//!
//! Each node is one filter level. A node keeps its literal children in a map,
//! its `+` child in a slot of its own, and the subscribers of filters that end
//! here and of filters that continue with a final `#` in two more slots. So
//! matching a topic of `n` levels follows, at each level, one literal child,
//! the `+` child and the `#` slot: it never looks at filters that cannot
//! match. Shared subscriptions live in a second tree of the same shape whose
//! subscribers are groups, so the plain publish path never walks them.
//!
//! Filters are expected to have passed [`crate::topic::validate_filter`]
//! (which also bounds their number of levels, hence the recursion depth
//! here). An invalid filter is stored without complaint but can never match a
//! valid topic: `#` is only a wildcard as the last level, elsewhere it is a
//! literal level that no topic name can contain.
//!
//! [`ShardedIndex`] spreads filters over several [`SubscriptionTrie`]s by
//! their first level, so concurrent publishes and subscribes do not contend on
//! one lock.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::iter::Peekable;
use std::str::Split;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

const SEPARATOR: char = '/';
const SINGLE: &str = "+";
const MULTI: &str = "#";

/// What a node stores for the filters that end at it.
trait Slot: Default {
    fn is_empty(&self) -> bool;
}

impl<K, V> Slot for HashMap<K, V> {
    fn is_empty(&self) -> bool {
        HashMap::is_empty(self)
    }
}

/// One level of a filter tree. `T` holds the subscribers of the filters that
/// end at this node.
#[derive(Debug)]
struct Node<T> {
    /// Children for literal levels (the empty level included), by level.
    literal: HashMap<Box<str>, Node<T>>,
    /// Child for a `+` level; boxed because most nodes have none.
    plus: Option<Box<Node<T>>>,
    /// Subscribers of the filters whose last level is this node.
    exact: T,
    /// Subscribers of the filters that continue from this node with a final
    /// `#` level: they match this node's topic and everything below it.
    multi: T,
}

impl<T: Default> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            plus: None,
            exact: T::default(),
            multi: T::default(),
        }
    }
}

/// Splits a filter into levels, telling whether each is the last.
fn filter_levels(filter: &str) -> Peekable<Split<'_, char>> {
    filter.split(SEPARATOR).peekable()
}

impl<T: Slot> Node<T> {
    /// Whether this node can be pruned: no subscriber and no child.
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.multi.is_empty()
    }

    /// The slot where `filter`'s subscribers live, creating the path to it.
    fn slot_mut(&mut self, filter: &str) -> &mut T {
        let mut node = self;
        let mut levels = filter_levels(filter);
        while let Some(level) = levels.next() {
            let is_last = levels.peek().is_none();
            if is_last && level == MULTI {
                return &mut node.multi;
            }
            node = if level == SINGLE {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(level.into()).or_default()
            };
        }
        &mut node.exact
    }

    /// Applies `edit` to the slot of the remaining `levels` if that slot
    /// exists (never creating nodes), then prunes the nodes left empty on the
    /// way back up.
    fn edit_slot<R>(
        &mut self,
        mut levels: Peekable<Split<'_, char>>,
        edit: impl FnOnce(&mut T) -> Option<R>,
    ) -> Option<R> {
        let Some(level) = levels.next() else {
            return edit(&mut self.exact);
        };
        if level == MULTI && levels.peek().is_none() {
            return edit(&mut self.multi);
        }
        if level == SINGLE {
            let child = self.plus.as_mut()?;
            let result = child.edit_slot(levels, edit);
            if child.is_empty() {
                self.plus = None;
            }
            result
        } else {
            let child = self.literal.get_mut(level)?;
            let result = child.edit_slot(levels, edit);
            if child.is_empty() {
                self.literal.remove(level);
            }
            result
        }
    }

    /// Calls `f` with every slot whose filter matches `topic` (some may be
    /// empty). This is the root of the tree: the `$` rule applies here.
    fn for_each_matching_slot(&self, topic: &str, f: &mut impl FnMut(&T)) {
        let mut levels = topic.split(SEPARATOR);
        // `split` yields at least one level, even for "".
        let first = levels.next().unwrap_or_default();
        // [MQTT-4.7.2-1]: a leading wildcard never matches a `$` topic.
        if !first.starts_with('$') {
            f(&self.multi);
            if let Some(plus) = &self.plus {
                plus.match_rest(levels.clone(), f);
            }
        }
        if let Some(child) = self.literal.get(first) {
            child.match_rest(levels, f);
        }
    }

    /// Matching below the root: `self` has matched the levels before
    /// `levels`. Clones the `Split` (two string slices) instead of collecting
    /// the levels, so matching allocates nothing.
    fn match_rest(&self, mut levels: Split<'_, char>, f: &mut impl FnMut(&T)) {
        // `#` matches the remaining levels, none included (`a/#` matches `a`).
        f(&self.multi);
        match levels.next() {
            None => f(&self.exact),
            Some(level) => {
                if let Some(child) = self.literal.get(level) {
                    child.match_rest(levels.clone(), f);
                }
                if let Some(plus) = &self.plus {
                    plus.match_rest(levels, f);
                }
            }
        }
    }
}

/// The members of one shared subscription: a group name and a filter.
///
/// Members are kept in the order they joined (a member that leaves is taken
/// out without reordering the others), so [`SharedGroup::members`] and the
/// round-robin of [`SharedGroup::pick`] are deterministic. Joining and leaving
/// are linear in the group's size, which is small next to the number of
/// subscriptions; picking is constant time per member tried.
#[derive(Debug)]
pub struct SharedGroup<K, V> {
    /// The share name from `$share/{group}/{filter}`.
    group: Box<str>,
    /// The filter the group subscribes to, without the `$share/{group}/`.
    filter: Box<str>,
    /// Members in joining order; each key at most once.
    members: Vec<(K, V)>,
    /// Where the next [`SharedGroup::pick`] starts; only ever advanced, taken
    /// modulo the number of members. Atomic so that picking needs only a
    /// shared reference (readers of the index hold a read lock).
    cursor: AtomicUsize,
}

impl<K: Eq, V> SharedGroup<K, V> {
    fn new(group: &str, filter: &str) -> Self {
        SharedGroup {
            group: group.into(),
            filter: filter.into(),
            members: Vec::new(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The group (share name).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The filter this shared subscription matches by.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no member (never the case for a group reported
    /// by a match: empty groups are removed).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members in joining order.
    pub fn members(&self) -> impl ExactSizeIterator<Item = (&K, &V)> + '_ {
        self.members.iter().map(|(k, v)| (k, v))
    }

    /// The options of member `key`, if it is one.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Picks the next member in round-robin order that `accept` accepts
    /// (for example one that is online), trying each member at most once.
    /// Concurrent callers start from different members.
    pub fn pick(&self, mut accept: impl FnMut(&K, &V) -> bool) -> Option<(&K, &V)> {
        let count = self.members.len();
        if count == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            let (key, value) = &self.members[start.wrapping_add(offset) % count];
            if accept(key, value) {
                // Skipped members were refused: the next pick starts after
                // the one chosen, not at the first one refused.
                if offset > 0 {
                    self.cursor.fetch_add(offset, Ordering::Relaxed);
                }
                return Some((key, value));
            }
        }
        None
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.members.push((key, value));
                None
            }
        }
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let position = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(position).1)
    }
}

/// Plain subscribers of one filter.
type PlainSlot<K, V> = HashMap<K, V>;
/// Shared subscriptions of one filter, by group name.
type SharedSlot<K, V> = HashMap<Box<str>, SharedGroup<K, V>>;

/// The subscription index: filters with their subscribers, matched against
/// topic names. `K` identifies a subscriber (cheap to clone), `V` holds its
/// subscription options.
#[derive(Debug)]
pub struct SubscriptionTrie<K, V> {
    /// Plain subscriptions.
    plain: Node<PlainSlot<K, V>>,
    /// Shared subscriptions, kept apart so the plain path never sees them.
    shared: Node<SharedSlot<K, V>>,
    /// Number of (filter, key) plain subscriptions plus (group, filter, key)
    /// shared memberships.
    len: usize,
}

impl<K, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        SubscriptionTrie {
            plain: Node::default(),
            shared: Node::default(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SubscriptionTrie<K, V> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes `key` to the plain filter `filter`; replaces and returns
    /// the options of an existing (filter, key) subscription.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let old = self.plain.slot_mut(filter).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Unsubscribes `key` from `filter`, pruning nodes left empty.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let old = self
            .plain
            .edit_slot(filter_levels(filter), |subscribers| subscribers.remove(key));
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Adds `key` to the shared subscription `$share/{group}/{filter}`;
    /// replaces and returns the options of an existing membership.
    pub fn insert_shared(&mut self, group: &str, filter: &str, key: K, value: V) -> Option<V> {
        let old = self
            .shared
            .slot_mut(filter)
            .entry(group.into())
            .or_insert_with(|| SharedGroup::new(group, filter))
            .insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key` from `$share/{group}/{filter}`, dropping the group when
    /// it has no member left and pruning nodes left empty.
    pub fn remove_shared(&mut self, group: &str, filter: &str, key: &K) -> Option<V> {
        let old = self.shared.edit_slot(filter_levels(filter), |groups| {
            let members = groups.get_mut(group)?;
            let old = members.remove(key);
            if members.is_empty() {
                groups.remove(group);
            }
            old
        });
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Calls `f` for every plain subscription whose filter matches `topic`,
    /// once per (filter, key): a subscriber with several matching filters is
    /// reported once for each.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) {
        self.plain
            .for_each_matching_slot(topic, &mut |subscribers| {
                for (key, value) in subscribers {
                    f(key, value);
                }
            });
    }

    /// Calls `f` once for every shared subscription (group and filter) whose
    /// filter matches `topic`, so the caller can pick one member per message.
    pub fn for_each_shared_match(&self, topic: &str, mut f: impl FnMut(&SharedGroup<K, V>)) {
        self.shared.for_each_matching_slot(topic, &mut |groups| {
            for group in groups.values() {
                f(group);
            }
        });
    }

    /// Number of plain subscriptions plus shared memberships.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no subscription at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Default number of first-level shards of a [`ShardedIndex`].
pub const DEFAULT_SHARDS: usize = 32;

/// The subscription index shared by all connections.
///
/// Filters are spread over `N` shards by a hash of their first level; the
/// filters whose first level is `+` or `#` live in one extra wildcard shard.
/// A topic can only be matched by filters of its own first level or of the
/// wildcard shard, so a publish read-locks at most two shards (one after the
/// other, never both at once) and a subscribe write-locks one. A `$` topic
/// skips the wildcard shard [MQTT-4.7.2-1].
///
/// The callbacks of the matching methods run under a read lock: they must
/// not subscribe or unsubscribe on the same index.
#[derive(Debug)]
pub struct ShardedIndex<K, V> {
    /// Filters with a literal first level, by hash of that level.
    shards: Box<[RwLock<SubscriptionTrie<K, V>>]>,
    /// Filters whose first level is `+` or `#`.
    wildcard: RwLock<SubscriptionTrie<K, V>>,
    /// Chooses the shard of a first level; randomly keyed so that clients
    /// cannot aim all their filters at one shard.
    hasher: RandomState,
}

impl<K, V> Default for ShardedIndex<K, V> {
    fn default() -> Self {
        Self::new(DEFAULT_SHARDS)
    }
}

/// The first level of a topic or filter.
fn first_level(topic: &str) -> &str {
    topic
        .split_once(SEPARATOR)
        .map_or(topic, |(first, _)| first)
}

impl<K, V> ShardedIndex<K, V> {
    /// An empty index with `shards` first-level shards (at least one).
    pub fn new(shards: usize) -> Self {
        ShardedIndex {
            shards: (0..shards.max(1))
                .map(|_| RwLock::new(SubscriptionTrie::default()))
                .collect(),
            wildcard: RwLock::new(SubscriptionTrie::default()),
            hasher: RandomState::new(),
        }
    }

    /// Number of first-level shards (the wildcard shard not included).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of topics and literal filters whose first level is `level`.
    fn literal_shard(&self, level: &str) -> &RwLock<SubscriptionTrie<K, V>> {
        // Truncating the hash is fine: only its distribution matters.
        let index = self.hasher.hash_one(level) as usize % self.shards.len();
        &self.shards[index]
    }

    /// The shard that holds `filter`.
    fn filter_shard(&self, filter: &str) -> &RwLock<SubscriptionTrie<K, V>> {
        let first = first_level(filter);
        if first == SINGLE || first == MULTI {
            &self.wildcard
        } else {
            self.literal_shard(first)
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> ShardedIndex<K, V> {
    /// See [`SubscriptionTrie::insert`].
    pub fn insert(&self, filter: &str, key: K, value: V) -> Option<V> {
        self.filter_shard(filter).write().insert(filter, key, value)
    }

    /// See [`SubscriptionTrie::remove`].
    pub fn remove(&self, filter: &str, key: &K) -> Option<V> {
        self.filter_shard(filter).write().remove(filter, key)
    }

    /// See [`SubscriptionTrie::insert_shared`].
    pub fn insert_shared(&self, group: &str, filter: &str, key: K, value: V) -> Option<V> {
        self.filter_shard(filter)
            .write()
            .insert_shared(group, filter, key, value)
    }

    /// See [`SubscriptionTrie::remove_shared`].
    pub fn remove_shared(&self, group: &str, filter: &str, key: &K) -> Option<V> {
        self.filter_shard(filter)
            .write()
            .remove_shared(group, filter, key)
    }

    /// See [`SubscriptionTrie::for_each_match`].
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K, &V)) {
        self.literal_shard(first_level(topic))
            .read()
            .for_each_match(topic, &mut f);
        if !topic.starts_with('$') {
            self.wildcard.read().for_each_match(topic, &mut f);
        }
    }

    /// See [`SubscriptionTrie::for_each_shared_match`].
    pub fn for_each_shared_match(&self, topic: &str, mut f: impl FnMut(&SharedGroup<K, V>)) {
        self.literal_shard(first_level(topic))
            .read()
            .for_each_shared_match(topic, &mut f);
        if !topic.starts_with('$') {
            self.wildcard.read().for_each_shared_match(topic, &mut f);
        }
    }

    /// Number of plain subscriptions plus shared memberships, summed shard by
    /// shard (so only a snapshot while others subscribe).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().len())
            .sum::<usize>()
            + self.wildcard.read().len()
    }

    /// Whether there is no subscription at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sorted keys of the plain subscriptions matching `topic`.
    fn matched(trie: &SubscriptionTrie<&'static str, u8>, topic: &str) -> Vec<&'static str> {
        let mut keys = Vec::new();
        trie.for_each_match(topic, |key, _| keys.push(*key));
        keys.sort_unstable();
        keys
    }

    fn trie_of(filters: &[(&'static str, &'static str)]) -> SubscriptionTrie<&'static str, u8> {
        let mut trie = SubscriptionTrie::new();
        for (filter, key) in filters {
            trie.insert(filter, *key, 0);
        }
        trie
    }

    #[test]
    fn literal_and_single_level_wildcard() {
        // [MQTT-4.7.1-3]
        let trie = trie_of(&[
            ("sport/tennis/player1", "exact"),
            ("sport/tennis/+", "plus"),
            ("sport/+/player1", "mid"),
            ("+/+/+", "three"),
        ]);
        assert_eq!(
            matched(&trie, "sport/tennis/player1"),
            ["exact", "mid", "plus", "three"]
        );
        assert_eq!(matched(&trie, "sport/tennis/player2"), ["plus", "three"]);
        assert_eq!(matched(&trie, "sport/tennis/"), ["plus", "three"]);
        assert!(matched(&trie, "sport/tennis").is_empty());
        assert!(matched(&trie, "sport/tennis/player1/ranking").is_empty());
    }

    #[test]
    fn multi_level_wildcard_matches_parent_and_below() {
        // [MQTT-4.7.1-2] and §4.7.1.2: "sport/#" matches "sport".
        let trie = trie_of(&[
            ("sport/#", "sport"),
            ("#", "all"),
            ("sport/tennis/#", "tennis"),
        ]);
        assert_eq!(matched(&trie, "sport"), ["all", "sport"]);
        assert_eq!(matched(&trie, "sport/"), ["all", "sport"]);
        assert_eq!(
            matched(&trie, "sport/tennis/player1"),
            ["all", "sport", "tennis"]
        );
        assert_eq!(matched(&trie, "sports"), ["all"]);
        assert_eq!(matched(&trie, "/"), ["all"]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let trie = trie_of(&[
            ("/a", "slash_a"),
            ("+/a", "plus_a"),
            ("a//b", "a__b"),
            ("a/+/b", "a_p_b"),
        ]);
        assert_eq!(matched(&trie, "/a"), ["plus_a", "slash_a"]);
        assert_eq!(matched(&trie, "a//b"), ["a__b", "a_p_b"]);
        assert!(matched(&trie, "a/b").is_empty());
    }

    #[test]
    fn dollar_topics_skip_leading_wildcards() {
        // [MQTT-4.7.2-1]
        let trie = trie_of(&[
            ("#", "all"),
            ("+/broker/uptime", "plus"),
            ("$SYS/#", "sys"),
            ("$SYS/+/uptime", "sys_plus"),
        ]);
        assert_eq!(matched(&trie, "$SYS/broker/uptime"), ["sys", "sys_plus"]);
        assert_eq!(matched(&trie, "x/broker/uptime"), ["all", "plus"]);
        // Only the first level counts.
        assert_eq!(matched(&trie, "a/$SYS"), ["all"]);
    }

    #[test]
    fn topics_are_case_sensitive() {
        // [MQTT-4.7.3-4]
        let trie = trie_of(&[("Accounts/+", "upper")]);
        assert!(matched(&trie, "accounts/x").is_empty());
        assert_eq!(matched(&trie, "Accounts/x"), ["upper"]);
    }

    #[test]
    fn insert_replaces_and_remove_returns_options() {
        // [MQTT-3.8.4-3]: a new subscription with an identical filter
        // replaces the existing one.
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert("a/+", "c1", 1), None);
        assert_eq!(trie.insert("a/+", "c1", 2), Some(1));
        assert_eq!(trie.insert("a/+", "c2", 0), None);
        assert_eq!(trie.len(), 2);
        let mut seen = Vec::new();
        trie.for_each_match("a/b", |k, v| seen.push((*k, *v)));
        seen.sort_unstable();
        assert_eq!(seen, [("c1", 2), ("c2", 0)]);
        assert_eq!(trie.remove("a/+", &"c1"), Some(2));
        assert_eq!(trie.remove("a/+", &"c1"), None);
        assert_eq!(trie.remove("a/b", &"c2"), None);
        assert_eq!(trie.remove("a/#", &"c2"), None);
        assert_eq!(trie.len(), 1);
    }

    #[test]
    fn remove_prunes_empty_nodes() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b/c", 1u32, ());
        trie.insert("a/+/#", 2, ());
        trie.insert("a", 3, ());
        trie.insert_shared("g", "x/+/y", 4, ());
        trie.remove("a/b/c", &1);
        assert!(!trie.plain.literal.is_empty());
        trie.remove("a/+/#", &2);
        // "a" still holds a subscriber but has no child left.
        let a = trie.plain.literal.get("a").expect("a/… still subscribed");
        assert!(a.literal.is_empty() && a.plus.is_none());
        trie.remove("a", &3);
        assert!(trie.plain.is_empty());
        assert!(!trie.shared.is_empty());
        trie.remove_shared("g", "x/+/y", &4);
        assert!(trie.shared.is_empty());
        assert!(trie.is_empty());
    }

    #[test]
    fn shared_subscriptions_are_apart_from_plain_ones() {
        // [MQTT-4.8.2-1]: matching is on the filter after the group.
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/+", "plain", 0u8);
        trie.insert_shared("g1", "a/+", "m1", 1);
        trie.insert_shared("g1", "a/+", "m2", 2);
        trie.insert_shared("g2", "a/#", "m1", 3);
        trie.insert_shared("g1", "b", "m3", 4);
        assert_eq!(trie.len(), 5);
        assert_eq!(matched(&trie, "a/b"), ["plain"]);
        let mut groups = Vec::new();
        trie.for_each_shared_match("a/b", |group| {
            let members: Vec<_> = group.members().map(|(k, v)| (*k, *v)).collect();
            groups.push((group.group().to_owned(), group.filter().to_owned(), members));
        });
        groups.sort();
        assert_eq!(
            groups,
            [
                ("g1".into(), "a/+".into(), vec![("m1", 1), ("m2", 2)]),
                ("g2".into(), "a/#".into(), vec![("m1", 3)]),
            ]
        );
        assert_eq!(trie.insert_shared("g1", "a/+", "m1", 9), Some(1));
        assert_eq!(trie.remove_shared("g1", "a/+", &"m2"), Some(2));
        assert_eq!(trie.remove_shared("g1", "a/+", &"m2"), None);
        assert_eq!(trie.remove_shared("g3", "a/+", &"m1"), None);
        assert_eq!(trie.len(), 4);
    }

    #[test]
    fn shared_pick_is_round_robin_over_accepted_members() {
        // §4.8.2: each message of a shared subscription goes to one member.
        let mut trie = SubscriptionTrie::new();
        for member in ["m1", "m2", "m3"] {
            trie.insert_shared("g", "t", member, ());
        }
        let mut picks = Vec::new();
        trie.for_each_shared_match("t", |group| {
            for _ in 0..6 {
                picks.push(*group.pick(|_, _| true).expect("group has members").0);
            }
        });
        assert_eq!(picks, ["m1", "m2", "m3", "m1", "m2", "m3"]);

        // With m2 offline, the others alternate and the cursor moves past
        // the member chosen.
        let mut picks = Vec::new();
        trie.for_each_shared_match("t", |group| {
            for _ in 0..4 {
                let picked = group.pick(|key, _| *key != "m2");
                picks.push(*picked.expect("m1 and m3 accepted").0);
            }
            assert!(group.pick(|_, _| false).is_none());
        });
        assert_eq!(picks, ["m1", "m3", "m1", "m3"]);
    }

    #[test]
    fn shared_group_keeps_joining_order() {
        let mut group = SharedGroup::new("g", "t");
        for (member, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
            group.insert(member, v);
        }
        group.insert("b", 20);
        group.remove(&"a");
        let order: Vec<_> = group.members().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(order, [("b", 20), ("c", 3), ("d", 4)]);
        assert_eq!(group.get(&"c"), Some(&3));
        assert_eq!(group.get(&"a"), None);
        assert_eq!(group.len(), 3);
    }

    #[test]
    fn matching_visits_only_candidate_branches() {
        // 10,000 filters under distinct first levels; a publish must look at
        // a handful of slots, not at all filters.
        let mut trie = SubscriptionTrie::new();
        for i in 0..10_000u32 {
            trie.insert(&format!("dev{i}/+/temp"), i, ());
            trie.insert(&format!("dev{i}/status"), i, ());
        }
        trie.insert("+/x/temp", 99_999, ());
        let mut slots = 0;
        let mut keys = Vec::new();
        trie.plain
            .for_each_matching_slot("dev42/x/temp", &mut |slot| {
                slots += 1;
                keys.extend(slot.keys().copied());
            });
        keys.sort_unstable();
        assert_eq!(keys, [42, 99_999]);
        assert!(slots <= 12, "visited {slots} slots");
    }

    #[test]
    fn sharded_index_routes_by_first_level() {
        let index = ShardedIndex::new(4);
        index.insert("a/b", "lit", 0u8);
        index.insert("+/b", "plus", 0);
        index.insert("#", "all", 0);
        index.insert("$SYS/#", "sys", 0);
        index.insert_shared("g", "a/+", "m", 0);
        index.insert_shared("g", "+/b", "w", 0);
        assert_eq!(index.len(), 6);
        let mut keys = Vec::new();
        index.for_each_match("a/b", |k, _| keys.push(*k));
        keys.sort_unstable();
        assert_eq!(keys, ["all", "lit", "plus"]);
        let mut keys = Vec::new();
        index.for_each_match("$SYS/b", |k, _| keys.push(*k));
        // [MQTT-4.7.2-1]
        assert_eq!(keys, ["sys"]);
        let mut filters = Vec::new();
        index.for_each_shared_match("a/b", |g| filters.push(g.filter().to_owned()));
        filters.sort();
        assert_eq!(filters, ["+/b", "a/+"]);
        assert_eq!(index.remove("+/b", &"plus"), Some(0));
        assert_eq!(index.remove_shared("g", "+/b", &"w"), Some(0));
        assert_eq!(index.len(), 4);
        assert!(!index.is_empty());
        assert!(
            index.wildcard.read().len() == 1,
            "only `#` left in the wildcard shard"
        );
    }

    #[test]
    fn sharded_index_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ShardedIndex<u64, u8>>();
        let index = std::sync::Arc::new(ShardedIndex::new(8));
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let index = std::sync::Arc::clone(&index);
                std::thread::spawn(move || {
                    for i in 0..250u64 {
                        index.insert(&format!("t{}/+", i % 17), t * 1000 + i, ());
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread does not panic");
        }
        assert_eq!(index.len(), 1000);
        let mut count = 0;
        index.for_each_match("t3/x", |_, _| count += 1);
        // i % 17 == 3 for i in 0..250: 15 values per thread.
        assert_eq!(count, 4 * 15);
    }
}

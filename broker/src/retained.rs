//! Retained messages by topic, as a tree of topic levels.
//!
//! A subscription must receive the retained messages of every topic its
//! filter matches. Stored as a tree, the lookup follows the filter: a literal
//! level descends into one child, `+` into every child of that node, `#` into
//! the whole subtree; so `a/b/+` over a million retained topics only visits
//! `a`, `a/b` and the children of `a/b`. The matching rules are those of
//! [`crate::trie`], `$` topics included: `#` and `+/...` do not match
//! `$SYS/...` [MQTT-4.7.2-1].
//!
//! Topics are expected to have passed [`crate::topic::validate_topic_name`]
//! and filters [`crate::topic::validate_filter`] (plain filters only: a
//! shared filter is matched by its `{filter}` part), which bounds the depth
//! of the recursion here.

use std::collections::HashMap;
use std::str::Split;

const SEPARATOR: char = '/';
const SINGLE: &str = "+";
const MULTI: &str = "#";

/// The children of a node by level, boxed and absent when there are none:
/// most nodes are leaves (a retained message each), and an empty map
/// inline would cost every one of them 48 bytes.
#[derive(Debug)]
// Boxed on purpose: the point is the 8-byte pointer instead of the map's
// 48 bytes in every leaf.
#[allow(clippy::box_collection)]
struct Children<V>(Option<Box<HashMap<Box<str>, Node<V>>>>);

impl<V> Children<V> {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn get(&self, level: &str) -> Option<&Node<V>> {
        self.0.as_ref()?.get(level)
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<V>> {
        self.0.as_mut()?.get_mut(level)
    }

    fn get_or_insert(&mut self, level: &str) -> &mut Node<V> {
        self.0
            .get_or_insert_with(Box::default)
            .entry(level.into())
            .or_default()
    }

    fn remove(&mut self, level: &str) {
        if let Some(map) = &mut self.0 {
            map.remove(level);
            if map.is_empty() {
                self.0 = None;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Box<str>, &Node<V>)> {
        self.0.iter().flat_map(|m| m.iter())
    }
}

/// One topic level.
#[derive(Debug)]
struct Node<V> {
    /// Children by level (the empty level included).
    children: Children<V>,
    /// The retained message of the topic ending at this node, with that full
    /// topic so matches can report it without rebuilding it from the path.
    entry: Option<(Box<str>, V)>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: Children(None),
            entry: None,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entry.is_none()
    }

    /// Removes the entry of the remaining `levels`, pruning nodes left empty.
    fn remove(&mut self, mut levels: Split<'_, char>) -> Option<V> {
        let Some(level) = levels.next() else {
            return self.entry.take().map(|(_, value)| value);
        };
        let child = self.children.get_mut(level)?;
        let removed = child.remove(levels);
        if child.is_empty() {
            self.children.remove(level);
        }
        removed
    }

    /// Reports the entries under `self` matched by the remaining filter
    /// `levels`; `self` matched the levels before. `is_root` applies the `$`
    /// rule to the first level. Counts every node visited in `visited`.
    fn match_filter(
        &self,
        mut levels: Split<'_, char>,
        is_root: bool,
        f: &mut impl FnMut(&str, &V),
        visited: &mut usize,
    ) {
        *visited += 1;
        match levels.next() {
            None => {
                if let Some((topic, value)) = &self.entry {
                    f(topic, value);
                }
            }
            // `#` is the last level: this node (the parent level) and all
            // below it.
            Some(MULTI) => self.visit_subtree(is_root, f, visited),
            Some(SINGLE) => {
                for (level, child) in self.children.iter() {
                    // [MQTT-4.7.2-1]
                    if is_root && level.starts_with('$') {
                        continue;
                    }
                    child.match_filter(levels.clone(), false, f, visited);
                }
            }
            Some(level) => {
                if let Some(child) = self.children.get(level) {
                    child.match_filter(levels, false, f, visited);
                }
            }
        }
    }

    /// Reports this node's entry and every entry below it (at the root,
    /// except `$` topics [MQTT-4.7.2-1]).
    fn visit_subtree(&self, is_root: bool, f: &mut impl FnMut(&str, &V), visited: &mut usize) {
        if let Some((topic, value)) = &self.entry {
            f(topic, value);
        }
        for (level, child) in self.children.iter() {
            if is_root && level.starts_with('$') {
                continue;
            }
            *visited += 1;
            child.visit_subtree(false, f, visited);
        }
    }
}

/// Retained messages: topic name → `V`.
#[derive(Debug)]
pub struct RetainedTree<V> {
    /// The level above the first: never holds an entry (topic names are not
    /// empty).
    root: Node<V>,
    /// Number of entries.
    len: usize,
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        RetainedTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> RetainedTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retains `value` for `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split(SEPARATOR) {
            node = node.children.get_or_insert(level);
        }
        match &mut node.entry {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            entry @ None => {
                *entry = Some((topic.into(), value));
                self.len += 1;
                None
            }
        }
    }

    /// Drops the retained value of `topic`, pruning nodes left empty.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let removed = self.root.remove(topic.split(SEPARATOR));
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The retained value of `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split(SEPARATOR) {
            node = node.children.get(level)?;
        }
        node.entry.as_ref().map(|(_, value)| value)
    }

    /// Calls `f` with the topic and value of every retained message whose
    /// topic matches the plain filter `filter`, visiting only the branches
    /// that can match.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut visited = 0;
        self.root
            .match_filter(filter.split(SEPARATOR), true, &mut f, &mut visited);
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<V> RetainedTree<V> {
        /// `for_each_match` returning how many nodes it visited.
        fn count_visits(&self, filter: &str, mut f: impl FnMut(&str, &V)) -> usize {
            let mut visited = 0;
            self.root
                .match_filter(filter.split(SEPARATOR), true, &mut f, &mut visited);
            visited
        }

        /// Number of nodes, the root included.
        fn node_count(&self) -> usize {
            fn count<V>(node: &Node<V>) -> usize {
                1 + node.children.iter().map(|(_, n)| count(n)).sum::<usize>()
            }
            count(&self.root)
        }
    }

    fn matched(tree: &RetainedTree<u32>, filter: &str) -> Vec<String> {
        let mut topics = Vec::new();
        tree.for_each_match(filter, |topic, _| topics.push(topic.to_owned()));
        topics.sort();
        topics
    }

    fn tree_of(topics: &[&str]) -> RetainedTree<u32> {
        let mut tree = RetainedTree::new();
        for (i, topic) in (0..).zip(topics) {
            tree.insert(topic, i);
        }
        tree
    }

    #[test]
    fn insert_get_replace_remove() {
        // [MQTT-3.3.1-5] (5.0): a new retained message replaces the one stored.
        let mut tree = RetainedTree::new();
        assert_eq!(tree.insert("a/b", 1), None);
        assert_eq!(tree.insert("a/b", 2), Some(1));
        assert_eq!(tree.insert("a", 3), None);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.get("a/b"), Some(&2));
        assert_eq!(tree.get("a"), Some(&3));
        assert_eq!(tree.get("a/b/c"), None);
        assert_eq!(tree.get("a/"), None);
        // [MQTT-3.3.1-6] (5.0): deleting (empty payload) removes it.
        assert_eq!(tree.remove("a/b"), Some(2));
        assert_eq!(tree.remove("a/b"), None);
        assert_eq!(tree.remove("x"), None);
        assert_eq!(tree.len(), 1);
        assert!(!tree.is_empty());
    }

    #[test]
    fn remove_prunes_empty_nodes() {
        let mut tree = RetainedTree::new();
        tree.insert("a/b/c/d", 1);
        tree.insert("a/b", 2);
        assert_eq!(tree.node_count(), 5);
        tree.remove("a/b/c/d");
        assert_eq!(tree.node_count(), 3);
        tree.remove("a/b");
        assert_eq!(tree.node_count(), 1);
        assert!(tree.is_empty());
    }

    #[test]
    fn wildcards_follow_the_matching_rules() {
        // [MQTT-4.7.1-2] [MQTT-4.7.1-3]
        let tree = tree_of(&[
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "sport/",
            "/sport",
            "Sport/tennis",
        ]);
        assert_eq!(
            matched(&tree, "sport/#"),
            ["sport", "sport/", "sport/tennis", "sport/tennis/player1"]
        );
        assert_eq!(matched(&tree, "sport/+"), ["sport/", "sport/tennis"]);
        assert_eq!(matched(&tree, "+"), ["sport"]);
        assert_eq!(matched(&tree, "+/sport"), ["/sport"]);
        assert_eq!(matched(&tree, "+/tennis"), ["Sport/tennis", "sport/tennis"]);
        // [MQTT-4.7.3-4]: case sensitive.
        assert_eq!(matched(&tree, "Sport/#"), ["Sport/tennis"]);
        assert_eq!(
            matched(&tree, "sport/tennis/player1"),
            ["sport/tennis/player1"]
        );
        assert!(matched(&tree, "sport/tennis/player2").is_empty());
        assert_eq!(matched(&tree, "#").len(), 6);
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        // [MQTT-4.7.2-1]
        let tree = tree_of(&["$SYS/uptime", "$SYS", "a/$SYS"]);
        assert_eq!(matched(&tree, "#"), ["a/$SYS"]);
        assert_eq!(matched(&tree, "+/uptime"), Vec::<String>::new());
        assert_eq!(matched(&tree, "+"), Vec::<String>::new());
        assert_eq!(matched(&tree, "$SYS/#"), ["$SYS", "$SYS/uptime"]);
        assert_eq!(matched(&tree, "$SYS/+"), ["$SYS/uptime"]);
        assert_eq!(matched(&tree, "+/+"), ["a/$SYS"]);
    }

    #[test]
    fn wildcard_match_visits_only_matching_branches() {
        // 100,000 topics: 100 devices × 1,000 sensors, plus one deep branch.
        let mut tree = RetainedTree::new();
        for device in 0..100u32 {
            for sensor in 0..1_000u32 {
                tree.insert(
                    &format!("dev{device}/s{sensor}/value"),
                    device * 1_000 + sensor,
                );
            }
        }
        assert_eq!(tree.len(), 100_000);
        let nodes = tree.node_count();

        let mut found = 0;
        let visited = tree.count_visits("dev7/+/value", |topic, value| {
            assert!(topic.starts_with("dev7/"));
            assert_eq!(tree.get(topic), Some(value));
            found += 1;
        });
        assert_eq!(found, 1_000);
        // root, dev7, its 1,000 sensors and their 1,000 `value` leaves.
        assert_eq!(visited, 2 + 2 * 1_000);
        assert!(visited * 50 < nodes, "visited {visited} of {nodes} nodes");

        let mut found = 0;
        let visited = tree.count_visits("dev7/s42/#", |_, _| found += 1);
        assert_eq!(found, 1);
        assert_eq!(visited, 4);

        let visited = tree.count_visits("dev7/s42/value", |_, _| {});
        assert_eq!(visited, 4);
    }
}

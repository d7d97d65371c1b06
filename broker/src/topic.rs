//! Topic names, topic filters and shared-subscription filters: validation and
//! a brute-force matcher.
//!
//! A topic name is what a PUBLISH carries; a topic filter is what a SUBSCRIBE
//! carries and may contain the wildcards `+` (exactly one level) and `#` (the
//! parent level and any number of levels below it). Both are split into levels
//! by `/`; empty levels are legal (`a//b`, `/a`, `a/`) and comparison is
//! byte-exact, so topics are case sensitive.
//!
//! [`matches()`] is deliberately the simplest correct implementation: it is the
//! oracle against which the subscription index ([`crate::trie`]) and the
//! retained-message tree ([`crate::retained`]) are property-tested.

/// The level separator.
const SEPARATOR: char = '/';
/// The single-level wildcard.
const SINGLE: &str = "+";
/// The multi-level wildcard.
const MULTI: &str = "#";
/// The first level of a shared-subscription filter (MQTT 5.0 §4.8.2).
const SHARE_PREFIX: &str = "$share";

/// Limits a server applies to topic names and filters, beyond the protocol's.
///
/// Both are checked on the string as received: `max_topic_length_bytes` on
/// its UTF-8 length in bytes, `max_topic_levels` on the number of `/`-separated
/// levels (for a shared filter, the levels of the filter after the group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Longest accepted topic name or filter, in bytes.
    pub max_topic_length_bytes: usize,
    /// Most `/`-separated levels accepted. The subscription index recurses
    /// once per level, so this also bounds its stack depth.
    pub max_topic_levels: usize,
}

impl Default for TopicLimits {
    /// The protocol's own length limit (a UTF-8 string is at most 65,535
    /// bytes) and 128 levels, far beyond any real hierarchy.
    fn default() -> Self {
        TopicLimits {
            max_topic_length_bytes: 65_535,
            max_topic_levels: 128,
        }
    }
}

/// Why a topic name or filter was refused. Each maps to 5.0 reason code
/// 0x90 (Topic Name invalid) for a name and 0x8F (Topic Filter invalid) for a
/// filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Zero-length name or filter [MQTT-4.7.3-1].
    #[error("topic is empty")]
    Empty,
    /// Longer than `max_topic_length_bytes`.
    #[error("topic is longer than the configured maximum")]
    TooLong,
    /// More levels than `max_topic_levels`.
    #[error("topic has more levels than the configured maximum")]
    TooManyLevels,
    /// A topic name containing `+` or `#` [MQTT-4.7.1-1, MQTT-3.3.2-2].
    #[error("topic name contains a wildcard character")]
    WildcardInName,
    /// `+` or `#` not alone in its level, or `#` not last
    /// [MQTT-4.7.1-2, MQTT-4.7.1-3].
    #[error("topic filter uses a wildcard incorrectly")]
    BadWildcard,
    /// A `$share/...` filter that is not `$share/{group}/{filter}` with a
    /// non-empty group free of `+`, `#` and `/` [MQTT-4.8.2-1, MQTT-4.8.2-2].
    #[error("malformed shared subscription filter")]
    BadShare,
    /// The null character U+0000 [MQTT-4.7.3-2].
    #[error("topic contains the null character")]
    NullChar,
}

/// Checks what every name and filter must satisfy: non-empty, within the byte
/// limit, free of U+0000.
fn validate_common(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_topic_length_bytes {
        return Err(TopicError::TooLong);
    }
    if topic.contains('\0') {
        return Err(TopicError::NullChar);
    }
    Ok(())
}

/// Number of levels: one more than the number of separators.
fn level_count(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
}

/// Validates a topic name as carried by a PUBLISH (or a will topic).
pub fn validate_topic_name(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    validate_common(topic, limits)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    if level_count(topic) > limits.max_topic_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(())
}

/// Validates a topic filter as carried by a SUBSCRIBE or UNSUBSCRIBE,
/// including shared filters `$share/{group}/{filter}` (whose level limit
/// applies to `{filter}`).
pub fn validate_filter(filter: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    validate_common(filter, limits)?;
    let inner = match parse_shared(filter)? {
        Some((_group, inner)) => inner,
        None => {
            validate_wildcards(filter)?;
            filter
        }
    };
    if level_count(inner) > limits.max_topic_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(())
}

/// Checks wildcard placement only: `+` and `#` each alone in their level
/// and `#` only as the last level [MQTT-4.7.1-2, MQTT-4.7.1-3].
fn validate_wildcards(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split(SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level == MULTI {
            if !is_last {
                return Err(TopicError::BadWildcard);
            }
        } else if level != SINGLE && level.contains(['+', '#']) {
            return Err(TopicError::BadWildcard);
        }
    }
    Ok(())
}

/// Splits a shared-subscription filter.
///
/// - `Ok(None)`: `filter` is a plain filter (its first level is not
///   `$share`); its wildcards are not checked here.
/// - `Ok(Some((group, inner)))`: `filter` is `$share/{group}/{inner}` with a
///   non-empty group free of `+`, `#` and `/`, and `inner` a non-empty filter
///   with well-placed wildcards. Matching is done on `inner`.
/// - `Err(BadShare)`: the first level is `$share` but the rest is not of that
///   shape (`$share`, `$share/g`, `$share//f`, `$share/g+/f`); errors in
///   `inner` are reported as such (`$share/g/a#` → `BadWildcard`).
///
/// Length and level limits are not checked here: see [`validate_filter`].
pub fn parse_shared(filter: &str) -> Result<Option<(&str, &str)>, TopicError> {
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        return Ok(None);
    };
    let rest = match rest.strip_prefix(SEPARATOR) {
        Some(rest) => rest,
        // `$share` alone is a shared filter missing its group and filter.
        None if rest.is_empty() => return Err(TopicError::BadShare),
        // `$shares/...`: the first level is something else.
        None => return Ok(None),
    };
    // [MQTT-4.8.2-2]: the group is followed by `/` and a filter.
    let Some((group, inner)) = rest.split_once(SEPARATOR) else {
        return Err(TopicError::BadShare);
    };
    // [MQTT-4.8.2-1]: a non-empty group without `/`, `+` or `#`.
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::BadShare);
    }
    if inner.is_empty() {
        return Err(TopicError::BadShare);
    }
    validate_wildcards(inner)?;
    Ok(Some((group, inner)))
}

/// Whether the plain topic filter `filter` matches the topic name `topic`.
///
/// Both are assumed valid (a shared filter must be split by [`parse_shared`]
/// first). A name beginning with `$` is not matched by a filter beginning
/// with a wildcard [MQTT-4.7.2-1]; `#` also matches its parent level
/// (`sport/#` matches `sport`).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut filter_levels = filter.split(SEPARATOR);
    let mut topic_levels = topic.split(SEPARATOR);
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some(MULTI), _) => return true,
            (Some(f), Some(t)) => {
                if f != SINGLE && f != t {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TopicLimits {
        TopicLimits::default()
    }

    #[test]
    fn names_and_filters_are_non_empty() {
        // [MQTT-4.7.3-1]
        assert_eq!(validate_topic_name("", &limits()), Err(TopicError::Empty));
        assert_eq!(validate_filter("", &limits()), Err(TopicError::Empty));
    }

    #[test]
    fn names_never_contain_wildcards() {
        // [MQTT-4.7.1-1] [MQTT-3.3.2-2]
        for name in ["+", "#", "a/+", "a/#", "a+b", "sport/tennis#"] {
            assert_eq!(
                validate_topic_name(name, &limits()),
                Err(TopicError::WildcardInName),
                "{name}"
            );
        }
    }

    #[test]
    fn empty_levels_are_legal() {
        // [MQTT-4.7.3-1] only forbids a zero-length topic, not empty levels.
        for t in ["/", "a//b", "/a", "a/", "//"] {
            assert_eq!(validate_topic_name(t, &limits()), Ok(()), "{t}");
            assert_eq!(validate_filter(t, &limits()), Ok(()), "{t}");
        }
        assert!(matches("a//b", "a//b"));
        assert!(matches("+/a", "/a"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/b", "a//b"));
    }

    #[test]
    fn multi_level_wildcard_must_be_alone_and_last() {
        // [MQTT-4.7.1-2]
        for ok in ["#", "a/#", "+/#", "/#", "a/+/#"] {
            assert_eq!(validate_filter(ok, &limits()), Ok(()), "{ok}");
        }
        for bad in ["a#", "#a", "a/#/b", "#/", "#/#", "a/b#", "sport/tennis#"] {
            assert_eq!(
                validate_filter(bad, &limits()),
                Err(TopicError::BadWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn single_level_wildcard_must_be_alone_in_its_level() {
        // [MQTT-4.7.1-3]
        for ok in ["+", "+/+", "a/+/b", "+/", "/+", "sport/+/player1"] {
            assert_eq!(validate_filter(ok, &limits()), Ok(()), "{ok}");
        }
        for bad in ["a+", "+a", "a/b+/c", "++", "sport+"] {
            assert_eq!(
                validate_filter(bad, &limits()),
                Err(TopicError::BadWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn null_character_is_refused() {
        // [MQTT-4.7.3-2]
        assert_eq!(
            validate_topic_name("a\0b", &limits()),
            Err(TopicError::NullChar)
        );
        assert_eq!(
            validate_filter("a/\0", &limits()),
            Err(TopicError::NullChar)
        );
    }

    #[test]
    fn length_limit_is_in_bytes() {
        let limits = TopicLimits {
            max_topic_length_bytes: 4,
            max_topic_levels: 10,
        };
        assert_eq!(validate_topic_name("abcd", &limits), Ok(()));
        assert_eq!(
            validate_topic_name("abcde", &limits),
            Err(TopicError::TooLong)
        );
        // "éé" is two characters but four bytes; "ééé" is six bytes.
        assert_eq!(validate_topic_name("éé", &limits), Ok(()));
        assert_eq!(
            validate_topic_name("ééé", &limits),
            Err(TopicError::TooLong)
        );
        assert_eq!(validate_filter("a/+/#", &limits), Err(TopicError::TooLong));
    }

    #[test]
    fn level_limit_counts_separators_plus_one() {
        let limits = TopicLimits {
            max_topic_length_bytes: 100,
            max_topic_levels: 3,
        };
        assert_eq!(validate_topic_name("a/b/c", &limits), Ok(()));
        assert_eq!(validate_topic_name("//", &limits), Ok(()));
        assert_eq!(
            validate_topic_name("a/b/c/d", &limits),
            Err(TopicError::TooManyLevels)
        );
        assert_eq!(
            validate_topic_name("///", &limits),
            Err(TopicError::TooManyLevels)
        );
        assert_eq!(validate_filter("a/+/#", &limits), Ok(()));
        assert_eq!(
            validate_filter("a/+/b/#", &limits),
            Err(TopicError::TooManyLevels)
        );
        // For a shared filter the levels counted are those of the filter.
        assert_eq!(validate_filter("$share/g/a/+/#", &limits), Ok(()));
        assert_eq!(
            validate_filter("$share/g/a/b/c/d", &limits),
            Err(TopicError::TooManyLevels)
        );
    }

    #[test]
    fn shared_filters_split_into_group_and_filter() {
        // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
        assert_eq!(parse_shared("$share/g/a/b"), Ok(Some(("g", "a/b"))));
        assert_eq!(parse_shared("$share/g/#"), Ok(Some(("g", "#"))));
        assert_eq!(parse_shared("$share/g//"), Ok(Some(("g", "/"))));
        assert_eq!(parse_shared("$share/g/$SYS/+"), Ok(Some(("g", "$SYS/+"))));
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert_eq!(parse_shared("$SYS/#"), Ok(None));
        assert_eq!(parse_shared("$shared/g/a"), Ok(None));
        assert_eq!(parse_shared("$Share/g/a"), Ok(None));
        assert_eq!(validate_filter("$share/g/a/+", &limits()), Ok(()));
    }

    #[test]
    fn malformed_shared_filters_are_refused() {
        // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
        for bad in [
            "$share",
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//f",
            "$share/g+/f",
            "$share/+/f",
            "$share/g#/f",
            "$share/#",
        ] {
            assert_eq!(parse_shared(bad), Err(TopicError::BadShare), "{bad}");
            assert_eq!(
                validate_filter(bad, &limits()),
                Err(TopicError::BadShare),
                "{bad}"
            );
        }
        assert_eq!(parse_shared("$share/g/a#"), Err(TopicError::BadWildcard));
        assert_eq!(
            validate_filter("$share/g/a/#/b", &limits()),
            Err(TopicError::BadWildcard)
        );
    }

    #[test]
    fn multi_level_wildcard_matches_parent_and_descendants() {
        // §4.7.1.2: "sport/#" also matches "sport" (the parent level).
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/"));
        assert!(matches("sport/#", "sport/tennis/player1"));
        assert!(!matches("sport/#", "sports"));
        assert!(matches("#", "a"));
        assert!(matches("#", "/"));
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
    }

    #[test]
    fn single_level_wildcard_matches_exactly_one_level() {
        // [MQTT-4.7.1-3]
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+", "a"));
        assert!(matches("+", ""));
        assert!(!matches("+", "/a"));
        assert!(matches("+/+", "/a"));
        assert!(matches("/+", "/a"));
        assert!(matches("+/+/#", "a/b"));
        assert!(!matches("+/+/+", "a/b"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        // [MQTT-4.7.2-1]
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(!matches("+", "$SYS"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
        assert!(matches("$SYS", "$SYS"));
        // Only a leading `$` counts.
        assert!(matches("+/$x", "a/$x"));
        assert!(matches("#", "a/$x"));
    }

    #[test]
    fn topics_are_case_sensitive() {
        // [MQTT-4.7.3-4]: no normalisation; "ACCOUNTS" and "Accounts" differ.
        assert!(!matches("ACCOUNTS", "Accounts"));
        assert!(!matches("a/B/+", "a/b/c"));
        assert!(matches("Accounts", "Accounts"));
    }
}

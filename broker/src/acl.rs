//! Authorization: an ACL file in Mosquitto's format.
//!
//! ```text
//! # topic lines before the first `user` line apply to anonymous clients
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! # pattern lines apply to every client, wherever they appear;
//! # %c is the client id, %u the username
//! pattern write devices/%c/status
//! ```
//!
//! The access word is optional (`readwrite` when absent); the topic is the
//! rest of the line and may contain spaces. When an ACL file is configured,
//! whatever no rule allows is denied. A `deny` rule that matches wins over
//! every allowing rule.
//!
//! Checks:
//! - PUBLISH (and a will): the topic name must be writable;
//! - SUBSCRIBE: the filter must be *covered* by a readable rule (every topic
//!   the filter can match is matched by the rule) and no `deny` rule may
//!   cover it;
//! - delivery: every message is checked for read access by the receiving
//!   client, so a `deny` rule inside a wider subscription is honoured.
//!
//! A `%c` or `%u` whose value contains `/`, `+` or `#` (or a `%u` for an
//! anonymous client) makes that pattern not apply: a client id can never
//! widen its own rule.

use std::collections::HashMap;
use std::path::Path;

use crate::auth::AuthError;
use crate::topic;

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, write: bool) -> bool {
        match self {
            Access::Read => !write,
            Access::Write => write,
            Access::ReadWrite => true,
            Access::Deny => false,
        }
    }
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    topic: String,
}

/// A loaded ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// `topic` lines before the first `user` line.
    anonymous: Vec<Rule>,
    /// `topic` lines in each `user` section.
    users: HashMap<String, Vec<Rule>>,
    /// `pattern` lines, for every client.
    patterns: Vec<Rule>,
}

impl Acl {
    /// Parses ACL text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Acl, AuthError> {
        let mut acl = Acl::default();
        let mut current: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |why: &str| AuthError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                why: why.to_owned(),
            };
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim_start();
            match word {
                "user" => {
                    if rest.is_empty() {
                        return Err(syntax("`user` needs a username"));
                    }
                    current = Some(rest.to_owned());
                    acl.users.entry(rest.to_owned()).or_default();
                }
                "topic" | "pattern" => {
                    let (access, topic) = match rest.split_once(char::is_whitespace) {
                        Some((a, t)) => match parse_access(a) {
                            Some(a) => (a, t.trim_start()),
                            None => (Access::ReadWrite, rest),
                        },
                        None => (Access::ReadWrite, rest),
                    };
                    if topic.is_empty() || parse_access(topic).is_some() {
                        return Err(syntax("expected `topic [read|write|readwrite|deny] TOPIC`"));
                    }
                    if !valid_rule_topic(topic) {
                        return Err(syntax("invalid topic filter"));
                    }
                    let rule = Rule {
                        access,
                        topic: topic.to_owned(),
                    };
                    if word == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(u) = &current {
                        acl.users.entry(u.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                _ => return Err(syntax("expected `user`, `topic` or `pattern`")),
            }
        }
        Ok(acl)
    }

    /// Reads and parses an ACL file.
    pub fn load(path: &Path) -> Result<Acl, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Acl::parse(&text, path)
    }

    /// The rules that apply to a client, patterns substituted.
    fn rules<'a>(
        &'a self,
        user: Option<&'a str>,
        client_id: &'a str,
    ) -> impl Iterator<Item = (Access, std::borrow::Cow<'a, str>)> + 'a {
        let own = match user {
            Some(u) => self.users.get(u).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.anonymous,
        };
        let own = own
            .iter()
            .map(|r| (r.access, std::borrow::Cow::Borrowed(r.topic.as_str())));
        let patterns = self
            .patterns
            .iter()
            .filter_map(move |r| substitute(&r.topic, user, client_id).map(|t| (r.access, t)));
        own.chain(patterns)
    }

    /// Whether the client may publish to (`write`) or receive from the
    /// topic name `topic`.
    pub fn check(&self, user: Option<&str>, client_id: &str, topic: &str, write: bool) -> bool {
        let mut allowed = false;
        for (access, rule) in self.rules(user, client_id) {
            if topic::matches(&rule, topic) {
                if access == Access::Deny {
                    return false;
                }
                allowed |= access.grants(write);
            }
        }
        allowed
    }

    /// Whether the client may subscribe to `filter` (a plain filter; a
    /// shared one is checked on its inner filter).
    pub fn check_subscribe(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        let filter = match topic::parse_shared(filter) {
            Ok(Some((_, inner))) => inner,
            _ => filter,
        };
        let mut allowed = false;
        for (access, rule) in self.rules(user, client_id) {
            if covers(&rule, filter) {
                if access == Access::Deny {
                    return false;
                }
                allowed |= access.grants(false);
            }
        }
        allowed
    }
}

fn parse_access(word: &str) -> Option<Access> {
    match word {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    }
}

/// A rule topic is a topic filter: `#` only as a whole last level, `+` only
/// as a whole level.
fn valid_rule_topic(t: &str) -> bool {
    let levels: Vec<&str> = t.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (*l == "#" && i == levels.len() - 1) || *l == "+" || (!l.contains('#') && !l.contains('+'))
    })
}

/// Fills `%c` and `%u` in a pattern; `None` when the pattern cannot apply.
fn substitute<'a>(
    pattern: &'a str,
    user: Option<&str>,
    client_id: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    if !pattern.contains('%') {
        return Some(std::borrow::Cow::Borrowed(pattern));
    }
    let unsafe_value = |v: &str| v.contains(['/', '+', '#']);
    let mut out = pattern.to_owned();
    if out.contains("%c") {
        if unsafe_value(client_id) || client_id.is_empty() {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    if out.contains("%u") {
        let u = user?;
        if unsafe_value(u) || u.is_empty() {
            return None;
        }
        out = out.replace("%u", u);
    }
    Some(std::borrow::Cow::Owned(out))
}

/// Whether every topic matched by `filter` is matched by `rule`.
fn covers(rule: &str, filter: &str) -> bool {
    // A rule starting with a wildcard never matches `$` topics [MQTT-4.7.2-1].
    if filter.starts_with('$') && (rule.starts_with('+') || rule.starts_with('#')) {
        return false;
    }
    let mut r = rule.split('/');
    let mut f = filter.split('/');
    loop {
        match (r.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(rl), Some(fl)) => {
                if fl == "+" || rl != fl {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous
topic read public/#
user alice
topic readwrite alice/#
topic deny alice/secret
topic sensors/with space
user bob
topic write bob/out
pattern read devices/%c/cmd
pattern write devices/%u/status
";

    fn acl() -> Acl {
        Acl::parse(FILE, Path::new("acl")).expect("parses")
    }

    #[test]
    fn sections_apply_to_their_users() {
        let a = acl();
        assert!(a.check(None, "x", "public/a", false));
        assert!(!a.check(None, "x", "public/a", true), "read only");
        assert!(
            !a.check(Some("alice"), "x", "public/a", false),
            "anonymous rules are not alice's"
        );
        assert!(a.check(Some("alice"), "x", "alice/a/b", true));
        assert!(
            a.check(Some("alice"), "x", "sensors/with space", true),
            "default readwrite"
        );
        assert!(!a.check(Some("alice"), "x", "bob/out", true));
        assert!(a.check(Some("bob"), "x", "bob/out", true));
        assert!(!a.check(Some("bob"), "x", "bob/out", false), "write only");
        assert!(
            !a.check(Some("carol"), "x", "alice/a", false),
            "no rule: denied"
        );
    }

    #[test]
    fn deny_wins() {
        let a = acl();
        assert!(!a.check(Some("alice"), "x", "alice/secret", false));
        assert!(!a.check(Some("alice"), "x", "alice/secret", true));
        assert!(
            a.check_subscribe(Some("alice"), "x", "alice/#"),
            "the wider filter is allowed"
        );
        assert!(!a.check_subscribe(Some("alice"), "x", "alice/secret"));
    }

    #[test]
    fn patterns_substitute_client_id_and_username() {
        let a = acl();
        assert!(a.check(Some("bob"), "dev1", "devices/dev1/cmd", false));
        assert!(!a.check(Some("bob"), "dev1", "devices/dev2/cmd", false));
        assert!(a.check(Some("carol"), "c", "devices/carol/status", true));
        assert!(
            !a.check(None, "c", "devices/carol/status", true),
            "%u needs a username"
        );
        // A client id with a wildcard or separator never widens the rule.
        assert!(!a.check(Some("bob"), "+", "devices/+/cmd", false));
        assert!(!a.check_subscribe(Some("bob"), "#", "devices/#/cmd"));
        assert!(!a.check(Some("bob"), "a/b", "devices/a/b/cmd", false));
    }

    #[test]
    fn subscribe_needs_a_covering_read_rule() {
        let a = acl();
        assert!(a.check_subscribe(None, "x", "public/#"));
        assert!(a.check_subscribe(None, "x", "public/+/x"));
        assert!(
            a.check_subscribe(None, "x", "public"),
            "public/# matches its parent"
        );
        assert!(!a.check_subscribe(None, "x", "#"));
        assert!(!a.check_subscribe(None, "x", "+/a"));
        assert!(
            !a.check_subscribe(Some("bob"), "x", "bob/out"),
            "write only"
        );
        assert!(a.check_subscribe(None, "x", "$share/g/public/a"));
    }

    #[test]
    fn covers_is_filter_inclusion() {
        assert!(covers("a/+", "a/b"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("#", "a/#"));
        assert!(!covers("#", "$SYS/x"));
        assert!(covers("a/#", "a"));
        assert!(!covers("a/+", "a/b/c"));
    }

    #[test]
    fn bad_lines_are_refused() {
        let p = Path::new("acl");
        assert!(Acl::parse("topic\n", p).is_err());
        assert!(Acl::parse("topic read\n", p).is_err());
        assert!(Acl::parse("user\n", p).is_err());
        assert!(Acl::parse("allow all\n", p).is_err());
        assert!(Acl::parse("topic read a/#/b\n", p).is_err());
        assert!(Acl::parse("topic read a+\n", p).is_err());
    }
}

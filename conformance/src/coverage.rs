//! Reads the expected-failures lists kept in `COVERAGE.md`.
//!
//! A list is the lines between `<!-- expected-failures: NAME -->` and
//! `<!-- end expected-failures -->`; each entry is a bullet whose first
//! code span is a test key: ``- `04-retain/003@5`: why``.

use std::collections::BTreeSet;

/// Why the list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    #[error("no `<!-- expected-failures: {0} -->` section")]
    NoSection(String),
    #[error("section `{0}` is not closed by `<!-- end expected-failures -->`")]
    Unclosed(String),
    #[error("bullet without a `key` code span: {0}")]
    BadEntry(String),
}

/// The keys listed as expected failures for `broker`.
pub fn expected_failures(text: &str, broker: &str) -> Result<BTreeSet<String>, CoverageError> {
    let open = format!("<!-- expected-failures: {broker} -->");
    let start = text
        .find(&open)
        .ok_or_else(|| CoverageError::NoSection(broker.to_owned()))?
        + open.len();
    let len = text[start..]
        .find("<!-- end expected-failures -->")
        .ok_or_else(|| CoverageError::Unclosed(broker.to_owned()))?;
    let mut keys = BTreeSet::new();
    for line in text[start..start + len].lines() {
        let line = line.trim();
        if !line.starts_with("- ") {
            continue;
        }
        let key = line
            .split('`')
            .nth(1)
            .filter(|k| k.contains('@') && k.contains('/'))
            .ok_or_else(|| CoverageError::BadEntry(line.to_owned()))?;
        keys.insert(key.to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_between_markers_only() {
        let text = "- `00-x/001@5` outside\n<!-- expected-failures: b -->\n\
                    intro text\n- `01-connect/002@5`: departs from [MQTT-1]\n\
                    - `13-malformed/004@3.1.1` why\n<!-- end expected-failures -->\n";
        let keys = expected_failures(text, "b").unwrap();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            vec!["01-connect/002@5", "13-malformed/004@3.1.1"]
        );
        assert_eq!(
            expected_failures(text, "c"),
            Err(CoverageError::NoSection("c".into()))
        );
    }

    #[test]
    fn a_bullet_without_a_key_is_an_error() {
        let text = "<!-- expected-failures: b -->\n- nothing\n<!-- end expected-failures -->";
        assert!(matches!(
            expected_failures(text, "b"),
            Err(CoverageError::BadEntry(_))
        ));
    }
}

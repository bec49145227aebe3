//! The `/` filter: a case-insensitive substring, or a regular expression when it starts with `~`.

use regex::{Regex, RegexBuilder};

use crate::inventory::Instance;

#[derive(Debug, Clone)]
pub enum Matcher {
    Everything,
    /// Lower-cased needle.
    Substring(String),
    Pattern(Regex),
}

impl Matcher {
    /// Parses what the operator typed. A bad regex is an error saying what is wrong, shown in
    /// the filter line; the previous list stays on screen meanwhile.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        if let Some(pattern) = text.strip_prefix('~') {
            if pattern.is_empty() {
                return Ok(Matcher::Everything);
            }
            return RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map(Matcher::Pattern)
                .map_err(|e| format!("~{pattern}: not a valid regex: {e}"));
        }
        if text.is_empty() {
            Ok(Matcher::Everything)
        } else {
            Ok(Matcher::Substring(text.to_lowercase()))
        }
    }

    pub fn matches_text(&self, text: &str) -> bool {
        match self {
            Matcher::Everything => true,
            Matcher::Substring(needle) => contains_ignore_case(text, needle),
            Matcher::Pattern(regex) => regex.is_match(text),
        }
    }

    /// An instance matches on its name, host, state words or UUID.
    pub fn matches(&self, instance: &Instance) -> bool {
        matches!(self, Matcher::Everything)
            || self.matches_text(&instance.name)
            || self.matches_text(instance.host.as_str())
            || self.matches_text(instance.state.as_virsh_str())
            || self.matches_text(&instance.uuid)
    }
}

/// ASCII case folding without allocating: instance names are ASCII in practice, and this runs
/// for every instance on every keystroke.
fn contains_ignore_case(haystack: &str, lower_needle: &str) -> bool {
    let needle = lower_needle.as_bytes();
    if needle.is_empty() {
        return true;
    }
    if !lower_needle.is_ascii() {
        return haystack.to_lowercase().contains(lower_needle);
    }
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::sample;
    use std::time::SystemTime;

    #[test]
    fn substring_is_case_insensitive() {
        let matcher = Matcher::parse("WeB").unwrap();
        assert!(matcher.matches_text("prod-web-01"));
        assert!(!matcher.matches_text("prod-db-01"));
        assert!(Matcher::parse("").unwrap().matches_text("anything"));
        assert!(Matcher::parse("é").unwrap().matches_text("CAFÉ"));
    }

    #[test]
    fn tilde_makes_a_regex() {
        let matcher = Matcher::parse("~^vm-0000[1-3]$").unwrap();
        assert!(matcher.matches_text("vm-00002"));
        assert!(!matcher.matches_text("vm-00004"));
        assert!(Matcher::parse("~").unwrap().matches_text("x"));
        let error = Matcher::parse("~(unclosed").unwrap_err();
        assert!(error.contains("not a valid regex"), "{error}");
    }

    #[test]
    fn instances_match_on_host_state_and_uuid_too() {
        let inventory = sample::inventory(2, 5, SystemTime::UNIX_EPOCH);
        let count = |text: &str| {
            let matcher = Matcher::parse(text).unwrap();
            inventory.instances().filter(|i| matcher.matches(i)).count()
        };
        assert_eq!(count("hv2"), 5);
        assert_eq!(count("shut off"), 2);
        assert_eq!(count("6f1c0003"), 1);
        assert_eq!(count("~vm-0000[0-4]"), 5);
    }
}

//! A small AIP-160 filter language for ListProducts.
//!
//! ```text
//! filter      = term { "AND" term }
//! term        = [ "NOT" | "-" ] restriction
//! restriction = "labels." KEY ( "=" | "!=" ) VALUE
//!             | "labels." KEY ":" "*"                       (has the label)
//!             | ( "iot" | "licensing" | "monetization" ) ":" "*"   (has the profile)
//!             | ( "display_name" | "version" ) ( "=" | "!=" ) VALUE
//!             | ( "display_name" | "version" ) ":" "*"      (is set)
//!             | "sync.state" ( "=" | "!=" ) STATE            (a vendor's sync state)
//!             | "sync.vendor" ( "=" | "!=" ) VENDOR          (has a vendor's sync entry)
//!             | "sync" ":" "*"                               (has any sync entry)
//! VALUE       = a "quoted string" (with \" and \\ escapes) or a bare word
//! STATE       = FAILED, DRIFTED, PENDING, SYNCED, DISABLED (or SYNC_STATE_FAILED, ...)
//! VENDOR      = an API vendor name, VENDOR_X or x in any case
//! ```
//! The `sync.*` restrictions that are not negated hold for one and the same
//! sync entry: `sync.vendor = VENDOR_X AND sync.state = FAILED` is a product
//! whose copy at that vendor FAILED, not one that failed somewhere and has X
//! somewhere. A negated one holds for every entry: `NOT sync.state = FAILED`
//! is a product with no FAILED entry. `OR` and parentheses are not supported;
//! they are reported as such rather than misread.

use crate::pb::{Product, SyncState, Vendor, VendorSync};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// The most restrictions one filter may hold.
pub const MAX_TERMS: usize = 32;

/// A parsed filter: products match when every term does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Label {
        key: String,
        value: Option<String>,
    },
    Profile(Profile),
    /// A text field equal to `value`, or (`None`) set at all.
    Text {
        field: TextField,
        value: Option<String>,
    },
    Sync(SyncTest),
}

/// A restriction on one sync entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncTest {
    Any,
    State(SyncState),
    Vendor(Vendor),
}

impl SyncTest {
    fn matches(self, entry: &VendorSync) -> bool {
        match self {
            SyncTest::Any => true,
            SyncTest::State(state) => entry.state == state as i32,
            SyncTest::Vendor(vendor) => entry.vendor == vendor as i32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Iot,
    Licensing,
    Monetization,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    DisplayName,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    NotEquals,
    Has,
    Star,
    Minus,
    Unsupported(char),
}

impl Filter {
    /// Parses a filter; the empty string matches everything.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_FILTER_LEN {
            return Err(format!("is longer than {MAX_FILTER_LEN} bytes"));
        }
        let tokens = tokenize(text)?;
        let mut terms = Vec::new();
        let mut rest = tokens.as_slice();
        while !rest.is_empty() {
            if !terms.is_empty() {
                match rest.split_first() {
                    Some((Token::Word(w), tail)) if w == "AND" => rest = tail,
                    Some((Token::Word(w), _)) if w == "OR" => {
                        return Err("OR is not supported; use AND".into());
                    }
                    Some((other, _)) => {
                        return Err(format!("expected AND, found {}", describe(other)));
                    }
                    None => break,
                }
            }
            let (term, tail) = parse_term(rest)?;
            terms.push(term);
            rest = tail;
            if terms.len() > MAX_TERMS {
                return Err(format!("has more than {MAX_TERMS} restrictions"));
            }
        }
        Ok(Filter { terms })
    }

    /// Whether `product` passes the filter.
    pub fn matches(&self, product: &Product) -> bool {
        // The sync restrictions that are not negated: one entry meets them all.
        let same_entry: Vec<SyncTest> = self
            .terms
            .iter()
            .filter_map(|term| match (&term.test, term.negated) {
                (Test::Sync(test), false) => Some(*test),
                _ => None,
            })
            .collect();
        let entry_found = same_entry.is_empty() || product.sync.iter().any(|e| same_entry.iter().all(|t| t.matches(e)));
        entry_found
            && self.terms.iter().all(|term| match (&term.test, term.negated) {
                (Test::Sync(_), false) => true,
                (Test::Sync(test), true) => !product.sync.iter().any(|e| test.matches(e)),
                (test, negated) => test.matches(product) != negated,
            })
    }

    /// Whether the filter lets every product through.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl Test {
    fn matches(&self, p: &Product) -> bool {
        match self {
            Test::Label { key, value: None } => p.labels.contains_key(key),
            Test::Label { key, value: Some(v) } => p.labels.get(key) == Some(v),
            Test::Profile(Profile::Iot) => p.iot.is_some(),
            Test::Profile(Profile::Licensing) => p.licensing.is_some(),
            Test::Profile(Profile::Monetization) => p.monetization.is_some(),
            Test::Text { field, value } => {
                let text = match field {
                    TextField::DisplayName => &p.display_name,
                    TextField::Version => &p.version,
                };
                match value {
                    Some(value) => text == value,
                    None => !text.is_empty(),
                }
            }
            Test::Sync(test) => p.sync.iter().any(|e| test.matches(e)),
        }
    }
}

/// `FAILED` or `SYNC_STATE_FAILED` (any case) as a sync state.
fn sync_state(value: &str) -> Result<SyncState, String> {
    let upper = value.to_uppercase();
    let name = if upper.starts_with("SYNC_STATE_") {
        upper
    } else {
        format!("SYNC_STATE_{upper}")
    };
    match SyncState::from_str_name(&name) {
        Some(SyncState::Unspecified) | None => Err(format!(
            "sync.state cannot be {value:?}; use FAILED, DRIFTED, PENDING, SYNCED or DISABLED"
        )),
        Some(state) => Ok(state),
    }
}

/// `VENDOR_X` or `x` (any case) as a vendor.
fn sync_vendor(value: &str) -> Result<Vendor, String> {
    let upper = value.to_uppercase();
    let name = if upper.starts_with("VENDOR_") {
        upper
    } else {
        format!("VENDOR_{upper}")
    };
    match Vendor::from_str_name(&name) {
        Some(Vendor::Unspecified) | None => Err(format!(
            "sync.vendor cannot be {value:?}; use a vendor's API name such as {}",
            (1..=i32::from(u8::MAX))
                .map_while(|n| Vendor::try_from(n).ok())
                .map(|v| v.as_str_name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(vendor) => Ok(vendor),
    }
}

fn parse_term(tokens: &[Token]) -> Result<(Term, &[Token]), String> {
    let (negated, tokens) = match tokens {
        [Token::Word(w), rest @ ..] if w == "NOT" => (true, rest),
        [Token::Minus, rest @ ..] => (true, rest),
        _ => (false, tokens),
    };
    let [Token::Word(name), op, rest @ ..] = tokens else {
        return Err(match tokens.first() {
            Some(t) => format!(
                "expected a restriction such as labels.env = \"prod\", found {}",
                describe(t)
            ),
            None => "ends where a restriction was expected".into(),
        });
    };
    let (value, rest) = match (op, rest) {
        (Token::Has, [Token::Star, rest @ ..]) => (None, rest),
        (Token::Has, _) => return Err(format!("only `{name}:*` is supported after `:`")),
        (Token::Equals | Token::NotEquals, [Token::Quoted(v) | Token::Word(v), rest @ ..]) => (Some(v.clone()), rest),
        (Token::Equals | Token::NotEquals, _) => {
            return Err(format!("expected a value after {}", describe(op)));
        }
        (other, _) => {
            return Err(format!("expected =, != or : after {name}, found {}", describe(other)));
        }
    };
    let negated = negated != (*op == Token::NotEquals);
    let test = if let Some(key) = name.strip_prefix("labels.") {
        if key.is_empty() {
            return Err("labels. must be followed by a label key".into());
        }
        Test::Label {
            key: key.to_owned(),
            value,
        }
    } else {
        match (name.as_str(), value) {
            ("iot", None) => Test::Profile(Profile::Iot),
            ("licensing", None) => Test::Profile(Profile::Licensing),
            ("monetization", None) => Test::Profile(Profile::Monetization),
            ("display_name", value) => Test::Text {
                field: TextField::DisplayName,
                value,
            },
            ("version", value) => Test::Text {
                field: TextField::Version,
                value,
            },
            ("sync", None) => Test::Sync(SyncTest::Any),
            ("sync.state", Some(value)) => Test::Sync(SyncTest::State(sync_state(&value)?)),
            ("sync.vendor", Some(value)) => Test::Sync(SyncTest::Vendor(sync_vendor(&value)?)),
            // A known field, asked the wrong way: say how it is asked.
            (known @ ("iot" | "licensing" | "monetization" | "sync"), Some(_)) => {
                return Err(format!("{known} takes only `{known}:*` (has it), not = or !="));
            }
            (known @ ("sync.state" | "sync.vendor"), None) => {
                return Err(format!(
                    "{known} takes = or != and a value, not `:*`; use sync:* for any sync entry"
                ));
            }
            (other, _) => {
                return Err(format!(
                    "cannot filter on {other:?}; use labels.KEY, iot, licensing, monetization, display_name, version, sync.state or sync.vendor"
                ));
            }
        }
    };
    Ok((Term { negated, test }, rest))
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("{w:?}"),
        Token::Quoted(q) => format!("the string {q:?}"),
        Token::Equals => "=".into(),
        Token::NotEquals => "!=".into(),
        Token::Has => ":".into(),
        Token::Star => "*".into(),
        Token::Minus => "-".into(),
        Token::Unsupported(c) => format!("{c:?}"),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("`!` must be followed by `=`".into());
                }
                tokens.push(Token::NotEquals);
            }
            ':' => {
                chars.next();
                tokens.push(Token::Has);
            }
            '*' => {
                chars.next();
                tokens.push(Token::Star);
            }
            '-' => {
                chars.next();
                tokens.push(Token::Minus);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => value.push(escaped),
                            _ => {
                                return Err("only \\\" and \\\\ escapes are allowed in strings".into());
                            }
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err("a string is not closed".into()),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => {
                tokens.push(Token::Unsupported(other));
                chars.next();
            }
        }
    }
    if let Some(Token::Unsupported(c)) = tokens.iter().find(|t| matches!(t, Token::Unsupported(_))) {
        return Err(format!(
            "unexpected character {c:?} (parentheses and OR are not supported)"
        ));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::IotProfile;

    fn product(labels: &[(&str, &str)], iot: bool) -> Product {
        Product {
            display_name: "Thermo".into(),
            version: "1.0.0".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            iot: iot.then(IotProfile::default),
            ..Default::default()
        }
    }

    fn matches(filter: &str, p: &Product) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(p)
    }

    #[test]
    fn empty_filter_matches_all() {
        assert!(matches("", &product(&[], false)));
        assert!(matches("   ", &product(&[], false)));
    }

    #[test]
    fn labels_and_profiles() {
        let p = product(&[("env", "prod"), ("team", "a-b")], true);
        assert!(matches(r#"labels.env = "prod""#, &p));
        assert!(matches("labels.env=prod", &p));
        assert!(!matches(r#"labels.env != "prod""#, &p));
        assert!(matches("labels.team = a-b AND iot:*", &p));
        assert!(matches("labels.env:* AND NOT licensing:*", &p));
        assert!(matches("-monetization:* AND -labels.missing:*", &p));
        assert!(!matches("labels.missing = x", &p));
        assert!(matches(r#"display_name = "Thermo" AND version = "1.0.0""#, &p));
    }

    fn with_sync(entries: &[(&str, SyncState)]) -> Product {
        Product {
            sync: entries
                .iter()
                .map(|(vendor, state)| VendorSync {
                    vendor: Vendor::from_str_name(vendor).expect("an API vendor name") as i32,
                    state: *state as i32,
                    ..Default::default()
                })
                .collect(),
            ..product(&[], false)
        }
    }

    #[test]
    fn sync_restrictions_hold_for_one_entry() {
        let p = with_sync(&[
            ("VENDOR_ENOS", SyncState::Failed),
            ("VENDOR_CRYPTLEX", SyncState::Synced),
        ]);
        assert!(matches(r#"sync.state = "FAILED""#, &p));
        assert!(matches("sync.state = SYNC_STATE_FAILED", &p));
        assert!(matches("sync.state = failed AND sync.vendor = VENDOR_ENOS", &p));
        assert!(
            !matches("sync.state = FAILED AND sync.vendor = VENDOR_CRYPTLEX", &p),
            "no entry is both"
        );
        assert!(matches("sync.vendor = cryptlex AND sync.state = SYNCED", &p));
        assert!(!matches("NOT sync.state = FAILED", &p));
        assert!(matches("sync.state != PENDING", &p), "no entry is PENDING");
        assert!(matches("sync:*", &p));
        assert!(matches("display_name:*", &p) != p.display_name.is_empty());
        assert!(matches("NOT version:*", &p) == p.version.is_empty());
        assert!(!matches("sync:*", &product(&[], false)));
        assert!(matches("NOT sync:*", &product(&[], false)));
        assert!(!matches("sync.vendor = VENDOR_REVENIUM", &p));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (bad, says) in [
            ("labels.env = prod OR iot:*", "OR is not supported"),
            ("(iot:*)", "parentheses"),
            ("color = red", "cannot filter on \"color\""),
            ("labels.env =", "expected a value"),
            ("iot:x", "only `iot:*`"),
            ("labels.env = \"open", "not closed"),
            ("iot:* licensing:*", "expected AND"),
            (
                "sync.state = BROKEN",
                "use FAILED, DRIFTED, PENDING, SYNCED or DISABLED",
            ),
            ("sync.state = UNSPECIFIED", "sync.state cannot be"),
            ("sync.vendor = acme", "use a vendor's API name"),
            ("iot = x", "iot takes only `iot:*`"),
            ("sync.state:*", "use sync:* for any sync entry"),
        ] {
            let err = Filter::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn long_filters_are_refused() {
        assert!(Filter::parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
        let many = vec!["iot:*"; MAX_TERMS + 1].join(" AND ");
        assert!(Filter::parse(&many).is_err());
    }

    /// Filters from the grammar's own words and from junk: parsed or refused,
    /// never a panic, and a parsed filter can be evaluated.
    fn hostile_filter() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let word = prop_oneof![
            proptest::sample::select(
                &[
                    "AND",
                    "OR",
                    "NOT",
                    "-",
                    "(",
                    ")",
                    ":",
                    "=",
                    "!=",
                    "*",
                    "\"",
                    "labels.",
                    "iot",
                    "display_name",
                    "labels.env",
                    "version",
                    "`",
                    " ",
                ][..]
            )
            .prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        proptest::collection::vec(word, 0..24).prop_map(|words| words.concat())
    }

    proptest::proptest! {
        #[test]
        fn any_filter_is_parsed_or_refused_without_panic(text in hostile_filter()) {
            if let Ok(filter) = Filter::parse(&text) {
                let _ = filter.matches(&product(&[("env", "prod")], true));
            }
        }
    }
}

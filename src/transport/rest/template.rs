//! `google.api.http` path templates (AIP-127): parsing, and matching a request
//! path against one.
//!
//! The grammar, as `google/api/http.proto` gives it:
//! `Template = "/" Segments [ Verb ]`, `Segments = Segment { "/" Segment }`,
//! `Segment = "*" | "**" | LITERAL | Variable`,
//! `Variable = "{" FieldPath [ "=" Segments ] "}"`, `Verb = ":" LITERAL`.
//! A variable without a pattern is `{field=*}`; `**` matches the rest of the
//! path, so it may only come last.

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: one or more segments, up to the end.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    part: Part,
    /// The variable (an index into `variables`) this segment is bound to.
    variable: Option<usize>,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// Each variable's request field path, e.g. `["product", "name"]`.
    variables: Vec<Vec<String>>,
    verb: Option<String>,
    source: String,
}

/// A variable's value in a matched path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub field_path: Vec<String>,
    pub value: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("path template {source:?}: {why}"));
        let Some(rest) = source.strip_prefix('/') else {
            return bad("does not start with /");
        };
        // The verb is a colon after the last segment, outside any variable.
        let (body, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') && !rest[at..].contains('/') => {
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            _ => (rest, None),
        };
        let mut template = Template {
            segments: Vec::new(),
            variables: Vec::new(),
            verb,
            source: source.to_string(),
        };
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let Some(end) = inner.find('}') else {
                    return bad("a variable is not closed");
                };
                let (field, pattern) = match inner[..end].split_once('=') {
                    Some((field, pattern)) => (field, pattern),
                    None => (&inner[..end], "*"),
                };
                let index = template.variables.len();
                template.variables.push(field.split('.').map(str::to_string).collect());
                for piece in pattern.split('/') {
                    template.segments.push(Segment {
                        part: part_of(piece),
                        variable: Some(index),
                    });
                }
                chars = &inner[end + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                template.segments.push(Segment {
                    part: part_of(&chars[..end]),
                    variable: None,
                });
                chars = &chars[end..];
            }
            chars = match chars.strip_prefix('/') {
                Some("") => return bad("ends with /"),
                Some(next) => next,
                None if chars.is_empty() => chars,
                None => return bad("a variable is followed by more than a /"),
            };
        }
        let rests = template.segments.iter().filter(|s| s.part == Part::Rest).count();
        if rests > 1 || (rests == 1 && template.segments.last().map(|s| &s.part) != Some(&Part::Rest)) {
            return bad("** may only be the last segment");
        }
        if template.variables.iter().any(|path| path.iter().any(String::is_empty)) {
            return bad("a variable has an empty field name");
        }
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The request fields the path binds.
    pub fn variables(&self) -> &[Vec<String>] {
        &self.variables
    }

    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The OpenAPI form of the path: each variable becomes one `{param}`
    /// named after the collection before its wildcard (`{name=products/*}`
    /// → `/products/{product}`), literal segments stay.
    pub fn openapi_path(&self) -> (String, Vec<(String, Vec<String>)>) {
        let mut path = String::new();
        let mut params = Vec::new();
        let mut previous_literal = "";
        for segment in &self.segments {
            path.push('/');
            match (&segment.part, segment.variable) {
                (Part::Literal(text), _) => {
                    path.push_str(text);
                    previous_literal = text;
                }
                (Part::One | Part::Rest, Some(index)) => {
                    let name = singular(previous_literal);
                    path.push_str(&format!("{{{name}}}"));
                    params.push((name, self.variables[index].clone()));
                }
                (Part::One | Part::Rest, None) => path.push_str("{segment}"),
            }
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        (path, params)
    }

    /// Matches a request path (as sent, percent-encoded), giving each
    /// variable's percent-decoded value.
    pub fn matches(&self, path: &str) -> Option<Vec<Binding>> {
        let rest = path.strip_prefix('/')?;
        let mut pieces: Vec<&str> = rest.split('/').collect();
        let last = pieces.pop()?;
        let (last, verb) = match last.rfind(':') {
            Some(at) => (&last[..at], Some(&last[at + 1..])),
            None => (last, None),
        };
        if verb != self.verb.as_deref() {
            return None;
        }
        pieces.push(last);
        if pieces.iter().any(|p| p.is_empty()) {
            return None;
        }
        let ends_in_rest = self.segments.last().is_some_and(|s| s.part == Part::Rest);
        if pieces.len() < self.segments.len() || (!ends_in_rest && pieces.len() != self.segments.len()) {
            return None;
        }
        let mut values: Vec<Vec<String>> = vec![Vec::new(); self.variables.len()];
        for (at, segment) in self.segments.iter().enumerate() {
            let taken: &[&str] = match segment.part {
                Part::Rest => &pieces[at..],
                _ => &pieces[at..=at],
            };
            if let Part::Literal(text) = &segment.part
                && taken[0] != text
            {
                return None;
            }
            if let Some(index) = segment.variable {
                for piece in taken {
                    values[index].push(percent_decode(piece)?);
                }
            }
        }
        Some(
            self.variables
                .iter()
                .zip(values)
                .map(|(field_path, parts)| Binding {
                    field_path: field_path.clone(),
                    value: parts.join("/"),
                })
                .collect(),
        )
    }
}

fn part_of(piece: &str) -> Part {
    match piece {
        "*" => Part::One,
        "**" => Part::Rest,
        literal => Part::Literal(literal.to_string()),
    }
}

/// `products` → `product`: the name of one member of a collection.
fn singular(collection: &str) -> String {
    match collection.strip_suffix('s') {
        Some(one) if !one.is_empty() => one.to_string(),
        _ if collection.is_empty() => "id".to_string(),
        _ => format!("{collection}_id"),
    }
}

/// Percent-decodes one path segment; `None` if it is not UTF-8 afterwards.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && at + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[at + 1]), hex(bytes[at + 2]))
        {
            out.push(high << 4 | low);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        Template::parse(template).unwrap().matches(path).map(|bindings| {
            bindings
                .into_iter()
                .map(|b| (b.field_path.join("."), b.value))
                .collect()
        })
    }

    #[test]
    fn variables_bind_their_whole_pattern() {
        assert_eq!(
            bound("/v1/{name=products/*}", "/v1/products/abc"),
            Some(vec![("name".into(), "products/abc".into())])
        );
        assert_eq!(
            bound("/v1/{product.name=products/*}", "/v1/products/a-1"),
            Some(vec![("product.name".into(), "products/a-1".into())])
        );
        assert_eq!(bound("/v1/{name=products/*}", "/v1/products"), None);
        assert_eq!(bound("/v1/{name=products/*}", "/v1/products/a/b"), None);
        assert_eq!(bound("/v1/{name=products/*}", "/v1/operations/a"), None);
        assert_eq!(bound("/v1/products", "/v1/products"), Some(vec![]));
        assert_eq!(
            bound("/v1/{name=operations}", "/v1/operations"),
            Some(vec![("name".into(), "operations".into())])
        );
    }

    #[test]
    fn verbs_must_match_exactly() {
        assert_eq!(
            bound("/v1/{name=products/*}:sync", "/v1/products/abc:sync"),
            Some(vec![("name".into(), "products/abc".into())])
        );
        assert_eq!(bound("/v1/{name=products/*}:sync", "/v1/products/abc"), None);
        assert_eq!(bound("/v1/{name=products/*}", "/v1/products/abc:sync"), None);
        assert_eq!(bound("/v1/products:watch", "/v1/products:watch"), Some(vec![]));
        assert_eq!(bound("/v1/products", "/v1/products:watch"), None);
    }

    #[test]
    fn double_wildcards_take_the_rest() {
        assert_eq!(
            bound("/v1/{name=operations/**}:cancel", "/v1/operations/a/b:cancel"),
            Some(vec![("name".into(), "operations/a/b".into())])
        );
        assert!(Template::parse("/v1/{name=**}/x").is_err());
    }

    #[test]
    fn values_are_percent_decoded() {
        assert_eq!(
            bound("/v1/{name=products/*}", "/v1/products/a%2Db"),
            Some(vec![("name".into(), "products/a-b".into())])
        );
        assert_eq!(bound("/v1/{name=products/*}", "/v1/products/%FF"), None);
    }

    #[test]
    fn openapi_paths_name_one_member_of_the_collection() {
        let template = Template::parse("/v1/{product.name=products/*}:sync").unwrap();
        assert_eq!(
            template.openapi_path(),
            (
                "/v1/products/{product}:sync".to_string(),
                vec![("product".to_string(), vec!["product".to_string(), "name".to_string()])]
            )
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["v1/products", "/v1/{name", "/v1/products/", "/v1/{=products/*}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}

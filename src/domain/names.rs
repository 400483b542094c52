//! Resource names (`products/{product_id}`) and product ids (AIP-122).

use super::FieldViolation;

const COLLECTION: &str = "products/";
const MAX_ID_LEN: usize = 63;

/// The resource name of the product with this id.
pub fn product_name(id: &str) -> String {
    format!("{COLLECTION}{id}")
}

/// Checks an id against AIP-122: 1-63 characters of `[a-z0-9-]`, starting with a
/// letter and not ending with a hyphen. Returns why it is not valid.
pub fn check_product_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
        return Err(format!(
            "must be 1-{MAX_ID_LEN} characters long, got {}",
            id.chars().count()
        ));
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err("must start with a lower-case letter".into());
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err("must not end with a hyphen".into());
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "may contain only lower-case letters, digits and hyphens, found {bad:?}"
        ));
    }
    Ok(())
}

/// Parses `products/{product_id}`, reporting problems against `field`.
pub fn parse_product_name<'a>(name: &'a str, field: &str) -> Result<&'a str, FieldViolation> {
    if name.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    let id = name.strip_prefix(COLLECTION).ok_or_else(|| {
        FieldViolation::new(
            field,
            format!("must have the form products/{{product_id}}, got {name:?}"),
        )
    })?;
    check_product_id(id).map_err(|why| FieldViolation::new(field, format!("product id {why}")))?;
    Ok(id)
}

/// A fresh product id for creates that name none: `p` and a time-ordered UUIDv7
/// in hex, so generated ids list in creation order and always start with a letter.
pub fn generate_product_id() -> String {
    format!("p{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_aip122_ids() {
        for id in ["a", "sensor-1", "a1-b2", &"x".repeat(63)] {
            assert_eq!(check_product_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_bad_ids_with_a_reason() {
        for id in ["", "1abc", "-a", "a-", "Abc", "a_b", "a.b", "ä", &"x".repeat(64)] {
            assert!(check_product_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_ordered() {
        let a = generate_product_id();
        let b = generate_product_id();
        assert_eq!(check_product_id(&a), Ok(()));
        assert!(a < b);
    }

    #[test]
    fn parses_names() {
        assert_eq!(parse_product_name("products/abc", "name"), Ok("abc"));
        let err = parse_product_name("shelves/abc", "name").unwrap_err();
        assert_eq!(err.field, "name");
        assert!(parse_product_name("products/", "name").is_err());
        assert!(parse_product_name("products/a/b", "name").is_err());
    }
}

//! Bearer-token authentication: which callers exist and what each may do.
//!
//! Tokens come from a file or an environment variable, one per line as
//! `SCOPE TOKEN` (`read-only` or `read-write`; `#` starts a comment). Only the
//! SHA-256 digest of each token is kept, so no plaintext credential lives in
//! the process after start-up, and a presented token is compared digest to
//! digest in constant time with every known token (no early exit), so neither
//! the length nor a matching prefix of a real token can be timed.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Reads only: Get, List, Watch, RenderVendorCall, the operations' reads,
    /// previews (`validate_only`, ImportVendorProduct without `store`) and
    /// the probes.
    ReadOnly,
    /// Everything.
    ReadWrite,
}

impl Scope {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "read-only" => Some(Self::ReadOnly),
            "read-write" => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

/// The known tokens, as digests. `Debug` shows how many there are, never them.
#[derive(Clone, Default)]
pub struct Tokens {
    known: Vec<([u8; 32], Scope)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} known)", self.known.len())
    }
}

/// Why a token table could not be read. It names the line, never its text: a
/// malformed line may well hold a real token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokensError {
    #[error("line {line}: expected `read-only TOKEN` or `read-write TOKEN`")]
    Malformed { line: usize },
    #[error("line {line}: a token must be at least {MIN_TOKEN_LEN} characters long")]
    TooShort { line: usize },
    #[error("no token is defined")]
    Empty,
}

/// Shorter tokens are guessable; 16 characters of a random alphabet are not.
pub const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// Reads a token table (see the module docs). Lines may also be separated
    /// by `;`, for tables passed in one environment variable.
    pub fn parse(text: &str) -> Result<Self, TokensError> {
        let mut known = Vec::new();
        for (index, line) in text.split(['\n', ';']).enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(scope), Some(token), None) = (words.next(), words.next(), words.next()) else {
                return Err(TokensError::Malformed { line: line_number });
            };
            let scope = Scope::parse(scope).ok_or(TokensError::Malformed { line: line_number })?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokensError::TooShort { line: line_number });
            }
            known.push((digest(token), scope));
        }
        if known.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Self { known })
    }

    /// The scope of `token`, if it is known.
    pub fn scope_of(&self, token: &str) -> Option<Scope> {
        let presented = digest(token);
        let mut found: Option<Scope> = None;
        for (known, scope) in &self.known {
            if bool::from(known.ct_eq(&presented)) {
                // The widest scope wins if a token is listed twice.
                found = found.max(Some(*scope));
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What a call asks of its caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// No token (health and reflection, when configured open).
    Nothing,
    Scope(Scope),
}

/// The ProductService and Operations methods that change nothing. Anything
/// not listed here, including methods added later, needs a read-write token:
/// a new method is closed until someone decides otherwise.
const READ_ONLY_METHODS: &[&str] = &[
    "/producthub.v1.ProductService/GetProduct",
    "/producthub.v1.ProductService/ListProducts",
    "/producthub.v1.ProductService/RenderVendorCall",
    "/producthub.v1.ProductService/WatchProducts",
    "/google.longrunning.Operations/GetOperation",
    "/google.longrunning.Operations/ListOperations",
    "/google.longrunning.Operations/WaitOperation",
];
/// Methods that write only when asked to (`validate_only` unset, or
/// ImportVendorProduct with `store`): a read-only token may call them, and
/// the handler refuses it the write itself (see [`CallerScope`]).
const PREVIEW_METHODS: &[&str] = &[
    "/producthub.v1.ProductService/CreateProduct",
    "/producthub.v1.ProductService/UpdateProduct",
    "/producthub.v1.ProductService/ImportVendorProduct",
];

/// The scope of the caller's token, put in the request's extensions by the
/// guard when tokens are on, for the handlers whose need depends on the
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerScope(pub Scope);

const PROBE_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// A path that needs what describing the API needs (reflection's rule).
pub const DESCRIBE_PATH: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// What calling `path` (`/package.Service/Method`) needs.
pub fn needs(path: &str, open_probes: bool) -> Needs {
    if PROBE_SERVICES.iter().any(|service| path.starts_with(service)) {
        return if open_probes {
            Needs::Nothing
        } else {
            Needs::Scope(Scope::ReadOnly)
        };
    }
    if READ_ONLY_METHODS.contains(&path) || PREVIEW_METHODS.contains(&path) {
        Needs::Scope(Scope::ReadOnly)
    } else {
        Needs::Scope(Scope::ReadWrite)
    }
}

/// The token in an `authorization: Bearer TOKEN` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITER: &str = "writer-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    fn table() -> Tokens {
        Tokens::parse(&format!("# comment\n\nread-write {WRITER}\nread-only  {READER}\n")).unwrap()
    }

    #[test]
    fn tokens_have_their_scopes() {
        let tokens = table();
        assert_eq!(tokens.scope_of(WRITER), Some(Scope::ReadWrite));
        assert_eq!(tokens.scope_of(READER), Some(Scope::ReadOnly));
        assert_eq!(tokens.scope_of("reader-token-012345678"), None);
        assert_eq!(tokens.scope_of(""), None);
    }

    #[test]
    fn semicolons_separate_entries_in_one_variable() {
        let tokens = Tokens::parse(&format!("read-write {WRITER}; read-only {READER}")).unwrap();
        assert_eq!(tokens.scope_of(READER), Some(Scope::ReadOnly));
    }

    #[test]
    fn bad_tables_name_the_line_and_never_the_token() {
        let secret = "read-wrte supersecretvalue12345";
        let error = Tokens::parse(&format!("read-write {WRITER}\n{secret}")).unwrap_err();
        assert_eq!(error, TokensError::Malformed { line: 2 });
        assert!(!error.to_string().contains("supersecret"));
        assert_eq!(
            Tokens::parse("read-only short").unwrap_err(),
            TokensError::TooShort { line: 1 }
        );
        assert_eq!(Tokens::parse("# nothing").unwrap_err(), TokensError::Empty);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let shown = format!("{:?}", table());
        assert_eq!(shown, "Tokens(2 known)");
    }

    #[test]
    fn methods_need_the_right_scope() {
        let read = Needs::Scope(Scope::ReadOnly);
        let write = Needs::Scope(Scope::ReadWrite);
        assert_eq!(needs("/producthub.v1.ProductService/GetProduct", false), read);
        assert_eq!(needs("/producthub.v1.ProductService/ListProducts", false), read);
        // Previews pass the door; the handler refuses a reader's write.
        assert_eq!(needs("/producthub.v1.ProductService/UpdateProduct", false), read);
        assert_eq!(needs("/producthub.v1.ProductService/DeleteProduct", false), write);
        assert_eq!(needs("/producthub.v1.ProductService/ReconcileProduct", false), write);
        assert_eq!(needs("/producthub.v1.ProductService/SomethingNew", false), write);
        assert_eq!(needs("/other.Service/GetProduct", false), write);
        assert_eq!(needs("/google.longrunning.Operations/GetOperation", false), read);
        assert_eq!(needs("/google.longrunning.Operations/WaitOperation", false), read);
        assert_eq!(needs("/google.longrunning.Operations/CancelOperation", false), write);
        assert_eq!(
            needs("/producthub.v1.ProductService/ImportVendorProducts", false),
            write
        );
        assert_eq!(needs("/grpc.health.v1.Health/Check", false), read);
        assert_eq!(needs("/grpc.health.v1.Health/Check", true), Needs::Nothing);
        assert_eq!(
            needs("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true),
            Needs::Nothing
        );
    }

    #[test]
    fn bearer_header_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}

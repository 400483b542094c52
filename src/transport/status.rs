//! The one place where errors become gRPC statuses.
//!
//! Every status carries an `ErrorInfo` with a stable, machine-readable `reason`;
//! INVALID_ARGUMENT also carries a `BadRequest` with one violation per bad field,
//! and NOT_FOUND / ALREADY_EXISTS a `ResourceInfo` naming the product.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::guard::Refusal;
use crate::catalog::CatalogError;
use crate::storage::StoreError;
use crate::vendors::{AdapterError, VendorError, VendorErrorKind};

/// The `ErrorInfo.domain` of every error producthub reports.
pub const ERROR_DOMAIN: &str = "producthub";
const PRODUCT_TYPE: &str = "producthub.v1.Product";
const OPERATION_TYPE: &str = "google.longrunning.Operation";

pub fn to_status(error: &CatalogError) -> Status {
    let mut details = ErrorDetails::new();
    let mut facts = HashMap::new();
    let (code, reason) = match error {
        CatalogError::InvalidArgument(violations) => {
            for v in violations {
                details.add_bad_request_violation(&v.field, &v.description);
            }
            (Code::InvalidArgument, "INVALID_ARGUMENT")
        }
        CatalogError::NotFound { name } => {
            details.set_resource_info(PRODUCT_TYPE, name, "", "no product has this name");
            (Code::NotFound, "PRODUCT_NOT_FOUND")
        }
        CatalogError::AlreadyExists { name } => {
            details.set_resource_info(PRODUCT_TYPE, name, "", "a product with this name exists");
            (Code::AlreadyExists, "PRODUCT_ALREADY_EXISTS")
        }
        CatalogError::EtagMismatch { .. } => (Code::Aborted, "ETAG_MISMATCH"),
        CatalogError::Vendor(AdapterError::Invalid { violations, .. }) => {
            for v in violations {
                details.add_bad_request_violation(&v.field, &v.description);
            }
            (Code::InvalidArgument, "VENDOR_CONSTRAINT")
        }
        CatalogError::Vendor(AdapterError::BadJson { reason, .. }) => {
            details.add_bad_request_violation("json", reason);
            (Code::InvalidArgument, "VENDOR_JSON_INVALID")
        }
        CatalogError::Vendor(AdapterError::NotReady { vendor, reason }) => {
            details.add_precondition_failure_violation("VENDOR_NOT_READY", vendor.to_string(), reason);
            (Code::FailedPrecondition, "VENDOR_NOT_READY")
        }
        CatalogError::Vendor(AdapterError::Unsupported { vendor, path, reason }) => {
            details.add_precondition_failure_violation(
                "VENDOR_UNSUPPORTED_CHANGE",
                format!("{vendor}: {path}"),
                reason,
            );
            (Code::FailedPrecondition, "VENDOR_UNSUPPORTED_CHANGE")
        }
        CatalogError::ResumeTokenExpired => {
            details.add_precondition_failure_violation(
                "RESUME_TOKEN_EXPIRED",
                "resume_token",
                "older than the changes the server retains (--watch-retention)",
            );
            (Code::FailedPrecondition, "RESUME_TOKEN_EXPIRED")
        }
        CatalogError::ShuttingDown => (Code::Unavailable, "SHUTTING_DOWN"),
        CatalogError::ChangeFeedDisabled => (Code::FailedPrecondition, "CHANGE_FEED_DISABLED"),
        CatalogError::VendorsNotConfigured { vendors } => {
            for vendor in vendors {
                details.add_precondition_failure_violation(
                    "VENDOR_NOT_CONFIGURED",
                    vendor.to_string(),
                    format!("not configured on this server; enabled by {}", vendor.enabling_flags()),
                );
            }
            (Code::FailedPrecondition, "VENDOR_NOT_CONFIGURED")
        }
        CatalogError::TooManyWatchers { .. } => {
            // A stream closes when its client leaves; a second is a fair wait.
            details.set_retry_info(Some(WATCH_BACKOFF));
            (Code::ResourceExhausted, "TOO_MANY_WATCH_STREAMS")
        }
        CatalogError::TooManyLists { .. } => {
            details.set_retry_info(Some(OVERLOAD_BACKOFF));
            (Code::ResourceExhausted, "TOO_MANY_LISTS")
        }
        CatalogError::CopyLinked {
            vendor,
            remote_id,
            holder,
        } => {
            details.set_resource_info(PRODUCT_TYPE, holder, "", format!("holds the {vendor} copy {remote_id}"));
            facts.insert("holder".to_owned(), holder.clone());
            facts.insert("vendor".to_owned(), vendor.to_pb().as_str_name().to_owned());
            facts.insert("remote_id".to_owned(), remote_id.clone());
            (Code::AlreadyExists, "VENDOR_COPY_LINKED")
        }
        CatalogError::AlreadyLinked { vendor, remote_id, .. } => {
            details.add_precondition_failure_violation("ALREADY_LINKED", vendor.to_string(), remote_id);
            (Code::FailedPrecondition, "ALREADY_LINKED")
        }
        CatalogError::NotLinked { vendor, .. } => {
            details.add_precondition_failure_violation("NOT_LINKED", vendor.to_string(), "no copy is linked");
            (Code::FailedPrecondition, "NOT_LINKED")
        }
        CatalogError::ProfileMissing { vendor, .. } => {
            details.add_precondition_failure_violation(
                "PROFILE_MISSING",
                vendor.profile_field(),
                "the product has no profile to send",
            );
            (Code::FailedPrecondition, "PROFILE_MISSING")
        }
        CatalogError::VendorCopyNotFound { vendor, remote_id } => {
            details.set_resource_info(
                format!("{vendor} product"),
                remote_id,
                "",
                "the vendor has no product with this id",
            );
            (Code::NotFound, "VENDOR_COPY_NOT_FOUND")
        }
        CatalogError::VendorCall(error) => {
            if let Some(wait) = error.retry_after {
                details.set_retry_info(Some(wait));
            }
            facts.insert("vendor".to_owned(), error.vendor.to_pb().as_str_name().to_owned());
            if let Some(status) = error.http_status {
                facts.insert("vendor_http_status".to_owned(), status.to_string());
            }
            let code = match error.kind {
                // The server's own credentials at the vendor were refused,
                // not the caller's: nothing the caller's token can fix.
                VendorErrorKind::Unauthenticated
                | VendorErrorKind::TokenExpired
                | VendorErrorKind::PermissionDenied => Code::FailedPrecondition,
                VendorErrorKind::InvalidArgument => {
                    details.add_bad_request_violation("remote_id", error.message.clone());
                    Code::InvalidArgument
                }
                _ => vendor_error_code(error),
            };
            (code, "VENDOR_ERROR")
        }
        CatalogError::AdoptRefused { vendor, violations, .. } => {
            // The request is fine; the vendor's values are not acceptable.
            for v in violations {
                details.add_precondition_failure_violation(
                    "ADOPT_REFUSED",
                    format!("{vendor}: {}", v.field),
                    &v.description,
                );
            }
            facts.insert("vendor".to_owned(), vendor.to_pb().as_str_name().to_owned());
            (Code::FailedPrecondition, "ADOPT_REFUSED")
        }
        CatalogError::OperationNotFound { name } => {
            details.set_resource_info(OPERATION_TYPE, name, "", "no operation has this name");
            (Code::NotFound, "OPERATION_NOT_FOUND")
        }
        CatalogError::OperationRunning { name } => {
            details.add_precondition_failure_violation(
                "OPERATION_NOT_DONE",
                name,
                "cancel it and wait until it is done",
            );
            (Code::FailedPrecondition, "OPERATION_NOT_DONE")
        }
        CatalogError::Storage(StoreError::Corrupt { .. }) => (Code::DataLoss, "STORAGE_CORRUPT"),
        // The write may or may not have reached the disk: neither "retry" nor "failed".
        CatalogError::Storage(StoreError::Durability(_)) => (Code::Internal, "STORAGE_WRITE_UNCERTAIN"),
        CatalogError::Storage(StoreError::ReadOnly(_)) => (Code::Unavailable, "STORAGE_READ_ONLY"),
        CatalogError::Storage(StoreError::Uncertain(_)) => (Code::Internal, "STORAGE_WRITE_UNCERTAIN"),
        CatalogError::Storage(StoreError::Contention { .. }) => (Code::Aborted, "CONTENTION"),
        CatalogError::Storage(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE"),
    };
    details.set_error_info(reason, ERROR_DOMAIN, facts);
    Status::with_error_details(code, error.to_string(), details)
}

/// The status of a call turned away before any handler ran (see `guard`).
/// The messages say what to fix, and never echo what the caller sent.
pub fn refusal_status(refusal: &Refusal) -> Status {
    let mut details = ErrorDetails::new();
    let (code, reason, message) = match refusal {
        Refusal::MissingToken => (
            Code::Unauthenticated,
            "CREDENTIALS_MISSING",
            "this server requires `authorization: Bearer TOKEN` metadata".to_owned(),
        ),
        Refusal::UnknownToken => (
            Code::Unauthenticated,
            "CREDENTIALS_INVALID",
            "the bearer token is not valid here".to_owned(),
        ),
        Refusal::InsufficientScope => (
            Code::PermissionDenied,
            "SCOPE_INSUFFICIENT",
            "this method changes data; it needs a read-write token".to_owned(),
        ),
        Refusal::PreviewOnly => (
            Code::PermissionDenied,
            "SCOPE_INSUFFICIENT",
            "this call changes data; it needs a read-write token (a read-only token may preview: validate_only, or ImportVendorProduct without store)".to_owned(),
        ),
        Refusal::Overloaded { limit } => {
            details.set_retry_info(Some(OVERLOAD_BACKOFF));
            (
                Code::Unavailable,
                "OVERLOADED",
                format!("the server already has {limit} calls in flight; retry with backoff"),
            )
        }
        Refusal::RequestMemory { budget_bytes, message_bytes } => {
            details.set_retry_info(Some(OVERLOAD_BACKOFF));
            (
                Code::ResourceExhausted,
                "REQUEST_MEMORY_EXHAUSTED",
                format!(
                    "a request of {message_bytes} bytes does not fit in what is left of the server's {budget_bytes} bytes for requests in flight (--max-request-bytes-in-flight); retry with backoff"
                ),
            )
        }
    };
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// The status of a request over the size limit (tonic reports it as
/// OUT_OF_RANGE; gRPC's status-code guide names RESOURCE_EXHAUSTED), keeping
/// tonic's message, which states the sizes.
pub fn too_large_status(message: String) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info("MESSAGE_TOO_LARGE", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// The status of a request whose protobuf could not be decoded (bad wire
/// format, or a string that is not UTF-8): the caller's fault, so
/// INVALID_ARGUMENT, never INTERNAL (which clients retry).
pub fn malformed_status(message: String) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("", format!("the request is not a valid protobuf message: {message}"));
    details.set_error_info("MALFORMED_REQUEST", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The wait suggested when every watch stream is taken.
const WATCH_BACKOFF: Duration = Duration::from_secs(1);

/// The wait an overloaded server suggests before a retry.
const OVERLOAD_BACKOFF: Duration = Duration::from_millis(50);

/// The gRPC code for a vendor's error, e.g. when a sync reports it.
pub fn vendor_error_code(error: &VendorError) -> Code {
    match error.kind {
        VendorErrorKind::InvalidArgument => Code::InvalidArgument,
        VendorErrorKind::NotFound => Code::NotFound,
        VendorErrorKind::FailedPrecondition => Code::FailedPrecondition,
        VendorErrorKind::Unauthenticated | VendorErrorKind::TokenExpired => Code::Unauthenticated,
        VendorErrorKind::PermissionDenied => Code::PermissionDenied,
        VendorErrorKind::RateLimited => Code::ResourceExhausted,
        VendorErrorKind::Unavailable => Code::Unavailable,
        VendorErrorKind::Unknown => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldViolation;

    #[test]
    fn invalid_argument_lists_every_field() {
        let status = to_status(&CatalogError::InvalidArgument(vec![
            FieldViolation::new("product.display_name", "is required"),
            FieldViolation::new("update_mask", "invalid path \"x\""),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["product.display_name", "update_mask"]);
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn codes() {
        let name = || "products/a".to_string();
        assert_eq!(
            to_status(&CatalogError::NotFound { name: name() }).code(),
            Code::NotFound
        );
        assert_eq!(
            to_status(&CatalogError::AlreadyExists { name: name() }).code(),
            Code::AlreadyExists
        );
        let etag = CatalogError::EtagMismatch {
            name: name(),
            sent: "1".into(),
        };
        assert_eq!(to_status(&etag).code(), Code::Aborted);
        let full = CatalogError::Storage(StoreError::Backend("No space left on device".into()));
        assert_eq!(to_status(&full).code(), Code::Unavailable);
    }
}

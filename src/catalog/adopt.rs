//! Adopting what already lives at the vendors: linking an existing vendor
//! copy to a product, letting go of one, and turning a vendor's product into
//! a new canonical one (ImportVendorProduct and ImportVendorProducts share it).
//!
//! The store enforces that a copy belongs to one product (its index of remote
//! ids); these rules only decide what a link changes in the product.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::{Catalog, CatalogError, check_etag, new_etag, now, stamp_new, vendor_from_request};
use crate::domain::FieldViolation;
use crate::domain::field_mask::{self, UpdateMask};
use crate::domain::names::{parse_product_name, product_name};
use crate::domain::sync_plan::EVERYTHING;
use crate::pb::{LinkDirection, LinkVendorProductRequest, Product, UnlinkVendorProductRequest};
use crate::storage::ProductStore;
use crate::vendors::{self, Vendor, VendorErrorKind, validate};

impl<S: ProductStore> Catalog<S> {
    pub async fn link_vendor_product(&self, request: LinkVendorProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let id = parse_product_name(&request.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        if request.remote_id.is_empty() {
            violations.push(FieldViolation::new("remote_id", "is required"));
        }
        let direction = match LinkDirection::try_from(request.direction) {
            Ok(LinkDirection::Unspecified) | Err(_) => {
                violations.push(FieldViolation::new(
                    "direction",
                    "must be LINK_DIRECTION_VENDOR_WINS or LINK_DIRECTION_PRODUCTHUB_WINS",
                ));
                None
            }
            Ok(direction) => Some(direction),
        };
        let (Some(id), Some(vendor), Some(direction), true) = (id, vendor, direction, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        if !self.sync.enabled.contains(&vendor) {
            return Err(CatalogError::VendorsNotConfigured { vendors: vec![vendor] });
        }
        let stored = self.store.get(id).await?.ok_or_else(|| CatalogError::NotFound {
            name: request.name.clone(),
        })?;
        // Linking the copy the product already holds changes nothing.
        if held_copy(&stored, vendor).as_deref() == Some(request.remote_id.as_str()) {
            check_etag(&stored, &request.name, &request.etag)?;
            return Ok(stored);
        }
        let copy = self.read_copy(vendor, &request.remote_id).await?;
        let link = |current: Option<Product>| -> Result<Product, CatalogError> {
            let current = current.ok_or_else(|| CatalogError::NotFound {
                name: request.name.clone(),
            })?;
            check_etag(&current, &request.name, &request.etag)?;
            link_copy(
                current,
                vendor,
                &copy,
                &request.remote_id,
                direction,
                &self.sync.enabled,
            )
        };
        let linked = self.store.update(id, self.announces(), link).await??;
        self.wake_sync();
        Ok(linked)
    }

    pub async fn unlink_vendor_product(&self, request: UnlinkVendorProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let id = parse_product_name(&request.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        let (Some(id), Some(vendor), true) = (id, vendor, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        let unlink = |current: Option<Product>| -> Result<Product, CatalogError> {
            let current = current.ok_or_else(|| CatalogError::NotFound {
                name: request.name.clone(),
            })?;
            check_etag(&current, &request.name, &request.etag)?;
            if held_copy(&current, vendor).is_none() && !vendor.has_profile(&current) {
                return Err(CatalogError::NotLinked {
                    name: request.name.clone(),
                    vendor,
                });
            }
            let mut next = without_profile(&current, vendor)?;
            // No sync entry, no delete: the copy stays as it is at the vendor.
            next.sync.retain(|entry| entry.vendor != vendor.to_pb() as i32);
            next.update_time = Some(now());
            next.etag = new_etag();
            Ok(next)
        };
        self.store.update(id, false, unlink).await?
    }

    /// The vendor's copy `remote_id`, read from the vendor and imported.
    pub(super) async fn read_copy(&self, vendor: Vendor, remote_id: &str) -> Result<Product, CatalogError> {
        let adapter = vendor.adapter();
        let mut target = Product::default();
        adapter.ensure_profile(&mut target);
        adapter.set_remote_id(&mut target, remote_id);
        let get = adapter.get(&target, &self.vendors)?;
        let reply = self
            .connections
            .send(vendor, &get)
            .await
            .map_err(CatalogError::VendorCall)?;
        let object = adapter.read_product(reply.view()).map_err(|error| match error.kind {
            VendorErrorKind::NotFound => CatalogError::VendorCopyNotFound {
                vendor,
                remote_id: remote_id.to_owned(),
            },
            _ => CatalogError::VendorCall(error),
        })?;
        let mut copy = adapter.import(&object)?;
        if adapter.remote_id(&copy).is_none() {
            adapter.set_remote_id(&mut copy, remote_id);
        }
        Ok(copy)
    }
}

/// The id of the vendor copy the product holds, if any: its profile's, or
/// its sync entry's (a copy whose profile was removed and whose delete is
/// pending).
pub(super) fn held_copy(product: &Product, vendor: Vendor) -> Option<String> {
    vendor.adapter().remote_id(product).or_else(|| {
        vendors::sync_entry(product, vendor)
            .map(|entry| entry.remote_id.clone())
            .filter(|id| !id.is_empty())
    })
}

/// `stored` linked to the vendor copy `copy` (imported, holding `remote_id`).
/// Vendor wins: the copy's values become the product's profile for that
/// vendor, which then matches the copy. Producthub wins: the product's own
/// profile is sent over the copy, as a whole resend.
pub(super) fn link_copy(
    stored: Product,
    vendor: Vendor,
    copy: &Product,
    remote_id: &str,
    direction: LinkDirection,
    enabled: &BTreeSet<Vendor>,
) -> Result<Product, CatalogError> {
    if let Some(held) = held_copy(&stored, vendor) {
        if held == remote_id {
            return Ok(stored);
        }
        return Err(CatalogError::AlreadyLinked {
            name: stored.name.clone(),
            vendor,
            remote_id: held,
        });
    }
    let adapter = vendor.adapter();
    let mut next = match direction {
        LinkDirection::ProducthubWins => {
            if !adapter.has_profile(&stored) {
                return Err(CatalogError::ProfileMissing {
                    name: stored.name.clone(),
                    vendor,
                });
            }
            stored.clone()
        }
        _ => {
            let profile = [adapter.profile_field().to_owned()];
            let mask = UpdateMask::parse(&profile).map_err(CatalogError::InvalidArgument)?;
            let mut next = field_mask::merge(&stored, copy, &mask).map_err(CatalogError::InvalidArgument)?;
            field_mask::adopt_output_only(&mut next, copy, adapter.profile_field());
            next
        }
    };
    adapter.set_remote_id(&mut next, remote_id);
    let violations = validate(&next);
    if !violations.is_empty() {
        return Err(CatalogError::InvalidArgument(violations));
    }
    next.update_time = Some(now());
    next.etag = new_etag();
    let only = BTreeSet::from([vendor]);
    match direction {
        LinkDirection::ProducthubWins => {
            vendors::mark_changed(&mut next, &only, &[EVERYTHING.to_string()], enabled);
        }
        _ => vendors::mark_synced(&mut next, vendor, copy, enabled, SystemTime::now()),
    }
    Ok(next)
}

/// The product without the vendor's profile.
pub(super) fn without_profile(product: &Product, vendor: Vendor) -> Result<Product, CatalogError> {
    let profile = [vendor.profile_field().to_owned()];
    let mask = UpdateMask::parse(&profile).map_err(CatalogError::InvalidArgument)?;
    field_mask::merge(product, &Product::default(), &mask).map_err(CatalogError::InvalidArgument)
}

/// A vendor's product (imported) as a new canonical product under `id`: what
/// the vendor assigned is kept (it is the vendor's word, not a client's), and
/// the vendor it came from is recorded as holding it as it is.
pub(super) fn adopted_product(
    mut copy: Product,
    id: &str,
    vendor: Vendor,
    enabled: &BTreeSet<Vendor>,
) -> Result<Product, Vec<FieldViolation>> {
    copy.name = product_name(id);
    let violations = validate(&copy);
    if !violations.is_empty() {
        return Err(violations);
    }
    stamp_new(&mut copy, enabled);
    let read = copy.clone();
    vendors::mark_synced(&mut copy, vendor, &read, enabled, SystemTime::now());
    Ok(copy)
}

//! `producthub.v1.ListProductsResponse`, written by hand instead of generated
//! (build.rs maps the message here with `extern_path`).
//!
//! Why: `repeated Product products = 1` has the same wire form as a repeated
//! bytes field that holds each product's encoding. The store keeps products
//! in exactly that encoding, so a page can go out as the stored bytes, with
//! no decode into [`Product`] values and no encode back. The message on the
//! wire, and so every generated stub in any language, is unchanged.

use bytes::{Buf, BufMut, Bytes};
use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};

use super::Product;

/// Response for ListProducts.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct ListProductsResponse {
    /// The products of this page, in ascending order of product id.
    pub products: Vec<Product>,
    /// More products of the page, each already in its protobuf encoding, sent
    /// after [`Self::products`] as more entries of the same field. Only a
    /// sender fills this: decoding a response puts every product in
    /// `products`.
    pub encoded_products: Vec<Bytes>,
    /// Pass as `page_token` to get the next page; empty on the last page.
    pub next_page_token: String,
}

const PRODUCTS: u32 = 1;
const NEXT_PAGE_TOKEN: u32 = 2;

impl prost::Message for ListProductsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(PRODUCTS, &self.products, buf);
        for product in &self.encoded_products {
            encoding::bytes::encode(PRODUCTS, product, buf);
        }
        if !self.next_page_token.is_empty() {
            encoding::string::encode(NEXT_PAGE_TOKEN, &self.next_page_token, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let named = |mut error: DecodeError, field: &'static str| {
            error.push("ListProductsResponse", field);
            error
        };
        match tag {
            PRODUCTS => encoding::message::merge_repeated(wire_type, &mut self.products, buf, ctx)
                .map_err(|e| named(e, "products")),
            NEXT_PAGE_TOKEN => encoding::string::merge(wire_type, &mut self.next_page_token, buf, ctx)
                .map_err(|e| named(e, "next_page_token")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let token = if self.next_page_token.is_empty() {
            0
        } else {
            encoding::string::encoded_len(NEXT_PAGE_TOKEN, &self.next_page_token)
        };
        encoding::message::encoded_len_repeated(PRODUCTS, &self.products)
            + encoding::bytes::encoded_len_repeated(PRODUCTS, &self.encoded_products)
            + token
    }

    fn clear(&mut self) {
        self.products.clear();
        self.encoded_products.clear();
        self.next_page_token.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn product(id: &str) -> Product {
        Product {
            name: format!("products/{id}"),
            display_name: format!("Product {id}"),
            ..Default::default()
        }
    }

    #[test]
    fn encoded_products_read_back_as_products_in_order() {
        let page = ListProductsResponse {
            products: vec![product("a")],
            encoded_products: vec![product("b").encode_to_vec().into(), product("c").encode_to_vec().into()],
            next_page_token: "next".into(),
        };
        let bytes = page.encode_to_vec();
        assert_eq!(bytes.len(), page.encoded_len());
        let read = ListProductsResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(read.products, vec![product("a"), product("b"), product("c")]);
        assert!(read.encoded_products.is_empty());
        assert_eq!(read.next_page_token, "next");
    }

    #[test]
    fn has_the_wire_form_of_the_generated_message() {
        // What prost generates for the same proto: two fields, in tag order.
        #[derive(Clone, PartialEq, prost::Message)]
        struct Generated {
            #[prost(message, repeated, tag = "1")]
            products: Vec<Product>,
            #[prost(string, tag = "2")]
            next_page_token: String,
        }
        let generated = Generated {
            products: vec![product("a"), product("b")],
            next_page_token: "t".into(),
        };
        let by_hand = ListProductsResponse {
            encoded_products: generated.products.iter().map(|p| p.encode_to_vec().into()).collect(),
            next_page_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(by_hand.encode_to_vec(), generated.encode_to_vec());
        assert_eq!(
            Generated::decode(by_hand.encode_to_vec().as_slice()).unwrap(),
            generated
        );
        let empty = ListProductsResponse::default();
        assert!(empty.encode_to_vec().is_empty());
    }

    /// The hand-written message stands in for the proto's: should a field be
    /// added to `ListProductsResponse` in product_service.proto, `extern_path`
    /// would hide it, so the proto's fields are pinned here.
    #[test]
    fn the_proto_declares_exactly_the_fields_written_by_hand() {
        use prost_reflect::{Cardinality, DescriptorPool, Kind};
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let message = pool.get_message_by_name("producthub.v1.ListProductsResponse").unwrap();
        let fields: Vec<_> = message
            .fields()
            .map(|f| {
                let kind = match f.kind() {
                    Kind::Message(m) => m.full_name().to_owned(),
                    Kind::String => "string".to_owned(),
                    other => format!("{other:?}"),
                };
                (
                    f.number(),
                    f.name().to_owned(),
                    f.cardinality() == Cardinality::Repeated,
                    kind,
                )
            })
            .collect();
        assert_eq!(
            fields,
            vec![
                (1, "products".to_owned(), true, "producthub.v1.Product".to_owned()),
                (2, "next_page_token".to_owned(), false, "string".to_owned()),
            ]
        );
        // And what the hand-written message sends reads back through the
        // proto's own descriptor.
        let page = ListProductsResponse {
            products: vec![product("a")],
            encoded_products: vec![product("b").encode_to_vec().into()],
            next_page_token: "t".into(),
        };
        let read = prost_reflect::DynamicMessage::decode(message, page.encode_to_vec().as_slice()).unwrap();
        let products = read.get_field_by_name("products").unwrap();
        assert_eq!(products.as_list().map(<[_]>::len), Some(2));
        assert_eq!(read.get_field_by_name("next_page_token").unwrap().as_str(), Some("t"));
    }

    #[test]
    fn a_damaged_product_is_named_in_the_error() {
        let mut bytes = Vec::new();
        encoding::bytes::encode(PRODUCTS, &vec![0x0a_u8, 0x05, b'x'], &mut bytes);
        let error = ListProductsResponse::decode(bytes.as_slice()).unwrap_err();
        assert!(error.to_string().contains("ListProductsResponse.products"), "{error}");
    }
}

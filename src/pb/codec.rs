//! The gRPC codec of the producthub services (build.rs names it with
//! `codec_path`): prost's, except that a message's buffer is reserved at its
//! encoded size before it is written.
//!
//! Why: tonic starts each response buffer at 8 KiB and lets it grow as prost
//! writes, so a 50-product page (about 52 KB) was reallocated and copied
//! three times on its way out. Computing the size first costs nothing extra:
//! prost's own `encode` computes it too, before `encode_raw`. (tonic offers
//! no way to build an `EncodeBuf` outside it, so the end-to-end tests are
//! this codec's tests: every call's messages go through it.)

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// Encodes `T` and decodes `U` as protobuf.
#[derive(Debug, Clone, Copy)]
pub struct SizedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SizedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SizedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// Writes a message into a buffer reserved at its size.
#[derive(Debug, Clone, Copy)]
pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // An EncodeBuf grows on demand, so the write cannot run out of room.
        buf.reserve(item.encoded_len());
        item.encode_raw(buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

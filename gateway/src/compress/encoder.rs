//! Encoders: whole-buffer (for cache variants, compressed once) and streaming
//! (a body wrapper that flushes after every upstream chunk, so the first bytes
//! reach the client before the upstream has finished).

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::negotiate::Encoding;
use crate::body::{Body, BoxError};

/// Brotli window: 2^22 bytes, the reference encoder's default.
const BR_LGWIN: u32 = 22;
const BR_BUFFER: usize = 4096;

/// One in-progress encoding; output accumulates in a `Vec` we drain after each flush.
pub enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    /// `level`: brotli quality 0–11 or gzip level 0–9. `Identity` has no encoder.
    pub fn new(encoding: Encoding, level: u32) -> Option<Self> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(Self::Gzip(GzEncoder::new(
                Vec::new(),
                GzLevel::new(level.min(9)),
            ))),
            Encoding::Brotli => Some(Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BR_BUFFER,
                level.min(11),
                BR_LGWIN,
            )))),
        }
    }

    /// Encodes `data` and flushes, returning whatever output is ready.
    pub fn push(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Self::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(Bytes::from(std::mem::take(e.get_mut())))
            }
            Self::Brotli(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(Bytes::from(std::mem::take(e.get_mut())))
            }
        }
    }

    /// Ends the stream and returns the remaining output.
    pub fn finish(self) -> std::io::Result<Bytes> {
        match self {
            Self::Gzip(e) => e.finish().map(Bytes::from),
            Self::Brotli(e) => Ok(Bytes::from(e.into_inner())),
        }
    }
}

/// Encodes a whole buffer without intermediate flushes (best ratio).
pub fn encode_all(encoding: Encoding, level: u32, data: &[u8]) -> std::io::Result<Bytes> {
    match encoding {
        Encoding::Identity => Ok(Bytes::copy_from_slice(data)),
        Encoding::Gzip => {
            let mut e = GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                GzLevel::new(level.min(9)),
            );
            e.write_all(data)?;
            e.finish().map(Bytes::from)
        }
        Encoding::Brotli => {
            let mut out = Vec::with_capacity(data.len() / 4);
            {
                let mut w =
                    brotli::CompressorWriter::new(&mut out, BR_BUFFER, level.min(11), BR_LGWIN);
                w.write_all(data)?;
            }
            Ok(Bytes::from(out))
        }
    }
}

/// A body encoded on the fly.
pub struct EncodedBody {
    inner: Body,
    encoder: Option<Encoder>,
    trailers: Option<http::HeaderMap>,
}

impl EncodedBody {
    pub fn new(inner: Body, encoder: Encoder) -> Self {
        Self {
            inner,
            encoder: Some(encoder),
            trailers: None,
        }
    }
}

impl HttpBody for EncodedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(enc) = this.encoder.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = enc.push(&data)?;
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
                Some(Err(e)) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let out = this.encoder.take().map(Encoder::finish).transpose()?;
                    match out {
                        Some(b) if !b.is_empty() => return Poll::Ready(Some(Ok(Frame::data(b)))),
                        _ => continue,
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {}\"}},", i % 97).into_bytes())
            .collect()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unbrotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(b, 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn whole_buffer_round_trips() {
        let data = sample();
        let gz = encode_all(Encoding::Gzip, 6, &data).unwrap();
        let br = encode_all(Encoding::Brotli, 9, &data).unwrap();
        assert!(gz.len() < data.len() / 3 && br.len() < gz.len());
        assert_eq!(gunzip(&gz), data);
        assert_eq!(unbrotli(&br), data);
    }

    #[test]
    fn streaming_flushes_each_chunk_and_round_trips() {
        for (enc, decode) in [
            (Encoding::Gzip, gunzip as fn(&[u8]) -> Vec<u8>),
            (Encoding::Brotli, unbrotli),
        ] {
            let data = sample();
            let mut e = Encoder::new(enc, 4).unwrap();
            let mut out = Vec::new();
            for chunk in data.chunks(1000) {
                let b = e.push(chunk).unwrap();
                // A flushed encoder always emits something for new input.
                assert!(!b.is_empty(), "{enc:?} held back a chunk");
                out.extend_from_slice(&b);
            }
            out.extend_from_slice(&e.finish().unwrap());
            assert_eq!(decode(&out), data, "{enc:?}");
        }
    }
}

//! OTLP/HTTP request bodies: content type (protobuf or JSON), content encoding (gzip or none), size.
//!
//! Every failure is a [`DecodeError`] with the status code the OTLP/HTTP specification names and a
//! message for the client; nothing here panics on any input (see the property tests).

use std::io::Read;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// How a request body (and so its response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The format a `Content-Type` names; parameters such as `charset` are ignored.
    pub fn from_content_type(ct: Option<&str>) -> Result<Format, DecodeError> {
        let Some(ct) = ct else {
            return Err(DecodeError::UnsupportedType("none".into()));
        };
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Ok(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Ok(Format::Json)
        } else {
            Err(DecodeError::UnsupportedType(ct.chars().take(100).collect()))
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Why a body was not decoded. `reason()` is the `reason` label of `plimsoll_ingest_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported Content-Type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedType(String),
    #[error("unsupported Content-Encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    #[error("the request is larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    #[error("invalid protobuf body: {0}")]
    Protobuf(String),
    #[error("invalid OTLP/JSON body: {0}")]
    Json(String),
}

impl DecodeError {
    pub fn status(&self) -> StatusCode {
        match self {
            DecodeError::UnsupportedType(_) | DecodeError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            DecodeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DecodeError::Gzip(_) | DecodeError::Protobuf(_) | DecodeError::Json(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::UnsupportedType(_) => "unsupported_content_type",
            DecodeError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            DecodeError::TooLarge(_) => "too_large",
            DecodeError::Gzip(_) => "invalid_gzip",
            DecodeError::Protobuf(_) => "invalid_protobuf",
            DecodeError::Json(_) => "invalid_json",
        }
    }
}

/// Whether a `Content-Encoding` is gzip (true) or none (false).
pub fn is_gzip(encoding: Option<&str>) -> Result<bool, DecodeError> {
    match encoding.map(str::trim) {
        None | Some("") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(e) => Err(DecodeError::UnsupportedEncoding(
            e.chars().take(100).collect(),
        )),
    }
}

/// Undoes gzip, refusing output beyond `max` bytes (a small body may inflate enormously).
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let mut dec = flate2::read::MultiGzDecoder::new(body).take(max as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

/// Decodes a message from a body in `format`, gzip-compressed when `gzip`.
pub fn decode<T: prost::Message + DeserializeOwned + Default>(
    format: Format,
    gzip: bool,
    body: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if body.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    let inflated;
    let raw = if gzip {
        inflated = gunzip(body, max)?;
        &inflated[..]
    } else {
        body
    };
    match format {
        Format::Protobuf => T::decode(raw).map_err(|e| DecodeError::Protobuf(e.to_string())),
        Format::Json => serde_json::from_slice(raw).map_err(|e| DecodeError::Json(e.to_string())),
    }
}

/// Encodes a response message in `format`. An empty message is `{}` in JSON, as the protobuf JSON
/// mapping writes it (not `{"partialSuccess":null}`).
pub fn encode<T: prost::Message + serde::Serialize + Default + PartialEq>(
    format: Format,
    msg: &T,
) -> Vec<u8> {
    match format {
        Format::Protobuf => msg.encode_to_vec(),
        Format::Json if *msg == T::default() => b"{}".to_vec(),
        // Serializing generated OTLP messages to JSON cannot fail (no maps with non-string keys).
        Format::Json => serde_json::to_vec(msg).unwrap_or_default(),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

//! CoAP (RFC 7252) with Observe (RFC 7641) and block-wise transfer (RFC 7959), sans I/O.
//!
//! - [`message`]: the datagram codec (decoding through coap-lite's `Packet` with stricter checks,
//!   encoding our own, held byte-identical to coap-lite's by a property test);
//! - [`option`]: option numbers, the option list, Block1/Block2 and Content-Format;
//! - [`request`]: the request and response values the application works with;
//! - [`observe`]: RFC 7641 notification ordering;
//! - [`endpoint`]: [`CoapEndpoint`], the sans-I/O state machine (reliability, deduplication,
//!   matching, block-wise transfer, observe) that the server and the simulator drive.
//!
//! This module never opens a socket, spawns a task or reads the clock.

pub mod endpoint;
pub mod message;
pub mod observe;
pub mod option;
pub mod request;

#[cfg(test)]
pub(crate) mod testing;

pub use endpoint::{
    BlockFailure, CancelMode, CoapConfig, CoapEndpoint, EndpointStats, Event, FailureReason,
    RequestId, RespondError, Responder, Transmit,
};
pub use message::{Code, DecodeError, EncodeError, Message, MessageType, Token};
pub use option::{BlockOption, ContentFormat, Options};
pub use request::{Method, Request, Response};

//! CoAP (RFC 7252) with Observe (RFC 7641) and block-wise transfer (RFC 7959), sans I/O.
//!
//! - [`message`]: the datagram codec (on top of coap-lite's `Packet`, with stricter checks);
//! - [`option`]: option numbers, the option list, Block1/Block2 and Content-Format;
//! - [`request`]: the request and response values the application works with.
//!
//! This module never opens a socket, spawns a task or reads the clock.

pub mod message;
pub mod option;
pub mod request;

pub use message::{Code, DecodeError, EncodeError, Message, MessageType, Token};
pub use option::{BlockOption, ContentFormat, Options};
pub use request::{Method, Request, Response};

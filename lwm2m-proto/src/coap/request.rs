//! Application-level request and response values: what the LwM2M layer builds and receives.
//! Message IDs, tokens, block options and retransmission belong to the endpoint, not to these.

use super::message::Code;
use super::option::{ContentFormat, Options};

/// A request method (RFC 7252 §5.8, RFC 8132).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// 0.01 GET.
    Get,
    /// 0.02 POST.
    Post,
    /// 0.03 PUT.
    Put,
    /// 0.04 DELETE.
    Delete,
    /// 0.05 FETCH.
    Fetch,
    /// 0.06 PATCH.
    Patch,
    /// 0.07 iPATCH.
    IPatch,
}

impl Method {
    /// The method's code.
    pub fn code(self) -> Code {
        match self {
            Method::Get => Code::GET,
            Method::Post => Code::POST,
            Method::Put => Code::PUT,
            Method::Delete => Code::DELETE,
            Method::Fetch => Code::FETCH,
            Method::Patch => Code::PATCH,
            Method::IPatch => Code::IPATCH,
        }
    }

    /// The method for a request code; `None` for codes we do not know (answered 4.05, §5.8).
    pub fn from_code(code: Code) -> Option<Method> {
        Some(match code {
            Code::GET => Method::Get,
            Code::POST => Method::Post,
            Code::PUT => Method::Put,
            Code::DELETE => Method::Delete,
            Code::FETCH => Method::Fetch,
            Code::PATCH => Method::Patch,
            Code::IPATCH => Method::IPatch,
            _ => return None,
        })
    }
}

/// A CoAP request as the application sees it.
///
/// Outgoing: the endpoint adds token, message ID and, for bodies larger than one block, Block1
/// options. Incoming: a Block1 body arrives reassembled, without Block1/Size1 options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Sent as a Confirmable message (the default) or Non-confirmable; for an incoming request,
    /// how it arrived.
    pub confirmable: bool,
    /// Options (Uri-Path, Uri-Query, Content-Format, Accept, Observe, …).
    pub options: Options,
    /// Body; may be larger than one datagram (sent block-wise, RFC 7959).
    pub payload: Vec<u8>,
}

impl Request {
    /// A Confirmable request with no options and no payload.
    pub fn new(method: Method) -> Request {
        Request {
            method,
            confirmable: true,
            options: Options::new(),
            payload: Vec::new(),
        }
    }

    /// `GET`.
    pub fn get() -> Request {
        Request::new(Method::Get)
    }

    /// `POST`.
    pub fn post() -> Request {
        Request::new(Method::Post)
    }

    /// `PUT`.
    pub fn put() -> Request {
        Request::new(Method::Put)
    }

    /// `DELETE`.
    pub fn delete() -> Request {
        Request::new(Method::Delete)
    }

    /// Replaces the Uri-Path with `segments`; `Request::get().with_path(["3", "0", "1"])`, or
    /// `with_path(path.segments())` for an LwM2M path.
    pub fn with_path<I, S>(mut self, segments: I) -> Request
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.options.set_uri_path(segments);
        self
    }

    /// Appends one Uri-Query argument, e.g. `"ep=meter-1"`.
    pub fn with_query(mut self, argument: impl AsRef<str>) -> Request {
        self.options.push_uri_query(argument);
        self
    }

    /// Sets the Content-Format of the payload.
    pub fn with_content_format(mut self, format: ContentFormat) -> Request {
        self.options.set_content_format(format);
        self
    }

    /// Sets the Accept option.
    pub fn with_accept(mut self, format: ContentFormat) -> Request {
        self.options.set_accept(format);
        self
    }

    /// Sets Observe: 0 registers, 1 deregisters (RFC 7641 §2).
    pub fn with_observe(mut self, value: u32) -> Request {
        self.options.set_observe(value);
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Request {
        self.payload = payload.into();
        self
    }

    /// Sends as a Non-confirmable message.
    pub fn non_confirmable(mut self) -> Request {
        self.confirmable = false;
        self
    }

    /// The Uri-Path segments.
    pub fn path(&self) -> Vec<String> {
        self.options.uri_path()
    }

    /// The Uri-Query arguments.
    pub fn query(&self) -> Vec<String> {
        self.options.uri_query()
    }

    /// The Observe value, if any.
    pub fn observe(&self) -> Option<u32> {
        self.options.observe()
    }

    /// The Content-Format, if any.
    pub fn content_format(&self) -> Option<ContentFormat> {
        self.options.content_format()
    }

    /// The Accept option, if any.
    pub fn accept(&self) -> Option<ContentFormat> {
        self.options.accept()
    }
}

/// A CoAP response as the application sees it. A Block2 body arrives reassembled, without
/// Block2/Size2 options; a response the application gives larger than one block is sent
/// block-wise by the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Response code (2.xx, 4.xx, 5.xx).
    pub code: Code,
    /// Options (Content-Format, Observe, Location-Path, …).
    pub options: Options,
    /// Body.
    pub payload: Vec<u8>,
}

impl Response {
    /// A response with no options and no payload.
    pub fn new(code: Code) -> Response {
        Response {
            code,
            options: Options::new(),
            payload: Vec::new(),
        }
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Response {
        self.payload = payload.into();
        self
    }

    /// Sets the Content-Format.
    pub fn with_content_format(mut self, format: ContentFormat) -> Response {
        self.options.set_content_format(format);
        self
    }

    /// Sets the Observe sequence number (RFC 7641 §4.4).
    pub fn with_observe(mut self, seq: u32) -> Response {
        self.options.set_observe(seq);
        self
    }

    /// Replaces the Location-Path (e.g. `["rd", "5a3f"]` after an LwM2M Register).
    pub fn with_location_path<I, S>(mut self, segments: I) -> Response
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.options.set_location_path(segments);
        self
    }

    /// The Content-Format, if any.
    pub fn content_format(&self) -> Option<ContentFormat> {
        self.options.content_format()
    }

    /// The Observe value, if any.
    pub fn observe(&self) -> Option<u32> {
        self.options.observe()
    }

    /// The Location-Path segments.
    pub fn location_path(&self) -> Vec<String> {
        self.options.location_path()
    }

    /// 2.xx.
    pub fn is_success(&self) -> bool {
        self.code.class() == 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_options() {
        let r = Request::get()
            .with_path(["3", "0", "1"])
            .with_accept(ContentFormat::SENML_CBOR)
            .with_observe(0);
        assert_eq!(r.path(), vec!["3", "0", "1"]);
        assert_eq!(r.accept(), Some(ContentFormat::SENML_CBOR));
        assert_eq!(r.observe(), Some(0));
        assert!(r.confirmable);
        let r = Request::post()
            .with_path(["rd"])
            .with_query("ep=m1")
            .with_query("b=U")
            .non_confirmable();
        assert_eq!(r.query(), vec!["ep=m1", "b=U"]);
        assert!(!r.confirmable);
        let resp = Response::new(Code::CREATED).with_location_path(["rd", "5a3f"]);
        assert_eq!(resp.location_path(), vec!["rd", "5a3f"]);
        assert!(resp.is_success());
    }

    #[test]
    fn methods_map_to_codes() {
        for m in [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Fetch,
            Method::Patch,
            Method::IPatch,
        ] {
            assert_eq!(Method::from_code(m.code()), Some(m));
        }
        assert_eq!(Method::from_code(Code(0x08)), None);
    }
}

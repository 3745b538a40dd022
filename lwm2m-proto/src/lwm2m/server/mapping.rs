//! How operations travel as CoAP (OMA LwM2M TS Transport Bindings 1.1, Device Management and
//! Information Reporting interfaces), and how the answers are decoded into typed content through
//! the object model: Read GET + Accept; Discover GET + Accept 40; Write PUT (replace) or POST
//! (partial update); Write-Attributes PUT + Uri-Query; Execute POST; Create POST on the object;
//! Delete DELETE; Read-Composite FETCH; Write-Composite iPATCH; Observe GET + Observe 0;
//! Observe-Composite FETCH + Observe 0; Cancel Observation GET + Observe 1 (RFC 7641 §3.6).

use std::collections::BTreeMap;

use lwm2m_objects::codec::{self, DecodeError, Record};
use lwm2m_objects::link::parse_discover_under;
use lwm2m_objects::{ContentFormat as Format, Node, ObjectModel, Path, ResourceValue, Value};
use smallvec::SmallVec;

use super::formats::{composite_format, single_format};
use super::ops::{Content, OpError, OpOutcome, Operation, WriteMode};
use super::registrations::RegisteredObjects;
use crate::coap::option::ContentFormat as CoapFormat;
use crate::coap::{Method, Request, Response};
use crate::lwm2m::registration::Lwm2mVersion;

/// What is observed, for decoding notifications.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ObserveTarget {
    Single(Path),
    Composite(Vec<Path>),
}

impl ObserveTarget {
    pub(super) fn paths(&self) -> Vec<Path> {
        match self {
            ObserveTarget::Single(p) => vec![*p],
            ObserveTarget::Composite(ps) => ps.clone(),
        }
    }
}

/// What the response to a request should hold.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expect {
    /// Single-path content (Read, Observe).
    Content(Path),
    /// Records (Read-Composite, Observe-Composite).
    Records,
    Changed,
    Created,
    Deleted,
    Links,
}

/// A request ready for the CoAP layer, with what to make of its answer.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) request: Request,
    pub(super) expect: Expect,
    /// The content format asked for (Accept) or written, the fallback when a response has none.
    pub(super) format: Format,
    /// Set for Observe and Observe-Composite.
    pub(super) observe: Option<ObserveTarget>,
}

fn coap_format(f: Format) -> CoapFormat {
    CoapFormat(f.to_u16())
}

fn invalid(operation: &Operation, reason: &'static str) -> OpError {
    OpError::Invalid {
        operation: operation.name(),
        reason,
    }
}

/// The Uri-Path of `path` under the client's root path.
fn uri_path<'a>(objects: &'a RegisteredObjects, path: &Path) -> SmallVec<[Segment<'a>; 8]> {
    let ids = [
        path.object_id(),
        path.instance_id(),
        path.resource_id(),
        path.resource_instance_id(),
    ];
    objects
        .root_segments()
        .map(Segment::Root)
        .chain(ids.into_iter().flatten().map(Segment::id))
        .collect()
}

/// One Uri-Path segment of a request: part of the client's alternate root path, or an ID in
/// decimal, formatted without allocating (a Read is built for every device of a fleet read).
#[derive(Clone, Copy)]
enum Segment<'a> {
    Root(&'a str),
    Id { digits: [u8; 5], len: u8 },
}

impl<'a> Segment<'a> {
    fn id(id: u16) -> Segment<'a> {
        use std::io::Write as _;
        let mut digits = [0u8; 5];
        let len = {
            let mut rest = &mut digits[..];
            // A u16 has at most 5 decimal digits, so this cannot run out of room.
            let _ = write!(rest, "{id}");
            5 - rest.len()
        };
        Segment::Id {
            digits,
            len: len as u8,
        }
    }
}

impl AsRef<str> for Segment<'_> {
    fn as_ref(&self) -> &str {
        match self {
            Segment::Root(text) => text,
            Segment::Id { digits, len } => digits
                .get(..usize::from(*len))
                .and_then(|d| std::str::from_utf8(d).ok())
                .unwrap_or_default(),
        }
    }
}

/// Whether `path` is a single-instance resource of a LwM2M 1.0 client: one value, which every 1.0
/// client MUST support as plain text (opaque for binary), while TLV is only required "for Object
/// Instance or multiple-instance Resource requests" (TS 1.0 §6.4 Data Formats). Clients that
/// implement just that (lwm2m-node-lib; its CoAP stack even drops a request whose Accept names a
/// format it does not know) never answer a Read that asks for TLV, so such paths are read without
/// Accept (the client picks, and says which in Content-Format) and single values are written as
/// text. A resource the model does not know is read the same way: only the client knows whether
/// it has instances, and it answers those in TLV.
fn plain_value(version: Lwm2mVersion, path: &Path) -> bool {
    !version.is_1_1_or_later()
        && match path {
            Path::Resource(object, _, resource) => ObjectModel::builtin()
                .resource(*object, *resource)
                .is_none_or(|def| !def.multiple),
            _ => false,
        }
}

/// Records naming `paths` without values: the body of Read- and Observe-Composite (§6.3.8).
fn names(paths: &[Path]) -> Vec<Record> {
    paths
        .iter()
        .map(|p| Record {
            path: *p,
            time: None,
            value: None,
        })
        .collect()
}

/// Builds the CoAP request for `operation` on a client of `version` with `objects`.
/// `CancelObservation` is not built here: it reuses the observation's exchange.
pub(super) fn build(
    operation: &Operation,
    version: Lwm2mVersion,
    objects: &RegisteredObjects,
) -> Result<Built, OpError> {
    let need_1_1 = || {
        if version.is_1_1_or_later() {
            Ok(())
        } else {
            Err(OpError::NotSupported {
                operation: operation.name(),
                version,
            })
        }
    };
    let single = |path: &Path| single_format(version, objects, path.object_id());
    let built = |request: Request, expect: Expect, format: Format| Built {
        request,
        expect,
        format,
        observe: None,
    };
    Ok(match operation {
        Operation::Read(path) | Operation::Observe(path) => {
            if *path == Path::Root {
                return Err(invalid(
                    operation,
                    "the root path cannot be read or observed",
                ));
            }
            let mut request = Request::get().with_path(uri_path(objects, path));
            let format = if plain_value(version, path) {
                // No Accept: the client answers in its own format (plain text at least), and an
                // answer without Content-Format is plain text (TS 1.0 Transport Bindings,
                // required CoAP features: "a default value of plain/text is assumed").
                Format::Text
            } else {
                let format = single(path);
                request = request.with_accept(coap_format(format));
                format
            };
            let mut b = built(Request::get(), Expect::Content(*path), format);
            if matches!(operation, Operation::Observe(_)) {
                request = request.with_observe(0);
                b.observe = Some(ObserveTarget::Single(*path));
            }
            b.request = request;
            b
        }
        Operation::ReadComposite(paths) | Operation::ObserveComposite(paths) => {
            need_1_1()?;
            if paths.is_empty() {
                return Err(invalid(operation, "no paths given"));
            }
            let format = composite_format(objects);
            let body = codec::encode_records(format, &names(paths)).map_err(OpError::Encode)?;
            let mut request = Request::new(Method::Fetch)
                .with_path(objects.root_segments())
                .with_content_format(coap_format(format))
                .with_accept(coap_format(format))
                .with_payload(body);
            let mut b = built(Request::get(), Expect::Records, format);
            if matches!(operation, Operation::ObserveComposite(_)) {
                request = request.with_observe(0);
                b.observe = Some(ObserveTarget::Composite(paths.clone()));
            }
            b.request = request;
            b
        }
        Operation::Write { path, node, mode } => {
            if matches!(path, Path::Root | Path::Object(_)) {
                return Err(invalid(
                    operation,
                    "Write targets an instance, a resource or a resource instance",
                ));
            }
            let format = match node {
                Node::Resource(resource) if plain_value(version, path) => match resource.value {
                    ResourceValue::Single(Value::Opaque(_)) => Format::Opaque,
                    ResourceValue::Single(_) => Format::Text,
                    ResourceValue::Multiple(_) => single(path),
                },
                _ => single(path),
            };
            let body = codec::encode(format, path, node).map_err(OpError::Encode)?;
            let request = match mode {
                WriteMode::Replace => Request::put(),
                WriteMode::PartialUpdate => Request::post(),
            };
            let request = request
                .with_path(uri_path(objects, path))
                .with_content_format(coap_format(format))
                .with_payload(body);
            built(request, Expect::Changed, format)
        }
        Operation::WriteComposite(records) => {
            need_1_1()?;
            if records.is_empty() || records.iter().any(|r| r.value.is_none()) {
                return Err(invalid(operation, "every record needs a value"));
            }
            let format = composite_format(objects);
            let body = codec::encode_records(format, records).map_err(OpError::Encode)?;
            let request = Request::new(Method::IPatch)
                .with_path(objects.root_segments())
                .with_content_format(coap_format(format))
                .with_payload(body);
            built(request, Expect::Changed, format)
        }
        Operation::Execute { path, args } => {
            if !matches!(path, Path::Resource(..)) {
                return Err(invalid(operation, "Execute targets a resource"));
            }
            let mut request = Request::post().with_path(uri_path(objects, path));
            if let Some(args) = args {
                // The arguments are text (TS Core 1.1 §5.4.3 grammar).
                request = request
                    .with_content_format(CoapFormat::TEXT_PLAIN)
                    .with_payload(args.as_bytes());
            }
            built(request, Expect::Changed, Format::Text)
        }
        Operation::Create { object, instance } => {
            let path = Path::Object(*object);
            let format = single(&path);
            // The instance inside its object, so TLV wraps it in an Object Instance TLV that
            // carries the ID asked for (TS Core 1.1 §6.3.6) and SenML names are /o/i/r.
            let node = Node::Object {
                id: *object,
                instances: BTreeMap::from([(instance.id, instance.clone())]),
            };
            let body = codec::encode(format, &path, &node).map_err(OpError::Encode)?;
            let request = Request::post()
                .with_path(uri_path(objects, &path))
                .with_content_format(coap_format(format))
                .with_payload(body);
            built(request, Expect::Created, format)
        }
        Operation::Delete(path) => {
            if !matches!(path, Path::Instance(..) | Path::ResourceInstance(..)) {
                return Err(invalid(
                    operation,
                    "Delete targets an object instance or a resource instance",
                ));
            }
            let request = Request::delete().with_path(uri_path(objects, path));
            built(request, Expect::Deleted, Format::Text)
        }
        Operation::Discover(path) => {
            if *path == Path::Root {
                return Err(invalid(
                    operation,
                    "Discover targets an object, instance or resource",
                ));
            }
            let request = Request::get()
                .with_path(uri_path(objects, path))
                .with_accept(CoapFormat::LINK_FORMAT);
            built(request, Expect::Links, Format::LinkFormat)
        }
        Operation::WriteAttributes { path, attributes } => {
            if *path == Path::Root {
                return Err(invalid(
                    operation,
                    "attributes belong to an object or below",
                ));
            }
            let mut request = Request::put().with_path(uri_path(objects, path));
            for (name, value) in attributes.to_params() {
                request = match value {
                    Some(v) => request.with_query(format!("{name}={v}")),
                    None => request.with_query(name),
                };
            }
            built(request, Expect::Changed, Format::Text)
        }
        Operation::CancelObservation(_) => {
            return Err(invalid(operation, "cancellation reuses the observation"));
        }
    })
}

/// The diagnostic payload of an error response, if it is text (RFC 7252 §5.5.2).
fn diagnostic(response: &Response) -> Option<String> {
    if response.payload.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(&response.payload).ok()?;
    Some(text.chars().take(256).collect())
}

/// The error for a non-success response.
pub(super) fn error_of(response: &Response) -> OpError {
    OpError::Coap {
        code: response.code,
        diagnostic: diagnostic(response),
    }
}

/// The format a response is in: its Content-Format, else the one asked for.
fn response_format(response: &Response, asked: Format) -> Result<Format, OpError> {
    match response.content_format() {
        Some(cf) => Format::from_u16(cf.0).ok_or(OpError::UnsupportedContentFormat(cf.0)),
        None => Ok(asked),
    }
}

/// Decodes single-path content at `path`. Record formats with times stay records, so that a
/// time series (historical notifications) keeps every point and its time.
pub(super) fn decode_content(
    response: &Response,
    path: &Path,
    asked: Format,
) -> Result<Content, OpError> {
    let format = response_format(response, asked)?;
    let model = ObjectModel::builtin();
    if format.carries_records() {
        let records = codec::decode_records(format, path, &response.payload, model)?;
        if records.is_empty() || records.iter().any(|r| r.time.is_some()) {
            return Ok(Content::Records(records));
        }
        let entries = records.into_iter().filter_map(|r| Some((r.path, r.value?)));
        let node = Node::from_entries(path, entries)
            .map_err(|e| DecodeError::new(format, e).with_path(*path))?;
        return Ok(Content::Node { path: *path, node });
    }
    let node = codec::decode(format, path, &response.payload, model)?;
    Ok(Content::Node { path: *path, node })
}

/// Decodes composite content (SenML records).
pub(super) fn decode_records(response: &Response, asked: Format) -> Result<Vec<Record>, OpError> {
    let format = response_format(response, asked)?;
    if !format.carries_records() {
        return Err(OpError::UnsupportedContentFormat(format.to_u16()));
    }
    Ok(codec::decode_records(
        format,
        &Path::Root,
        &response.payload,
        ObjectModel::builtin(),
    )?)
}

/// Decodes the outcome of a finished (non-observe) request.
pub(super) fn outcome(
    expect: &Expect,
    format: Format,
    response: &Response,
    objects: &RegisteredObjects,
) -> Result<OpOutcome, OpError> {
    if !response.is_success() {
        return Err(error_of(response));
    }
    Ok(match expect {
        Expect::Content(path) => OpOutcome::Content(decode_content(response, path, format)?),
        Expect::Records => OpOutcome::Content(Content::Records(decode_records(response, format)?)),
        Expect::Changed => OpOutcome::Changed,
        Expect::Deleted => OpOutcome::Deleted,
        Expect::Created => {
            let location = response.location_path();
            let root: Vec<String> = objects.root_segments().map(str::to_owned).collect();
            let below = location
                .strip_prefix(root.as_slice())
                .unwrap_or(location.as_slice());
            let instance = Path::from_segments(below)
                .ok()
                .filter(|p| matches!(p, Path::Instance(..)));
            OpOutcome::Created { instance }
        }
        Expect::Links => {
            let text = String::from_utf8_lossy(&response.payload);
            let links =
                parse_discover_under(&text, objects.root_path()).map_err(OpError::InvalidLinks)?;
            OpOutcome::Links(links)
        }
    })
}

/// Decodes an observation's content (its first response or a notification).
pub(super) fn observed_content(
    target: &ObserveTarget,
    format: Format,
    response: &Response,
) -> Result<Content, OpError> {
    match target {
        ObserveTarget::Single(path) => decode_content(response, path, format),
        ObserveTarget::Composite(_) => Ok(Content::Records(decode_records(response, format)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::Code;
    use crate::coap::option::URI_QUERY;
    use lwm2m_objects::link::Attributes;
    use lwm2m_objects::{Resource, Value};

    #[test]
    fn uri_path_segments_are_decimal_ids_after_the_root_path() {
        for id in [0u16, 7, 9, 10, 99, 100, 4095, 10_000, 65_535] {
            assert_eq!(Segment::id(id).as_ref(), id.to_string());
        }
        let plain = objects("</3/0>");
        let texts = |objects: &RegisteredObjects, path: &Path| {
            uri_path(objects, path)
                .iter()
                .map(|s| s.as_ref().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&plain, &Path::Resource(3, 0, 13)), ["3", "0", "13"]);
        assert!(texts(&plain, &Path::Root).is_empty());
        let rooted = objects("</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/3/0>");
        assert_eq!(
            texts(&rooted, &Path::ResourceInstance(3, 0, 7, 1)),
            ["lwm2m", "3", "0", "7", "1"]
        );
    }

    fn objects(text: &str) -> RegisteredObjects {
        RegisteredObjects::parse(text).expect("links")
    }

    #[test]
    fn read_under_an_alternate_root_asks_for_the_chosen_format() {
        let objs = objects(r#"</lwm2m>;rt="oma.lwm2m";ct=110,</lwm2m/3/0>"#);
        let b = build(
            &Operation::Read(Path::Resource(3, 0, 9)),
            Lwm2mVersion::V1_1,
            &objs,
        )
        .expect("builds");
        assert_eq!(b.request.path(), ["lwm2m", "3", "0", "9"]);
        assert_eq!(b.request.accept(), Some(CoapFormat::SENML_JSON));
        assert_eq!(b.format, Format::SenmlJson);
        assert!(b.observe.is_none());
    }

    #[test]
    fn invalid_operations_are_refused_before_sending() {
        let objs = objects("</3/0>");
        let v10 = Lwm2mVersion::V1_0;
        let cases = [
            Operation::Read(Path::Root),
            Operation::Write {
                path: Path::Object(3),
                node: Node::Resource(Resource::single(1, Value::Integer(1))),
                mode: WriteMode::Replace,
            },
            Operation::Execute {
                path: Path::Instance(3, 0),
                args: None,
            },
            Operation::Delete(Path::Object(3)),
            Operation::Discover(Path::Root),
            Operation::WriteComposite(vec![]),
        ];
        for op in cases {
            assert!(
                matches!(
                    build(&op, Lwm2mVersion::V1_1, &objs),
                    Err(OpError::Invalid { .. })
                ),
                "{op:?}"
            );
        }
        let composite = Operation::ReadComposite(vec![Path::Resource(3, 0, 0)]);
        assert_eq!(
            build(&composite, v10, &objs).err(),
            Some(OpError::NotSupported {
                operation: "Read-Composite",
                version: v10
            })
        );
    }

    #[test]
    fn write_attributes_become_query_arguments() {
        // TS Core 1.1 §5.1.2 / §6.3.4: PUT /3/0/9?pmin=10&pmax=60&gt=50.5 ; a bare name unsets.
        let attributes = Attributes {
            pmin: Some(10),
            pmax: Some(60),
            gt: Some(50.5),
            other: vec![("st".into(), None)],
            ..Attributes::default()
        };
        let op = Operation::WriteAttributes {
            path: Path::Resource(3, 0, 9),
            attributes,
        };
        let b = build(&op, Lwm2mVersion::V1_0, &objects("</3/0>")).expect("builds");
        assert_eq!(b.request.method, Method::Put);
        let query: Vec<_> = b.request.options.get_all(URI_QUERY).collect();
        assert_eq!(query, [&b"pmin=10"[..], b"pmax=60", b"gt=50.5", b"st"]);
        assert!(b.request.payload.is_empty());
    }

    #[test]
    fn error_responses_carry_code_and_diagnostic() {
        let r = Response::new(Code::NOT_FOUND).with_payload("no such instance");
        assert_eq!(
            outcome(&Expect::Changed, Format::Tlv, &r, &objects("</3/0>")),
            Err(OpError::Coap {
                code: Code::NOT_FOUND,
                diagnostic: Some("no such instance".into())
            })
        );
        let r = Response::new(Code::CONTENT).with_content_format(CoapFormat(9999));
        assert_eq!(
            outcome(
                &Expect::Content(Path::Resource(3, 0, 0)),
                Format::Tlv,
                &r,
                &objects("</3/0>")
            ),
            Err(OpError::UnsupportedContentFormat(9999))
        );
    }

    #[test]
    fn a_1_0_single_resource_is_read_without_accept_and_written_as_text() {
        // Regression (interop with lwm2m-node-lib 1.4.0, a text-only LwM2M 1.0 client): a Read
        // of /3/0/0 with Accept: TLV was dropped by its CoAP stack, and its answers carry no
        // Content-Format. TS 1.0 §6.4 requires TLV only for instances and multiple resources.
        let objs = objects("</3/0>,</1/0>");
        let v10 = Lwm2mVersion::V1_0;
        let b = build(&Operation::Read(Path::Resource(3, 0, 0)), v10, &objs).expect("builds");
        assert_eq!(b.request.accept(), None);
        assert_eq!(b.format, Format::Text);
        let b = build(&Operation::Observe(Path::Resource(3, 0, 9)), v10, &objs).expect("builds");
        assert_eq!(b.request.accept(), None);
        // An answer without Content-Format is plain text, typed by the model.
        let r = Response::new(Code::CONTENT).with_payload("Telefonica I+D");
        let Ok(OpOutcome::Content(Content::Node { node, .. })) = outcome(
            &Expect::Content(Path::Resource(3, 0, 0)),
            b.format,
            &r,
            &objs,
        ) else {
            panic!("content expected");
        };
        assert_eq!(
            node,
            Node::Resource(Resource::single(0, Value::String("Telefonica I+D".into())))
        );
        // A resource the model does not know: the client picks too.
        let b = build(&Operation::Read(Path::Resource(3303, 0, 5700)), v10, &objs).expect("builds");
        assert_eq!(b.request.accept(), None);
        // Instances and multiple-instance resources still ask for TLV; so does 1.1.
        for path in [Path::Instance(3, 0), Path::Resource(3, 0, 7)] {
            let b = build(&Operation::Read(path), v10, &objs).expect("builds");
            assert_eq!(b.request.accept(), Some(CoapFormat(11542)), "{path}");
        }
        let b = build(
            &Operation::Read(Path::Resource(3, 0, 0)),
            Lwm2mVersion::V1_1,
            &objs,
        )
        .expect("builds");
        assert!(b.request.accept().is_some());
        // Writes of one value: text (ct 0), opaque (ct 42) for bytes.
        let write = |id, value| Operation::Write {
            path: Path::Resource(1, 0, id),
            node: Node::Resource(Resource::single(id, value)),
            mode: WriteMode::Replace,
        };
        let b = build(&write(1, Value::Integer(120)), v10, &objs).expect("builds");
        assert_eq!(b.request.content_format(), Some(CoapFormat(0)));
        assert_eq!(b.request.payload, b"120");
        let op = Operation::Write {
            path: Path::Resource(5, 0, 0),
            node: Node::Resource(Resource::single(0, Value::Opaque(vec![1, 2]))),
            mode: WriteMode::Replace,
        };
        let b = build(&op, v10, &objects("</5/0>")).expect("builds");
        assert_eq!(b.request.content_format(), Some(CoapFormat(42)));
        assert_eq!(b.request.payload, [1, 2]);
    }

    #[test]
    fn created_instance_comes_from_the_location_path() {
        let objs = objects(r#"</lwm2m>;rt="oma.lwm2m",</lwm2m/3303>"#);
        let r = Response::new(Code::CREATED).with_location_path(["lwm2m", "3303", "4"]);
        assert_eq!(
            outcome(&Expect::Created, Format::Tlv, &r, &objs),
            Ok(OpOutcome::Created {
                instance: Some(Path::Instance(3303, 4))
            })
        );
        let r = Response::new(Code::CREATED);
        assert_eq!(
            outcome(&Expect::Created, Format::Tlv, &r, &objs),
            Ok(OpOutcome::Created { instance: None })
        );
    }
}

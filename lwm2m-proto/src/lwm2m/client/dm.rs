//! The device-management interface, client side (OMA LwM2M TS Core 1.1 §6.3 and the
//! operation-to-CoAP mapping of TS Transport 1.1 §6.4): Read, Discover, Write (replace and
//! partial update), Write-Attributes, Execute, Create, Delete, Observe / Cancel Observation, and
//! the 1.1 composite Read (FETCH) and Write (iPATCH), answered from the [`ObjectStore`].
//!
//! Response codes (TS Core 1.1 §6.3, Table "Response codes"): 2.05 Content, 2.04 Changed,
//! 2.01 Created, 2.02 Deleted; 4.00 Bad Request (undecodable body, bad attribute), 4.01
//! Unauthorized (the Security and OSCORE objects are not reachable from a DM server), 4.04 Not
//! Found, 4.05 Method Not Allowed, 4.06 Not Acceptable (an Accept format the client does not
//! encode for this target), 4.15 Unsupported Content-Format (a body format it does not decode).

use std::time::Instant;

use lwm2m_objects::codec::{decode, decode_records, encode, encode_records};
use lwm2m_objects::link::{Attributes, DiscoverLink, encode_discover};
use lwm2m_objects::{ContentFormat, Node, ObjectInstance, Path};

use super::config::{decodes, encodes};
use super::observe::numeric;
use super::store::{ObjectStore, StoreError, WriteMode};
use super::{ClientEvent, Lwm2mClient};
use crate::coap::{Code, ContentFormat as CoapFormat, Method, Request, Responder, Response, Token};
use crate::lwm2m::registration::UpdateParams;

/// Objects a device-management server may not touch: Security (0) and OSCORE (21), which only
/// the bootstrap server writes (TS Core 1.1 §6.3, Appendix E.1).
const PROTECTED_OBJECTS: [u16; 2] = [0, 21];

/// What a request leads to after its response is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Followup {
    None,
    /// Instances were created or deleted (the client sends an Update with the new object links,
    /// TS Core 1.1 §6.2.2), or the Registration Update Trigger was executed.
    Update,
}

type Answer = Result<Response, Code>;

fn content(format: ContentFormat, payload: Vec<u8>) -> Response {
    Response::new(Code::CONTENT)
        .with_content_format(CoapFormat(format.to_u16()))
        .with_payload(payload)
}

fn store_error(e: StoreError) -> Code {
    e.code()
}

impl<S: ObjectStore> Lwm2mClient<S> {
    /// Answers one request from the server.
    pub(crate) fn on_request(&mut self, now: Instant, request: Request, responder: Responder) {
        if self.bootstrap.active() {
            self.on_bootstrap_request(now, request, responder);
            return;
        }
        let token = responder.token();
        let (answer, mut followup) = self.dispatch(now, &request, token);
        // Any successful write may have touched /1/x/1 (Write, partial update, Write-Composite).
        let wrote = answer
            .as_ref()
            .is_ok_and(|r| r.code == Code::CHANGED && request.method != Method::Get);
        let response = answer.unwrap_or_else(Response::new);
        let _ = self.coap.respond(now, responder, response);
        let mut params = UpdateParams::default();
        if wrote && let Some(lifetime) = self.written_lifetime() {
            // TS Core 1.1 Appendix E.2: a new Lifetime (/1/x/1) is announced with an Update.
            params.lifetime = Some(lifetime);
            followup = Followup::Update;
        }
        if followup == Followup::Update && self.registration.location().is_some() {
            let _ = self.start_update(now, params);
        }
    }

    /// The Lifetime resource of the (first) server account, when it differs from the lifetime in
    /// use.
    fn written_lifetime(&self) -> Option<u32> {
        let instance = self
            .store
            .objects()
            .into_iter()
            .find(|(o, _)| *o == 1)
            .and_then(|(_, ids)| ids.first().copied())?;
        let node = self.store.read(&Path::Resource(1, instance, 1)).ok()?;
        let lifetime = numeric(&node)?;
        let lifetime =
            (lifetime >= 1.0 && lifetime <= f64::from(u32::MAX)).then_some(lifetime as u32)?;
        (lifetime != self.settings.lifetime).then_some(lifetime)
    }

    fn dispatch(&mut self, now: Instant, request: &Request, token: Token) -> (Answer, Followup) {
        let Ok(path) = Path::from_segments(&request.path()) else {
            return (Err(Code::NOT_FOUND), Followup::None);
        };
        if path
            .object_id()
            .is_some_and(|o| PROTECTED_OBJECTS.contains(&o))
        {
            return (Err(Code::UNAUTHORIZED), Followup::None);
        }
        let v11 = self.settings.version.is_1_1_or_later();
        let answer = match request.method {
            Method::Get if request.accept() == Some(CoapFormat::LINK_FORMAT) => {
                self.discover(&path)
            }
            Method::Get => match request.observe() {
                Some(0) => self.observe(now, &path, request.accept(), token),
                Some(1) => {
                    // RFC 7641 §3.6: a GET with Observe = 1 and the same token cancels; it is
                    // answered like a Read.
                    self.stop_observation(token);
                    self.read(&path, request.accept()).map(|(r, _)| r)
                }
                _ => self.read(&path, request.accept()).map(|(r, _)| r),
            },
            Method::Put
                if request.payload.is_empty()
                    && request.content_format().is_none()
                    && !request.query().is_empty() =>
            {
                self.write_attributes(&path, &request.query())
            }
            Method::Put => self.write(&path, request, WriteMode::Replace),
            Method::Post => match path {
                Path::Object(o) => {
                    return match self.create(o, request) {
                        Ok(r) => (Ok(r), Followup::Update),
                        Err(code) => (Err(code), Followup::None),
                    };
                }
                Path::Instance(..) => self.write(&path, request, WriteMode::PartialUpdate),
                Path::Resource(o, _, r) if self.is_write_not_execute(o, r, request) => {
                    self.write(&path, request, WriteMode::PartialUpdate)
                }
                // TS Core 1.1 Appendix E.2: executing /1/x/8 (Registration Update Trigger)
                // makes the client send an Update.
                Path::Resource(1, _, 8) => {
                    return match self.execute(&path, request) {
                        Ok(r) => (Ok(r), Followup::Update),
                        Err(code) => (Err(code), Followup::None),
                    };
                }
                Path::Resource(..) => self.execute(&path, request),
                Path::Root | Path::ResourceInstance(..) => Err(Code::METHOD_NOT_ALLOWED),
            },
            Method::Delete => {
                return match self.delete(&path) {
                    Ok(r) => (Ok(r), Followup::Update),
                    Err(code) => (Err(code), Followup::None),
                };
            }
            Method::Fetch if v11 => match request.observe() {
                Some(0) => self.observe_composite(now, request, token),
                Some(1) => {
                    // As for GET: Observe = 1 with the same token cancels; answered as a read.
                    self.stop_observation(token);
                    self.read_composite(request).map(|(r, _, _)| r)
                }
                _ => self.read_composite(request).map(|(r, _, _)| r),
            },
            Method::IPatch if v11 => self.write_composite(request),
            _ => Err(Code::METHOD_NOT_ALLOWED),
        };
        (answer, Followup::None)
    }

    /// POST on a resource is Execute (TS Core 1.1 §6.3.5) unless it is a partial update of a
    /// writable multiple-instance resource (1.1) carrying a body format other than text.
    fn is_write_not_execute(&self, object: u16, resource: u16, request: &Request) -> bool {
        let body_format = request
            .content_format()
            .is_some_and(|cf| cf != CoapFormat::TEXT_PLAIN);
        match self.settings.model.resource(object, resource) {
            Some(def) => !def.operations.execute && body_format,
            None => body_format,
        }
    }

    /// The format to answer in: the Accept option when the client encodes it, else 4.06; the
    /// preferred format without Accept.
    fn answer_format(&self, accept: Option<CoapFormat>) -> Result<ContentFormat, Code> {
        match accept {
            None => Ok(self.settings.preferred_format),
            Some(cf) => ContentFormat::from_u16(cf.0)
                .filter(|f| encodes(self.settings.version, *f))
                .ok_or(Code::NOT_ACCEPTABLE),
        }
    }

    fn encode_answer(
        &self,
        path: &Path,
        node: &Node,
        accept: Option<CoapFormat>,
    ) -> Result<(Vec<u8>, ContentFormat), Code> {
        let format = self.answer_format(accept)?;
        match encode(format, path, node) {
            Ok(payload) => Ok((payload, format)),
            // Text and opaque carry single values only (TS Core 1.1 §7.4.1–7.4.2).
            Err(_) if accept.is_some() => Err(Code::NOT_ACCEPTABLE),
            Err(_) => Err(Code::INTERNAL_SERVER_ERROR),
        }
    }

    /// Read (TS Core 1.1 §6.3.1): `GET /o[/i[/r[/ri]]]`.
    fn read(&self, path: &Path, accept: Option<CoapFormat>) -> Result<(Response, Node), Code> {
        if *path == Path::Root {
            return Err(Code::METHOD_NOT_ALLOWED);
        }
        let node = self.store.read(path).map_err(store_error)?;
        let (payload, format) = self.encode_answer(path, &node, accept)?;
        Ok((content(format, payload), node))
    }

    /// Observe (TS Core 1.1 §6.4.1): a Read whose 2.05 carries Observe, then notifications.
    fn observe(
        &mut self,
        now: Instant,
        path: &Path,
        accept: Option<CoapFormat>,
        token: Token,
    ) -> Answer {
        let (response, node) = self.read(path, accept)?;
        let format = response
            .content_format()
            .and_then(|cf| ContentFormat::from_u16(cf.0))
            .unwrap_or(self.settings.preferred_format);
        let seq = self.next_seq();
        self.start_observation(now, token, *path, format, numeric(&node));
        Ok(response.with_observe(seq))
    }

    /// Discover (TS Core 1.1 §6.3.2 / 1.0 §5.4.2): the object, its instances and their resources
    /// (or one instance, or one resource), with `ver`, `dim` and the attributes set on each.
    fn discover(&self, path: &Path) -> Answer {
        let mut links = Vec::new();
        match *path {
            Path::Object(o) => {
                let instances = self
                    .store
                    .objects()
                    .into_iter()
                    .find(|(id, _)| *id == o)
                    .map(|(_, ids)| ids)
                    .ok_or(Code::NOT_FOUND)?;
                let mut attributes = self.attributes.get(path).to_attributes();
                attributes.ver = self
                    .settings
                    .model
                    .object(o)
                    .map(|def| def.version)
                    .filter(|v| *v != "1.0")
                    .map(str::to_owned);
                links.push(DiscoverLink {
                    path: *path,
                    attributes,
                });
                for i in instances {
                    self.discover_instance(o, i, &mut links)?;
                }
            }
            Path::Instance(o, i) => self.discover_instance(o, i, &mut links)?,
            Path::Resource(o, i, r) => {
                let resources = self.store.resources(o, i).map_err(store_error)?;
                let dim = resources
                    .iter()
                    .find(|(id, _)| *id == r)
                    .map(|(_, dim)| *dim)
                    .ok_or(Code::NOT_FOUND)?;
                links.push(self.resource_link(*path, dim));
            }
            Path::Root | Path::ResourceInstance(..) => return Err(Code::METHOD_NOT_ALLOWED),
        }
        Ok(Response::new(Code::CONTENT)
            .with_content_format(CoapFormat::LINK_FORMAT)
            .with_payload(encode_discover(&links)))
    }

    fn discover_instance(&self, o: u16, i: u16, links: &mut Vec<DiscoverLink>) -> Result<(), Code> {
        let resources = self.store.resources(o, i).map_err(store_error)?;
        let path = Path::Instance(o, i);
        links.push(DiscoverLink {
            path,
            attributes: self.attributes.get(&path).to_attributes(),
        });
        for (r, dim) in resources {
            links.push(self.resource_link(Path::Resource(o, i, r), dim));
        }
        Ok(())
    }

    fn resource_link(&self, path: Path, dim: Option<u16>) -> DiscoverLink {
        let attributes = Attributes {
            dim: dim.map(u32::from),
            ..self.attributes.get(&path).to_attributes()
        };
        DiscoverLink { path, attributes }
    }

    /// Write-Attributes (TS Core 1.1 §6.3.4): `PUT` with only a query.
    fn write_attributes(&mut self, path: &Path, query: &[String]) -> Answer {
        if *path == Path::Root {
            return Err(Code::METHOD_NOT_ALLOWED);
        }
        self.check_exists(path)?;
        let mut attrs = self.attributes.get(path);
        attrs
            .apply_query(path, query)
            .map_err(|_| Code::BAD_REQUEST)?;
        self.attributes.set(*path, attrs);
        self.refresh_observation_attributes();
        Ok(Response::new(Code::CHANGED))
    }

    /// 4.04 unless `path` names an existing object, instance or resource.
    fn check_exists(&self, path: &Path) -> Result<(), Code> {
        match *path {
            Path::Root => Ok(()),
            Path::Object(o) => self
                .store
                .objects()
                .iter()
                .any(|(id, _)| *id == o)
                .then_some(())
                .ok_or(Code::NOT_FOUND),
            Path::Instance(o, i) => self.store.resources(o, i).map(|_| ()).map_err(store_error),
            Path::Resource(o, i, r) | Path::ResourceInstance(o, i, r, _) => self
                .store
                .resources(o, i)
                .map_err(store_error)?
                .iter()
                .any(|(id, _)| *id == r)
                .then_some(())
                .ok_or(Code::NOT_FOUND),
        }
    }

    /// The body format of a write, or 4.15 / 4.00.
    fn body_format(&self, request: &Request) -> Result<ContentFormat, Code> {
        let cf = request.content_format().ok_or(Code::BAD_REQUEST)?;
        ContentFormat::from_u16(cf.0)
            .filter(|f| decodes(self.settings.version, *f))
            .ok_or(Code::UNSUPPORTED_CONTENT_FORMAT)
    }

    /// Write (TS Core 1.1 §6.3.3): `PUT` replaces, `POST` updates partially.
    fn write(&mut self, path: &Path, request: &Request, mode: WriteMode) -> Answer {
        if matches!(path, Path::Root | Path::Object(_)) {
            return Err(Code::METHOD_NOT_ALLOWED);
        }
        let format = self.body_format(request)?;
        let node = decode(format, path, &request.payload, self.settings.model)
            .map_err(|_| Code::BAD_REQUEST)?;
        self.store.write(path, node, mode).map_err(store_error)?;
        self.after_write(*path);
        Ok(Response::new(Code::CHANGED))
    }

    fn after_write(&mut self, path: Path) {
        self.mark_changed(&path);
        if path.object_id() == Some(1) {
            // The server's default periods may have changed.
            self.refresh_observation_attributes();
        }
        self.events.push_back(ClientEvent::Written { path });
    }

    /// Execute (TS Core 1.1 §6.3.5): `POST /o/i/r` with optional argument text.
    fn execute(&mut self, path: &Path, request: &Request) -> Answer {
        let args = if request.payload.is_empty() {
            None
        } else {
            Some(String::from_utf8(request.payload.clone()).map_err(|_| Code::BAD_REQUEST)?)
        };
        self.store
            .execute(path, args.as_deref())
            .map_err(store_error)?;
        self.events
            .push_back(ClientEvent::Executed { path: *path, args });
        Ok(Response::new(Code::CHANGED))
    }

    /// Create (TS Core 1.1 §6.3.6): `POST /o` with the new instance (its ID in the payload, or
    /// chosen by the client). 2.01 with Location-Path `/o/i`.
    fn create(&mut self, object: u16, request: &Request) -> Answer {
        self.check_exists(&Path::Object(object))?;
        let format = self.body_format(request)?;
        let model = self.settings.model;
        let (instance, content) =
            match decode(format, &Path::Object(object), &request.payload, model) {
                Ok(Node::Object { mut instances, .. }) => {
                    // One instance per Create (TS Core 1.1 §6.3.6).
                    if instances.len() != 1 {
                        return Err(Code::BAD_REQUEST);
                    }
                    let Some((id, content)) = instances.pop_first() else {
                        return Err(Code::BAD_REQUEST);
                    };
                    (Some(id), content)
                }
                // The payload may hold the resources alone; the client picks the ID (TS Core 1.0
                // §5.4.6). Decoded under a placeholder instance whose ID is not used.
                _ => match decode(
                    format,
                    &Path::Instance(object, lwm2m_objects::MAX_ID),
                    &request.payload,
                    model,
                ) {
                    Ok(Node::Instance(content)) => (None, content),
                    _ => return Err(Code::BAD_REQUEST),
                },
            };
        let content = ObjectInstance {
            id: instance.unwrap_or(0),
            resources: content.resources,
        };
        let id = self
            .store
            .create(object, instance, content)
            .map_err(store_error)?;
        let path = Path::Instance(object, id);
        self.events.push_back(ClientEvent::Created { path });
        Ok(Response::new(Code::CREATED).with_location_path([object.to_string(), id.to_string()]))
    }

    /// Delete (TS Core 1.1 §6.3.7): `DELETE /o/i`.
    fn delete(&mut self, path: &Path) -> Answer {
        if !matches!(path, Path::Instance(..)) {
            return Err(Code::METHOD_NOT_ALLOWED);
        }
        self.store.delete(path).map_err(store_error)?;
        self.stop_observations_under(path);
        self.attributes.remove_under(path);
        self.events.push_back(ClientEvent::Deleted { path: *path });
        Ok(Response::new(Code::DELETED))
    }

    /// Read-Composite (TS Core 1.1 §6.3.8): `FETCH /` with the paths as SenML names; the values
    /// come back as SenML (the Accept format, else the request's). Paths that do not exist are
    /// left out; 4.04 when none does. Also gives the paths asked for and the answer's format.
    fn read_composite(
        &self,
        request: &Request,
    ) -> Result<(Response, Vec<Path>, ContentFormat), Code> {
        let format = self.body_format(request)?;
        if !matches!(format, ContentFormat::SenmlJson | ContentFormat::SenmlCbor) {
            return Err(Code::UNSUPPORTED_CONTENT_FORMAT);
        }
        let answer_format = match request.accept() {
            None => format,
            Some(cf) => match ContentFormat::from_u16(cf.0) {
                Some(f @ (ContentFormat::SenmlJson | ContentFormat::SenmlCbor)) => f,
                _ => return Err(Code::NOT_ACCEPTABLE),
            },
        };
        let wanted = decode_records(format, &Path::Root, &request.payload, self.settings.model)
            .map_err(|_| Code::BAD_REQUEST)?;
        let paths: Vec<Path> = wanted
            .iter()
            .map(|r| r.path)
            .filter(|path| {
                path.object_id()
                    .is_some_and(|o| !PROTECTED_OBJECTS.contains(&o))
            })
            .collect();
        let (records, found) = self.composite_records(&paths);
        if !found && !wanted.is_empty() {
            return Err(Code::NOT_FOUND);
        }
        let payload =
            encode_records(answer_format, &records).map_err(|_| Code::INTERNAL_SERVER_ERROR)?;
        Ok((content(answer_format, payload), paths, answer_format))
    }

    /// Observe-Composite (TS Core 1.1 §6.4.1): a Read-Composite whose 2.05 carries Observe,
    /// then notifications of all its paths together.
    fn observe_composite(&mut self, now: Instant, request: &Request, token: Token) -> Answer {
        let (response, paths, format) = self.read_composite(request)?;
        let seq = self.next_seq();
        self.start_composite_observation(now, token, paths, format);
        Ok(response.with_observe(seq))
    }

    /// Write-Composite (TS Core 1.1 §6.3.9): `iPATCH /` with SenML records, each written as a
    /// replacement of its resource or resource instance. Stops at the first refusal.
    fn write_composite(&mut self, request: &Request) -> Answer {
        let format = self.body_format(request)?;
        if !matches!(format, ContentFormat::SenmlJson | ContentFormat::SenmlCbor) {
            return Err(Code::UNSUPPORTED_CONTENT_FORMAT);
        }
        let records = decode_records(format, &Path::Root, &request.payload, self.settings.model)
            .map_err(|_| Code::BAD_REQUEST)?;
        for record in records {
            let path = record.path;
            if path
                .object_id()
                .is_none_or(|o| PROTECTED_OBJECTS.contains(&o))
            {
                return Err(Code::UNAUTHORIZED);
            }
            let value = record.value.ok_or(Code::BAD_REQUEST)?;
            let node = Node::from_entries(&path, [(path, value)]).map_err(|_| Code::BAD_REQUEST)?;
            self.store
                .write(&path, node, WriteMode::Replace)
                .map_err(store_error)?;
            self.after_write(path);
        }
        Ok(Response::new(Code::CHANGED))
    }
}

//! The driver of the `engine_datagrams` target: lwm2m-proto's `Lwm2mServer` (and its
//! `CoapEndpoint`) fed a fuzz-chosen sequence of steps from several peers — raw datagrams,
//! well-formed Register / Update / De-register requests, responses and notifications matching the
//! server's own pending requests (so they get past token matching), the application's verdicts and
//! requests, and time passing. After every step the engine must not have panicked and every
//! collection a peer can grow must be within its configured cap (`ServerConfig` / `CoapConfig`
//! "Memory bounds"), with the caps set small so that fuzzing reaches them.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use lwm2m_objects::{ObjectInstance, Path, Resource, Value};
use lwm2m_proto::coap::{
    CoapConfig, Code, ContentFormat, Message, MessageType, Token, option as opt,
};
use lwm2m_proto::lwm2m::server::{
    Lwm2mServer, ObservationId, Operation, PeerAuth, RegistrationTicket, Rejection, ServerConfig,
    ServerEvent, WriteMode,
};

/// Steps per input: keeps one execution short (and the engine's state small enough to check).
const MAX_STEPS: usize = 200;
/// Requests the server sent, remembered per peer to answer them.
const REMEMBERED_REQUESTS: usize = 8;

/// Caps small enough for a fuzz input to hit every one of them.
pub fn config() -> ServerConfig {
    ServerConfig {
        coap: CoapConfig {
            max_body_size: 4096,
            max_dedup_entries: 32,
            max_pending_requests: 8,
            max_block1_assemblies: 2,
            max_block1_bytes: 4096,
            max_block2_cache_entries: 2,
            max_block2_cache_bytes: 4096,
            max_peer_states: 6,
            ..CoapConfig::default()
        },
        max_registrations: 3,
        max_pending_registrations: 2,
        max_in_flight: 2,
        max_queued: 3,
        max_observations: 2,
        ..ServerConfig::default()
    }
}

fn peers() -> [SocketAddr; 5] {
    [
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5683),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 5683),
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            5684,
        ),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1),
    ]
}

const ENDPOINTS: [&str; 4] = ["meter-0", "meter-1", "meter-2", "urn:imei:490154203237518"];
const LINKS: [&str; 6] = [
    "</1/0>,</3/0>",
    "</>;rt=\"oma.lwm2m\";ct=\"60 110 112 11542\",</1/0>,</3/0>,</5/0>,</3331/0>",
    "</1>;ver=1.1,</3/0>,</4>,</10243/0>",
    "",
    "<",
    "</3/0>;ct=11543,</9999/1>",
];
const CONTENT_FORMATS: [u16; 9] = [0, 40, 42, 60, 110, 112, 11542, 11543, 1542];
const PATHS: [Path; 8] = [
    Path::Object(3),
    Path::Instance(3, 0),
    Path::Resource(3, 0, 9),
    Path::Resource(3, 0, 7),
    Path::ResourceInstance(3, 0, 7, 0),
    Path::Resource(5, 0, 1),
    Path::Instance(3331, 0),
    Path::Root,
];

/// The state of one run.
struct Run {
    server: Lwm2mServer,
    config: ServerConfig,
    peers: [SocketAddr; 5],
    now: Instant,
    tickets: VecDeque<RegistrationTicket>,
    /// Location paths (`rd/{id}`) of registrations, newest last.
    locations: Vec<String>,
    observations: Vec<ObservationId>,
    /// Requests the server sent, per peer, to answer or notify against.
    sent: HashMap<SocketAddr, VecDeque<Message>>,
    /// Well-formed datagrams we sent, to replay or mutate.
    history: Vec<(SocketAddr, Vec<u8>)>,
    next_mid: u16,
}

/// Runs one fuzz input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(seed) = u.arbitrary::<u64>() else {
        return;
    };
    let config = config();
    let mut run = Run {
        server: Lwm2mServer::new(config.clone(), seed),
        config,
        peers: peers(),
        now: Instant::now(),
        tickets: VecDeque::new(),
        locations: Vec::new(),
        observations: Vec::new(),
        sent: HashMap::new(),
        history: Vec::new(),
        next_mid: 0x4000,
    };
    for _ in 0..MAX_STEPS {
        if u.is_empty() || run.step(&mut u).is_err() {
            break;
        }
        run.drain();
        run.check_bounds();
    }
    // Let every timer run out: the engine must end up holding nothing but registrations.
    for _ in 0..64 {
        let Some(at) = run.server.poll_timeout() else {
            break;
        };
        run.now = run.now.max(at);
        run.server.handle_timeout(run.now);
        run.drain();
        run.check_bounds();
    }
}

impl Run {
    fn peer(&self, u: &mut Unstructured<'_>) -> Result<SocketAddr> {
        Ok(*u.choose(&self.peers)?)
    }

    fn auth(u: &mut Unstructured<'_>) -> Result<PeerAuth> {
        Ok(match u.int_in_range(0u8..=3)? {
            0 => PeerAuth::NoSec,
            1 => PeerAuth::Psk {
                identity: "id-a".into(),
            },
            2 => PeerAuth::Psk {
                identity: "id-b".into(),
            },
            _ => PeerAuth::Psk {
                identity: u.arbitrary()?,
            },
        })
    }

    fn mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn token(u: &mut Unstructured<'_>) -> Result<Token> {
        let len = u.int_in_range(0usize..=8)?;
        Ok(Token::new(u.bytes(len)?).unwrap_or(Token::EMPTY))
    }

    fn deliver(&mut self, peer: SocketAddr, auth: PeerAuth, bytes: Vec<u8>) {
        self.server.handle_datagram(self.now, peer, auth, &bytes);
        if self.history.len() < 64 {
            self.history.push((peer, bytes));
        }
    }

    fn deliver_message(&mut self, peer: SocketAddr, auth: PeerAuth, message: &Message) {
        if let Ok(bytes) = message.encode() {
            self.deliver(peer, auth, bytes);
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0u8..=12)? {
            0 => {
                // Raw bytes.
                let peer = self.peer(u)?;
                let auth = Self::auth(u)?;
                let len = u.int_in_range(0usize..=1500)?;
                let bytes = u.bytes(len)?.to_vec();
                self.server.handle_datagram(self.now, peer, auth, &bytes);
            }
            1 => self.register(u)?,
            2 => self.update(u, Code::POST)?,
            3 => self.update(u, Code::DELETE)?,
            4 => self.respond(u)?,
            5 => self.notify(u)?,
            6 => {
                // Time passes by up to ~18 minutes, in steps that often land on timers.
                let by = match u.int_in_range(0u8..=2)? {
                    0 => Duration::from_millis(u.int_in_range(0u64..=5_000)?),
                    1 => Duration::from_secs(u.int_in_range(0u64..=1_100)?),
                    _ => self
                        .server
                        .poll_timeout()
                        .map_or(Duration::ZERO, |at| at.saturating_duration_since(self.now)),
                };
                self.now += by;
                self.server.handle_timeout(self.now);
            }
            7 => {
                // The application's verdict on a Register.
                let Some(ticket) = self.tickets.pop_front() else {
                    return Ok(());
                };
                let _ = match u.int_in_range(0u8..=3)? {
                    0 => self
                        .server
                        .reject_registration(self.now, ticket, Rejection::Forbidden),
                    1 => self.server.reject_registration(
                        self.now,
                        ticket,
                        Rejection::ServiceUnavailable,
                    ),
                    _ => self
                        .server
                        .accept_registration(self.now, ticket)
                        .map(|_| ()),
                };
            }
            8 => {
                // The application asks something of a device.
                let endpoint = *u.choose(&ENDPOINTS)?;
                let operation = self.operation(u)?;
                let _ = self.server.request(self.now, endpoint, operation);
            }
            9 => {
                // A datagram sent before, again (a duplicate) or with a few bytes changed.
                if self.history.is_empty() {
                    return Ok(());
                }
                let (peer, mut bytes) = u.choose(&self.history)?.clone();
                for _ in 0..u.int_in_range(0u8..=4)? {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = u.choose_index(bytes.len())?;
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= u.int_in_range(1u8..=255)?;
                    }
                }
                if u.ratio(1u8, 4u8)? {
                    let keep = u.int_in_range(0usize..=bytes.len())?;
                    bytes.truncate(keep);
                }
                let auth = Self::auth(u)?;
                self.server.handle_datagram(self.now, peer, auth, &bytes);
            }
            10 => {
                // A registration vanishes on the application's side.
                let endpoint = *u.choose(&ENDPOINTS)?;
                let _ = self.server.remove_registration(self.now, endpoint);
            }
            11 => self.send_dp(u)?,
            _ => self.block1_register(u)?,
        }
        Ok(())
    }

    fn query(u: &mut Unstructured<'_>, message: &mut Message, register: bool) -> Result<()> {
        if register || u.ratio(1u8, 3u8)? {
            let endpoint = if u.ratio(7u8, 8u8)? {
                (*u.choose(&ENDPOINTS)?).to_owned()
            } else {
                u.arbitrary::<String>()?
            };
            if register {
                message.options.push_uri_query(format!("ep={endpoint}"));
            }
        }
        if u.ratio(2u8, 3u8)? {
            let lifetime = *u.choose(&[0u32, 1, 30, 60, 86_400, u32::MAX])?;
            message.options.push_uri_query(format!("lt={lifetime}"));
        }
        if u.ratio(2u8, 3u8)? {
            let version = *u.choose(&["1.0", "1.1", "1.2", "2.0", "x"])?;
            message.options.push_uri_query(format!("lwm2m={version}"));
        }
        if u.ratio(1u8, 2u8)? {
            let binding = *u.choose(&["U", "UQ", "Q", "T", "UU", ""])?;
            message.options.push_uri_query(format!("b={binding}"));
        }
        if u.ratio(1u8, 8u8)? {
            let extra: String = u.arbitrary()?;
            message.options.push_uri_query(extra);
        }
        Ok(())
    }

    fn links(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        Ok(if u.ratio(7u8, 8u8)? {
            u.choose(&LINKS)?.as_bytes().to_vec()
        } else {
            let len = u.int_in_range(0usize..=300)?;
            u.bytes(len)?.to_vec()
        })
    }

    fn register(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let mtype = if u.ratio(7u8, 8u8)? {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        };
        let mid = self.mid();
        let mut message = Message::new(mtype, Code::POST, mid, Self::token(u)?);
        message.options.set_uri_path(["rd"]);
        Self::query(u, &mut message, true)?;
        message
            .options
            .set_content_format(ContentFormat(if u.ratio(7u8, 8u8)? { 40 } else { 0 }));
        message.payload = Self::links(u)?;
        self.deliver_message(peer, auth, &message);
        Ok(())
    }

    /// A Register carried in Block1 blocks (RFC 7959 §2.5), each possibly altered.
    fn block1_register(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let body = LINKS[1].as_bytes();
        let szx = u.int_in_range(0u8..=2)?;
        let size = 16usize << szx;
        let blocks = body.len().div_ceil(size);
        let token = Self::token(u)?;
        for num in 0..blocks {
            if u.ratio(1u8, 8u8)? {
                continue; // a block lost
            }
            let mid = self.mid();
            let mut message =
                Message::new(MessageType::Confirmable, Code::POST, mid, token.clone());
            message.options.set_uri_path(["rd"]);
            message.options.push_uri_query("ep=meter-1");
            message.options.push_uri_query("b=U");
            message.options.set_content_format(ContentFormat(40));
            let more = num + 1 < blocks;
            let num = if u.ratio(1u8, 16u8)? {
                u.int_in_range(0u32..=0xf_ffff)?
            } else {
                num as u32
            };
            let raw = (num << 4) | (u32::from(more) << 3) | u32::from(szx);
            message.options.push(opt::BLOCK1, opt::encode_uint(raw));
            let start = (num as usize).saturating_mul(size).min(body.len());
            let end = start.saturating_add(size).min(body.len());
            message.payload = body.get(start..end).unwrap_or_default().to_vec();
            self.deliver_message(peer, auth.clone(), &message);
            self.drain();
        }
        Ok(())
    }

    fn update(&mut self, u: &mut Unstructured<'_>, code: Code) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let location = match self.locations.last() {
            Some(_) if u.ratio(7u8, 8u8)? => u.choose(&self.locations)?.clone(),
            Some(_) | None => format!("rd/{}", u.arbitrary::<String>()?),
        };
        let mid = self.mid();
        let mut message = Message::new(MessageType::Confirmable, code, mid, Self::token(u)?);
        message
            .options
            .set_uri_path(location.split('/').map(str::to_owned));
        if code == Code::POST {
            Self::query(u, &mut message, false)?;
            if u.ratio(1u8, 3u8)? {
                message.options.set_content_format(ContentFormat(40));
                message.payload = Self::links(u)?;
            }
        }
        self.deliver_message(peer, auth, &message);
        Ok(())
    }

    /// A response to one of the server's requests to `peer`: piggybacked, empty ACK then separate,
    /// RST, or a stray ACK — with arbitrary code, format and payload.
    fn respond(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let requests: Vec<Message> = self
            .sent
            .get(&peer)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if requests.is_empty() {
            return Ok(());
        }
        let request = u.choose(&requests)?.clone();
        let response_code = if u.ratio(3u8, 4u8)? {
            *u.choose(&[
                Code::CONTENT,
                Code::CHANGED,
                Code::CREATED,
                Code::DELETED,
                Code::NOT_FOUND,
                Code::BAD_REQUEST,
                Code::METHOD_NOT_ALLOWED,
                Code::CONTINUE,
                Code::INTERNAL_SERVER_ERROR,
            ])?
        } else {
            Code(u.arbitrary()?)
        };
        let mut response = match u.int_in_range(0u8..=5)? {
            0 => {
                // Empty ACK now, the response later as its own CON (RFC 7252 §5.2.2).
                self.deliver_message(peer, auth.clone(), &Message::empty_ack(request.message_id));
                let mid = self.mid();
                Message::new(
                    MessageType::Confirmable,
                    response_code,
                    mid,
                    request.token.clone(),
                )
            }
            1 => Message::reset(request.message_id),
            2 => Message::empty_ack(request.message_id),
            _ => Message::new(
                MessageType::Acknowledgement,
                response_code,
                request.message_id,
                request.token.clone(),
            ),
        };
        if !response.code.is_empty() {
            if u.ratio(3u8, 4u8)? {
                let format = *u.choose(&CONTENT_FORMATS)?;
                response.options.set_content_format(ContentFormat(format));
            }
            if request.options.contains(opt::OBSERVE) && u.ratio(3u8, 4u8)? {
                response
                    .options
                    .set_observe(u.int_in_range(0u32..=0xff_ffff)?);
            }
            if u.ratio(1u8, 4u8)? {
                // Block2 (RFC 7959 §2.2): part of a larger body.
                let raw = u.int_in_range(0u32..=0xff_ffff)?;
                response.options.push(opt::BLOCK2, opt::encode_uint(raw));
            }
            let len = u.int_in_range(0usize..=1024)?;
            response.payload = u.bytes(len)?.to_vec();
        }
        self.deliver_message(peer, auth, &response);
        Ok(())
    }

    /// A notification for one of the server's Observe requests (RFC 7641 §4.2).
    fn notify(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let Some(observe) = self
            .sent
            .get(&peer)
            .and_then(|r| r.iter().rev().find(|m| m.options.contains(opt::OBSERVE)))
            .cloned()
        else {
            return Ok(());
        };
        let mtype = if u.arbitrary()? {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        };
        let mid = self.mid();
        let mut message = Message::new(mtype, Code::CONTENT, mid, observe.token.clone());
        message
            .options
            .set_observe(u.int_in_range(0u32..=0xff_ffff)?);
        let format = *u.choose(&CONTENT_FORMATS)?;
        message.options.set_content_format(ContentFormat(format));
        let len = u.int_in_range(0usize..=512)?;
        message.payload = u.bytes(len)?.to_vec();
        self.deliver_message(peer, auth, &message);
        Ok(())
    }

    /// A Send (`POST /dp`, TS Core 1.1 §6.4.6) in SenML.
    fn send_dp(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let peer = self.peer(u)?;
        let auth = Self::auth(u)?;
        let mid = self.mid();
        let mut message = Message::new(MessageType::Confirmable, Code::POST, mid, Self::token(u)?);
        message.options.set_uri_path(["dp"]);
        let format = *u.choose(&[110u16, 112, 11543])?;
        message.options.set_content_format(ContentFormat(format));
        message.payload = if u.ratio(1u8, 2u8)? {
            br#"[{"bn":"/3/0/","n":"9","v":87}]"#.to_vec()
        } else {
            let len = u.int_in_range(0usize..=512)?;
            u.bytes(len)?.to_vec()
        };
        self.deliver_message(peer, auth, &message);
        Ok(())
    }

    fn path(u: &mut Unstructured<'_>) -> Result<Path> {
        Ok(*u.choose(&PATHS)?)
    }

    fn operation(&mut self, u: &mut Unstructured<'_>) -> Result<Operation> {
        Ok(match u.int_in_range(0u8..=9)? {
            0 => Operation::Read(Self::path(u)?),
            1 => Operation::ReadComposite(vec![Self::path(u)?, Self::path(u)?]),
            2 => Operation::Observe(Self::path(u)?),
            3 => Operation::ObserveComposite(vec![Self::path(u)?, Self::path(u)?]),
            4 => match self.observations.last() {
                Some(_) => Operation::CancelObservation(*u.choose(&self.observations)?),
                None => Operation::Discover(Self::path(u)?),
            },
            5 => Operation::Execute {
                path: Path::Resource(3, 0, 4),
                args: u.arbitrary::<Option<String>>()?,
            },
            6 => Operation::Write {
                path: Path::Resource(3, 0, 14),
                node: lwm2m_objects::Node::Resource(Resource::single(
                    14,
                    Value::String(u.arbitrary()?),
                )),
                mode: WriteMode::Replace,
            },
            7 => Operation::Create {
                object: 3331,
                instance: ObjectInstance::new(
                    u.int_in_range(0u16..=3)?,
                    [Resource::single(5700, Value::Float(u.arbitrary()?))],
                ),
            },
            8 => Operation::Delete(Path::Instance(3331, u.int_in_range(0u16..=3)?)),
            _ => Operation::Discover(Self::path(u)?),
        })
    }

    /// Drains the engine, remembering what it asked and what it registered.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.server.poll_transmit() {
                progressed = true;
                let Ok(message) = Message::decode(&transmit.bytes) else {
                    panic!(
                        "the engine sent an undecodable datagram: {:02x?}",
                        transmit.bytes
                    );
                };
                if message.code.is_request() {
                    let requests = self.sent.entry(transmit.peer).or_default();
                    if requests.len() == REMEMBERED_REQUESTS {
                        requests.pop_front();
                    }
                    requests.push_back(message);
                }
            }
            while let Some(event) = self.server.poll_event() {
                progressed = true;
                match event {
                    ServerEvent::RegistrationRequest { ticket, .. } => {
                        self.tickets.push_back(ticket)
                    }
                    ServerEvent::Registered { registration, .. } => {
                        if self.locations.len() < 16 {
                            self.locations.push(format!("rd/{}", registration.id));
                        }
                    }
                    ServerEvent::OpCompleted { .. } => {}
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
        for info in self
            .server
            .registrations()
            .map(|r| r.endpoint.clone())
            .collect::<Vec<_>>()
        {
            for observation in self.server.observations(&info) {
                if !self.observations.contains(&observation.observation)
                    && self.observations.len() < 16
                {
                    self.observations.push(observation.observation);
                }
            }
        }
    }

    /// Every cap of `ServerConfig` / `CoapConfig` holds.
    fn check_bounds(&self) {
        let c = &self.config;
        let s = self.server.stats();
        let regs = c.max_registrations;
        assert!(s.registrations <= regs, "registrations {s:?}");
        assert!(
            s.pending_registrations <= c.max_pending_registrations,
            "pending registrations {s:?}"
        );
        assert!(s.in_flight_ops <= regs * c.max_in_flight, "in flight {s:?}");
        assert!(
            s.queued_ops <= regs * (c.max_queued + c.max_in_flight),
            "queued {s:?}"
        );
        assert!(
            s.observations <= regs * c.max_observations,
            "observations {s:?}"
        );
        let coap = &s.coap;
        assert!(
            coap.dedup_entries <= c.coap.max_dedup_entries,
            "dedup {s:?}"
        );
        assert!(
            coap.pending_requests <= c.coap.max_pending_requests,
            "pending requests {s:?}"
        );
        assert!(
            coap.block1_assemblies <= c.coap.max_block1_assemblies,
            "block1 {s:?}"
        );
        assert!(
            coap.block1_bytes <= c.coap.max_block1_bytes,
            "block1 bytes {s:?}"
        );
        assert!(
            coap.block2_cache_entries <= c.coap.max_block2_cache_entries,
            "block2 {s:?}"
        );
        assert!(
            coap.block2_cache_bytes <= c.coap.max_block2_cache_bytes,
            "block2 bytes {s:?}"
        );
        // Idle peers are capped; peers with something in flight are bounded by what is in flight.
        assert!(
            coap.peer_states <= c.coap.max_peer_states + coap.exchanges + coap.pending_requests,
            "peer states {s:?}"
        );
        assert!(coap.queued_outputs == 0, "undrained {s:?}");
    }
}

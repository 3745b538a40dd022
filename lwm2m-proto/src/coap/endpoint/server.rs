//! The server half of the endpoint: incoming requests handed to the application, piggybacked or
//! separate responses (RFC 7252 §5.2), 4.02/4.05 answers the engine gives itself, Block1
//! reassembly and Block2 serving with a response cache (RFC 7959 §2.3–2.5), and notifications
//! for observers (RFC 7641 §4).

use std::net::SocketAddr;
use std::time::Instant;

use super::{CoapEndpoint, Event, RespondError, Responder, SentOwner, TimerKey};
use crate::coap::message::{Code, Message, MessageType, Token};
use crate::coap::option::{self, BlockOption, Options, block_size};
use crate::coap::request::{Method, Request, Response};

/// An incoming request waiting for the application's answer.
#[derive(Debug)]
pub(crate) struct PendingRequest {
    peer: SocketAddr,
    mid: u16,
    token: Token,
    confirmable: bool,
    /// An Empty ACK was sent: the answer goes out as a separate response.
    acked: bool,
    /// Block1 option to echo in the final response (RFC 7959 §2.3).
    block1_echo: Option<BlockOption>,
    /// The Block2 option of the request, if it asked for a particular block.
    block2: Option<BlockOption>,
    /// Identifies the resource for the Block2 cache.
    key: Vec<u8>,
    /// The request was an Observe registration (Observe = 0).
    observe_register: bool,
}

/// The identity of a request for block-wise purposes: method and the options naming the
/// resource and representation (RFC 7959 §2.4: blocks of one body share them).
pub(crate) fn request_key(code: Code, options: &Options) -> Vec<u8> {
    let mut key = vec![code.0];
    for (number, value) in options.iter() {
        if matches!(
            number,
            option::URI_HOST
                | option::URI_PORT
                | option::URI_PATH
                | option::URI_QUERY
                | option::ACCEPT
        ) {
            key.extend_from_slice(&number.to_be_bytes());
            key.extend_from_slice(&(value.len() as u16).to_be_bytes());
            key.extend_from_slice(value);
        }
    }
    key
}

/// Incoming Block1 bodies being reassembled, keyed by (peer, request key).
#[derive(Debug, Default)]
pub(crate) struct Block1Assemblies {
    map: foldhash::HashMap<(SocketAddr, Vec<u8>), Assembly>,
    bytes: usize,
}

#[derive(Debug)]
struct Assembly {
    body: Vec<u8>,
    expires: Instant,
}

impl Block1Assemblies {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &(SocketAddr, Vec<u8>)) -> Option<Assembly> {
        let a = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(a.body.len());
        Some(a)
    }

    fn purge(&mut self, now: Instant) {
        let expired: Vec<_> = self
            .map
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }

    /// Drops the assembly closest to expiry (the least recently active).
    fn evict_oldest(&mut self) {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, a)| a.expires)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.remove(&k);
        }
    }
}

/// Block-wise responses kept so that later blocks are served without asking the application again
/// and from one consistent representation. Keyed by (peer, request key).
#[derive(Debug, Default)]
pub(crate) struct Block2Cache {
    map: foldhash::HashMap<(SocketAddr, Vec<u8>), CachedResponse>,
    bytes: usize,
}

#[derive(Debug)]
struct CachedResponse {
    response: Response,
    expires: Instant,
}

impl Block2Cache {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &(SocketAddr, Vec<u8>)) {
        if let Some(c) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(c.response.payload.len());
        }
    }

    fn purge(&mut self, now: Instant) {
        let expired: Vec<_> = self
            .map
            .iter()
            .filter(|(_, c)| c.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }

    fn insert(
        &mut self,
        key: (SocketAddr, Vec<u8>),
        response: Response,
        expires: Instant,
        max_entries: usize,
        max_bytes: usize,
    ) {
        self.remove(&key);
        let size = response.payload.len();
        if size > max_bytes || max_entries == 0 {
            return;
        }
        while self.map.len() >= max_entries || self.bytes + size > max_bytes {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, c)| c.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.remove(&k),
                None => break,
            }
        }
        self.bytes += size;
        self.map.insert(key, CachedResponse { response, expires });
    }
}

/// What to do with one Block1 block.
enum Block1Outcome {
    /// Answer directly (2.31 Continue, 4.08, 4.13, 4.00).
    Reply(Response),
    /// The body is complete: deliver the request with it, echoing this Block1 option.
    Complete(Vec<u8>, BlockOption),
}

/// Block `num` of `full` at size exponent `szx`, with Block2 (and Size2 on block 0); `None`
/// if the block starts past the end.
fn slice_block(full: &Response, num: u32, szx: u8) -> Option<Response> {
    let size = block_size(szx);
    let len = full.payload.len();
    let offset = (num as usize).checked_mul(size)?;
    if offset > len || (offset == len && len > 0) {
        return None;
    }
    let end = offset.saturating_add(size).min(len);
    let mut block = Response {
        code: full.code,
        options: full.options.clone(),
        payload: full.payload.get(offset..end)?.to_vec(),
    };
    block.options.set_block2(BlockOption {
        num,
        more: end < len,
        szx,
    });
    if num == 0 {
        block
            .options
            .set_uint(option::SIZE2, u32::try_from(len).unwrap_or(u32::MAX));
    } else {
        // RFC 7959 §2.6: only the first block of a notification carries Observe.
        block.options.remove(option::OBSERVE);
    }
    Some(block)
}

impl CoapEndpoint {
    /// Answers an incoming request. Piggybacked on the ACK if the request was Confirmable and no
    /// Empty ACK went out yet, otherwise a separate Confirmable (or, for a Non-confirmable request,
    /// Non-confirmable) response. A body larger than one block is sent with Block2 (RFC 7959),
    /// the rest served from a cache as the peer asks for it.
    pub fn respond(
        &mut self,
        now: Instant,
        responder: Responder,
        mut response: Response,
    ) -> Result<(), RespondError> {
        if !response.code.is_response() {
            return Err(RespondError::NotAResponseCode(response.code));
        }
        let pending = self
            .pending
            .remove(&responder.id)
            .ok_or(RespondError::Expired)?;
        self.timers.cancel(TimerKey::EmptyAck(responder.id));
        self.timers.cancel(TimerKey::PendingExpiry(responder.id));
        if let Some(echo) = pending.block1_echo {
            response.options.set_block1(echo);
        }
        let accepted_observe = pending.observe_register && response.observe().is_some();
        let block = self.outgoing_blocks(
            now,
            pending.peer,
            Some(pending.key.clone()),
            pending.block2,
            response,
        );
        if accepted_observe {
            self.remember_observation(pending.peer, pending.token, pending.key);
        }
        let (mtype, mid) = match (pending.confirmable, pending.acked) {
            (true, false) => (MessageType::Acknowledgement, pending.mid),
            (true, true) => (MessageType::Confirmable, self.next_mid(pending.peer)),
            (false, _) => (MessageType::NonConfirmable, self.next_mid(pending.peer)),
        };
        let mut msg = Message::new(mtype, block.code, mid, pending.token);
        msg.options = block.options;
        msg.payload = block.payload;
        let bytes = msg.encode().map_err(RespondError::Encode)?;
        self.transmits.push_back(super::Transmit {
            peer: pending.peer,
            bytes: bytes.clone(),
        });
        match mtype {
            MessageType::Acknowledgement => {
                self.dedup.set_reply((pending.peer, pending.mid), bytes)
            }
            MessageType::Confirmable => self.track_sent(
                now,
                pending.peer,
                mid,
                SentOwner::SeparateResponse,
                true,
                bytes,
            ),
            _ => {}
        }
        Ok(())
    }

    /// Whether the request behind `responder` is still waiting for its answer (not answered,
    /// not forgotten after [`super::CoapConfig::pending_request_timeout`]).
    pub fn is_pending(&self, responder: &Responder) -> bool {
        self.pending.contains_key(&responder.id)
    }

    /// Sends a notification to the observer (`peer`, `token`) (RFC 7641 §4.2), Confirmable or not.
    /// If the response has no Observe option the endpoint numbers it from a counter of its own
    /// (§4.4). A RST or an unacknowledged Confirmable notification yields
    /// [`Event::ObserverGone`]. A body larger than one block is sent block-wise (RFC 7959 §2.6).
    pub fn notify(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        token: Token,
        mut response: Response,
        confirmable: bool,
    ) -> Result<(), RespondError> {
        if !response.code.is_response() {
            return Err(RespondError::NotAResponseCode(response.code));
        }
        if response.observe().is_none() {
            let seq = self.next_observe_seq();
            response.options.set_observe(seq);
        }
        let key = self.observations.get(&(peer, token)).cloned();
        let block = self.outgoing_blocks(now, peer, key, None, response);
        let mtype = if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        };
        let mid = self.next_mid(peer);
        let mut msg = Message::new(mtype, block.code, mid, token);
        msg.options = block.options;
        msg.payload = block.payload;
        let bytes = msg.encode().map_err(RespondError::Encode)?;
        self.transmits.push_back(super::Transmit {
            peer,
            bytes: bytes.clone(),
        });
        self.track_sent(
            now,
            peer,
            mid,
            SentOwner::Notification(token),
            confirmable,
            bytes,
        );
        Ok(())
    }

    /// Forgets the server-side observation (`peer`, `token`) once the application stops notifying
    /// it (the endpoint otherwise keeps its request key, bounded, for block-wise notifications).
    pub fn forget_observer(&mut self, peer: SocketAddr, token: Token) {
        self.observations.remove(&(peer, token));
    }

    fn remember_observation(&mut self, peer: SocketAddr, token: Token, key: Vec<u8>) {
        let cap = self.config.max_pending_requests.max(1);
        if self.observations.len() >= cap && !self.observations.contains_key(&(peer, token)) {
            // Bounded: forget one; its large notifications are then sliced without a cache.
            if let Some(k) = self.observations.keys().next().copied() {
                self.observations.remove(&k);
            }
        }
        self.observations.insert((peer, token), key);
    }

    /// Cuts `response` to the block the peer asked for (or to block 0 if it is larger than one
    /// block) and caches the whole for the following blocks (RFC 7959 §2.4).
    fn outgoing_blocks(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        key: Option<Vec<u8>>,
        requested: Option<BlockOption>,
        mut response: Response,
    ) -> Response {
        let preferred = self.config.szx();
        let len = response.payload.len();
        let (num, szx) = match requested {
            Some(b) => {
                let szx = b.szx.min(preferred);
                ((b.offset() / block_size(szx)) as u32, szx)
            }
            None => (0, preferred),
        };
        if num == 0 && len <= block_size(szx) {
            return response;
        }
        if response.options.get(option::ETAG).is_none() {
            // Lets the client notice if the representation changes between blocks (§2.4).
            let mut etag = [0u8; 4];
            self.rng.fill(&mut etag);
            response.options.set(option::ETAG, etag);
        }
        let Some(block) = slice_block(&response, num, szx) else {
            // The requested block lies past the end of the representation.
            return Response::new(Code::BAD_OPTION);
        };
        if let (Some(key), true) = (
            key,
            block
                .options
                .block2()
                .and_then(Result::ok)
                .is_some_and(|b| b.more),
        ) {
            self.block2.purge(now);
            let expires = now + self.config.exchange_lifetime;
            let (max_entries, max_bytes) = (
                self.config.max_block2_cache_entries,
                self.config.max_block2_cache_bytes,
            );
            self.block2
                .insert((peer, key), response, expires, max_entries, max_bytes);
        }
        block
    }

    /// A request from a peer (first copy; duplicates were absorbed by deduplication).
    pub(super) fn on_request(&mut self, now: Instant, peer: SocketAddr, msg: Message) {
        let header = (msg.mtype, msg.message_id, msg.token);
        if let Some(number) = msg.options.first_unsupported_critical() {
            // RFC 7252 §5.4.1: an unrecognised critical option in a CON request is answered 4.02
            // Bad Option with a diagnostic payload (§5.5.2); in a NON message it is rejected
            // (§4.3), which we do silently.
            if msg.mtype == MessageType::Confirmable {
                let diagnostic = format!("unsupported critical option {number}");
                let response = Response::new(Code::BAD_OPTION).with_payload(diagnostic);
                self.reply_directly(peer, header, response);
            }
            return;
        }
        let Some(method) = Method::from_code(msg.code) else {
            // §5.8: unknown method → 4.05 Method Not Allowed.
            self.reply_directly(peer, header, Response::new(Code::METHOD_NOT_ALLOWED));
            return;
        };
        let key = request_key(msg.code, &msg.options);
        let Message {
            options: mut opts,
            payload,
            ..
        } = msg;
        let mut payload = payload;
        let mut block1_echo = None;
        if let Some(Ok(b1)) = opts.block1() {
            let size1 = opts.get_uint(option::SIZE1);
            match self.receive_block1(now, peer, &key, b1, size1, payload) {
                Block1Outcome::Reply(response) => {
                    self.reply_directly(peer, header, response);
                    return;
                }
                Block1Outcome::Complete(body, echo) => {
                    payload = body;
                    block1_echo = Some(echo);
                }
            }
        }
        let block2 = opts.block2().and_then(Result::ok);
        if let Some(b2) = block2
            && b2.num > 0
            && block1_echo.is_none()
            && let Some(block) = self.serve_cached_block(now, peer, &key, b2)
        {
            self.reply_directly(peer, header, block);
            return;
        }
        if self.pending.len() >= self.config.max_pending_requests {
            self.reply_directly(peer, header, Response::new(Code::SERVICE_UNAVAILABLE));
            return;
        }
        let observe_register = opts.observe() == Some(0);
        if opts.observe() == Some(1) {
            // RFC 7641 §3.6: deregistration; the application is told through the request.
            self.observations.remove(&(peer, header.2));
        }
        for transfer_option in [option::BLOCK1, option::BLOCK2, option::SIZE1, option::SIZE2] {
            opts.remove(transfer_option);
        }
        let (mtype, mid, token) = header;
        let confirmable = mtype == MessageType::Confirmable;
        let id = self.next_responder_id;
        self.next_responder_id += 1;
        self.pending.insert(
            id,
            PendingRequest {
                peer,
                mid,
                token,
                confirmable,
                acked: false,
                block1_echo,
                block2,
                key,
                observe_register,
            },
        );
        if confirmable && let Some(delay) = self.config.empty_ack_delay {
            self.timers.set(TimerKey::EmptyAck(id), now + delay);
        }
        let expiry = now + self.config.pending_request_timeout;
        self.timers.set(TimerKey::PendingExpiry(id), expiry);
        self.events.push_back(Event::Request {
            peer,
            request: Request {
                method,
                confirmable,
                options: opts,
                payload,
            },
            responder: Responder { id, peer, token },
        });
    }

    /// Answers a request without the application: piggybacked for CON, NON for NON.
    fn reply_directly(
        &mut self,
        peer: SocketAddr,
        (mtype, mid, token): (MessageType, u16, Token),
        response: Response,
    ) {
        let (reply_type, reply_mid) = if mtype == MessageType::Confirmable {
            (MessageType::Acknowledgement, mid)
        } else {
            (MessageType::NonConfirmable, self.next_mid(peer))
        };
        let mut msg = Message::new(reply_type, response.code, reply_mid, token);
        msg.options = response.options;
        msg.payload = response.payload;
        self.send_reply(peer, mid, &msg);
    }

    /// RFC 7959 §2.5: one Block1 block of an incoming request body.
    fn receive_block1(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        key: &[u8],
        b1: BlockOption,
        size1: Option<u32>,
        payload: Vec<u8>,
    ) -> Block1Outcome {
        let limit = self.config.max_body_size;
        let too_large = || {
            // RFC 7959 §2.9.3: 4.13 with Size1 giving the largest body we accept.
            let mut r = Response::new(Code::REQUEST_ENTITY_TOO_LARGE);
            r.options
                .set_uint(option::SIZE1, u32::try_from(limit).unwrap_or(u32::MAX));
            r
        };
        self.block1.purge(now);
        let map_key = (peer, key.to_vec());
        if b1.more && payload.len() != b1.size() {
            // §2.2: every block but the last is exactly the block size.
            self.block1.remove(&map_key);
            return Block1Outcome::Reply(Response::new(Code::BAD_REQUEST));
        }
        if size1.is_some_and(|s| s as usize > limit) {
            self.block1.remove(&map_key);
            return Block1Outcome::Reply(too_large());
        }
        let echo_szx = b1.szx.min(self.config.szx());
        if b1.num == 0 {
            self.block1.remove(&map_key);
            if !b1.more {
                return if payload.len() > limit {
                    Block1Outcome::Reply(too_large())
                } else {
                    Block1Outcome::Complete(payload, b1)
                };
            }
            while self.block1.len() >= self.config.max_block1_assemblies.max(1) {
                self.block1.evict_oldest();
            }
            self.block1.map.insert(
                map_key.clone(),
                Assembly {
                    body: Vec::new(),
                    expires: now,
                },
            );
        }
        let Some(received) = self.block1.map.get(&map_key).map(|a| a.body.len()) else {
            // §2.9.2: a block out of sequence (no body under way).
            return Block1Outcome::Reply(Response::new(Code::REQUEST_ENTITY_INCOMPLETE));
        };
        if b1.offset() != received {
            return Block1Outcome::Reply(Response::new(Code::REQUEST_ENTITY_INCOMPLETE));
        }
        if received.saturating_add(payload.len()) > limit {
            self.block1.remove(&map_key);
            return Block1Outcome::Reply(too_large());
        }
        // Keep the total reassembly memory bounded: drop other bodies first, then this one.
        while self.block1.bytes + payload.len() > self.config.max_block1_bytes {
            let other = self
                .block1
                .map
                .iter()
                .filter(|(k, _)| **k != map_key)
                .min_by_key(|(_, a)| a.expires)
                .map(|(k, _)| k.clone());
            match other {
                Some(k) => {
                    self.block1.remove(&k);
                }
                None => {
                    self.block1.remove(&map_key);
                    return Block1Outcome::Reply(too_large());
                }
            }
        }
        let lifetime = self.config.exchange_lifetime;
        let Some(assembly) = self.block1.map.get_mut(&map_key) else {
            return Block1Outcome::Reply(Response::new(Code::REQUEST_ENTITY_INCOMPLETE));
        };
        assembly.body.extend_from_slice(&payload);
        assembly.expires = now + lifetime;
        self.block1.bytes += payload.len();
        if b1.more {
            // §2.3: 2.31 Continue echoing the block; a smaller SZX asks for smaller blocks.
            let mut r = Response::new(Code::CONTINUE);
            r.options.set_block1(BlockOption {
                num: b1.num,
                more: true,
                szx: echo_szx,
            });
            return Block1Outcome::Reply(r);
        }
        let body = self
            .block1
            .remove(&map_key)
            .map(|a| a.body)
            .unwrap_or_default();
        Block1Outcome::Complete(body, b1)
    }

    /// A later block of a cached block-wise response, if we have it.
    fn serve_cached_block(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        key: &[u8],
        b2: BlockOption,
    ) -> Option<Response> {
        self.block2.purge(now);
        let map_key = (peer, key.to_vec());
        let szx = b2.szx.min(self.config.szx());
        let num = (b2.offset() / block_size(szx)) as u32;
        let cached = self.block2.map.get_mut(&map_key)?;
        let block = slice_block(&cached.response, num, szx)?;
        cached.expires = now + self.config.exchange_lifetime;
        if !block
            .options
            .block2()
            .and_then(Result::ok)
            .is_some_and(|b| b.more)
        {
            self.block2.remove(&map_key);
        }
        Some(block)
    }

    pub(super) fn on_empty_ack_timer(&mut self, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if !p.confirmable || p.acked {
            return;
        }
        // RFC 7252 §5.2.2: acknowledge now, answer later in a separate response.
        p.acked = true;
        let (peer, mid) = (p.peer, p.mid);
        self.send_reply(peer, mid, &Message::empty_ack(mid));
    }
}

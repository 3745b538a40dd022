//! The client half of the endpoint: outgoing requests with tokens, NSTART queuing, piggybacked
//! and separate responses (RFC 7252 §5.2), block-wise bodies both ways (RFC 7959 §2.4–2.5) and
//! observations (RFC 7641 §3).

use std::net::SocketAddr;
use std::time::Instant;

use super::{
    BlockFailure, CancelMode, CoapEndpoint, Event, FailureReason, RequestId, SentOwner, TimerKey,
};
use crate::coap::message::{Code, MAX_TOKEN_LEN, Message, MessageType, Token};
use crate::coap::observe::is_fresher;
use crate::coap::option::{self, BlockOption, block_size};
use crate::coap::request::{Method, Request, Response};

/// Where an outgoing exchange is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the (final) response.
    Requesting,
    /// An established observation receiving notifications.
    Observing,
    /// A proactive cancellation (GET with Observe = 1) is under way.
    Cancelling,
}

/// Progress of a request body sent in Block1 blocks (RFC 7959 §2.5).
#[derive(Clone, Copy, Debug)]
pub(super) struct Block1Tx {
    /// Bytes the server has confirmed with 2.31 Continue.
    offset: usize,
    szx: u8,
    /// The block in flight: number and length.
    sent_num: u32,
    sent_len: usize,
}

/// A Block2 response body being fetched (RFC 7959 §2.4).
#[derive(Debug)]
pub(super) struct Block2Rx {
    /// The first block's code and options; the body accumulates separately.
    head: Response,
    body: Vec<u8>,
    next_num: u32,
    szx: u8,
    etag: Option<Vec<u8>>,
    restarts: u8,
    /// Set when fetching the rest of a notification (RFC 7959 §2.6) rather than a response.
    notification_seq: Option<u32>,
}

/// An outgoing request and everything it needs until it completes.
#[derive(Debug)]
pub(super) struct ClientExchange {
    peer: SocketAddr,
    /// Assigned when the first message goes out.
    token: Option<Token>,
    request: Request,
    phase: Phase,
    /// Message ID of the request message in flight, if any.
    pub(super) current_mid: Option<u16>,
    /// Holds one of the peer's NSTART slots (RFC 7252 §4.7).
    holds_slot: bool,
    /// Waiting in the peer's queue for a slot.
    queued: bool,
    block1: Option<Block1Tx>,
    block2: Option<Block2Rx>,
    /// Last delivered notification's (sequence number, arrival time), RFC 7641 §3.4.
    last_notification: Option<(u32, Instant)>,
    /// A `TimerKey::Deadline` is armed (so the common CON exchange, which has none, does not
    /// look one up to cancel it).
    deadline: bool,
}

/// How often a Block2 transfer restarts because the ETag changed before giving up.
const MAX_BLOCK2_RESTARTS: u8 = 3;

impl CoapEndpoint {
    /// Sends `request` to `peer`: Confirmable unless `request.confirmable` is false, bodies larger
    /// than one block in Block1 blocks, Block2 responses fetched and reassembled. With NSTART
    /// requests to the same peer outstanding it waits its turn. The outcome arrives as
    /// [`Event::Response`] or [`Event::RequestFailed`] (and notifications for Observe = 0).
    pub fn request(&mut self, now: Instant, peer: SocketAddr, mut request: Request) -> RequestId {
        let id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        request.options.remove(option::BLOCK1);
        request.options.remove(option::SIZE1);
        let szx = self.config.szx();
        let block1 = (request.payload.len() > block_size(szx)).then_some(Block1Tx {
            offset: 0,
            szx,
            sent_num: 0,
            sent_len: 0,
        });
        self.exchanges.insert(
            id,
            ClientExchange {
                peer,
                token: None,
                request,
                phase: Phase::Requesting,
                current_mid: None,
                holds_slot: false,
                queued: false,
                block1,
                block2: None,
                last_notification: None,
                deadline: false,
            },
        );
        self.schedule(now, id, false);
        id
    }

    /// Abandons a request or observation: no more retransmissions and no further events. An
    /// observation abandoned this way is cancelled reactively (RFC 7641 §3.6). Returns whether
    /// `id` was known.
    pub fn cancel(&mut self, now: Instant, id: RequestId) -> bool {
        let known = self.exchanges.contains_key(&id);
        self.finish(now, id, None);
        known
    }

    /// Ends an observation (RFC 7641 §3.6), reactively or proactively (see [`CancelMode`]). Before
    /// the observation is established this is the same as [`cancel`](Self::cancel). Returns
    /// whether `id` was known.
    pub fn cancel_observe(&mut self, now: Instant, id: RequestId, mode: CancelMode) -> bool {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return false;
        };
        if mode == CancelMode::Reactive || ex.phase == Phase::Requesting {
            self.finish(now, id, None);
            return true;
        }
        ex.phase = Phase::Cancelling;
        ex.block2 = None;
        self.stop_current_message(id);
        self.schedule(now, id, true);
        true
    }

    /// The token of exchange `id`, once its first message has gone out (e.g. to persist an
    /// established observation).
    pub fn token_of(&self, id: RequestId) -> Option<Token> {
        self.exchanges.get(&id).and_then(|ex| ex.token)
    }

    /// Re-creates an observation established before a restart: `request` (the Observe
    /// registration as it was sent, Observe = 0) to `peer` under `token`, already in the
    /// observing phase. Nothing is sent; the peer's next notification with `token` is delivered
    /// as [`Event::Notification`] (whatever its sequence number: the last one was not kept), and
    /// [`cancel_observe`](Self::cancel_observe) works as for any observation. `None` when
    /// another exchange with `peer` already uses `token`.
    pub fn restore_observation(
        &mut self,
        peer: SocketAddr,
        token: Token,
        request: Request,
    ) -> Option<RequestId> {
        if self.tokens.contains_key(&(peer, token)) {
            return None;
        }
        let id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        self.exchanges.insert(
            id,
            ClientExchange {
                peer,
                token: Some(token),
                request,
                phase: Phase::Observing,
                current_mid: None,
                holds_slot: false,
                queued: false,
                block1: None,
                block2: None,
                last_notification: None,
                deadline: false,
            },
        );
        self.tokens.insert((peer, token), id);
        Some(id)
    }

    /// Puts `id` in its peer's queue for an NSTART slot and sends what can be sent.
    fn schedule(&mut self, now: Instant, id: RequestId, front: bool) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        if ex.queued {
            return;
        }
        ex.queued = true;
        let peer = ex.peer;
        // Outgoing requests are bounded by the application, so their peers always get state.
        if let Some(state) = self.peer_state(peer, true) {
            if front {
                state.queue.push_front(id);
            } else {
                state.queue.push_back(id);
            }
        }
        self.pump(now, peer);
    }

    /// Starts queued requests to `peer` while NSTART allows (RFC 7252 §4.7).
    fn pump(&mut self, now: Instant, peer: SocketAddr) {
        let nstart = self.config.nstart.max(1);
        loop {
            let Some(state) = self.peers.get_mut(&peer) else {
                return;
            };
            if state.outstanding >= nstart {
                return;
            }
            let Some(id) = state.queue.pop_front() else {
                return;
            };
            let Some(ex) = self.exchanges.get_mut(&id) else {
                continue;
            };
            if !ex.queued {
                continue;
            }
            ex.queued = false;
            ex.holds_slot = true;
            state.outstanding += 1;
            self.transmit_next(now, id);
        }
    }

    fn release_slot(&mut self, id: RequestId) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        if ex.holds_slot {
            ex.holds_slot = false;
            if let Some(state) = self.peers.get_mut(&ex.peer) {
                state.outstanding = state.outstanding.saturating_sub(1);
            }
        }
    }

    /// Stops the message in flight (no more retransmissions, no deadline) and frees its slot.
    fn stop_current_message(&mut self, id: RequestId) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let peer = ex.peer;
        if let Some(mid) = ex.current_mid.take() {
            self.forget_sent(peer, mid);
        }
        self.cancel_deadline(id);
        self.release_slot(id);
    }

    /// Arms (replaces) the deadline of exchange `id`.
    fn set_deadline(&mut self, id: RequestId, at: Instant) {
        if let Some(ex) = self.exchanges.get_mut(&id) {
            ex.deadline = true;
            self.timers.set(TimerKey::Deadline(id), at);
        }
    }

    /// Disarms the deadline of exchange `id`, if one is armed.
    fn cancel_deadline(&mut self, id: RequestId) {
        if let Some(ex) = self.exchanges.get_mut(&id)
            && std::mem::take(&mut ex.deadline)
        {
            self.timers.cancel(TimerKey::Deadline(id));
        }
    }

    /// Builds and sends the next message of exchange `id` (which holds a slot).
    fn transmit_next(&mut self, now: Instant, id: RequestId) {
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        let peer = ex.peer;
        let existing = ex.token;
        let token = match existing {
            Some(token) => token,
            None => {
                let token = self.alloc_token(peer);
                self.tokens.insert((peer, token), id);
                token
            }
        };
        let mid = self.next_mid(peer);
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        ex.token = Some(token);
        if let Some(old) = ex.current_mid.replace(mid) {
            self.forget_sent(peer, old);
        }
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let msg = build_request_message(ex, mid, token);
        let confirmable = msg.mtype == MessageType::Confirmable;
        let bytes = match msg.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                self.fail(now, id, FailureReason::Encode(e));
                return;
            }
        };
        self.transmits.push_back(super::Transmit {
            peer,
            bytes: bytes.clone(),
        });
        self.track_sent(now, peer, mid, SentOwner::Request(id), confirmable, bytes);
        if confirmable {
            self.cancel_deadline(id);
        } else {
            let at = now + self.config.non_response_timeout;
            self.set_deadline(id, at);
        }
    }

    /// A fresh token unused with `peer` (RFC 7252 §5.3.1). If every token of the configured length
    /// we try is taken (always the case for length 0 when the empty token is in use), a longer
    /// one is used.
    fn alloc_token(&mut self, peer: SocketAddr) -> Token {
        let mut bytes = [0u8; MAX_TOKEN_LEN];
        for len in self.config.token_length.min(MAX_TOKEN_LEN)..=MAX_TOKEN_LEN {
            for _ in 0..8 {
                let slot = bytes.get_mut(..len).unwrap_or(&mut []);
                self.rng.fill(slot);
                let token = Token::new(slot).unwrap_or(Token::EMPTY);
                if !self.tokens.contains_key(&(peer, token)) {
                    return token;
                }
            }
        }
        // 8 random 64-bit tries all colliding cannot happen with a sane number of exchanges.
        Token::new(&bytes).unwrap_or(Token::EMPTY)
    }

    /// Ends exchange `id`, emitting `event` if any, and lets queued requests go.
    pub(super) fn finish(&mut self, now: Instant, id: RequestId, event: Option<Event>) {
        self.stop_current_message(id);
        let Some(ex) = self.exchanges.remove(&id) else {
            return;
        };
        if let Some(token) = ex.token
            && self.tokens.get(&(ex.peer, token)) == Some(&id)
        {
            self.tokens.remove(&(ex.peer, token));
        }
        if ex.queued
            && let Some(state) = self.peers.get_mut(&ex.peer)
        {
            state.queue.retain(|q| *q != id);
        }
        if let Some(event) = event {
            self.events.push_back(event);
        }
        self.pump(now, ex.peer);
    }

    /// Fails exchange `id`. A proactive cancellation that fails still ends the observation.
    pub(super) fn fail(&mut self, now: Instant, id: RequestId, reason: FailureReason) {
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        let event = match ex.phase {
            Phase::Cancelling => Event::ObservationEnded { id, response: None },
            Phase::Requesting => Event::RequestFailed { id, reason },
            Phase::Observing => {
                // A failed fetch of a notification's remaining blocks: drop that notification,
                // keep the observation.
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    ex.block2 = None;
                }
                self.stop_current_message(id);
                let peer = self.exchanges.get(&id).map(|ex| ex.peer);
                if let Some(peer) = peer {
                    self.pump(now, peer);
                }
                return;
            }
        };
        self.finish(now, id, Some(event));
    }

    /// An ACK for a request message of ours.
    pub(super) fn on_request_ack(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        id: RequestId,
        msg: Message,
    ) {
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        if ex.current_mid != Some(msg.message_id) {
            return;
        }
        if msg.code.is_empty() {
            // §5.2.2: Empty ACK, a separate response will follow. The interaction is no longer
            // outstanding (§4.7), so the slot is freed.
            self.forget_sent(peer, msg.message_id);
            if let Some(ex) = self.exchanges.get_mut(&id) {
                ex.current_mid = None;
            }
            self.release_slot(id);
            let at = now + self.config.separate_response_timeout;
            self.set_deadline(id, at);
            self.pump(now, peer);
            return;
        }
        // §5.3.2: a piggybacked response must carry the request's token.
        if ex.token != Some(msg.token) {
            return;
        }
        if let Some(option) = msg.options.first_unsupported_critical() {
            // §5.4.1: reject (an ACK is rejected by ignoring it) and fail the request.
            self.fail(now, id, FailureReason::ResponseRejected { option });
            return;
        }
        self.on_response(now, id, msg, true);
    }

    /// A CON or NON response (separate response or notification).
    pub(super) fn on_response_message(&mut self, now: Instant, peer: SocketAddr, msg: Message) {
        let confirmable = msg.mtype == MessageType::Confirmable;
        let Some(&id) = self.tokens.get(&(peer, msg.token)) else {
            // §5.3.2: a response with an unknown token is rejected. RST also for NON, so that the
            // server of a forgotten observation stops notifying (RFC 7641 §3.6).
            self.send_reply(peer, msg.message_id, &Message::reset(msg.message_id));
            return;
        };
        if let Some(option) = msg.options.first_unsupported_critical() {
            if confirmable {
                self.send_reply(peer, msg.message_id, &Message::reset(msg.message_id));
            }
            self.fail(now, id, FailureReason::ResponseRejected { option });
            return;
        }
        if confirmable {
            self.send_reply(peer, msg.message_id, &Message::empty_ack(msg.message_id));
        }
        self.on_response(now, id, msg, false);
    }

    /// A response for exchange `id`; `via_ack` if piggybacked on the ACK of our message.
    fn on_response(&mut self, now: Instant, id: RequestId, msg: Message, via_ack: bool) {
        let Some(ex) = self.exchanges.get(&id) else {
            return;
        };
        let response = Response {
            code: msg.code,
            options: msg.options,
            payload: msg.payload,
        };
        let has_observe = response.options.observe().is_some();
        let peer = ex.peer;
        match ex.phase {
            Phase::Requesting => {
                // A notification overtaking the rest of a block-wise first response: drop it,
                // later notifications will follow.
                if !via_ack && has_observe && ex.block2.is_some() {
                    return;
                }
                self.stop_current_message(id);
                self.on_requesting_response(now, id, response);
            }
            Phase::Observing | Phase::Cancelling if !via_ack && has_observe => {
                if ex.phase == Phase::Observing {
                    self.on_notification(now, id, response);
                }
            }
            Phase::Cancelling => {
                self.finish(
                    now,
                    id,
                    Some(Event::ObservationEnded {
                        id,
                        response: Some(strip_block_options(response)),
                    }),
                );
            }
            Phase::Observing => {
                if ex.block2.is_some() {
                    // The next block of a notification being fetched (piggybacked, or separate
                    // after an Empty ACK cleared `current_mid`).
                    self.stop_current_message(id);
                    self.on_block2_response(now, id, response);
                } else {
                    // RFC 7641 §3.2: a response without Observe ends the observation.
                    self.finish(
                        now,
                        id,
                        Some(Event::ObservationEnded {
                            id,
                            response: Some(strip_block_options(response)),
                        }),
                    );
                }
            }
        }
        // A slot may have been freed without a new message taking it.
        self.pump(now, peer);
    }

    fn on_requesting_response(&mut self, now: Instant, id: RequestId, response: Response) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let body_len = ex.request.payload.len();
        if let Some(b1) = ex.block1.as_mut() {
            if response.code == Code::CONTINUE {
                // RFC 7959 §2.5: 2.31 confirms the block and asks for the next; the server may
                // ask for smaller blocks (late negotiation, §2.5 Figure 5).
                match response.options.block1() {
                    // The echo names the block just sent; when the server shrinks SZX its NUM may
                    // be counted in the new size, so only an unchanged SZX is checked strictly.
                    Some(Ok(echo))
                        if echo.more && (echo.num == b1.sent_num || echo.szx < b1.szx) =>
                    {
                        b1.offset += b1.sent_len;
                        b1.szx = b1.szx.min(echo.szx);
                        if b1.offset < body_len {
                            self.schedule(now, id, true);
                            return;
                        }
                        self.fail(
                            now,
                            id,
                            FailureReason::BlockTransfer(BlockFailure::UnexpectedContinue),
                        );
                    }
                    Some(Err(e)) => self.fail(
                        now,
                        id,
                        FailureReason::BlockTransfer(BlockFailure::InvalidOption(e)),
                    ),
                    _ => self.fail(
                        now,
                        id,
                        FailureReason::BlockTransfer(BlockFailure::UnexpectedContinue),
                    ),
                }
                return;
            }
            // Any other code is the final response (to the last block, or an early error such
            // as 4.13): the upload is over.
            ex.block1 = None;
        }
        let fetching = ex.block2.is_some();
        match response.options.block2() {
            Some(Err(e)) => self.fail(
                now,
                id,
                FailureReason::BlockTransfer(BlockFailure::InvalidOption(e)),
            ),
            Some(Ok(b2)) if b2.more || fetching => self.on_block2_response(now, id, response),
            None if fetching => self.on_block2_response(now, id, response),
            _ => self.complete(now, id, strip_block_options(response)),
        }
    }

    /// One Block2 block, of a response or of a notification (RFC 7959 §2.4, §2.6).
    fn on_block2_response(&mut self, now: Instant, id: RequestId, mut response: Response) {
        let limit = self.config.max_body_size;
        let preferred = self.config.szx();
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let b2 = match response.options.block2() {
            Some(Ok(b2)) => b2,
            Some(Err(e)) => {
                self.fail(
                    now,
                    id,
                    FailureReason::BlockTransfer(BlockFailure::InvalidOption(e)),
                );
                return;
            }
            None if ex.block2.as_ref().is_some_and(|rx| rx.body.is_empty()) => {
                // A restart answered with the whole (now small) representation at once.
                BlockOption {
                    num: 0,
                    more: false,
                    szx: 6,
                }
            }
            None => {
                self.fail(
                    now,
                    id,
                    FailureReason::BlockTransfer(BlockFailure::MissingBlockOption),
                );
                return;
            }
        };
        let payload = std::mem::take(&mut response.payload);
        if b2.more && payload.len() != b2.size() {
            let failure = BlockFailure::ShortBlock {
                len: payload.len(),
                size: b2.size(),
            };
            self.fail(now, id, FailureReason::BlockTransfer(failure));
            return;
        }
        if response
            .options
            .get_uint(option::SIZE2)
            .is_some_and(|s| s as usize > limit)
        {
            self.fail(now, id, FailureReason::ResponseTooLarge { limit });
            return;
        }
        let etag = response.options.get(option::ETAG).map(<[u8]>::to_vec);
        let rx = ex.block2.get_or_insert_with(|| Block2Rx {
            head: Response::new(response.code),
            body: Vec::new(),
            next_num: 0,
            szx: preferred,
            etag: etag.clone(),
            restarts: 0,
            notification_seq: None,
        });
        if b2.num != 0 && etag != rx.etag {
            // RFC 7959 §2.4: the representation changed; start over from block 0.
            if rx.restarts >= MAX_BLOCK2_RESTARTS {
                self.fail(
                    now,
                    id,
                    FailureReason::BlockTransfer(BlockFailure::RepresentationChanged),
                );
                return;
            }
            rx.restarts += 1;
            rx.body.clear();
            rx.next_num = 0;
            self.schedule(now, id, true);
            return;
        }
        if b2.offset() != rx.body.len() {
            let failure = BlockFailure::UnexpectedBlock {
                expected: rx.body.len(),
                got: b2.offset(),
            };
            self.fail(now, id, FailureReason::BlockTransfer(failure));
            return;
        }
        if rx.body.len().saturating_add(payload.len()) > limit {
            self.fail(now, id, FailureReason::ResponseTooLarge { limit });
            return;
        }
        if b2.num == 0 {
            rx.head.code = response.code;
            rx.head.options = response.options;
            rx.etag = etag;
        }
        rx.body.extend_from_slice(&payload);
        if b2.more {
            // Ask for the next block, never larger than the server's nor than ours; the body so far
            // is a multiple of the server's block size, hence of any smaller one.
            rx.szx = b2.szx.min(preferred);
            rx.next_num = (rx.body.len() / block_size(rx.szx)) as u32;
            self.schedule(now, id, true);
            return;
        }
        let Some(rx) = ex.block2.take() else {
            return;
        };
        let mut whole = rx.head;
        whole.payload = rx.body;
        let whole = strip_block_options(whole);
        match rx.notification_seq {
            Some(seq) => self.deliver_notification(id, whole, seq),
            None => self.complete(now, id, whole),
        }
    }

    /// The final response of a request: deliver it, and either finish or, for an accepted
    /// Observe registration (RFC 7641 §3.1), keep the token for notifications.
    fn complete(&mut self, now: Instant, id: RequestId, response: Response) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let registered = ex.request.options.observe() == Some(0);
        if let (true, true, Some(seq)) = (registered, response.is_success(), response.observe()) {
            ex.phase = Phase::Observing;
            ex.last_notification = Some((seq, now));
            ex.block1 = None;
            ex.block2 = None;
            self.events.push_back(Event::Response { id, response });
            return;
        }
        self.finish(now, id, Some(Event::Response { id, response }));
    }

    fn on_notification(&mut self, now: Instant, id: RequestId, mut response: Response) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let Some(seq) = response.observe() else {
            return;
        };
        if let Some((last, at)) = ex.last_notification
            && !is_fresher(last, at, seq, now)
        {
            return; // RFC 7641 §3.4: older than what was delivered
        }
        ex.last_notification = Some((seq, now));
        // A newer notification supersedes the one whose blocks are being fetched.
        ex.block2 = None;
        self.stop_current_message(id);
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        match response.options.block2() {
            Some(Ok(b2)) if b2.more && b2.num == 0 && response.payload.len() == b2.size() => {
                // RFC 7959 §2.6: fetch the rest with GETs without Observe.
                let preferred = self.config.szx();
                let szx = b2.szx.min(preferred);
                let payload = std::mem::take(&mut response.payload);
                let etag = response.options.get(option::ETAG).map(<[u8]>::to_vec);
                ex.block2 = Some(Block2Rx {
                    next_num: (payload.len() / block_size(szx)) as u32,
                    head: response,
                    body: payload,
                    szx,
                    etag,
                    restarts: 0,
                    notification_seq: Some(seq),
                });
                self.schedule(now, id, true);
            }
            _ => self.deliver_notification(id, strip_block_options(response), seq),
        }
    }

    fn deliver_notification(&mut self, id: RequestId, response: Response, seq: u32) {
        self.events
            .push_back(Event::Notification { id, response, seq });
    }
}

/// The next message of an exchange: the request, its next Block1 block, a Block2 follow-up, or a
/// proactive Observe cancellation.
fn build_request_message(ex: &mut ClientExchange, mid: u16, token: Token) -> Message {
    let request = &ex.request;
    let mtype = if request.confirmable {
        MessageType::Confirmable
    } else {
        MessageType::NonConfirmable
    };
    let mut msg = Message::new(mtype, request.method.code(), mid, token);
    msg.options = request.options.clone();
    // FETCH carries its query in the body, so follow-ups repeat it (RFC 8132 §2.3.2).
    let repeat_body = request.method == Method::Fetch && ex.block1.is_none();
    if ex.phase == Phase::Cancelling {
        // RFC 7641 §3.6: same token and options, Observe = 1.
        msg.options.set_observe(1);
        msg.options.remove(option::BLOCK2);
        msg.code = Method::Get.code();
        return msg;
    }
    if let Some(rx) = &ex.block2 {
        // RFC 7959 §2.4/§2.6: follow-up block requests carry Block2 and no Observe.
        msg.options.remove(option::OBSERVE);
        msg.options.set_block2(BlockOption {
            num: rx.next_num,
            more: false,
            szx: rx.szx,
        });
        if rx.notification_seq.is_some() {
            msg.code = Method::Get.code();
        } else if repeat_body {
            msg.payload = request.payload.clone();
        }
        return msg;
    }
    if let Some(b1) = ex.block1.as_mut() {
        let size = block_size(b1.szx);
        let total = request.payload.len();
        let end = b1.offset.saturating_add(size).min(total);
        let num = (b1.offset / size) as u32;
        msg.payload = request.payload.get(b1.offset..end).unwrap_or(&[]).to_vec();
        msg.options.set_block1(BlockOption {
            num,
            more: end < total,
            szx: b1.szx,
        });
        if b1.offset == 0 {
            // RFC 7959 §4: Size1 announces the total so the server can refuse early (4.13).
            msg.options
                .set_uint(option::SIZE1, u32::try_from(total).unwrap_or(u32::MAX));
        }
        b1.sent_num = num;
        b1.sent_len = end - b1.offset;
        return msg;
    }
    msg.payload = request.payload.clone();
    msg
}

/// Removes the transfer options the application never needs to see.
fn strip_block_options(mut response: Response) -> Response {
    response.options.remove(option::BLOCK1);
    response.options.remove(option::BLOCK2);
    response.options.remove(option::SIZE2);
    response
}

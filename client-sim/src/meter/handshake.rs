//! [`BackoffDtlsClient`]: the meter's DTLS client with RFC 6347 §4.2.4.1 retransmission timers —
//! "the timer value [is] doubled [on each retransmission] … up to no less than the RFC 6298
//! maximum of 60 seconds" — instead of rtc-dtls' fixed interval.
//!
//! rtc-dtls (under `ferrite_dtls::DtlsClient`) retransmits a handshake flight every
//! `retransmit_interval` (1 s), at most 7 times, so a flight unanswered for 8 s fails the
//! handshake. When a fleet starts at once against a busy server, every waiting meter then
//! retransmits every second, in step: the retransmissions add to the load that delayed the
//! answers, and meters whose answer takes longer than 8 s give up although the server would have
//! answered (seen in the 1,000-meter test: up to 10 % of first handshakes failed at load 7).
//! Real DTLS stacks (tinydtls, mbedTLS: 1 s doubling to 60 s) back off, and so does this wrapper:
//! it holds the client's retransmission timer back, letting the n-th retransmission of a flight
//! go out 2^(n-1) s after the previous one (capped at [`MAX_INTERVAL`]); a new flight (the server
//! answered) starts again at the initial interval. The whole handshake still ends after
//! [`HANDSHAKE_TIMEOUT`] (like mbedTLS' handshake failing once the timer would pass its 60 s
//! maximum), and rtc-dtls' limit of 7 retransmissions per flight stays.
//!
//! It also guards against an rtc-dtls client fault, fixed in Ferrite's vendored copy (the timer
//! is now kept) but guarded here still, since the wrapper must not depend on it: any handshake
//! record that did not complete the awaited flight — a second HelloVerifyRequest (the server's
//! answer to a retransmitted ClientHello), or the server's retransmitted flight 4 while we wait
//! for its Finished — cleared the retransmission timer of the flight just sent
//! (`Handshaker::wait` dropped the timer before parsing and did not restore it when the parse
//! found nothing new). Should that flight have been lost (a full server socket buffer under
//! load), the client would wait silently for the whole handshake timeout, and the server would
//! give its half of the handshake up. When the
//! client's own timer is gone while the handshake runs, this wrapper retransmits the last flight
//! itself (the same datagrams: the server's replay window drops them if the first copy did
//! arrive, RFC 6347 §4.1.2.6) on the same backed-off schedule — what RFC 6347 §4.2.4 asks of an
//! implementation that sees the peer retransmit.
//!
//! Same call order as [`DtlsClient`]: `connect`, then feed datagrams and timeouts, drain
//! [`poll_transmit`](BackoffDtlsClient::poll_transmit) and
//! [`poll_event`](BackoffDtlsClient::poll_event) after each call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrite_dtls::{
    ClientEvent, ConfigError, ConnectError, DtlsClient, DtlsClientConfig, SendError,
};

/// The first retransmission waits this long (RFC 6347 §4.2.4.1: 1 s).
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(1);
/// Retransmission intervals stop doubling here (RFC 6347 §4.2.4.1, RFC 6298: 60 s).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// A handshake not complete this long after it started fails.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A [`DtlsClient`] whose handshake retransmissions back off exponentially.
#[derive(Debug)]
pub struct BackoffDtlsClient {
    client: DtlsClient,
    /// The interval before the next retransmission.
    interval: Duration,
    /// The next retransmission is held back until then (`None`: the client's own timer).
    hold_until: Option<Instant>,
    /// The end of the handshake timeout, once connecting.
    deadline: Option<Instant>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The datagrams of the flight sent last, for retransmitting it ourselves.
    last_flight: Vec<(SocketAddr, Vec<u8>)>,
    /// Retransmissions, and those of them we made because the client's timer was gone, since
    /// [`take_counts`](Self::take_counts).
    retransmissions: u32,
    recovered: u32,
}

impl BackoffDtlsClient {
    /// A client authenticating with `identity` and `key`, with the meter's timers (1 s initial
    /// retransmission interval, [`HANDSHAKE_TIMEOUT`]).
    pub fn new(identity: Vec<u8>, key: Vec<u8>) -> Result<Self, ConfigError> {
        let mut config = DtlsClientConfig::new(identity, key);
        config.retransmit_interval = INITIAL_INTERVAL;
        config.handshake_timeout = HANDSHAKE_TIMEOUT;
        Ok(Self {
            client: DtlsClient::new(config)?,
            interval: INITIAL_INTERVAL,
            hold_until: None,
            deadline: None,
            transmits: VecDeque::new(),
            last_flight: Vec::new(),
            retransmissions: 0,
            recovered: 0,
        })
    }

    /// Starts the handshake with `server`.
    pub fn connect(&mut self, now: Instant, server: SocketAddr) -> Result<(), ConnectError> {
        self.client.connect(now, server)?;
        self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        self.pull();
        Ok(())
    }

    /// A datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.client.handle_datagram(now, from, bytes);
        if !self.handshaking() {
            self.pull();
            return;
        }
        if self.pull() > 0 {
            // The server answered and we sent our next flight: its timer starts afresh.
            self.interval = INITIAL_INTERVAL;
            self.hold_until = None;
        }
        if self.own_timer().is_none() && self.hold_until.is_none() {
            // The client dropped its retransmission timer (see the module documentation).
            self.hold_until = Some(now + self.interval);
        }
    }

    /// Timers: call at or after [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.handshaking() {
            self.client.handle_timeout(now);
            self.pull();
            return;
        }
        let expired = self.deadline.is_some_and(|d| now >= d);
        if !expired && self.hold_until.is_some_and(|h| now < h) {
            return; // the backed-off retransmission is not due yet
        }
        let fired = if !expired && self.own_timer().is_none() {
            // The client dropped its timer: retransmit its last flight for it.
            self.transmits.extend(self.last_flight.iter().cloned());
            self.retransmissions += 1;
            self.recovered += 1;
            !self.last_flight.is_empty()
        } else {
            // Also called early (the meter's other timers): then nothing goes out.
            self.client.handle_timeout(now);
            let sent = self.pull() > 0 && self.handshaking();
            if sent {
                self.retransmissions += 1;
            }
            sent
        };
        if fired {
            // The next retransmission waits twice as long.
            self.interval = self.interval.saturating_mul(2).min(MAX_INTERVAL);
            self.hold_until = Some(now + self.interval);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due (only while handshaking).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.handshaking() {
            return self.client.poll_timeout();
        }
        let retransmit = match self.own_timer() {
            Some(own) => Some(self.hold_until.map_or(own, |h| h.max(own))),
            None => self.hold_until,
        };
        [retransmit, self.deadline].into_iter().flatten().min()
    }

    /// The next datagram to send (always to the server).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.client.poll_event()
    }

    /// Whether the handshake completed and the session is open.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Encrypts `plaintext` as one record to the server.
    pub fn send(&mut self, now: Instant, plaintext: &[u8]) -> Result<(), SendError> {
        let result = self.client.send(now, plaintext);
        self.pull();
        result
    }

    /// Sends close_notify (if connected) and ends the session.
    pub fn close(&mut self, now: Instant) {
        self.client.close(now);
        self.pull();
        self.deadline = None;
    }

    /// Handshake retransmissions since the last call, and how many of them were made for the
    /// client because its timer was gone.
    pub fn take_counts(&mut self) -> (u32, u32) {
        (
            std::mem::take(&mut self.retransmissions),
            std::mem::take(&mut self.recovered),
        )
    }

    /// Connecting, neither connected nor closed.
    fn handshaking(&self) -> bool {
        !self.client.is_connected() && self.client.poll_timeout().is_some()
    }

    /// The client's own retransmission timer, if it has one (its `poll_timeout` is otherwise
    /// the handshake deadline).
    fn own_timer(&self) -> Option<Instant> {
        self.client
            .poll_timeout()
            .filter(|at| Some(*at) != self.client_deadline())
    }

    /// The deadline the current inner client enforces itself.
    fn client_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Moves the client's datagrams into our queue (while handshaking they are the flight sent
    /// last); how many there were.
    fn pull(&mut self) -> usize {
        let mut flight = Vec::new();
        while let Some(t) = self.client.poll_transmit() {
            flight.push(t);
        }
        let n = flight.len();
        if n > 0 && self.handshaking() {
            self.transmits.extend(flight.iter().cloned());
            self.last_flight = flight;
        } else {
            self.transmits.extend(flight);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use ferrite_dtls::{DtlsServer, DtlsServerConfig, InMemoryPskStore};

    const SERVER: &str = "127.0.0.1:5684";
    const METER: &str = "127.0.0.1:40000";

    /// Seconds after the start at which the client sent each datagram, with a server that never
    /// answers.
    #[test]
    fn retransmissions_double_up_to_the_handshake_timeout() {
        let start = Instant::now();
        let mut client = BackoffDtlsClient::new(b"m".to_vec(), vec![1; 16]).unwrap();
        client.connect(start, SERVER.parse().unwrap()).unwrap();
        while client.poll_transmit().is_some() {}
        let mut times = Vec::new();
        let mut closed = false;
        while let Some(at) = client.poll_timeout() {
            client.handle_timeout(at);
            if client.poll_transmit().is_some() {
                times.push((at - start).as_secs());
                while client.poll_transmit().is_some() {}
            }
            while let Some(ev) = client.poll_event() {
                closed |= matches!(ev, ClientEvent::Closed { .. });
            }
            assert!(times.len() < 20);
        }
        // The first hello at 0, then retransmissions 1, 2, 4, 8, 16 s apart; failed at 60 s.
        assert_eq!(times, [1, 3, 7, 15, 31]);
        assert!(closed, "the handshake failed");
        assert_eq!(client.poll_timeout(), None);
    }

    /// A slow server: every flight is answered only after 5 s (rtc-dtls' fixed timer would have
    /// retransmitted five times meanwhile), and the handshake completes with few datagrams.
    #[test]
    fn a_slow_server_is_waited_for() {
        let key = vec![9u8; 16];
        let mut store = InMemoryPskStore::new();
        store.insert("m", key.clone());
        let mut server = DtlsServer::new(DtlsServerConfig::default(), Arc::new(store)).unwrap();
        let (server_addr, meter) = (SERVER.parse().unwrap(), METER.parse().unwrap());
        let mut now = Instant::now();
        let mut client = BackoffDtlsClient::new(b"m".to_vec(), key).unwrap();
        client.connect(now, server_addr).unwrap();
        let mut to_server = 0;
        let mut in_flight: Vec<(Instant, Vec<u8>)> = Vec::new();
        for _ in 0..200 {
            while let Some((_, bytes)) = client.poll_transmit() {
                to_server += 1;
                server.handle_datagram(now, meter, &bytes);
            }
            while let Some((_, bytes)) = server.poll_transmit() {
                in_flight.push((now + Duration::from_secs(5), bytes));
            }
            while server.poll_event().is_some() {}
            if client.is_connected() {
                break;
            }
            let next = [
                client.poll_timeout(),
                in_flight.iter().map(|(at, _)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
            now = next;
            let (due, later): (Vec<_>, Vec<_>) =
                in_flight.into_iter().partition(|(at, _)| *at <= now);
            in_flight = later;
            for (_, bytes) in due {
                client.handle_datagram(now, server_addr, &bytes);
            }
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
        assert!(client.is_connected());
        // Three flights (hello, hello with cookie, key exchange + finished), each sent 3 times
        // (at 0, 1–2 and 3–4 s) before its 5 s answer; rtc-dtls' fixed 1 s timer would have
        // sent each 5 times.
        assert!(to_server <= 10, "{to_server} datagrams to the server");
    }

    /// The rtc-dtls fault (fixed in the vendored copy, kept here as a regression test): the
    /// ClientHello is retransmitted before the server's (slow) answer, both hellos get a
    /// HelloVerifyRequest, the hello with the cookie is lost, and the second HelloVerifyRequest
    /// used to clear the client's retransmission timer. The lost hello goes out again within a
    /// second and the handshake completes within seconds, not at the handshake timeout.
    #[test]
    fn a_lost_hello_goes_out_again_after_a_second_hello_verify_request() {
        let key = vec![9u8; 16];
        let mut store = InMemoryPskStore::new();
        store.insert("m", key.clone());
        let mut server = DtlsServer::new(DtlsServerConfig::default(), Arc::new(store)).unwrap();
        let (server_addr, meter) = (SERVER.parse().unwrap(), METER.parse().unwrap());
        let start = Instant::now();
        let mut client = BackoffDtlsClient::new(b"m".to_vec(), key).unwrap();
        client.connect(start, server_addr).unwrap();
        let hello = client.poll_transmit().unwrap().1;
        // Retransmitted after 1 s.
        let at = client.poll_timeout().unwrap();
        assert_eq!(at - start, Duration::from_secs(1));
        client.handle_timeout(at);
        let again = client.poll_transmit().unwrap().1;
        server.handle_datagram(at, meter, &hello);
        server.handle_datagram(at, meter, &again);
        let hvrs: Vec<Vec<u8>> =
            std::iter::from_fn(|| server.poll_transmit().map(|t| t.1)).collect();
        assert_eq!(hvrs.len(), 2);
        let mut now = at + Duration::from_millis(100);
        client.handle_datagram(now, server_addr, &hvrs[0]);
        let lost = client.poll_transmit().unwrap();
        now += Duration::from_millis(10);
        client.handle_datagram(now, server_addr, &hvrs[1]);
        assert!(client.poll_transmit().is_none());
        // The lost hello goes out again within a second: rtc-dtls (vendored) now keeps its
        // timer (due 1 s after the hello was sent, 990 ms from here); the wrapper's make-up
        // would have fired 1 s after the second HelloVerifyRequest.
        let at = client.poll_timeout().unwrap();
        assert!(
            at > now && at - now <= Duration::from_secs(1),
            "{:?}",
            at - now
        );
        client.handle_timeout(at);
        now = at;
        let again = client.poll_transmit().unwrap();
        // The same ClientHello (with the cookie) in a record with a later sequence number
        // (RFC 6347 §4.2.4: a retransmitted flight gets new record numbers).
        assert_eq!(again.0, lost.0);
        let (new, old) = (&again.1, &lost.1);
        assert_eq!(new.get(..5), old.get(..5), "content type, version, epoch");
        assert_eq!(new.get(11..), old.get(11..), "length and handshake message");
        assert!(
            new.get(5..11) > old.get(5..11),
            "a later record sequence number"
        );
        assert!(client.poll_transmit().is_none());
        server.handle_datagram(now, meter, &again.1);
        // From here on a lossless exchange.
        for _ in 0..100 {
            if client.is_connected() {
                break;
            }
            now = [client.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap()
                .max(now);
            client.handle_timeout(now);
            server.handle_timeout(now);
            for _ in 0..10 {
                while let Some((_, bytes)) = client.poll_transmit() {
                    server.handle_datagram(now, meter, &bytes);
                }
                while let Some((_, bytes)) = server.poll_transmit() {
                    client.handle_datagram(now, server_addr, &bytes);
                }
                while server.poll_event().is_some() {}
            }
        }
        assert!(client.is_connected());
        assert!(now - start < Duration::from_secs(5), "{:?}", now - start);
        // Two retransmissions, both by rtc-dtls' own timer: nothing left for the wrapper to make
        // up (it made up the second one before the vendored fix).
        assert_eq!(client.take_counts(), (2, 0));
    }
}

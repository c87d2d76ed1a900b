//! One client's peer connection: a str0m `Rtc` fed from its [`PeerSocket`].
//!
//! ## Driving str0m
//!
//! str0m is sans-IO and has one rule (its "single-mutation invariant"): every
//! mutation of an `Rtc` — `handle_input`, a media or channel write, a keyframe
//! request, a candidate, a close — must be followed by draining `poll_output`
//! until it returns `Output::Timeout`, before the next mutation.
//!
//! [`Peer`] keeps that rule inside itself. Each method that mutates ends with
//! one drain, which
//!
//! * sends every `Output::Transmit` on the shared socket straight away,
//! * queues every `Output::Event` as a [`PeerEvent`] for [`Peer::next_event`],
//! * handles a timeout that is already due on the spot (see [`Peer::drain`]),
//! * and stores the first timeout in the future.
//!
//! So a peer is always drained between calls, and the session's loop is simply:
//!
//! ```text
//! loop {
//!     let wake = peer.poll();              // the stored timeout: no work
//!     while let Some(e) = peer.next_event() { … }
//!     select! {
//!         d = peer.recv()    => peer.receive(d),          // mutate + drain
//!         _ = sleep_until(wake) => peer.timeout(now),     // mutate + drain
//!         media              => peer.write_audio(…),      // mutate + drain
//!     }
//! }
//! ```
//!
//! The peer runs on its session's task; its datagrams arrive through a channel
//! fed by the shared socket's receive thread (see `udp.rs`), and its sends go
//! out on the caller's thread without waiting.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, CandidateKind, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::udp::{Datagram, PeerSocket, UdpMux};

/// Why an offer could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// The SDP did not parse or could not be negotiated.
    #[error("invalid SDP offer: {0}")]
    Sdp(String),
}

/// Which kinds of m-line an offer carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackKinds {
    /// Has an audio m-line.
    pub audio: bool,
    /// Has a video m-line.
    pub video: bool,
    /// Has a data channel (application m-line).
    pub data: bool,
}

impl TrackKinds {
    /// Read the m-lines of an SDP.
    pub fn of_sdp(sdp: &str) -> Self {
        let mut kinds = Self::default();
        for line in sdp.lines() {
            match line.split_whitespace().next() {
                Some("m=audio") => kinds.audio = true,
                Some("m=video") => kinds.video = true,
                Some("m=application") => kinds.data = true,
                _ => {}
            }
        }
        kinds
    }
}

/// What the peer connection reports to its session.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// An audio frame (one Opus packet) arrived.
    Audio {
        /// The Opus payload.
        data: Vec<u8>,
        /// RTP time in 48 kHz units.
        rtp_time: u64,
    },
    /// A video frame (depacketized) arrived.
    Video {
        /// The encoded frame.
        data: Vec<u8>,
        /// The codec.
        codec: Codec,
        /// RTP time in 90 kHz units.
        rtp_time: u64,
        /// Whether the frame follows the previous one without loss.
        contiguous: bool,
    },
    /// The client opened its data channel.
    ChannelOpen,
    /// Text arrived on the data channel.
    ChannelText(String),
    /// The client asks for a keyframe of our video.
    KeyframeRequest,
    /// The connection is gone (closed, ICE failed or disconnected).
    Closed,
}

struct Track {
    mid: Mid,
    pt: Pt,
    codec: Codec,
}

/// Remote candidates remembered per peer, to name the route once connected; an
/// offer or trickle with more keeps the first ones.
const MAX_REMOTE_CANDIDATES: usize = 64;

/// The kind of the client's candidate a connection runs over (RFC 8445 §5.1.1):
/// how the client reached the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The client's own address: no NAT between, or the same network.
    Host,
    /// The client's address as a STUN server saw it: through a NAT.
    ServerReflexive,
    /// An address the host learned from the client's checks, not from a candidate
    /// (a NAT, or a candidate the client never sent, such as an mDNS name).
    PeerReflexive,
    /// Through a TURN relay.
    Relay,
}

impl Route {
    /// The candidate type's name in SDP and `/metrics`: `host`, `srflx`, `prflx`, `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Host => "host",
            Route::ServerReflexive => "srflx",
            Route::PeerReflexive => "prflx",
            Route::Relay => "relay",
        }
    }

    fn of(kind: CandidateKind) -> Self {
        match kind {
            CandidateKind::Host => Route::Host,
            CandidateKind::ServerReflexive => Route::ServerReflexive,
            CandidateKind::PeerReflexive => Route::PeerReflexive,
            CandidateKind::Relayed => Route::Relay,
        }
    }
}

/// A peer connection driven by the session task.
pub struct Peer {
    rtc: Rtc,
    socket: PeerSocket,
    /// The host's candidates' addresses (one per advertised IP, on the shared port).
    advertised: Vec<SocketAddr>,
    /// The client's candidates: address and kind.
    remote: Vec<(SocketAddr, CandidateKind)>,
    /// Where str0m last sent to, and whether over ICE-TCP: once connected, the
    /// nominated remote address.
    sent_to: Option<(SocketAddr, bool)>,
    /// Whether any datagram from the client has arrived.
    heard: bool,
    audio: Option<Track>,
    video: Option<Track>,
    video_in: Option<Mid>,
    channel: Option<ChannelId>,
    events: VecDeque<PeerEvent>,
    closed: bool,
    /// The timeout of the last drain: when str0m next wants `Input::Timeout`.
    next_timeout: Instant,
}

/// Due timeouts a drain handles itself before leaving one to the caller. One is
/// what a media write needs; the bound keeps a timeout that stays due (which
/// str0m should not produce) from spinning inside the drain.
const DUE_ROUNDS: u32 = 4;

/// When a closed peer wants a timeout: not in any useful future.
const NEVER: Duration = Duration::from_secs(3600);

/// The process's DTLS certificate, made once (with the crypto provider installed as
/// the process default) and shared by every peer: generating one costs milliseconds.
pub fn shared_cert() -> str0m::config::DtlsCert {
    static CERT: OnceLock<str0m::config::DtlsCert> = OnceLock::new();
    CERT.get_or_init(|| {
        let provider = Arc::new(str0m::crypto::from_feature_flags());
        let _ = std::panic::catch_unwind(|| {
            str0m::crypto::from_feature_flags().install_process_default()
        });
        provider
            .dtls_provider
            .generate_certificate()
            .expect("generate the DTLS certificate")
    })
    .clone()
}

impl Peer {
    /// Answer `offer` with one host candidate per address of `advertised` (the
    /// shared socket's addresses as clients should reach it: its own, a public IP
    /// behind 1:1 NAT, an IPv6 one), routing the peer's datagrams through `mux`.
    ///
    /// With `tcp`, each address also gets a passive ICE-TCP candidate on the same
    /// port (see `tcp.rs`), for clients whose network blocks UDP.
    pub fn accept(
        mux: &UdpMux,
        advertised: &[SocketAddr],
        tcp: bool,
        offer_sdp: &str,
    ) -> Result<(Self, String), OfferError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_dtls_cert(shared_cert())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(None)
            .build(Instant::now());
        if advertised.is_empty() {
            return Err(OfferError::Sdp("the host advertises no address".into()));
        }
        for &addr in advertised {
            let candidate =
                Candidate::host(addr, "udp").map_err(|e| OfferError::Sdp(e.to_string()))?;
            rtc.add_local_candidate(candidate);
            if tcp {
                let candidate = Candidate::builder()
                    .tcp()
                    .host(addr)
                    .tcptype(TcpType::Passive)
                    .build()
                    .map_err(|e| OfferError::Sdp(e.to_string()))?;
                rtc.add_local_candidate(candidate);
            }
        }
        let answer: SdpAnswer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Sdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        let ufrag = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .ok_or_else(|| OfferError::Sdp("answer has no ICE ufrag".into()))?
            .trim()
            .to_string();
        let password = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-pwd:"))
            .ok_or_else(|| OfferError::Sdp("answer has no ICE password".into()))?
            .trim();
        let socket = mux.register(&ufrag, password);
        let remote = offer_sdp
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a="))
            .filter(|l| l.starts_with("candidate:"))
            .filter_map(|l| Candidate::from_sdp_string(l).ok())
            .take(MAX_REMOTE_CANDIDATES)
            .map(|c| (c.addr(), c.kind()))
            .collect();
        let mut peer = Self {
            rtc,
            advertised: advertised.to_vec(),
            remote,
            sent_to: None,
            heard: false,
            socket,
            audio: None,
            video: None,
            video_in: None,
            channel: None,
            events: VecDeque::new(),
            closed: false,
            next_timeout: Instant::now(),
        };
        peer.drain();
        Ok((peer, answer))
    }

    /// Add a candidate the client trickled (`candidate:…` line).
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), String> {
        let line = candidate.trim().trim_start_matches("a=");
        let c = Candidate::from_sdp_string(line).map_err(|e| e.to_string())?;
        if self.remote.len() < MAX_REMOTE_CANDIDATES {
            self.remote.push((c.addr(), c.kind()));
        }
        self.rtc.add_remote_candidate(c);
        self.drain();
        Ok(())
    }

    /// The kind of the client's candidate the connection runs over: meaningful
    /// once [`PeerEvent::Connected`] came (str0m sends to the nominated address).
    pub fn route(&self) -> Route {
        let Some((to, _)) = self.sent_to else {
            return Route::PeerReflexive;
        };
        self.remote
            .iter()
            .find(|(addr, _)| *addr == to)
            .map_or(Route::PeerReflexive, |&(_, kind)| Route::of(kind))
    }

    /// Whether the connection runs over ICE-TCP (meaningful once connected).
    pub fn over_tcp(&self) -> bool {
        self.sent_to.is_some_and(|(_, tcp)| tcp)
    }

    /// Whether any datagram from the client has reached the host (when it has not,
    /// the client cannot reach the media port: UDP blocked, or a relay needed).
    pub fn heard_from_client(&self) -> bool {
        self.heard
    }

    /// Whether we can send audio / video to the client.
    pub fn sends(&self) -> (bool, bool) {
        (self.audio.is_some(), self.video.is_some())
    }

    /// The codec of the outgoing video track, if any.
    pub fn video_codec(&self) -> Option<Codec> {
        self.video.as_ref().map(|t| t.codec)
    }

    /// When str0m next wants [`Peer::timeout`]. Every method that changes the
    /// peer has already run str0m until it wants to wait (sent what it
    /// transmits, queued its events), so this only returns the time stored then.
    pub fn poll(&mut self) -> Instant {
        if self.closed {
            return Instant::now() + NEVER;
        }
        self.next_timeout
    }

    /// Drain str0m after a mutation, as its invariant requires: send every
    /// transmit, queue every event, until `poll_output` returns a timeout.
    ///
    /// A timeout that is already due is handled here, as a zero wait of the run
    /// loop: `Input::Timeout(now)`, then drain again. A media write needs it.
    /// In str0m 0.25, `Writer::write` only queues the frame
    /// (`Media::set_to_payload`, src/media/writer.rs); it is packetized by
    /// `Session::handle_timeout` → `do_payload` (src/session.rs), which only
    /// `handle_input` reaches. Until then `poll_output` has no RTP to transmit
    /// and answers `Output::Timeout(now)` instead (`Media::poll_timeout` in
    /// src/media/mod.rs reports the queued payload as already due;
    /// `Rtc::poll_timeout` in src/lib.rs clamps it to the last input's time).
    /// Handling that timeout packetizes the frame and the following polls
    /// transmit it (`Session::poll_datagram` → `poll_packet`). The unit test
    /// `write_transmits_without_a_timeout_input` checks both halves.
    ///
    /// Once the connection is closed (the session got [`PeerEvent::Closed`]) the
    /// drain still runs to its timeout, so that str0m's close output (RTCP BYE,
    /// DTLS close_notify) leaves, but nothing mutates the peer any more.
    fn drain(&mut self) -> Instant {
        let mut due_rounds = 0;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) if self.closed => {
                    self.next_timeout = Instant::now() + NEVER;
                    return self.next_timeout;
                }
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if t <= now && due_rounds < DUE_ROUNDS {
                        due_rounds += 1;
                        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                            tracing::debug!("peer timeout failed: {e}");
                        }
                        continue;
                    }
                    self.next_timeout = t;
                    return t;
                }
                Ok(Output::Transmit(t)) => {
                    let tcp = t.proto == Protocol::Tcp;
                    self.sent_to = Some((t.destination, tcp));
                    if tcp {
                        self.socket.send_tcp(t.destination, &t.contents)
                    } else {
                        self.socket.send(t.destination, &t.contents)
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    // str0m's errors here are fatal; stop it so it cannot repeat one.
                    tracing::debug!("peer failed: {e}");
                    self.close_with_event();
                    self.rtc.disconnect();
                    self.next_timeout = Instant::now() + NEVER;
                    return self.next_timeout;
                }
            }
        }
    }

    /// The next queued event.
    pub fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Whether a received video frame is waiting to be handled.
    pub fn has_queued_video(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, PeerEvent::Video { .. }))
    }

    /// Wait for this peer's next datagram (cancel-safe).
    pub async fn recv(&mut self) -> Option<Datagram> {
        self.socket.recv().await
    }

    /// This peer's next datagram if one is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Datagram> {
        self.socket.try_recv()
    }

    /// Feed a datagram to str0m, then drain it.
    pub fn receive(&mut self, d: Datagram) {
        if self.closed {
            return;
        }
        let Ok(contents) = d.data.as_slice().try_into() else {
            return;
        };
        self.heard = true;
        // str0m takes a check only on one of its candidates' addresses. The socket
        // may be bound to a wildcard or sit behind NAT, so the datagram is taken as
        // sent to the advertised address of its family (the socket does not say
        // which of several the client used; they share the port, so any will do).
        let destination = self
            .advertised
            .iter()
            .find(|a| a.is_ipv4() == d.source.is_ipv4())
            .unwrap_or(&self.advertised[0]);
        let input = Input::Receive(
            d.at,
            Receive {
                proto: if d.tcp { Protocol::Tcp } else { Protocol::Udp },
                source: d.source,
                destination: *destination,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("peer input failed: {e}");
        }
        self.drain();
    }

    /// Let str0m handle its timers, then drain it.
    pub fn timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!("peer timeout failed: {e}");
        }
        self.drain();
    }

    /// Send one Opus packet; `rtp_time` counts 48 kHz samples.
    pub fn write_audio(&mut self, packet: &[u8], rtp_time: u64) {
        if let Some(t) = &self.audio {
            let (mid, pt) = (t.mid, t.pt);
            self.write(
                mid,
                pt,
                MediaTime::new(rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                packet,
            );
        }
    }

    /// Send one encoded video frame; `rtp_time` counts 90 kHz ticks.
    pub fn write_video(&mut self, frame: &[u8], rtp_time: u64) {
        if let Some(t) = &self.video {
            let (mid, pt) = (t.mid, t.pt);
            self.write(
                mid,
                pt,
                MediaTime::new(rtp_time, str0m::media::Frequency::NINETY_KHZ),
                frame,
            );
        }
    }

    /// Write one frame, then drain: the drain's due timeout packetizes it and
    /// its packets leave before this returns (see [`Peer::drain`]).
    fn write(&mut self, mid: Mid, pt: Pt, time: MediaTime, data: &[u8]) {
        if self.closed {
            return;
        }
        if let Some(w) = self.rtc.writer(mid)
            && let Err(e) = w.write(pt, Instant::now(), time, data.to_vec())
        {
            tracing::debug!("media write failed: {e}");
        }
        self.drain();
    }

    /// Ask the client for a keyframe of the video it sends.
    pub fn request_keyframe(&mut self) {
        if self.closed {
            return;
        }
        if let Some(mid) = self.video_in
            && let Some(mut w) = self.rtc.writer(mid)
        {
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
            self.drain();
        }
    }

    /// Send a text message on the data channel; `false` if there is none (yet).
    pub fn send_text(&mut self, text: &str) -> bool {
        let Some(id) = self.channel else { return false };
        if self.closed {
            return false;
        }
        let sent = match self.rtc.channel(id) {
            Some(mut ch) => ch.write(false, text.as_bytes()).unwrap_or(false),
            None => return false,
        };
        self.drain();
        sent
    }

    /// Whether the data channel is open.
    pub fn has_channel(&self) -> bool {
        self.channel.is_some()
    }

    /// Close the connection.
    pub fn close(&mut self) {
        if !self.closed {
            // A graceful close first (RTCP BYE, DTLS close_notify), then stop.
            // The peer is drained already: every method leaves it so.
            if self.rtc.close().is_ok() {
                self.drain();
            }
            self.rtc.disconnect();
            self.closed = true;
        }
    }

    fn close_with_event(&mut self) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(PeerEvent::Closed);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.events.push_back(PeerEvent::Connected),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.close_with_event()
            }
            Event::MediaAdded(m) => {
                let sends = matches!(m.direction, Direction::SendOnly | Direction::SendRecv);
                if m.kind == MediaKind::Video
                    && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv)
                {
                    self.video_in = Some(m.mid);
                }
                if !sends {
                    return;
                }
                let Some(writer) = self.rtc.writer(m.mid) else {
                    return;
                };
                // Outgoing video in H.264 when the client takes it: OpenH264 encodes a
                // 640x480 frame in about a third of libvpx's time (`--bench media`).
                let preferred: &[Codec] = match m.kind {
                    MediaKind::Audio => &[Codec::Opus],
                    MediaKind::Video => &[Codec::H264, Codec::Vp8],
                };
                let params: Vec<_> = writer
                    .payload_params()
                    .map(|p| (p.pt(), p.spec().codec))
                    .collect();
                let chosen = preferred
                    .iter()
                    .find_map(|c| params.iter().find(|(_, pc)| pc == c))
                    .map(|&(pt, codec)| Track {
                        mid: m.mid,
                        pt,
                        codec,
                    });
                match m.kind {
                    MediaKind::Audio => self.audio = chosen,
                    MediaKind::Video => self.video = chosen,
                }
            }
            Event::MediaData(d) => {
                let codec = d.params.spec().codec;
                let event = if codec == Codec::Opus {
                    PeerEvent::Audio {
                        data: d.data.to_vec(),
                        rtp_time: d
                            .time
                            .rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ)
                            .numer(),
                    }
                } else {
                    PeerEvent::Video {
                        data: d.data.to_vec(),
                        codec,
                        rtp_time: d.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer(),
                        contiguous: d.contiguous,
                    }
                };
                self.events.push_back(event);
            }
            Event::ChannelOpen(id, _label) if self.channel.is_none() => {
                self.channel = Some(id);
                self.events.push_back(PeerEvent::ChannelOpen);
            }
            Event::ChannelData(d) if Some(d.id) == self.channel => {
                let text = String::from_utf8_lossy(&d.data).into_owned();
                self.events.push_back(PeerEvent::ChannelText(text));
            }
            Event::ChannelClose(id) if Some(id) == self.channel => self.close_with_event(),
            Event::KeyframeRequest(_) => self.events.push_back(PeerEvent::KeyframeRequest),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::UdpSocket;

    use super::*;

    /// A str0m client on a loopback socket, driven by the same canonical loop.
    struct Client {
        rtc: Rtc,
        socket: UdpSocket,
        connected: bool,
        next: Instant,
    }

    impl Client {
        fn drain(&mut self) -> Vec<Output> {
            let mut outputs = Vec::new();
            loop {
                match self.rtc.poll_output().expect("client poll") {
                    Output::Timeout(t) => {
                        self.next = t;
                        outputs.push(Output::Timeout(t));
                        return outputs;
                    }
                    Output::Transmit(t) => {
                        self.socket.send_to(&t.contents, t.destination).unwrap();
                        outputs.push(Output::Transmit(t));
                    }
                    Output::Event(e) => self.connected |= matches!(e, Event::Connected),
                }
            }
        }

        /// Handle every datagram that has arrived and a due timer; return the
        /// datagrams.
        fn step(&mut self) -> Vec<Vec<u8>> {
            let mut got = Vec::new();
            let mut buf = vec![0; 2000];
            loop {
                let (n, source) = match self.socket.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client recv: {e}"),
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.socket.local_addr().unwrap(),
                        contents: buf[..n].try_into().unwrap(),
                    },
                );
                self.rtc.handle_input(input).expect("client input");
                self.drain();
                got.push(buf[..n].to_vec());
            }
            if Instant::now() >= self.next {
                self.rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .unwrap();
                self.drain();
            }
            got
        }
    }

    /// With an IPv6 address advertised first, a client on IPv4 connects: its checks
    /// are taken as sent to the IPv4 candidate (str0m drops checks to an address
    /// that is none of its candidates, as it did for a socket bound to a wildcard).
    #[test]
    fn checks_count_on_the_advertised_address_of_their_family() {
        let (peer, ..) = connected_pair_advertising(|local| {
            vec![
                SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), local.port()),
                local,
            ]
        });
        assert!(peer.heard_from_client());
        assert_eq!(
            peer.route(),
            Route::Host,
            "the client offered its host candidate"
        );
    }

    fn is_rtp(data: &[u8], pt: Pt) -> bool {
        data.len() >= 12 && data[0] >> 6 == 2 && data[1] & 0x7f == *pt
    }

    /// A [`Peer`] and a client with a sendrecv audio m-line, connected over loopback.
    fn connected_pair() -> (Peer, Client, UdpMux, Mid) {
        connected_pair_advertising(|local| vec![local])
    }

    /// Like [`connected_pair`], the peer advertising `advertised(socket address)`.
    fn connected_pair_advertising(
        advertised: impl FnOnce(SocketAddr) -> Vec<SocketAddr>,
    ) -> (Peer, Client, UdpMux, Mid) {
        shared_cert();
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut rtc = RtcConfig::new().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let (mut peer, answer) = Peer::accept(
            &mux,
            &advertised(mux.local_addr()),
            false,
            &offer.to_sdp_string(),
        )
        .unwrap();
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        let mut client = Client {
            rtc,
            socket,
            connected: false,
            next: Instant::now(),
        };
        client.drain();

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut peer_connected = false;
        while !(client.connected && peer_connected && peer.sends().0) {
            assert!(Instant::now() < deadline, "no connection");
            client.step();
            while let Some(d) = peer.try_recv() {
                peer.receive(d);
            }
            if Instant::now() >= peer.poll() {
                peer.timeout(Instant::now());
            }
            while let Some(e) = peer.next_event() {
                peer_connected |= matches!(e, PeerEvent::Connected);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        (peer, client, mux, mid)
    }

    /// str0m (0.25) transmits a written frame only after a timeout input: the
    /// drain after `Writer::write` answers a due timeout and no RTP. `Peer`
    /// handles that timeout in its drain, so its writes leave at once.
    #[test]
    fn write_transmits_without_a_timeout_input() {
        let (mut peer, mut client, _mux, mid) = connected_pair();
        let opus = [0xf8, 0xff, 0xfe];

        // str0m's half, on the client: write, drain, nothing sent, timeout due.
        let pt = {
            let w = client.rtc.writer(mid).unwrap();
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .unwrap()
                .pt();
            let time = MediaTime::new(960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
            w.write(pt, Instant::now(), time, opus.to_vec()).unwrap();
            pt
        };
        let outputs = client.drain();
        let sent_rtp = |outputs: &[Output]| {
            outputs
                .iter()
                .any(|o| matches!(o, Output::Transmit(t) if is_rtp(&t.contents, pt)))
        };
        assert!(!sent_rtp(&outputs), "str0m sent RTP before a timeout input");
        let Some(Output::Timeout(due)) = outputs.last() else {
            unreachable!()
        };
        assert!(
            *due <= Instant::now(),
            "the queued frame makes a due timeout"
        );
        client
            .rtc
            .handle_input(Input::Timeout(Instant::now()))
            .unwrap();
        assert!(sent_rtp(&client.drain()), "the timeout input sends it");

        // The peer's half: the write alone puts the packet on the wire.
        let before = Instant::now();
        client.step();
        let pt = peer.audio.as_ref().unwrap().pt;
        peer.write_audio(&opus, 960);
        assert!(peer.poll() > before, "the peer is left drained");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            assert!(Instant::now() < deadline, "the peer's write never left");
            // `step` also feeds the client; nothing here touches the peer.
            if client.step().iter().any(|d| is_rtp(d, pt)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

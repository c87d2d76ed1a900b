//! Hostile clients against a real `wasmrtc serve`: each attack meets its stated bound
//! (the README's limits table), gets a clear error, and a live echo stream on the
//! same host keeps its audio rate throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmrtc_tests::peer::{self, Media, PeerOptions, TestPeer, poll_until};
use wasmrtc_tests::{
    HostProcess, guests, metrics_text, metrics_until, start_host, start_host_with_config,
};

/// Resident set size of a process, in bytes.
fn rss_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// A live echo connection and how many audio packets it had when measuring began.
struct Witness {
    peer: TestPeer,
    packets: usize,
    since: Instant,
}

impl Witness {
    async fn connect(base: &str) -> Self {
        let peer = TestPeer::connect(base, PeerOptions::new(Media::SendRecv, Media::None))
            .await
            .unwrap_or_else(|e| panic!("connect the witness: {e:#}"));
        assert!(
            peer.wait_audio(48_000, Duration::from_secs(20)).await,
            "the witness gets its echo"
        );
        Self {
            packets: peer.audio_packets(),
            since: Instant::now(),
            peer,
        }
    }

    /// The witness kept at least 40 of its 50 packets a second while the attack ran.
    fn assert_kept_its_rate(&self, attack: &str) {
        let secs = self.since.elapsed().as_secs_f64();
        let got = self.peer.audio_packets() - self.packets;
        let rate = got as f64 / secs;
        eprintln!("witness during {attack}: {got} audio packets in {secs:.1} s ({rate:.1}/s)");
        assert!(
            rate >= 40.0,
            "{attack}: the witness fell to {rate:.1} packets/s"
        );
    }
}

/// A host whose per-address bounds are off: these attacks come from one address on
/// purpose, to reach the bound each test is about (the per-address bounds have their
/// own test).
fn start(extra: &[&str]) -> HostProcess {
    let mut args = vec![
        "serve",
        guests::ECHO,
        "--listen",
        "127.0.0.1:0",
        "--per-ip-connections",
        "0",
        "--per-ip-rate",
        "0",
    ];
    args.extend_from_slice(extra);
    start_host(args)
}

/// A candidate line that parses, `len` bytes long (a long foundation).
fn candidate_line(len: usize) -> String {
    let tail = " 1 udp 2122260223 192.0.2.1 50000 typ host";
    let foundation = "f".repeat(len - "candidate:".len() - tail.len());
    format!("candidate:{foundation}{tail}")
}

fn candidate_body(id: &str, line: &str) -> serde_json::Value {
    json!({
        "type": "ice-candidate",
        "webrtc_id": id,
        "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_floods_meet_their_bounds_and_host_memory_stays_flat() {
    let host = start(&[]);
    let base = host.base.clone();
    let witness = Witness::connect(&base).await;
    let pid = host.child.id();
    let before = rss_of(pid);

    // An id past 256 bytes, a line past 1 KiB: refused with their causes.
    let (status, reply) = peer::post_offer(
        &base,
        &candidate_body(&"i".repeat(257), &candidate_line(100)),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, reply["meta"]["error"].as_str()),
        (400, Some("id_too_long")),
        "{reply}"
    );
    let (status, reply) =
        peer::post_offer(&base, &candidate_body("long-line", &"x".repeat(200_000)))
            .await
            .unwrap();
    assert_eq!(
        (status, reply["meta"]["error"].as_str()),
        (413, Some("candidate_too_long")),
        "{reply}"
    );

    // One id: 32 candidates are kept for its offer, the 33rd is refused.
    for i in 0..32 {
        let (status, reply) =
            peer::post_offer(&base, &candidate_body("early", &candidate_line(200)))
                .await
                .unwrap();
        assert_eq!(status, 200, "candidate {i}: {reply}");
    }
    let (status, reply) = peer::post_offer(&base, &candidate_body("early", &candidate_line(200)))
        .await
        .unwrap();
    assert_eq!(
        (status, reply["meta"]["error"].as_str()),
        (429, Some("too_many_candidates")),
        "{reply}"
    );

    // Many ids with the longest lines: the stream's 1 MiB of early candidates fills,
    // then each further one is refused as the buffer being full.
    let client = reqwest::Client::new();
    let url = format!("{base}/webrtc/offer");
    let line = candidate_line(1024);
    let mut kept = 0usize;
    let mut full = 0usize;
    for i in 0..4000 {
        let r = client
            .post(&url)
            .json(&candidate_body(&format!("flood-{i}"), &line))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => kept += 1,
            503 => {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["meta"]["error"], "candidate_buffer_full", "{body}");
                full += 1;
            }
            s => panic!("candidate {i}: unexpected {s}"),
        }
    }
    eprintln!("early candidates: {kept} kept, {full} refused as full");
    assert!(kept * 1024 <= 1 << 20, "{kept} lines of 1 KiB were kept");
    assert!(full > 0, "the early buffer never filled");

    let grown = rss_of(pid).saturating_sub(before);
    eprintln!("host RSS grew {} KiB over the flood", grown / 1024);
    assert!(grown < 24 << 20, "host RSS grew {} MiB", grown >> 20);

    // A live connection may trickle at most 32 candidates.
    let id = witness.peer.webrtc_id().to_string();
    let mut refused = None;
    for i in 0..40 {
        let (status, reply) = peer::post_offer(&base, &candidate_body(&id, &candidate_line(120)))
            .await
            .unwrap();
        if status != 200 {
            refused = Some((i, status, reply));
            break;
        }
    }
    let (i, status, reply) = refused.expect("a live connection took 40 candidates");
    assert!(i <= 32, "refused only at candidate {i}");
    assert_eq!(
        (status, reply["meta"]["error"].as_str()),
        (429, Some("too_many_candidates"))
    );

    let metrics = metrics_text(&base).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("wasmrtc_client_refused_total{reason=\"candidates\"}"))
        .unwrap_or_else(|| panic!("no candidates counter in {metrics}"));
    let counted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted as usize >= full + 3, "{line}");
    witness.assert_kept_its_rate("the candidate flood");
}

/// A STUN request for a live peer from an unknown address teaches the host a route
/// only when it is signed with that peer's ICE password: 2000 requests naming a
/// live ufrag, unsigned or signed with a guess, each followed by a datagram, get no
/// answer and are counted (`stun_integrity`); one signed request from another
/// address is answered by the peer. The witness keeps its audio rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_requests_not_signed_with_the_peers_password_teach_no_route() {
    const FORGED: usize = 2000;
    let host = start(&[]);
    let base = host.base.clone();
    let witness = Witness::connect(&base).await;
    let media: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    let offer =
        json!({"sdp": peer::abandoned_offer(), "type": "offer", "webrtc_id": "stun-forged"});
    let (_, answer) = peer::post_offer(&base, &offer).await.unwrap();
    let (ufrag, password) = ice_credentials(&answer);

    let attacker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for i in 0..FORGED {
        let forged = stun_request(&ufrag, (i % 2 == 1).then_some("guess"));
        attacker.send_to(&forged, media).unwrap();
        attacker.send_to(&[0x80; 200], media).unwrap();
        if i % 100 == 99 {
            // Paced, so that the kernel's buffer drops none of them.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let unverified = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("wasmrtc_client_refused_total{reason=\"stun_integrity\"} ")
            })
            .unwrap_or_else(|| panic!("no stun_integrity refusals in\n{metrics}"))
            .parse()
            .unwrap()
    };
    let metrics = metrics_until(&base, |m| unverified(m) >= FORGED as u64).await;
    assert_eq!(
        unverified(&metrics),
        FORGED as u64,
        "forged requests counted"
    );
    let mut buf = [0u8; 2048];
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "the peer answered a request not signed with its password"
    );

    // The same request signed with the peer's password, from a new address: answered.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .send_to(&stun_request(&ufrag, Some(&password)), media)
        .unwrap();
    let (n, from) = client
        .recv_from(&mut buf)
        .expect("the peer answers a signed connectivity check");
    assert_eq!(from, media);
    assert_eq!(
        &buf[..2],
        &[0x01, 0x01],
        "a Binding success response: {:02x?}",
        &buf[..n.min(20)]
    );
    witness.assert_kept_its_rate("the forged STUN requests");
}

/// Whether the server closed `conn` (EOF or reset) within `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or 400 before the close is fine: keep reading to the EOF.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_capped_and_closed_at_the_header_timeout() {
    let host = start(&["--header-timeout", "2", "--max-http-connections", "64"]);
    let base = host.base.clone();
    let witness = Witness::connect(&base).await;
    let addr = base.trim_start_matches("http://").to_string();

    // 300 connections: every other one sends an unfinished request head, the rest
    // send nothing at all.
    let mut conns: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    for c in conns.iter_mut().step_by(2) {
        let _ = c.write_all(b"GET /spec HTTP/1.1\r\nHost: attacker\r\nX-Slow: ");
    }
    // Over the cap: closed at once (the first 64 may include the witness's offer,
    // long done, so at least 300 - 64 are refused).
    let t0 = Instant::now();
    let mut over = 0;
    for c in &mut conns {
        if closed_within(c, Duration::from_millis(5)) {
            over += 1;
        }
    }
    eprintln!(
        "{over} of {} slow connections closed at accept",
        conns.len()
    );
    assert!(
        over >= 300 - 64,
        "only {over} connections past the cap were closed"
    );
    // The rest keep dripping a byte now and then; the header timeout closes them all.
    let mut open: Vec<TcpStream> = conns
        .into_iter()
        .filter_map(|mut c| (!closed_within(&mut c, Duration::from_millis(1))).then_some(c))
        .collect();
    let dripped = open.len();
    assert!(dripped > 0 && dripped <= 64, "{dripped} held");
    for _ in 0..3 {
        for c in &mut open {
            let _ = c.write_all(b"a");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut closed = 0;
    for c in &mut open {
        if closed_within(c, Duration::from_secs(10)) {
            closed += 1;
        }
    }
    eprintln!(
        "{closed} of {dripped} dripping connections closed by the header timeout ({:.1} s after they opened)",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        closed, dripped,
        "slow connections outlived the header timeout"
    );

    // Freed: an honest request gets its answer, and the witness never noticed.
    assert!(
        poll_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr).is_ok()
        })
        .await
    );
    let spec = reqwest::get(format!("{base}/spec")).await.unwrap();
    assert_eq!(spec.status(), 200);
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("wasmrtc_client_refused_total{reason=\"http_connections\"}")
            && !l.ends_with(" 0")),
        "the refusals were not counted"
    );
    witness.assert_kept_its_rate("the slowloris attack");
}

/// Decoder bombs: a client's keyframe announcing a picture over `[video] max_size`
/// is dropped before any decoder runs, with one warning and a count; a picture
/// within the bound is still flipped, and the witness keeps its audio rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_over_the_maximum_size_never_reach_the_decoder() {
    let dir = std::env::temp_dir().join(format!("wasmrtc-attack-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wasmrtc.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[video]\nmax_size = [640, 480]\n\
             [[stream]]\nname = \"echo\"\ncomponent = \"{}\"\n\
             [[stream]]\nname = \"flip\"\ncomponent = \"{}\"\n",
            guests::ECHO,
            guests::FLIP
        ),
    )
    .unwrap();
    let host = start_host_with_config(&config);
    let witness = Witness::connect(&format!("{}/streams/echo", host.base)).await;
    let flip = format!("{}/streams/flip", host.base);

    let bomb = TestPeer::connect(
        &flip,
        PeerOptions {
            video_size: (800, 600),
            ..PeerOptions::new(Media::None, Media::SendRecv)
        },
    )
    .await
    .expect("connect the oversized sender");
    let warning = bomb
        .wait_message_type(Duration::from_secs(20), "warning")
        .await;
    let warning = warning.expect("a warning about the picture size");
    assert!(warning.to_string().contains("800x600"), "{warning}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(bomb.video_sent() > 30, "the attacker kept sending");
    assert_eq!(
        bomb.video_frames(),
        0,
        "an oversized picture was decoded and answered"
    );
    let warnings = bomb
        .messages()
        .iter()
        .filter(|m| m["type"] == "warning")
        .count();
    assert_eq!(warnings, 1, "one warning, not one per frame");

    let fair = TestPeer::connect(&flip, PeerOptions::new(Media::None, Media::SendRecv))
        .await
        .expect("connect a 320x240 sender");
    assert!(
        fair.wait_video(10, Duration::from_secs(20)).await,
        "a picture within the bound is still flipped"
    );
    let metrics = metrics_text(&host.base).await;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wasmrtc_client_refused_total{reason=\"video_size\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "not counted:\n{metrics}");
    witness.assert_kept_its_rate("oversized pictures");
    let _ = std::fs::remove_dir_all(&dir);
}

/// CRC-32 (ISO-HDLC), for STUN's FINGERPRINT.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An ICE connectivity check (a STUN Binding request) from the offer's client ufrag
/// `abcd` to the server ufrag `ufrag`, as a browser sends it: PRIORITY,
/// ICE-CONTROLLING, then MESSAGE-INTEGRITY signed with `password` (when given) and
/// FINGERPRINT. Built here from RFC 5389/8445, independently of the host.
fn stun_request(ufrag: &str, password: Option<&str>) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    fn attribute(p: &mut Vec<u8>, kind: u16, value: &[u8]) {
        p.extend(kind.to_be_bytes());
        p.extend(u16::try_from(value.len()).unwrap().to_be_bytes());
        p.extend(value);
        p.resize(p.len().div_ceil(4) * 4, 0);
    }
    /// The header's length, counting `more` bytes after what `p` has.
    fn set_length(p: &mut [u8], more: usize) {
        let length = u16::try_from(p.len() + more - 20).unwrap().to_be_bytes();
        p[2..4].copy_from_slice(&length);
    }
    let mut p = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    p.extend(transaction_id());
    attribute(&mut p, 0x0006, format!("{ufrag}:abcd").as_bytes());
    attribute(&mut p, 0x0024, &0x6E00_01FFu32.to_be_bytes());
    attribute(&mut p, 0x802A, &0x0123_4567_89AB_CDEFu64.to_be_bytes());
    if let Some(password) = password {
        set_length(&mut p, 24);
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(password.as_bytes()).unwrap();
        mac.update(&p);
        let tag = mac.finalize().into_bytes();
        attribute(&mut p, 0x0008, &tag);
    }
    set_length(&mut p, 8);
    let fingerprint = crc32(&p) ^ 0x5354_554E;
    attribute(&mut p, 0x8028, &fingerprint.to_be_bytes());
    p
}

/// A STUN transaction id not used before in this run.
fn transaction_id() -> [u8; 12] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut id = [0u8; 12];
    id[4..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

/// The ICE ufrag and password of an answer.
fn ice_credentials(answer: &serde_json::Value) -> (String, String) {
    let sdp = answer["sdp"].as_str().unwrap();
    let value = |key: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {sdp}"))
            .trim()
            .to_string()
    };
    (value("a=ice-ufrag:"), value("a=ice-pwd:"))
}

/// An RFC 4571 frame: 16-bit length, then `data`.
fn frame(data: &[u8]) -> Vec<u8> {
    let mut f = u16::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    f.extend(data);
    f
}

/// ICE-TCP on the media port (the HTTP port): a connection whose first byte starts a
/// frame but which sends no STUN request for a live peer is closed and counted: a
/// frame that is not STUN, an empty or oversized frame, an unknown ufrag, and 1100
/// connections that stop after that first byte (over the cap of 1024 closed at once,
/// the rest at the first-frame timeout). HTTP on the same port keeps answering and
/// the witness keeps its audio rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_connections_without_a_live_peers_stun_request_are_closed() {
    let host = start(&[]);
    let base = host.base.clone();
    let witness = Witness::connect(&base).await;
    let addr = base.trim_start_matches("http://").to_string();

    let mut bad = 0;
    for (what, bytes) in [
        ("not STUN", frame(&[0x42; 100])),
        ("an empty frame", vec![0, 0]),
        (
            "an unknown ufrag",
            frame(&stun_request("nosuchufrag", None)),
        ),
    ] {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(&bytes).unwrap();
        assert!(
            closed_within(&mut c, Duration::from_secs(5)),
            "{what}: the connection stayed open"
        );
        bad += 1;
    }

    // After a first frame for a live peer (an offer that will never connect), a
    // frame announcing 4096 bytes (over 2048) closes the connection unread.
    let offer =
        json!({"sdp": peer::abandoned_offer(), "type": "offer", "webrtc_id": "tcp-oversized"});
    let (_, answer) = peer::post_offer(&base, &offer).await.unwrap();
    let (ufrag, password) = ice_credentials(&answer);
    assert!(
        answer["sdp"].as_str().unwrap().contains("tcptype passive"),
        "the answer offers ICE-TCP: {answer}"
    );
    // A live peer's ufrag without its password (unsigned, or signed with a guess).
    for (what, signed_with) in [("unsigned", None), ("signed with a guess", Some("guess"))] {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(&frame(&stun_request(&ufrag, signed_with)))
            .unwrap();
        assert!(
            closed_within(&mut c, Duration::from_secs(5)),
            "a live ufrag's request {what}: the connection stayed open"
        );
        bad += 1;
    }
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(&frame(&stun_request(&ufrag, Some(&password))))
        .unwrap();
    c.write_all(&[0x10, 0x00]).unwrap();
    c.write_all(&[0u8; 64]).unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(5)),
        "a frame of 4096 bytes was read"
    );
    bad += 1;

    // 1100 connections that send only the first byte of a frame.
    let t0 = Instant::now();
    let mut conns: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert_eq!(conns.len(), 1100);
    for c in &mut conns {
        c.write_all(&[0]).unwrap();
    }
    // One look at every connection, a moment after the last one opened.
    std::thread::sleep(Duration::from_millis(500));
    let mut at_once = 0;
    let mut held = Vec::new();
    for c in conns {
        c.set_nonblocking(true).unwrap();
        match (&c).read(&mut [0u8; 16]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.set_nonblocking(false).unwrap();
                held.push(c);
            }
            _ => at_once += 1,
        }
    }
    eprintln!(
        "{at_once} of 1100 first-byte-only connections closed at once, {} held",
        held.len()
    );
    assert!(
        at_once >= 1100 - 1024,
        "only {at_once} past the cap of 1024 were closed"
    );
    // Meanwhile HTTP on the same port answers.
    let spec = reqwest::get(format!("{base}/spec")).await.unwrap();
    assert_eq!(spec.status(), 200);
    let mut late = 0;
    for c in &mut held {
        if closed_within(c, Duration::from_secs(15)) {
            late += 1;
        }
    }
    eprintln!(
        "{late} of {} closed by the first-frame timeout ({:.1} s after they opened)",
        held.len(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        late,
        held.len(),
        "connections outlived the first-frame timeout"
    );

    // Each is counted as its task ends, just after the socket closes.
    let refused_in = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("wasmrtc_client_refused_total{reason=\"ice_tcp\"} "))
            .unwrap_or_else(|| panic!("no ice_tcp refusals in\n{metrics}"))
            .parse()
            .unwrap()
    };
    let metrics = metrics_until(&base, |m| refused_in(m) >= bad + 1100).await;
    let refused = refused_in(&metrics);
    assert!(refused >= bad + 1100, "{refused} ICE-TCP refusals counted");
    witness.assert_kept_its_rate("the ICE-TCP attack");
}

/// Whether the server closed `conn` (EOF or reset) within `within`.
async fn closed_by_server(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Per-address bounds: one address (127.0.0.2) opening 100 connections keeps
/// `--per-ip-connections` of them and has the rest closed at accept; another
/// (127.0.0.3) making requests past its burst gets `429` with `Retry-After` and
/// `rate_limited`. Both are counted, 127.0.0.1 is served throughout, and the witness
/// keeps its audio rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_past_its_connections_or_request_rate_is_refused_while_others_are_served() {
    const CONNECTIONS: usize = 16;
    const BURST: usize = 200;
    let host = start_host(vec![
        "serve",
        guests::ECHO,
        "--listen",
        "127.0.0.1:0",
        "--per-ip-connections",
        "16",
        "--per-ip-rate",
        "20",
    ]);
    let base = host.base.clone();
    let witness = Witness::connect(&base).await;
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    // 100 connections from 127.0.0.2, held open without a request.
    let mut held = Vec::new();
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        held.push(socket.connect(addr).await.unwrap());
    }
    let closed = futures::future::join_all(
        held.iter_mut()
            .map(|c| closed_by_server(c, Duration::from_secs(3))),
    )
    .await;
    let refused = closed.iter().filter(|c| **c).count();
    eprintln!("127.0.0.2: {refused} of 100 connections closed at accept");
    assert_eq!(refused, 100 - CONNECTIONS, "the per-address connection cap");
    // While 127.0.0.2 holds its share, 127.0.0.1 is served.
    let spec = reqwest::get(format!("{base}/spec")).await.unwrap();
    assert_eq!(spec.status(), 200);

    // 127.0.0.3 asks for the spec 600 times in a row: the burst is answered, then
    // refusals with their cause.
    let flooder = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..600 {
        let reply = flooder.get(format!("{base}/spec")).send().await.unwrap();
        match reply.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                if limited == 1 {
                    assert_eq!(reply.headers()["retry-after"], "1");
                    let body: serde_json::Value = reply.json().await.unwrap();
                    assert_eq!(body["error"], "rate_limited", "{body}");
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    eprintln!("127.0.0.3: {ok} of 600 requests answered, {limited} refused with 429");
    assert!(ok >= BURST, "the burst of {BURST} was not answered: {ok}");
    assert!(limited > 0, "no request past the rate was refused");
    let spec = reqwest::get(format!("{base}/spec")).await.unwrap();
    assert_eq!(spec.status(), 200, "127.0.0.1 was refused with the flooder");

    let metrics = metrics_text(&base).await;
    for reason in ["ip_connections", "ip_rate"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "wasmrtc_client_refused_total{{reason=\"{reason}\"}}"
            )) && !l.ends_with(" 0")),
            "refusals for {reason} were not counted"
        );
    }
    drop(held);
    witness.assert_kept_its_rate("the per-address floods");
}

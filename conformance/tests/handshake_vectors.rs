//! The client handshake oracle against real handshake bytes (Flash Player,
//! FFmpeg, librtmp, Red5, SRS) and against rml_rtmp's server, an
//! independent implementation.

use conformance::handshake::{
    client_c0c1, client_c2, client_handshake, client_handshake_with_timeout, find_digest, is_echo, verify_client_c1,
    verify_client_c2, verify_server_s1, verify_server_s2, ClientHandshake, DigestScheme, HandshakeError,
    HandshakeReport, FLASH_MEDIA_SERVER_KEY, FLASH_PLAYER_KEY, FLASH_PLAYER_VERSION, HANDSHAKE_SIZE,
};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn block(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
    bytes[..HANDSHAKE_SIZE].try_into().unwrap()
}

/// A C1 vector: file, bytes to skip (1 when the file starts with C0).
struct C1Vector {
    path: &'static str,
    skip: usize,
}

/// The real Flash Player C1s.
const FLASH_PLAYER_C1S: [C1Vector; 4] = [
    C1Vector {
        path: "flash-player/srs_fp_C0C1_verifyFPC0C1.bin",
        skip: 1,
    },
    C1Vector {
        path: "flash-player/srs_fp_complexhs_C0C1.bin",
        skip: 1,
    },
    C1Vector {
        path: "flash-player/red5_handshake_chromeFlashPlayerC1.C1.bin",
        skip: 0,
    },
    C1Vector {
        path: "flash-player/red5_handshake_firefoxFlashPlayerC1.C1.bin",
        skip: 0,
    },
];

/// Digest C1s from other clients (FFmpeg 3's native RTMP, Red5's client).
const OTHER_DIGEST_C1S: [C1Vector; 2] = [
    C1Vector {
        path: "other-clients/red5_handshake_ffmpeg3C1.bin",
        skip: 0,
    },
    C1Vector {
        path: "other-clients/red5_handshake_red5clientC1.bin",
        skip: 0,
    },
];

/// FFmpeg 2.4 with librtmp: version 0, no digest.
const LIBRTMP_C1: C1Vector = C1Vector {
    path: "other-clients/red5_handshake_ffmpegC1.bin",
    skip: 0,
};

fn c1_of(v: &C1Vector) -> [u8; HANDSHAKE_SIZE] {
    let bytes = fixture(v.path);
    assert_eq!(bytes.len(), v.skip + HANDSHAKE_SIZE, "{}", v.path);
    if v.skip == 1 {
        assert_eq!(bytes[0], 3, "{}: C0", v.path);
    }
    block(&bytes[v.skip..])
}

fn c0c1_of(v: &C1Vector) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&c1_of(v));
    out
}

/// SRS's complex handshake: (C1, S0, S1, S2, C2).
fn srs_session() -> (
    [u8; HANDSHAKE_SIZE],
    u8,
    [u8; HANDSHAKE_SIZE],
    [u8; HANDSHAKE_SIZE],
    [u8; HANDSHAKE_SIZE],
) {
    let c1 = c1_of(&FLASH_PLAYER_C1S[1]);
    let s = fixture("flash-player/srs_fp_complexhs_S0S1S2_from_srs.bin");
    assert_eq!(s.len(), 1 + 2 * HANDSHAKE_SIZE);
    let c2 = fixture("flash-player/srs_fp_complexhs_C2.bin");
    (c1, s[0], block(&s[1..]), block(&s[1 + HANDSHAKE_SIZE..]), block(&c2))
}

#[test]
fn keys_are_the_published_constants() {
    assert_eq!(&FLASH_PLAYER_KEY[..30], b"Genuine Adobe Flash Player 001");
    assert_eq!(&FLASH_MEDIA_SERVER_KEY[..36], b"Genuine Adobe Flash Media Server 001");
    assert_eq!(FLASH_PLAYER_KEY[30..], FLASH_MEDIA_SERVER_KEY[36..]);
    assert_eq!(FLASH_PLAYER_KEY[30..34], [0xf0, 0xee, 0xc2, 0x4a]);
    assert_eq!(FLASH_PLAYER_KEY[58..], [0xcf, 0xeb, 0x31, 0xae]);
}

#[test]
fn real_flash_player_c1s_carry_a_scheme_1_digest() {
    for v in &FLASH_PLAYER_C1S {
        let c1 = c1_of(v);
        assert_eq!(c1[4..8], FLASH_PLAYER_VERSION, "{}: version", v.path);
        let (scheme, digest) = verify_client_c1(&c1).unwrap_or_else(|| panic!("{}: no digest found", v.path));
        assert_eq!(scheme, DigestScheme::Scheme1, "{}", v.path);
        let at = scheme.digest_offset(&c1);
        assert!((776..=1503).contains(&at), "{}: offset {at}", v.path);
        assert_eq!(c1[at..at + 32], digest, "{}", v.path);
        // A client's C1 is not keyed with the server's key.
        assert_eq!(verify_server_s1(&c1), None, "{}", v.path);
    }
}

#[test]
fn other_clients_digest_c1s_use_scheme_0() {
    for v in &OTHER_DIGEST_C1S {
        let c1 = c1_of(v);
        let (scheme, _) = verify_client_c1(&c1).unwrap_or_else(|| panic!("{}: no digest found", v.path));
        assert_eq!(scheme, DigestScheme::Scheme0, "{}", v.path);
        assert!((12..=739).contains(&scheme.digest_offset(&c1)));
    }
    // FFmpeg 3 announces itself with its own version bytes.
    assert_eq!(c1_of(&OTHER_DIGEST_C1S[0])[4..8], [0x09, 0x00, 0x7c, 0x02]);
}

#[test]
fn librtmp_c1_has_no_digest() {
    let c1 = c1_of(&LIBRTMP_C1);
    assert_eq!(c1[4..8], [0, 0, 0, 0], "version 0");
    assert_eq!(verify_client_c1(&c1), None);
    assert_eq!(verify_server_s1(&c1), None);
}

#[test]
fn any_changed_byte_breaks_a_real_digest() {
    let c1 = c1_of(&FLASH_PLAYER_C1S[2]);
    let (scheme, _) = verify_client_c1(&c1).unwrap();
    let at = scheme.digest_offset(&c1);
    // Inside the digest, in the time field, in the hashed random bytes, and
    // in the other scheme's offset bytes.
    for i in [at, at + 31, 0, 100, 1535, 8] {
        let mut bad = c1;
        bad[i] ^= 0x01;
        assert_eq!(verify_client_c1(&bad), None, "byte {i} flipped");
    }
}

#[test]
fn find_digest_takes_the_key_length_as_given() {
    let c1 = c1_of(&FLASH_PLAYER_C1S[0]);
    assert!(find_digest(&c1, &FLASH_PLAYER_KEY[..30]).is_some());
    // The full 62-byte key is for C2, not for C1.
    assert_eq!(find_digest(&c1, &FLASH_PLAYER_KEY), None);
}

#[test]
fn srs_s1_and_s2_verify_against_the_flash_player_c1() {
    let (c1, s0, s1, s2, _) = srs_session();
    assert_eq!(s0, 3);
    let (scheme, _) = verify_server_s1(&s1).expect("SRS S1 digest");
    assert_eq!(scheme, DigestScheme::Scheme1);
    assert_eq!(s1[4..8], [0x04, 0x05, 0x00, 0x01], "SRS's server version");
    assert_eq!(verify_client_c1(&s1), None, "S1 is keyed with the FMS key");

    let (_, c1_digest) = verify_client_c1(&c1).unwrap();
    assert!(verify_server_s2(&s2, &c1_digest));
    assert!(!is_echo(&s2, &c1));
    // Not against another C1's digest, nor with a changed byte.
    let (_, other_digest) = verify_client_c1(&c1_of(&FLASH_PLAYER_C1S[0])).unwrap();
    assert!(!verify_server_s2(&s2, &other_digest));
    let mut bad = s2;
    bad[10] ^= 0x80;
    assert!(!verify_server_s2(&bad, &c1_digest));
}

#[test]
fn real_flash_player_c2_verifies_against_srs_s1_digest() {
    let (_, _, s1, _, c2) = srs_session();
    let (_, s1_digest) = verify_server_s1(&s1).unwrap();
    assert!(verify_client_c2(&c2, &s1_digest));
    let mut other = s1_digest;
    other[0] ^= 1;
    assert!(!verify_client_c2(&c2, &other));
    // C2 is keyed with the Flash Player key, S2 with the FMS key.
    assert!(!verify_server_s2(&c2, &s1_digest));
}

#[test]
fn our_c0c1_verifies_for_both_schemes() {
    for scheme in DigestScheme::ALL {
        for epoch in [0u32, 1, 0x1234_5678, u32::MAX] {
            for _ in 0..32 {
                let c0c1 = client_c0c1(ClientHandshake::FlashDigest(scheme), epoch);
                assert_eq!(c0c1.len(), 1537);
                assert_eq!(c0c1[0], 3);
                let c1 = block(&c0c1[1..]);
                assert_eq!(c1[..4], epoch.to_be_bytes());
                assert_eq!(c1[4..8], FLASH_PLAYER_VERSION);
                let (found, digest) = verify_client_c1(&c1).expect("our digest verifies");
                assert_eq!(found, scheme);
                let at = scheme.digest_offset(&c1);
                assert_eq!(c1[at..at + 32], digest);
            }
        }
    }
}

#[test]
fn our_simple_c0c1_is_version_0_without_digest() {
    let c0c1 = client_c0c1(ClientHandshake::Simple, 77);
    assert_eq!(c0c1.len(), 1537);
    assert_eq!(c0c1[0], 3);
    let c1 = block(&c0c1[1..]);
    assert_eq!(c1[..4], 77u32.to_be_bytes());
    assert_eq!(c1[4..8], [0, 0, 0, 0]);
    assert_eq!(verify_client_c1(&c1), None);
    // Random: two C1s differ.
    assert_ne!(client_c0c1(ClientHandshake::Simple, 77), c0c1);
}

#[test]
fn our_c2_verifies_and_echoes_without_digest() {
    let (_, _, s1, _, _) = srs_session();
    let (_, s1_digest) = verify_server_s1(&s1).unwrap();
    let c2 = client_c2(&s1, Some(&s1_digest));
    assert!(verify_client_c2(&c2, &s1_digest));
    assert_ne!(c2, client_c2(&s1, Some(&s1_digest)), "random body");
    assert_eq!(client_c2(&s1, None), s1);
}

// ---------------------------------------------------------------------------
// rml_rtmp's server as an independent implementation

/// Feeds C0C1 to a fresh rml_rtmp server; returns the server and S0S1S2.
fn rml_server_reply(c0c1: &[u8]) -> (Handshake, Vec<u8>) {
    let mut server = Handshake::new(PeerType::Server);
    match server.process_bytes(c0c1) {
        Ok(HandshakeProcessResult::InProgress { response_bytes }) => (server, response_bytes),
        other => panic!("rml_rtmp server: {other:?}"),
    }
}

#[test]
fn rml_rtmp_server_answers_real_digest_c1s_with_valid_s1_and_s2() {
    for v in FLASH_PLAYER_C1S.iter().chain(&OTHER_DIGEST_C1S) {
        let c0c1 = c0c1_of(v);
        let (_, c1_digest) = verify_client_c1(&block(&c0c1[1..])).unwrap();
        let (mut server, reply) = rml_server_reply(&c0c1);
        assert_eq!(reply.len(), 3073, "{}", v.path);
        assert_eq!(reply[0], 3, "{}: S0", v.path);
        let s1 = block(&reply[1..]);
        let s2 = block(&reply[1537..]);
        let (scheme, s1_digest) =
            verify_server_s1(&s1).unwrap_or_else(|| panic!("{}: rml_rtmp's S1 has no valid FMS digest", v.path));
        assert_eq!(scheme, DigestScheme::Scheme1, "{}", v.path);
        assert!(
            verify_server_s2(&s2, &c1_digest),
            "{}: rml_rtmp's S2 does not verify against the C1 digest",
            v.path
        );
        // Our C2 completes the handshake.
        let c2 = client_c2(&s1, Some(&s1_digest));
        match server.process_bytes(&c2) {
            Ok(HandshakeProcessResult::Completed { .. }) => {}
            other => panic!("{}: {other:?}", v.path),
        }
    }
}

#[test]
fn rml_rtmp_server_echoes_the_librtmp_c1() {
    let c0c1 = c0c1_of(&LIBRTMP_C1);
    let (_, reply) = rml_server_reply(&c0c1);
    assert_eq!(reply.len(), 3073);
    let s2 = block(&reply[1537..]);
    assert!(is_echo(&s2, &block(&c0c1[1..])));
}

#[test]
fn rml_rtmp_client_c1_verifies_with_scheme_0() {
    let mut client = Handshake::new(PeerType::Client);
    let c0c1 = client.generate_outbound_p0_and_p1().unwrap();
    assert_eq!(c0c1.len(), 1537);
    let (scheme, _) = verify_client_c1(&block(&c0c1[1..])).expect("rml_rtmp C1 digest");
    assert_eq!(scheme, DigestScheme::Scheme0);
}

/// Runs rml_rtmp's server on one end of a duplex stream; after S0S1S2 it
/// sends `extra` (as a server's first chunk would be); returns whether the
/// server saw the handshake complete.
async fn serve_rml(mut io: DuplexStream, extra: Vec<u8>) -> bool {
    let mut server = Handshake::new(PeerType::Server);
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.unwrap();
        if n == 0 {
            return false;
        }
        match server.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                if !response_bytes.is_empty() {
                    let mut out = response_bytes;
                    out.extend_from_slice(&extra);
                    io.write_all(&out).await.unwrap();
                }
            }
            HandshakeProcessResult::Completed { remaining_bytes, .. } => return remaining_bytes.is_empty(),
        }
    }
}

async fn handshake_with_rml(kind: ClientHandshake) -> HandshakeReport {
    let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
    let extra = b"first chunk after S2".to_vec();
    let server = tokio::spawn(serve_rml(server_io, extra.clone()));
    let (report, leftover) = client_handshake(&mut client_io, kind).await.unwrap();
    // Whatever of the extra bytes was not read with S2 is still in the stream.
    assert!(extra.starts_with(&leftover));
    let mut rest = vec![0u8; extra.len() - leftover.len()];
    client_io.read_exact(&mut rest).await.unwrap();
    assert_eq!([leftover, rest].concat(), extra);
    assert!(server.await.unwrap(), "rml_rtmp server completed");
    report
}

#[tokio::test]
async fn full_handshake_against_rml_rtmp_server() {
    for scheme in DigestScheme::ALL {
        let report = handshake_with_rml(ClientHandshake::FlashDigest(scheme)).await;
        assert_eq!(
            report,
            HandshakeReport {
                server_version: [0x80, 0x00, 0x07, 0x02],
                s1_digest: Some(DigestScheme::Scheme1),
                s2_verified: true,
                s2_echoes_c1: false,
            },
            "{scheme:?}"
        );
    }
    let report = handshake_with_rml(ClientHandshake::Simple).await;
    assert_eq!(
        report,
        HandshakeReport {
            server_version: [0x80, 0x00, 0x07, 0x02],
            s1_digest: Some(DigestScheme::Scheme1),
            s2_verified: true,
            s2_echoes_c1: true,
        }
    );
}

// ---------------------------------------------------------------------------
// Failures, with scripted servers

/// Reads C0C1 and answers with `make_reply(c0c1)`, then keeps the stream
/// open until the client is done.
async fn scripted_server(mut io: DuplexStream, make_reply: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) {
    let mut c0c1 = vec![0u8; 1537];
    if io.read_exact(&mut c0c1).await.is_err() {
        return;
    }
    let reply = make_reply(&c0c1);
    let _ = io.write_all(&reply).await;
    let mut sink = Vec::new();
    let _ = io.read_to_end(&mut sink).await;
}

async fn run_scripted(
    kind: ClientHandshake,
    make_reply: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
) -> Result<(HandshakeReport, Vec<u8>), HandshakeError> {
    let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(scripted_server(server_io, make_reply));
    client_handshake(&mut client_io, kind).await
}

/// A specification-only server: S1 with time 0 and version 0, S2 echoing C1.
fn simple_server_reply(c0c1: &[u8]) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&[0u8; 8]);
    out.extend((0..1528u32).map(|i| (i * 7) as u8));
    out.extend_from_slice(&c0c1[1..]);
    out
}

const DIGEST1: ClientHandshake = ClientHandshake::FlashDigest(DigestScheme::Scheme1);

#[tokio::test]
async fn encrypted_s0_is_refused() {
    let err = run_scripted(DIGEST1, |_| vec![6u8; 3073]).await.unwrap_err();
    assert!(matches!(err, HandshakeError::Encrypted), "{err:?}");
    assert_eq!(err.to_string(), "S0 version 6 (encrypted) not supported");
    let err = run_scripted(ClientHandshake::Simple, |_| vec![4u8; 3073])
        .await
        .unwrap_err();
    assert!(matches!(err, HandshakeError::UnsupportedVersion(4)), "{err:?}");
}

#[tokio::test]
async fn eof_mid_handshake_says_where() {
    let (mut client_io, mut server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut c0c1 = vec![0u8; 1537];
        server_io.read_exact(&mut c0c1).await.unwrap();
        server_io.write_all(&[3u8; 100]).await.unwrap();
        // Dropping the stream closes it.
    });
    let err = client_handshake(&mut client_io, ClientHandshake::Simple)
        .await
        .unwrap_err();
    match err {
        HandshakeError::UnexpectedEof {
            stage,
            received,
            expected,
        } => {
            assert_eq!((stage, received, expected), ("S1", 100, 3073));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn digest_client_refuses_a_simple_server() {
    let err = run_scripted(DIGEST1, simple_server_reply).await.unwrap_err();
    assert!(matches!(err, HandshakeError::S1DigestInvalid), "{err:?}");
    assert_eq!(
        err.to_string(),
        "S1 digest does not verify with the FMS key under either scheme"
    );
}

#[tokio::test]
async fn simple_client_accepts_a_simple_server() {
    let (report, leftover) = run_scripted(ClientHandshake::Simple, simple_server_reply)
        .await
        .unwrap();
    assert!(leftover.is_empty());
    assert_eq!(
        report,
        HandshakeReport {
            server_version: [0, 0, 0, 0],
            s1_digest: None,
            s2_verified: true,
            s2_echoes_c1: true,
        }
    );
}

#[tokio::test]
async fn digest_client_refuses_a_bad_s2() {
    let err = run_scripted(DIGEST1, |c0c1| {
        let (_, mut reply) = rml_server_reply(c0c1);
        let last = reply.len() - 1;
        reply[last] ^= 0xff;
        reply
    })
    .await
    .unwrap_err();
    assert!(matches!(err, HandshakeError::S2DigestMismatch), "{err:?}");
    assert_eq!(err.to_string(), "S2 digest does not match our C1 digest");
}

#[tokio::test]
async fn silent_server_times_out() {
    let (mut client_io, _server_io) = tokio::io::duplex(64 * 1024);
    let err = client_handshake_with_timeout(&mut client_io, ClientHandshake::Simple, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, HandshakeError::Timeout(_)), "{err:?}");
}

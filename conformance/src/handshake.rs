//! The client side of the RTMP handshake, written independently as a test
//! oracle for servers' handshakes.
//!
//! Two handshakes exist:
//!
//! * the **simple** handshake of Adobe's RTMP specification (2012, §5.2):
//!   C0/S0 is the version byte 3; C1/S1 are 1536 bytes made of a 4-byte time,
//!   4 zero bytes and 1528 random bytes; C2/S2 echo the peer's C1/S1 (with
//!   bytes 4..8 allowed to carry the "time2" of §5.2.4);
//! * the **Flash Player 9 ("digest", "complex") handshake**, not in Adobe's
//!   specification but described publicly (RTMPE.txt, librtmp, FFmpeg, SRS,
//!   Red5). C1/S1 keep the layout time(4) + version(4) + 1528 bytes, and a
//!   32-byte HMAC-SHA256 digest is hidden inside the 1528 bytes. Its position
//!   is given by four offset bytes whose sum, modulo 728, is added to a base
//!   (see [`DigestScheme`]). The digest is the HMAC-SHA256 of the 1536 bytes
//!   without the 32 digest bytes, keyed with the first 30 bytes of the Flash
//!   Player key (client C1) or the first 36 bytes of the Flash Media Server
//!   key (server S1). The answer S2 (C2) is 1504 random bytes followed by
//!   `HMAC-SHA256(key = HMAC-SHA256(full FMS (FP) key, C1 (S1) digest),
//!   data = S2[0..1504])`.
//!
//! Flash Player needs the digest handshake to play H.264/AAC; a server that
//! answers a digest C1 with a simple S1/S2 is disconnected by Flash Player.
//! This module builds clients' C0C1 and C2, verifies every block, and drives a
//! whole client handshake over any tokio stream ([`client_handshake`]).
//!
//! Encrypted RTMPE (version byte 6) is out of scope.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Size of C1, C2, S1 and S2 in bytes.
pub const HANDSHAKE_SIZE: usize = 1536;

/// The RTMP version byte (C0/S0) of plain, unencrypted RTMP.
pub const RTMP_VERSION: u8 = 3;

/// The version byte (C0/S0) of encrypted RTMPE, which this module refuses.
pub const RTMPE_VERSION: u8 = 6;

/// Length of a SHA-256 digest, the size of every digest in the handshake.
pub const DIGEST_SIZE: usize = 32;

/// The version bytes (C1[4..8]) this module's Flash-style C1 carries: the
/// value Flash Player 11 and later send (see the Red5 Chrome/Firefox C1
/// vectors in `fixtures/flash-player/`).
pub const FLASH_PLAYER_VERSION: [u8; 4] = [0x80, 0x00, 0x07, 0x02];

/// The 32 constant bytes that follow the text part of both handshake keys.
const KEY_TAIL: [u8; 32] = [
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec, 0x5d,
    0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];

/// Number of leading bytes of [`FLASH_PLAYER_KEY`] that key a client's C1
/// digest (the text "Genuine Adobe Flash Player 001").
pub const FLASH_PLAYER_KEY_TEXT_LEN: usize = 30;

/// Number of leading bytes of [`FLASH_MEDIA_SERVER_KEY`] that key a server's
/// S1 digest (the text "Genuine Adobe Flash Media Server 001").
pub const FLASH_MEDIA_SERVER_KEY_TEXT_LEN: usize = 36;

/// The Flash Player key: "Genuine Adobe Flash Player 001" followed by 32
/// constant bytes. Its first 30 bytes key the C1 digest; all 62 bytes key the
/// derivation of the C2 signature.
pub const FLASH_PLAYER_KEY: [u8; 62] = join_key(b"Genuine Adobe Flash Player 001");

/// The Flash Media Server key: "Genuine Adobe Flash Media Server 001"
/// followed by the same 32 constant bytes. Its first 36 bytes key the S1
/// digest; all 68 bytes key the derivation of the S2 signature.
pub const FLASH_MEDIA_SERVER_KEY: [u8; 68] = join_key(b"Genuine Adobe Flash Media Server 001");

/// Concatenates a key's text with [`KEY_TAIL`] at compile time.
const fn join_key<const N: usize>(text: &[u8]) -> [u8; N] {
    assert!(text.len() + KEY_TAIL.len() == N, "key length mismatch");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < text.len() {
        out[i] = text[i];
        i += 1;
    }
    let mut j = 0;
    while j < KEY_TAIL.len() {
        out[text.len() + j] = KEY_TAIL[j];
        j += 1;
    }
    out
}

/// Where the digest of a Flash-style C1 or S1 lives.
///
/// Both schemes read four "offset bytes"; the digest starts at
/// `(sum of the four bytes) % 728 + base`.
///
/// Naming differs between implementations: librtmp and FFmpeg call these
/// offset 1/2 or "scheme 0/1" as here; SRS names its schemas after the order
/// of its key and digest blocks, so SRS's *schema0* ("key then digest",
/// digest block at 772) is [`DigestScheme::Scheme1`] and SRS's *schema1*
/// ("digest then key", digest block at 8) is [`DigestScheme::Scheme0`].
/// Real Flash Player C1s use [`DigestScheme::Scheme1`]; FFmpeg's native RTMP
/// client and Red5's client use [`DigestScheme::Scheme0`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestScheme {
    /// Offset bytes at 8..12 (right after time and version), digest at
    /// `sum % 728 + 12`, i.e. somewhere in 12..772 ("digest block at base 8").
    Scheme0,
    /// Offset bytes at 772..776, digest at `sum % 728 + 776`, i.e. somewhere
    /// in 776..1536 ("digest block at base 772").
    Scheme1,
}

impl DigestScheme {
    /// Both schemes, in the order [`find_digest`] tries them.
    pub const ALL: [DigestScheme; 2] = [DigestScheme::Scheme0, DigestScheme::Scheme1];

    /// Index of the first of the four offset bytes (8 or 772).
    pub fn offset_bytes_at(self) -> usize {
        match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        }
    }

    /// Index of the digest within `block` under this scheme.
    pub fn digest_offset(self, block: &[u8; HANDSHAKE_SIZE]) -> usize {
        let at = self.offset_bytes_at();
        let sum: usize = block[at..at + 4].iter().map(|&b| usize::from(b)).sum();
        // The four offset bytes are followed by the 728 + 32 bytes that can
        // hold the digest: 12 + 727 + 32 <= 772 and 776 + 727 + 32 == 1535.
        sum % 728 + at + 4
    }
}

/// Why a client handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server answered with version byte 6 (RTMPE).
    #[error("S0 version 6 (encrypted) not supported")]
    Encrypted,
    /// The server answered with a version byte other than 3 or 6.
    #[error("S0 version {0} is not 3 (plain RTMP)")]
    UnsupportedVersion(u8),
    /// In digest mode, S1 carries no digest made with the FMS key.
    #[error("S1 digest does not verify with the FMS key under either scheme")]
    S1DigestInvalid,
    /// In digest mode, S2's signature is not derived from our C1 digest.
    #[error("S2 digest does not match our C1 digest")]
    S2DigestMismatch,
    /// The server closed the connection before S0+S1+S2 were complete.
    #[error(
        "connection closed mid-handshake while reading {stage}: \
         {received} of {expected} bytes of S0+S1+S2 received"
    )]
    UnexpectedEof {
        /// The block being read when the stream ended ("S0", "S1" or "S2").
        stage: &'static str,
        /// Bytes of S0+S1+S2 received.
        received: usize,
        /// Bytes S0+S1+S2 should have (3073).
        expected: usize,
    },
    /// Reading or writing the stream failed.
    #[error("I/O error during handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not complete in time
    /// (see [`client_handshake_with_timeout`]).
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
}

/// What kind of C1 a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHandshake {
    /// The RTMP specification's handshake: version 0, random bytes, C2 echoes S1.
    Simple,
    /// Flash Player's digest handshake with the C1 digest under this scheme.
    FlashDigest(DigestScheme),
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest `block` should carry at `offset`: the HMAC of everything but
/// the 32 bytes at `offset`.
fn digest_at(block: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    hmac_sha256(key, &[&block[..offset], &block[offset + DIGEST_SIZE..]])
}

/// The signature ending a digest-mode C2/S2: HMAC of `block[..1504]` keyed
/// with HMAC(`full_key`, peer's C1/S1 digest).
fn response_signature(
    block: &[u8; HANDSHAKE_SIZE],
    peer_digest: &[u8; DIGEST_SIZE],
    full_key: &[u8],
) -> [u8; DIGEST_SIZE] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[&block[..HANDSHAKE_SIZE - DIGEST_SIZE]])
}

/// Where the digest of a C1/S1 block verifies with `key`, if anywhere:
/// returns the scheme and the digest. Scheme 0 is tried first.
///
/// Use the first 30 bytes of [`FLASH_PLAYER_KEY`] for a client's C1 and the
/// first 36 bytes of [`FLASH_MEDIA_SERVER_KEY`] for a server's S1 (or
/// [`verify_client_c1`] / [`verify_server_s1`]).
pub fn find_digest(block: &[u8; HANDSHAKE_SIZE], key: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    DigestScheme::ALL.into_iter().find_map(|scheme| {
        let offset = scheme.digest_offset(block);
        let expected = digest_at(block, offset, key);
        (block[offset..offset + DIGEST_SIZE] == expected).then_some((scheme, expected))
    })
}

/// Finds the digest of a client's C1 (keyed with the 30-byte Flash Player
/// key text).
pub fn verify_client_c1(c1: &[u8; HANDSHAKE_SIZE]) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    find_digest(c1, &FLASH_PLAYER_KEY[..FLASH_PLAYER_KEY_TEXT_LEN])
}

/// Finds the digest of a server's S1 (keyed with the 36-byte Flash Media
/// Server key text).
pub fn verify_server_s1(s1: &[u8; HANDSHAKE_SIZE]) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    find_digest(s1, &FLASH_MEDIA_SERVER_KEY[..FLASH_MEDIA_SERVER_KEY_TEXT_LEN])
}

/// Whether S2's last 32 bytes are the signature derived from the client's
/// C1 digest with the full 68-byte FMS key.
pub fn verify_server_s2(s2: &[u8; HANDSHAKE_SIZE], c1_digest: &[u8; DIGEST_SIZE]) -> bool {
    s2[HANDSHAKE_SIZE - DIGEST_SIZE..] == response_signature(s2, c1_digest, &FLASH_MEDIA_SERVER_KEY)
}

/// Whether C2's last 32 bytes are the signature derived from the server's
/// S1 digest with the full 62-byte Flash Player key.
pub fn verify_client_c2(c2: &[u8; HANDSHAKE_SIZE], s1_digest: &[u8; DIGEST_SIZE]) -> bool {
    c2[HANDSHAKE_SIZE - DIGEST_SIZE..] == response_signature(c2, s1_digest, &FLASH_PLAYER_KEY)
}

/// Builds C1 and returns it with its digest (`None` for a simple C1).
fn build_c1(kind: ClientHandshake, epoch_ms: u32) -> ([u8; HANDSHAKE_SIZE], Option<[u8; 32]>) {
    let mut c1 = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut c1[8..]);
    c1[..4].copy_from_slice(&epoch_ms.to_be_bytes());
    match kind {
        ClientHandshake::Simple => (c1, None),
        ClientHandshake::FlashDigest(scheme) => {
            c1[4..8].copy_from_slice(&FLASH_PLAYER_VERSION);
            let offset = scheme.digest_offset(&c1);
            let digest = digest_at(&c1, offset, &FLASH_PLAYER_KEY[..FLASH_PLAYER_KEY_TEXT_LEN]);
            c1[offset..offset + DIGEST_SIZE].copy_from_slice(&digest);
            (c1, Some(digest))
        }
    }
}

/// Builds C0+C1 (1537 bytes) with `epoch_ms` as C1's time field.
///
/// Flash digest: version bytes 80 00 07 02 (as Flash Player 11 sends) and a
/// digest at the scheme's offset; simple: version 0 and random bytes.
pub fn client_c0c1(kind: ClientHandshake, epoch_ms: u32) -> Vec<u8> {
    let (c1, _) = build_c1(kind, epoch_ms);
    let mut out = Vec::with_capacity(1 + HANDSHAKE_SIZE);
    out.push(RTMP_VERSION);
    out.extend_from_slice(&c1);
    out
}

/// Builds C2: digest-signed (1504 random bytes + signature derived from the
/// S1 digest) when the server used digests, else an exact echo of S1.
pub fn client_c2(s1: &[u8; HANDSHAKE_SIZE], s1_digest: Option<&[u8; DIGEST_SIZE]>) -> [u8; HANDSHAKE_SIZE] {
    match s1_digest {
        None => *s1,
        Some(digest) => {
            let mut c2 = [0u8; HANDSHAKE_SIZE];
            rand::thread_rng().fill_bytes(&mut c2[..HANDSHAKE_SIZE - DIGEST_SIZE]);
            let signature = response_signature(&c2, digest, &FLASH_PLAYER_KEY);
            c2[HANDSHAKE_SIZE - DIGEST_SIZE..].copy_from_slice(&signature);
            c2
        }
    }
}

/// Whether `echo` repeats `original` as the RTMP specification's C2/S2 does:
/// equal except bytes 4..8, which §5.2.4 lets the peer fill with "time2".
pub fn is_echo(echo: &[u8; HANDSHAKE_SIZE], original: &[u8; HANDSHAKE_SIZE]) -> bool {
    echo[..4] == original[..4] && echo[8..] == original[8..]
}

/// What the client learned from the server's answer, for checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReport {
    /// S1's version bytes (S1[4..8]); zero for a specification-only server.
    pub server_version: [u8; 4],
    /// The scheme under which S1 carried a digest made with the FMS key, if any.
    pub s1_digest: Option<DigestScheme>,
    /// Whether S2 is what the C1 we sent asks for: in digest mode, signed
    /// with the key derived from our C1 digest; in simple mode, an echo of
    /// C1 (see [`is_echo`]).
    pub s2_verified: bool,
    /// Whether S2 echoes our C1 (see [`is_echo`]); a digest-aware server
    /// answering a digest C1 does not echo.
    pub s2_echoes_c1: bool,
}

/// Bytes of S0+S1+S2.
const SERVER_REPLY_SIZE: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Name of the block being read once `received` bytes of S0S1S2 arrived.
fn stage_at(received: usize) -> &'static str {
    match received {
        0 => "S0",
        n if n < 1 + HANDSHAKE_SIZE => "S1",
        _ => "S2",
    }
}

/// Checks S0 and returns an error for anything but version 3.
fn check_s0(s0: u8) -> Result<(), HandshakeError> {
    match s0 {
        RTMP_VERSION => Ok(()),
        RTMPE_VERSION => Err(HandshakeError::Encrypted),
        other => Err(HandshakeError::UnsupportedVersion(other)),
    }
}

/// Milliseconds since the Unix epoch, truncated to 32 bits, for C1's time.
fn now_ms() -> u32 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // The time field is 32 bits and wraps (RTMP spec §5.2.3); truncation is intended.
    ms as u32
}

/// Performs the client handshake over any async stream: sends C0C1, reads
/// S0S1S2, sends C2.
///
/// In [`ClientHandshake::FlashDigest`] mode an S1 without a valid digest or
/// an S2 that does not verify is an error (Flash Player would disconnect),
/// and C2 is signed with the S1 digest. In [`ClientHandshake::Simple`] mode
/// only S0 == 3 and the sizes are required and C2 echoes S1. Returns the
/// report and any bytes read past S2 (servers may send their first chunk
/// right after it).
pub async fn client_handshake<S>(
    io: &mut S,
    kind: ClientHandshake,
) -> Result<(HandshakeReport, Vec<u8>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    client_handshake_in_pieces(io, kind, usize::MAX).await
}

/// [`client_handshake`], writing C0C1 and C2 `piece` bytes at a time, each
/// piece flushed on its own (1: byte by byte, as a slow link delivers them).
pub async fn client_handshake_in_pieces<S>(
    io: &mut S,
    kind: ClientHandshake,
    piece: usize,
) -> Result<(HandshakeReport, Vec<u8>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (c1, c1_digest) = build_c1(kind, now_ms());
    let mut c0c1 = Vec::with_capacity(1 + HANDSHAKE_SIZE);
    c0c1.push(RTMP_VERSION);
    c0c1.extend_from_slice(&c1);
    write_in_pieces(io, &c0c1, piece).await?;

    let mut reply = Vec::with_capacity(SERVER_REPLY_SIZE + 4096);
    let mut buf = [0u8; 8192];
    while reply.len() < SERVER_REPLY_SIZE {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(HandshakeError::UnexpectedEof {
                stage: stage_at(reply.len()),
                received: reply.len(),
                expected: SERVER_REPLY_SIZE,
            });
        }
        let first_bytes = reply.is_empty();
        reply.extend_from_slice(&buf[..n]);
        if first_bytes {
            // Refuse a wrong version before waiting for 3072 more bytes.
            check_s0(reply[0])?;
        }
    }

    let mut s1 = [0u8; HANDSHAKE_SIZE];
    s1.copy_from_slice(&reply[1..1 + HANDSHAKE_SIZE]);
    let mut s2 = [0u8; HANDSHAKE_SIZE];
    s2.copy_from_slice(&reply[1 + HANDSHAKE_SIZE..SERVER_REPLY_SIZE]);
    let leftover = reply[SERVER_REPLY_SIZE..].to_vec();

    let s1_found = verify_server_s1(&s1);
    let s2_echoes_c1 = is_echo(&s2, &c1);
    let s2_verified = match &c1_digest {
        Some(digest) => verify_server_s2(&s2, digest),
        None => s2_echoes_c1,
    };
    let mut server_version = [0u8; 4];
    server_version.copy_from_slice(&s1[4..8]);
    let report = HandshakeReport {
        server_version,
        s1_digest: s1_found.map(|(scheme, _)| scheme),
        s2_verified,
        s2_echoes_c1,
    };

    let c2 = match kind {
        ClientHandshake::Simple => client_c2(&s1, None),
        ClientHandshake::FlashDigest(_) => {
            let Some((_, s1_digest)) = s1_found else {
                return Err(HandshakeError::S1DigestInvalid);
            };
            if !s2_verified {
                return Err(HandshakeError::S2DigestMismatch);
            }
            client_c2(&s1, Some(&s1_digest))
        }
    };
    write_in_pieces(io, &c2, piece).await?;
    Ok((report, leftover))
}

/// Writes `bytes` in pieces of at most `piece` bytes, flushing each and
/// letting the runtime run between them, so that each can leave as its own
/// TCP segment.
async fn write_in_pieces<S>(io: &mut S, bytes: &[u8], piece: usize) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    for chunk in bytes.chunks(piece.max(1)) {
        io.write_all(chunk).await?;
        io.flush().await?;
        if chunk.len() < bytes.len() {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// [`client_handshake`] bounded by `limit`; past it the result is
/// [`HandshakeError::Timeout`].
pub async fn client_handshake_with_timeout<S>(
    io: &mut S,
    kind: ClientHandshake,
    limit: Duration,
) -> Result<(HandshakeReport, Vec<u8>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(limit, client_handshake(io, kind))
        .await
        .unwrap_or(Err(HandshakeError::Timeout(limit)))
}

//! SRTP and SRTCP with AES-GCM (RFC 7714), keyed from DTLS-SRTP (RFC 5764
//! §4.2): what the server's own send path ([`super::send`]) protects the
//! RTP and sender reports it sends with, and reads a player's RTCP with.
//!
//! Sans-IO: bytes in, bytes out. Only the AEAD profiles: every browser
//! offers them, and a session that negotiated AES-CM with HMAC-SHA1 is sent
//! by str0m as before.
//!
//! The AEAD is ring's, whose key lives inside the [`Protect`] that holds it
//! (aws-lc-rs keeps its key behind a pointer of its own). By a player's
//! next packet its key has left the CPU's caches, hundreds of other
//! players' keys later, and the seal stalled on it; [`Protect::prefetch`]
//! asks for it early, when a frame reaches the player, so that the load
//! overlaps the work before the seal (5 % of the server's CPU at 800
//! viewers: docs/BENCHMARKS.md).
//!
//! Keys (RFC 3711 §4.3.1 and §4.3.3, RFC 7714 §11): each session key is
//! the AES counter-mode keystream of the master key, from the block whose
//! first 12 bytes are the master salt (the 96-bit salt of the AEAD profiles
//! padded with zeros to the 112 bits the KDF takes), with the label XORed
//! into byte 7 (the key derivation rate is 0, so the index part is zero).

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::iv::FixedLength;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

/// The authentication tag both profiles append (RFC 7714 §14.2).
pub const TAG_LEN: usize = 16;
/// The master and session salt of both profiles.
const SALT_LEN: usize = 12;
/// The SRTCP trailer: the E bit and the 31-bit SRTCP index.
const TRAILER_LEN: usize = 4;
/// The RTCP bytes left in the clear and authenticated: the first header and
/// its sender SSRC (RFC 7714 §9.1, §17).
const RTCP_CLEAR_LEN: usize = 8;

/// KDF labels (RFC 3711 §4.3.1).
const LABEL_RTP_KEY: u8 = 0x00;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_KEY: u8 = 0x03;
const LABEL_RTCP_SALT: u8 = 0x05;

/// An SRTP protection profile this module implements (RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// SRTP_AEAD_AES_128_GCM.
    AeadAes128Gcm,
    /// SRTP_AEAD_AES_256_GCM.
    AeadAes256Gcm,
}

impl Profile {
    fn key_len(self) -> usize {
        match self {
            Profile::AeadAes128Gcm => 16,
            Profile::AeadAes256Gcm => 32,
        }
    }

    /// The DTLS exporter bytes the profile takes: two master keys and two
    /// master salts.
    pub fn keying_material_len(self) -> usize {
        2 * (self.key_len() + SALT_LEN)
    }
}

/// What one side of a session protects with: its master key and salt.
#[derive(Clone)]
pub struct Master {
    profile: Profile,
    key: Vec<u8>,
    salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Master {
    /// The master key and salt `profile` takes; `None` for other lengths.
    pub fn new(profile: Profile, key: &[u8], salt: &[u8]) -> Option<Master> {
        (key.len() == profile.key_len()).then_some(())?;
        Some(Master {
            profile,
            key: key.to_vec(),
            salt: salt.try_into().ok()?,
        })
    }

    /// The two sides' masters in DTLS-SRTP keying material (RFC 5764 §4.2:
    /// client key, server key, client salt, server salt): ours, then the
    /// peer's. `dtls_client` says which DTLS side we are.
    pub fn from_keying_material(profile: Profile, material: &[u8], dtls_client: bool) -> Option<(Master, Master)> {
        if material.len() != profile.keying_material_len() {
            return None;
        }
        let (keys, salts) = material.split_at(2 * profile.key_len());
        let (client_key, server_key) = keys.split_at(profile.key_len());
        let (client_salt, server_salt) = salts.split_at(SALT_LEN);
        let client = Master::new(profile, client_key, client_salt)?;
        let server = Master::new(profile, server_key, server_salt)?;
        Some(if dtls_client {
            (client, server)
        } else {
            (server, client)
        })
    }

    /// The AEAD key and salt for `key_label` and `salt_label`.
    fn session(&self, key_label: u8, salt_label: u8) -> Session {
        let mut key = vec![0u8; self.profile.key_len()];
        kdf(&self.key, &self.salt, key_label, &mut key);
        let mut salt = [0u8; SALT_LEN];
        kdf(&self.key, &self.salt, salt_label, &mut salt);
        Session::new(self.profile, &key, salt)
    }

    /// What protects the RTP and RTCP this side sends.
    pub fn protect(&self) -> Protect {
        Protect {
            rtp: self.session(LABEL_RTP_KEY, LABEL_RTP_SALT),
            rtcp: self.session(LABEL_RTCP_KEY, LABEL_RTCP_SALT),
        }
    }

    /// What opens the RTCP this side sends.
    pub fn open_rtcp(&self) -> OpenRtcp {
        OpenRtcp(self.session(LABEL_RTCP_KEY, LABEL_RTCP_SALT))
    }
}

/// Fills `out` with the session key or salt `label` of the master `key`
/// and `salt` (12 or 14 bytes): the AES-CM PRF (RFC 3711 §4.3.3), with an
/// AES-256 key for a 256-bit master (RFC 6188), key derivation rate 0.
fn kdf(key: &[u8], salt: &[u8], label: u8, out: &mut [u8]) {
    let algorithm = if key.len() == 32 { &AES_256 } else { &AES_128 };
    // x = label || r (r = 0) XOR the salt, right-aligned in 112 bits (a
    // 96-bit salt is multiplied by 2^16 first: RFC 7714 erratum 4938), and
    // the counter block is x * 2^16.
    let mut block = [0u8; 16];
    block[..salt.len()].copy_from_slice(salt);
    block[7] ^= label;
    out.fill(0);
    let done = UnboundCipherKey::new(algorithm, key)
        .and_then(EncryptingKey::ctr)
        .and_then(|key| key.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(block))));
    // The master key's length was checked when it was made; AES-CTR takes
    // a slice of any length.
    debug_assert!(done.is_ok(), "AES-CTR key derivation failed");
}

/// One AEAD session key and its salt.
struct Session {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl Session {
    fn new(profile: Profile, key: &[u8], salt: [u8; SALT_LEN]) -> Session {
        let algorithm = match profile {
            Profile::AeadAes128Gcm => &AES_128_GCM,
            Profile::AeadAes256Gcm => &AES_256_GCM,
        };
        let key = UnboundKey::new(algorithm, key).expect("a session key of the profile's length");
        Session {
            key: LessSafeKey::new(key),
            salt,
        }
    }

    /// The nonce: `ssrc` in bytes 2..6, `middle` in 6..8, `tail` in 8..12, XOR the salt
    /// (RFC 7714 §8.1 for RTP, §9.1 for RTCP).
    fn nonce(&self, ssrc: u32, middle: u16, tail: u32) -> Nonce {
        let mut iv = [0u8; SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..8].copy_from_slice(&middle.to_be_bytes());
        iv[8..12].copy_from_slice(&tail.to_be_bytes());
        for (byte, salt) in iv.iter_mut().zip(&self.salt) {
            *byte ^= salt;
        }
        Nonce::assume_unique_for_key(iv)
    }
}

/// The two sides' SRTP masters of a session: what it protects with, and
/// what its peer does.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// Ours.
    pub local: Master,
    /// The peer's.
    pub remote: Master,
}

/// Protects what one side sends.
pub struct Protect {
    rtp: Session,
    rtcp: Session,
}

impl std::fmt::Debug for Protect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Protect")
    }
}

impl Protect {
    /// Asks the CPU to bring the RTP key into its caches now, without
    /// waiting for it: call it as a frame reaches the player, ahead of the
    /// seals it leads to.
    pub fn prefetch(&self) {
        crate::prefetch::value(&self.rtp);
    }

    /// The same for the `Protect` at `at`, without a reference to it.
    pub fn prefetch_at(at: usize) {
        let rtp = std::mem::offset_of!(Protect, rtp);
        crate::prefetch::bytes(at, rtp, rtp + std::mem::size_of::<Session>());
    }

    /// Appends the SRTP packet of `header` (its SSRC at bytes 8..12) and
    /// the payload `prefix` then `payload` to `out`. `index` is the packet's 48-bit SRTP index (the
    /// rollover counter, then the sequence number in the header): each index
    /// is sent once per SSRC, or the same packet again.
    pub fn rtp(&self, header: &[u8], prefix: &[u8], payload: &[u8], index: u64, out: &mut Vec<u8>) {
        let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        // The ROC and the sequence number: the 48-bit index, big-endian, in
        // the nonce's bytes 6..12.
        let nonce = self.rtp.nonce(ssrc, (index >> 32) as u16, index as u32);
        let start = out.len();
        out.extend_from_slice(header);
        out.extend_from_slice(prefix);
        out.extend_from_slice(payload);
        let (head, body) = out[start..].split_at_mut(header.len());
        let tag = self
            .rtp
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&*head), body)
            .expect("AES-GCM sealing a packet shorter than 2^36 bytes");
        out.extend_from_slice(tag.as_ref());
    }

    /// Appends the SRTCP packet of the compound RTCP `packet` (its sender
    /// SSRC at bytes 4..8) to `out`, as SRTCP index `index` (31 bits, one
    /// per packet of that SSRC).
    pub fn rtcp(&self, packet: &[u8], index: u32, out: &mut Vec<u8>) {
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let index = index & 0x7fff_ffff;
        let nonce = self.rtcp.nonce(ssrc, 0, index);
        let trailer = (0x8000_0000 | index).to_be_bytes();
        let mut aad = [0u8; RTCP_CLEAR_LEN + TRAILER_LEN];
        aad[..RTCP_CLEAR_LEN].copy_from_slice(&packet[..RTCP_CLEAR_LEN]);
        aad[RTCP_CLEAR_LEN..].copy_from_slice(&trailer);
        let start = out.len();
        out.extend_from_slice(packet);
        let body = &mut out[start + RTCP_CLEAR_LEN..];
        let tag = self
            .rtcp
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
            .expect("AES-GCM sealing a packet shorter than 2^36 bytes");
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&trailer);
    }
}

/// Opens the SRTCP the other side sends.
pub struct OpenRtcp(Session);

impl std::fmt::Debug for OpenRtcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenRtcp")
    }
}

impl OpenRtcp {
    /// The compound RTCP packet in the SRTCP packet `datagram`, into `out`
    /// (cleared first); `false` if it is too short, not encrypted, or does
    /// not authenticate. Replays are not checked: what opens here is only
    /// read, and str0m checks the same packet again.
    pub fn open(&self, datagram: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let Some(sealed_len) = datagram.len().checked_sub(TRAILER_LEN) else {
            return false;
        };
        if sealed_len < RTCP_CLEAR_LEN + TAG_LEN {
            return false;
        }
        let (sealed, trailer) = datagram.split_at(sealed_len);
        let trailer: [u8; TRAILER_LEN] = trailer.try_into().expect("four bytes");
        let e_and_index = u32::from_be_bytes(trailer);
        if e_and_index & 0x8000_0000 == 0 {
            // Unencrypted SRTCP: not what a WebRTC peer sends with AES-GCM.
            return false;
        }
        let ssrc = u32::from_be_bytes([sealed[4], sealed[5], sealed[6], sealed[7]]);
        let nonce = self.0.nonce(ssrc, 0, e_and_index & 0x7fff_ffff);
        let mut aad = [0u8; RTCP_CLEAR_LEN + TRAILER_LEN];
        aad[..RTCP_CLEAR_LEN].copy_from_slice(&sealed[..RTCP_CLEAR_LEN]);
        aad[RTCP_CLEAR_LEN..].copy_from_slice(&trailer);
        out.extend_from_slice(sealed);
        let opened = self
            .0
            .key
            .open_in_place(nonce, Aad::from(aad), &mut out[RTCP_CLEAR_LEN..]);
        match opened {
            Ok(plain) => {
                let len = RTCP_CLEAR_LEN + plain.len();
                out.truncate(len);
                true
            }
            Err(_) => {
                out.clear();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 7714 §16 and §17: session key 00 01 .. and salt "Quid pro quo";
    // the RTP and RTCP packets of the vectors.
    const SALT: &str = "517569642070726f2071756f";
    const RTP: &str =
        "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
    const RTCP: &str =
        "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

    fn session(profile: Profile) -> Protect {
        let key: Vec<u8> = (0..profile.key_len() as u8).collect();
        let salt: [u8; 12] = hex(SALT).try_into().unwrap();
        Protect {
            rtp: Session::new(profile, &key, salt),
            rtcp: Session::new(profile, &key, salt),
        }
    }

    #[test]
    fn rfc_7714_vectors_are_sealed_and_opened() {
        let cases = [
            (
                Profile::AeadAes128Gcm,
                "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
                "63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
            ),
            (
                Profile::AeadAes256Gcm,
                "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
                "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
            ),
        ];
        for (profile, srtp, srtcp) in cases {
            let protect = session(profile);
            let rtp = hex(RTP);
            let mut out = Vec::new();
            protect.rtp(&rtp[..12], &rtp[12..14], &rtp[14..], 0xf17b, &mut out);
            assert_eq!(out, [&rtp[..12], &hex(srtp)[..]].concat(), "{profile:?} SRTP");
            let rtcp = hex(RTCP);
            out.clear();
            protect.rtcp(&rtcp, 0x5d4, &mut out);
            let sealed = [&rtcp[..8], &hex(srtcp)[..]].concat();
            assert_eq!(out, sealed, "{profile:?} SRTCP");
            let mut opened = Vec::new();
            assert!(OpenRtcp(protect.rtcp).open(&sealed, &mut opened));
            assert_eq!(opened, rtcp);
        }
    }

    #[test]
    fn session_keys_are_derived_as_rfc_3711_and_rfc_6188_say() {
        // RFC 3711 appendix B.3 (AES-128, a 112-bit salt).
        let (key, salt) = (
            hex("e1f97a0d3e018be0d64fa32c06de4139"),
            hex("0ec675ad498afeebb6960b3aabe6"),
        );
        let mut out = [0u8; 16];
        kdf(&key, &salt, LABEL_RTP_KEY, &mut out);
        assert_eq!(out.to_vec(), hex("c61e7a93744f39ee10734afe3ff7a087"));
        let mut out = [0u8; 14];
        kdf(&key, &salt, LABEL_RTP_SALT, &mut out);
        assert_eq!(out.to_vec(), hex("30cbbc08863d8c85d49db34a9ae1"));
        // AES_256_CM_PRF.
        let key = hex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6");
        let salt = hex("3b04803de51ee7c96423ab5b78d2");
        let mut out = [0u8; 32];
        kdf(&key, &salt, LABEL_RTP_KEY, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
        );
        let mut out = [0u8; 14];
        kdf(&key, &salt, LABEL_RTP_SALT, &mut out);
        assert_eq!(out.to_vec(), hex("fa31791685ca444a9e07c6c64e93"));
    }

    #[test]
    fn keying_material_is_split_by_the_dtls_side() {
        let profile = Profile::AeadAes128Gcm;
        let material: Vec<u8> = (0..profile.keying_material_len() as u8).collect();
        let (ours, theirs) = Master::from_keying_material(profile, &material, false).unwrap();
        // The server's key is the second 16 bytes, its salt the last 12.
        assert_eq!(ours.key, (16..32).collect::<Vec<u8>>());
        assert_eq!(ours.salt.to_vec(), (44..56).collect::<Vec<u8>>());
        assert_eq!(theirs.key, (0..16).collect::<Vec<u8>>());
        assert_eq!(theirs.salt.to_vec(), (32..44).collect::<Vec<u8>>());
        let (client, _) = Master::from_keying_material(profile, &material, true).unwrap();
        assert_eq!(client.key, theirs.key);
        assert!(Master::from_keying_material(profile, &material[1..], true).is_none());
    }

    #[test]
    fn what_one_side_seals_the_other_opens_and_a_changed_byte_does_not() {
        let master = Master::new(Profile::AeadAes256Gcm, &[9; 32], &[3; 12]).unwrap();
        // A receiver report of SSRC 0x11223344 with one block.
        let mut rr = hex("81c90007 11223344 55667788 00000001 00000002 00000003 00000004 00000005");
        rr.truncate(32);
        let mut sealed = Vec::new();
        master.protect().rtcp(&rr, 7, &mut sealed);
        assert_eq!(sealed.len(), rr.len() + TAG_LEN + TRAILER_LEN);
        assert_eq!(&sealed[..8], &rr[..8], "the first header and SSRC stay in the clear");
        assert_ne!(&sealed[8..rr.len()], &rr[8..]);
        assert_eq!(&sealed[sealed.len() - 4..], &[0x80, 0, 0, 7]);
        let mut opened = Vec::new();
        assert!(master.open_rtcp().open(&sealed, &mut opened));
        assert_eq!(opened, rr);
        sealed[12] ^= 1;
        assert!(!master.open_rtcp().open(&sealed, &mut opened));
        assert!(opened.is_empty());
        assert!(!master.open_rtcp().open(&sealed[..10], &mut opened));
    }
}

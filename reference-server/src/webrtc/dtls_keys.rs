//! The DTLS-SRTP keying material of a server session, for the server's own
//! send path ([`super::send`]).
//!
//! str0m derives its SRTP keys from what the DTLS handshake exports
//! (RFC 5764 §4.2) and keeps them. Its crypto is pluggable, though
//! (`RtcConfig::set_crypto_provider`), and its DTLS instance hands the
//! exported material out as it makes it (`DtlsOutput::KeyingMaterial`).
//! So the server's sessions are built with [`provider`]: str0m's own, with
//! the DTLS instances wrapped. A wrapper passes everything through, and
//! copies the material it sees into a thread-local slot. That happens
//! within the `Rtc` call that drives the handshake, on the thread making
//! it; the caller takes the material with [`take`] as that call returns.
//! Nothing is kept per session here, and a session nobody takes the
//! material of sends with str0m as before.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion, SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};

use super::srtp::SessionKeys;
use super::srtp::{Master, Profile};

thread_local! {
    /// What the DTLS instance driven on this thread exported last, not yet taken.
    static EXPORTED: RefCell<Option<Exported>> = const { RefCell::new(None) };
}

/// What a DTLS instance exported: `None` for a profile [`super::srtp`]
/// does not implement.
type Exported = Option<SessionKeys>;

/// The keying material exported by the `Rtc` call that just returned on this
/// thread: `Some(None)` for a profile sent by str0m only, `None` if there
/// was none.
pub fn take() -> Option<Option<SessionKeys>> {
    EXPORTED.with(|exported| exported.borrow_mut().take())
}

/// str0m's crypto provider with its DTLS instances tapped: for the server's
/// sessions only (the conformance suite's own peers, in the same process in
/// tests, keep the default).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = str0m::crypto::from_feature_flags();
            provider.dtls_provider = &TAP;
            Arc::new(provider)
        })
        .clone()
}

static TAP: Tap = Tap;

/// The DTLS provider that wraps str0m's.
#[derive(Debug)]
struct Tap;

impl Tap {
    fn inner() -> &'static dyn DtlsProvider {
        static INNER: OnceLock<CryptoProvider> = OnceLock::new();
        INNER.get_or_init(str0m::crypto::from_feature_flags).dtls_provider
    }
}

impl DtlsProvider for Tap {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        Tap::inner().generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = Tap::inner().new_dtls(cert, now, dtls_version, mtu)?;
        Ok(Box::new(Tapped(inner)))
    }

    fn is_test(&self) -> bool {
        Tap::inner().is_test()
    }
}

/// A DTLS instance that copies out the keying material it exports.
#[derive(Debug)]
struct Tapped(Box<dyn DtlsInstance>);

impl DtlsInstance for Tapped {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.0.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &output {
            let profile = match *profile {
                SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
                SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
                _ => None,
            };
            let keys = profile
                .and_then(|profile| Master::from_keying_material(profile, material, self.0.is_active()))
                .map(|(local, remote)| SessionKeys { local, remote });
            EXPORTED.with(|exported| *exported.borrow_mut() = Some(keys));
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

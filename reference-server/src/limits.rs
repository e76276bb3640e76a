//! How much one client address may hold at once: RTMP connections, WebRTC
//! sessions, WebSocket sessions. One address that opens a thousand idle
//! connections would otherwise hold every slot of `rtmp.max_connections`
//! until their idle timeout, and shut every other client out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts what each address holds, up to a cap.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One thing an address holds; giving it back (dropping it) frees its place.
#[derive(Debug)]
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `limit` at once per address; 0 for no limit.
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit,
            held: Mutex::default(),
        })
    }

    /// A place for `ip`, or `None` when it holds `limit` already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_default();
        if self.limit != 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// How many places `ip` holds.
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&ip).copied().unwrap_or(0)
    }

    /// The cap (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                // Addresses that hold nothing take no memory.
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_places_back() {
        let limits = PerAddress::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none(), "a third from the same address");
        assert!(limits.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(limits.held(a), 1);
        assert!(limits.admit(a).is_some());
        let none = PerAddress::new(0);
        let all: Vec<_> = (0..1000).map(|_| none.admit(a).unwrap()).collect();
        drop(all);
        assert!(
            none.held.lock().unwrap().is_empty(),
            "nothing kept for addresses that hold nothing"
        );
    }
}

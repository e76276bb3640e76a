//! Asking the CPU for memory before it is read.
//!
//! A fan-out serves hundreds of players in turn, each from its own few
//! kilobytes of state, which the others push out of the caches between
//! two of its packets: every first touch waits for memory. Whoever walks
//! the players asks for the next one's lines while it serves this one,
//! so those waits overlap the work instead of following it.
//!
//! A prefetch never faults and changes nothing but the caches: asking
//! for an address that is no longer what it was costs a wasted load,
//! never a wrong result. These functions therefore take plain addresses.

/// The size of a cache line, on the machines this is built for.
const LINE: usize = 64;

/// Asks for the cache lines of the bytes `at + from .. at + to`.
#[inline]
pub fn bytes(at: usize, from: usize, to: usize) {
    lines(at + from, at + to).for_each(one);
}

/// Asks for all of `value`.
#[inline]
pub fn value<T>(value: &T) {
    bytes(value as *const T as usize, 0, std::mem::size_of::<T>());
}

/// Asks for the cache line of `at + offset`.
#[inline]
pub fn line(at: usize, offset: usize) {
    one(at + offset);
}

/// Asks for the cache line of `at + offset` for each of `offsets` (the
/// fields of a value at `at`, by `std::mem::offset_of!`).
#[inline]
pub fn fields<const N: usize>(at: usize, offsets: [usize; N]) {
    for offset in offsets {
        one(at + offset);
    }
}

/// The start of each cache line that holds a byte of `start..end`.
fn lines(start: usize, end: usize) -> impl Iterator<Item = usize> {
    (start & !(LINE - 1)..end).step_by(LINE)
}

#[inline]
fn one(address: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults, whatever the address; it reads
        // nothing the program sees.
        unsafe { _mm_prefetch(address as *const i8, _MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_a_range_is_asked_for_once() {
        let lines = |start, end| lines(start, end).collect::<Vec<_>>();
        assert_eq!(lines(0x1000, 0x1040), [0x1000]);
        assert_eq!(lines(0x1010, 0x1041), [0x1000, 0x1040]);
        assert_eq!(lines(0x103f, 0x1090), [0x1000, 0x1040, 0x1080]);
        assert_eq!(lines(0x1040, 0x1040), Vec::<usize>::new());
    }

    #[test]
    fn asking_for_any_address_is_harmless() {
        // Nothing mapped there: a prefetch never faults.
        bytes(0, 0, 4096);
        line(usize::MAX - 63, 0);
        value(&[0u8; 300]);
    }
}

//! The server's global allocator: mimalloc, built without transparent huge pages, and
//! told to return freed memory to the kernel at once ([`configure`]).
//!
//! Only the `pto-server` binary installs it (`#[global_allocator] static GLOBAL:
//! allocator::MiMalloc = allocator::MiMalloc;`); library users of our crates keep their
//! own allocator. The reasons and the measurements are in docs/decisions.md ("The
//! allocator and the cost of a password hash").

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers; the
/// Rust bindings do not name it). Tested below against the option's v3 default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed pages wait before they are given back to the kernel, in ms. mimalloc
/// v3's default (1,000 ms, ×10 for arenas) gives them back only when the thread that
/// freed them allocates again: the blocking threads that ran a password hash (19 MiB)
/// would keep it while idle. 0 purges when a page becomes free.
pub const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Applies the settings; call first thing in `main`, before other threads start.
pub fn configure() {
    // SAFETY: `mi_option_set` writes one option of mimalloc's option table (an integer
    // and its initialised flag); it takes no pointers. It is called before any other
    // thread exists, so no allocation reads the option meanwhile.
    #[allow(
        unsafe_code,
        reason = "the one FFI call that sets mimalloc's purge delay"
    )]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The purge delay in effect, in ms.
#[must_use]
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads one option of mimalloc's option table; takes no pointers.
    #[allow(unsafe_code, reason = "reading mimalloc's purge delay")]
    unsafe {
        libmimalloc_sys::mi_option_get(PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_we_set() {
        // mimalloc v3's default purge delay is 1,000 ms; its neighbours in the option
        // table default to 1 and 0: reading 1,000 shows the index names the option.
        assert_eq!(purge_delay_ms(), 1000);
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}

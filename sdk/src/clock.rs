//! Time as the host sees it (the fake host's clock in native tests, which
//! only moves when the test says so).

use std::time::{Duration, SystemTime};

/// Nanoseconds on a monotonic clock shared by every instance in the
/// gateway process. Its zero is arbitrary: use differences only.
pub fn monotonic_now() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        crate::wasm::clock::monotonic_now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.monotonic_ns())
    }
}

/// Wall-clock nanoseconds since the Unix epoch (UTC). It can jump.
pub fn wall_now() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        crate::wasm::clock::wall_now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.wall_ns())
    }
}

/// [`wall_now`] as a [`SystemTime`].
pub fn system_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(wall_now())
}

/// Time elapsed since an earlier [`monotonic_now`] reading.
pub fn since(earlier_ns: u64) -> Duration {
    Duration::from_nanos(monotonic_now().saturating_sub(earlier_ns))
}

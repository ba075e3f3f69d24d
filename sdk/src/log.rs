//! Leveled log lines, written by the host under the plugin's name.
//!
//! The host rate-limits them per plugin, so logging on every request is
//! wasteful but never dangerous. Prefer the macros ([`info!`](crate::info)
//! and friends): they skip formatting when the level is off.

/// Severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal events.
    Info,
    /// Something odd that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        crate::wasm::log::enabled(crate::wasm::level(level))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.log_enabled(level))
    }
}

/// Write one line (the host truncates it to 1 KiB).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        crate::wasm::log::log(crate::wasm::level(level), message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.log_line(level, message));
    }
}

/// Log at a level with `format!` arguments, formatting only if enabled.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::log($level, &::std::format!($($arg)+));
        }
    };
}

/// Log at [`Level::Trace`].
#[macro_export]
macro_rules! trace { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Trace, $($arg)+) }; }
/// Log at [`Level::Debug`].
#[macro_export]
macro_rules! debug { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Debug, $($arg)+) }; }
/// Log at [`Level::Info`].
#[macro_export]
macro_rules! info { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Info, $($arg)+) }; }
/// Log at [`Level::Warn`].
#[macro_export]
macro_rules! warn { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Warn, $($arg)+) }; }
/// Log at [`Level::Error`].
#[macro_export]
macro_rules! error { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Error, $($arg)+) }; }

//! The gateway process's own CPU and memory, from `/proc/self` (Linux; zero
//! elsewhere).

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU use between two samples, as a fraction of the cores available.
#[derive(Default)]
pub struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    pub fn sample(&mut self, now: Instant) -> f64 {
        let Some(cpu) = cpu_seconds() else { return 0.0 };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let out = match self.last {
            Some((t, c)) if now > t => {
                let wall = now.duration_since(t).as_secs_f64();
                ((cpu - c) / wall / cores).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        self.last = Some((now, cpu));
        out
    }
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) start at the state.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Resident memory of this process, bytes.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(super::resident_bytes() > 1 << 20);
            assert!(super::cpu_seconds().is_some());
        }
    }
}

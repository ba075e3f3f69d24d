//! `scale-scheduled`: replica counts by time window, in a named timezone:
//! "business hours 9–17 → 10, off hours → 3, weekends → 2".
//!
//! ```yaml
//! plugins:
//!   office-hours:
//!     builtin: scale-scheduled
//!     config:
//!       timezone: Europe/Berlin             # IANA name (default UTC)
//!       windows: "* 9-16 * * MON-FRI => 10; * * * * SAT,SUN => 2"
//!       default: "3"                        # outside every window
//! ```
//!
//! A window is a cron expression (minute hour day-of-month month
//! day-of-week, parsed by the `croner` crate) and a count; it is in force
//! during every minute the expression matches, in local time of `timezone`
//! (`chrono-tz`), so DST changes move it with the wall clock. The first
//! window that matches wins. Time is the snapshot's `at-ms`. Sustain windows
//! and cooldowns (`scale-in-after`… as in `scale-target-tracking`) are
//! available and default to none.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler, clock};
use scale_common::{GATE_KEYS, Gate};

/// The scheduled scaler.
pub struct Scheduled {
    tz: Tz,
    windows: Vec<(String, Cron, u32)>,
    default: u32,
    gate: Gate,
}

fn parse_windows(text: &str) -> Result<Vec<(String, Cron, u32)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            let (expr, count) = w
                .split_once("=>")
                .ok_or_else(|| format!("config `windows`: `{w}` is not `<cron> => <replicas>`"))?;
            let expr = expr.trim();
            let cron = Cron::new(expr)
                .parse()
                .map_err(|e| format!("config `windows`: `{expr}` is not a cron expression: {e}"))?;
            let count: u32 = count.trim().parse().map_err(|_| {
                format!(
                    "config `windows`: `{}` is not a replica count",
                    count.trim()
                )
            })?;
            Ok((expr.to_owned(), cron, count))
        })
        .collect()
}

impl Scaler for Scheduled {
    fn init(config: &Config) -> Result<Self, String> {
        let mut known = vec!["timezone", "windows", "default"];
        known.extend_from_slice(GATE_KEYS);
        config.allow_only(&known)?;
        let tz: Tz = config.get_or("timezone", "UTC").parse().map_err(|e| {
            format!("config `timezone`: {e} (write an IANA name, e.g. Europe/Berlin)")
        })?;
        let windows = parse_windows(config.get_or("windows", ""))?;
        if windows.is_empty() {
            return Err("config `windows` is required, e.g. `* 9-16 * * MON-FRI => 10`".into());
        }
        let default = config
            .parse("default")?
            .ok_or("config `default` is required: the count outside every window")?;
        Ok(Self {
            tz,
            windows,
            default,
            gate: Gate::from_config_over(config, Gate::immediate())?,
        })
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        let utc: DateTime<Utc> = i64::try_from(clock::wall_now() / 1_000_000)
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or_default();
        // Five-field expressions match second 0: match on the minute.
        let minute =
            utc - chrono::Duration::milliseconds(utc.timestamp_millis().rem_euclid(60_000));
        let local = minute.with_timezone(&self.tz);
        let when = local.format("%a %H:%M %Z");
        let hit = self
            .windows
            .iter()
            .find(|(_, cron, _)| cron.is_time_matching(&local).unwrap_or(false));
        let (count, why) = match hit {
            Some((expr, _, n)) => (*n, format!("schedule `{expr}` at {when} → {n}")),
            None => (
                self.default,
                format!("no window at {when}: default {}", self.default),
            ),
        };
        self.gate.decide(s, count, &why, false)
    }
}

edgeward_sdk::export!(scaler: Scheduled);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::FakeHost;
    use std::time::{Duration, SystemTime};

    const OFFICE: &[(&str, &str)] = &[
        ("timezone", "Europe/Berlin"),
        ("windows", "* 9-16 * * MON-FRI => 10; * * * * SAT,SUN => 2"),
        ("default", "3"),
    ];

    /// Desired count at UTC `y-m-d h:min`.
    fn at(host: &FakeHost, s: &Scheduled, ymdhm: (i32, u32, u32, u32, u32)) -> ScaleDecision {
        let (y, m, d, h, min) = ymdhm;
        let t = Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        host.set_wall_time(SystemTime::from(t));
        host.evaluate(s, &host.snapshot("api", 3))
    }

    #[test]
    fn business_hours_off_hours_and_weekends() {
        let host = FakeHost::new();
        let s: Scheduled = host.scaler(OFFICE).unwrap();
        // Friday 2026-03-27, CET (UTC+1).
        let got: Vec<u32> = [(7, 59), (8, 0), (15, 59), (16, 0)]
            .iter()
            .map(|&(h, m)| at(&host, &s, (2026, 3, 27, h, m)).desired_replicas)
            .collect();
        assert_eq!(got, [3, 10, 10, 3]);
        let d = at(&host, &s, (2026, 3, 27, 8, 0));
        assert_eq!(
            d.reason,
            "schedule `* 9-16 * * MON-FRI` at Fri 09:00 CET → 10"
        );
        // Saturday.
        let d = at(&host, &s, (2026, 3, 28, 12, 0));
        assert_eq!(d.desired_replicas, 2);
        let d = at(&host, &s, (2026, 3, 27, 20, 0));
        assert_eq!(d.reason, "no window at Fri 21:00 CET: default 3");
    }

    #[test]
    fn any_second_of_a_matching_minute_matches() {
        let host = FakeHost::new();
        let s: Scheduled = host.scaler(OFFICE).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 27, 8, 30, 42).unwrap();
        host.set_wall_time(SystemTime::from(t) + Duration::from_millis(123));
        let d = host.evaluate(&s, &host.snapshot("api", 3));
        assert_eq!(d.desired_replicas, 10, "{}", d.reason);
    }

    #[test]
    fn windows_follow_the_wall_clock_across_dst() {
        let host = FakeHost::new();
        let s: Scheduled = host.scaler(OFFICE).unwrap();
        // Sunday 2026-03-29 02:00 CET becomes 03:00 CEST (UTC+2): Monday's
        // 09:00 is 07:00 UTC, an hour earlier than the Friday before.
        assert_eq!(at(&host, &s, (2026, 3, 30, 6, 59)).desired_replicas, 3);
        let d = at(&host, &s, (2026, 3, 30, 7, 0));
        assert_eq!(d.desired_replicas, 10);
        assert!(d.reason.ends_with("at Mon 09:00 CEST → 10"), "{}", d.reason);
        assert_eq!(at(&host, &s, (2026, 3, 30, 14, 59)).desired_replicas, 10);
        assert_eq!(at(&host, &s, (2026, 3, 30, 15, 0)).desired_replicas, 3);
        // And back in autumn (2026-10-25): Monday 09:00 CET is 08:00 UTC again.
        assert_eq!(at(&host, &s, (2026, 10, 26, 7, 59)).desired_replicas, 3);
        assert_eq!(at(&host, &s, (2026, 10, 26, 8, 0)).desired_replicas, 10);
    }

    #[test]
    fn a_sustain_window_delays_the_evening_scale_in() {
        let host = FakeHost::new();
        let mut cfg = OFFICE.to_vec();
        cfg.push(("scale-in-after", "10m"));
        let s: Scheduled = host.scaler(&cfg).unwrap();
        // Both clocks move together, as in the gateway.
        let start = Utc.with_ymd_and_hms(2026, 3, 27, 15, 59, 0).unwrap();
        host.set_wall_time(SystemTime::from(start));
        let seq: Vec<u32> = [0, 1, 9, 1]
            .iter()
            .map(|&minutes| {
                host.advance(Duration::from_secs(60 * minutes));
                host.evaluate(&s, &host.snapshot("api", 10))
                    .desired_replicas
            })
            .collect();
        assert_eq!(seq, [10, 10, 10, 3]);
    }

    #[test]
    fn config_errors_say_what_to_write() {
        let host = FakeHost::new();
        let err = |c: &[(&str, &str)]| host.scaler::<Scheduled>(c).err().unwrap();
        assert!(
            err(&[
                ("timezone", "Mars/Olympus"),
                ("windows", "* * * * * => 1"),
                ("default", "1")
            ])
            .contains("config `timezone`")
        );
        assert!(
            err(&[("windows", "* * * => 1"), ("default", "1")]).contains("not a cron expression")
        );
        assert!(
            err(&[("windows", "* * * * *"), ("default", "1")]).contains("`<cron> => <replicas>`")
        );
        assert!(err(&[("windows", "* * * * * => 1")]).contains("`default` is required"));
    }
}

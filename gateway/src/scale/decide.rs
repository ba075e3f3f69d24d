//! Combining policies' answers into one decision, with the Kubernetes HPA's
//! semantics: the largest desired count wins, a tolerance band around the
//! current count, scale-up and scale-down stabilisation windows (the HPA's
//! `behavior.scaleUp/scaleDown.stabilizationWindowSeconds`), then `min`/`max`.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// Which way a count is from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    Hold,
}

impl Direction {
    pub fn of(current: u32, desired: u32) -> Self {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Self::Up,
            std::cmp::Ordering::Less => Self::Down,
            std::cmp::Ordering::Equal => Self::Hold,
        }
    }
}

/// One policy's answer as the host keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAnswer {
    pub plugin: String,
    pub desired_replicas: u32,
    pub direction: Direction,
    pub reason: String,
    /// The fault of this evaluation, when the answer is the previous one.
    pub fault: Option<String>,
}

/// The service's bounds and HPA settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min: u32,
    pub max: u32,
    pub tolerance: f64,
    pub up_stabilization: Duration,
    pub down_stabilization: Duration,
}

/// The combined decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub at_ms: u64,
    pub current_replicas: u32,
    pub desired_replicas: u32,
    pub direction: Direction,
    /// The policy whose answer won, if any answered.
    pub policy: Option<String>,
    pub reason: String,
}

/// The recommendations of the last stabilisation window.
#[derive(Debug, Default)]
pub struct Stabilizer {
    recs: VecDeque<(u64, u32)>,
    /// The count at the first evaluation: a gateway that just started (or a
    /// service just added) does not scale down before a window has passed.
    start: Option<(u64, u32)>,
}

/// Decides for one evaluation at `at_ms`.
pub fn combine(
    at_ms: u64,
    current: u32,
    answers: &[PolicyAnswer],
    limits: &Limits,
    stab: &mut Stabilizer,
) -> Decision {
    let winner = answers
        .iter()
        .fold(None::<&PolicyAnswer>, |best, a| match best {
            Some(b) if b.desired_replicas >= a.desired_replicas => Some(b),
            _ => Some(a),
        });
    let (mut rec, mut reason, policy) = match winner {
        Some(w) => (
            w.desired_replicas,
            format!("{}: {}", w.plugin, w.reason),
            Some(w.plugin.clone()),
        ),
        None => (current, "no policy has answered yet".to_owned(), None),
    };
    if current > 0 && rec != current {
        let ratio = f64::from(rec) / f64::from(current);
        // A hair of float noise is inside the band (11/10 is exactly 10 %).
        if (ratio - 1.0).abs() <= limits.tolerance + 1e-9 {
            reason.push_str(&format!(
                "; {rec} is within the ±{:.0}% tolerance of {current}",
                limits.tolerance * 100.0
            ));
            rec = current;
        }
    }

    // The HPA's stabilisation: up to the lowest recommendation of the up
    // window, down to the highest of the down window.
    let keep = limits.up_stabilization.max(limits.down_stabilization);
    let oldest = at_ms.saturating_sub(millis(keep));
    while stab.recs.front().is_some_and(|&(t, _)| t < oldest) {
        stab.recs.pop_front();
    }
    stab.recs.push_back((at_ms, rec));
    let within = |w: Duration| {
        let from = at_ms.saturating_sub(millis(w));
        stab.recs
            .iter()
            .filter(move |&&(t, _)| t >= from)
            .map(|&(_, r)| r)
    };
    let start = *stab.start.get_or_insert((at_ms, current));
    let up = within(limits.up_stabilization).min().unwrap_or(rec);
    let mut down = within(limits.down_stabilization).max().unwrap_or(rec);
    if !limits.down_stabilization.is_zero()
        && start.0 >= at_ms.saturating_sub(millis(limits.down_stabilization))
    {
        down = down.max(start.1);
    }
    let mut desired = current;
    if desired < up {
        desired = up;
    }
    if desired > down {
        desired = down;
    }
    if desired != rec {
        if rec < current {
            reason.push_str(&format!(
                "; scale-down to {rec} held at {desired} by the {}s stabilisation window",
                limits.down_stabilization.as_secs()
            ));
        } else {
            reason.push_str(&format!(
                "; scale-up to {rec} held at {desired} by the {}s stabilisation window",
                limits.up_stabilization.as_secs()
            ));
        }
    }
    let clamped = desired.clamp(limits.min, limits.max);
    if clamped != desired {
        let bound = if clamped > desired { "min" } else { "max" };
        reason.push_str(&format!("; {desired} clamped to {bound} {clamped}"));
    }
    Decision {
        at_ms,
        current_replicas: current,
        desired_replicas: clamped,
        direction: Direction::of(current, clamped),
        policy,
        reason,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(plugin: &str, desired: u32) -> PolicyAnswer {
        PolicyAnswer {
            plugin: plugin.into(),
            desired_replicas: desired,
            direction: Direction::Hold,
            reason: format!("wants {desired}"),
            fault: None,
        }
    }

    fn limits() -> Limits {
        Limits {
            min: 1,
            max: 10,
            tolerance: 0.1,
            up_stabilization: Duration::ZERO,
            down_stabilization: Duration::from_secs(300),
        }
    }

    #[test]
    fn the_largest_desired_count_wins() {
        let mut s = Stabilizer::default();
        let d = combine(
            0,
            2,
            &[answer("a", 3), answer("b", 5), answer("c", 4)],
            &limits(),
            &mut s,
        );
        assert_eq!((d.desired_replicas, d.direction), (5, Direction::Up));
        assert_eq!(d.policy.as_deref(), Some("b"));
        assert!(d.reason.starts_with("b: wants 5"), "{}", d.reason);
    }

    #[test]
    fn within_tolerance_holds() {
        let mut s = Stabilizer::default();
        let d = combine(0, 10, &[answer("a", 11)], &limits(), &mut s);
        assert_eq!(d.desired_replicas, 10);
        assert!(d.reason.contains("tolerance"), "{}", d.reason);
    }

    #[test]
    fn clamps_to_min_and_max() {
        let mut s = Stabilizer::default();
        let d = combine(0, 5, &[answer("a", 40)], &limits(), &mut s);
        assert_eq!(d.desired_replicas, 10);
        assert!(d.reason.contains("clamped to max 10"), "{}", d.reason);
        let mut l = limits();
        l.min = 3;
        l.down_stabilization = Duration::ZERO;
        let d = combine(0, 5, &[answer("a", 0)], &l, &mut Stabilizer::default());
        assert_eq!(d.desired_replicas, 3);
        assert!(d.reason.contains("clamped to min 3"), "{}", d.reason);
    }

    #[test]
    fn scale_down_waits_for_the_stabilisation_window() {
        let mut s = Stabilizer::default();
        let l = limits();
        // Load goes: 8 wanted, then 2 for a long time.
        let d = combine(0, 4, &[answer("a", 8)], &l, &mut s);
        assert_eq!(d.desired_replicas, 8);
        let mut seen = Vec::new();
        for t in (15..=330).step_by(15) {
            let d = combine(t * 1000, 8, &[answer("a", 2)], &l, &mut s);
            seen.push((t, d.desired_replicas));
        }
        // Held at 8 while the recommendation of 8 (at t=0) is in the window.
        assert!(
            seen.iter().filter(|(t, _)| *t <= 300).all(|(_, d)| *d == 8),
            "{seen:?}"
        );
        assert_eq!(seen.last().unwrap().1, 2, "{seen:?}");
        assert!(combine(331_000, 8, &[answer("a", 2)], &l, &mut s).desired_replicas == 2);
    }

    #[test]
    fn scale_up_is_immediate_and_stabilised_when_asked() {
        let mut l = limits();
        let d = combine(0, 2, &[answer("a", 6)], &l, &mut Stabilizer::default());
        assert_eq!(d.desired_replicas, 6);
        l.up_stabilization = Duration::from_secs(60);
        let mut s = Stabilizer::default();
        assert_eq!(
            combine(0, 2, &[answer("a", 2)], &l, &mut s).desired_replicas,
            2
        );
        let d = combine(30_000, 2, &[answer("a", 6)], &l, &mut s);
        assert_eq!(d.desired_replicas, 2, "{}", d.reason);
        assert_eq!(
            combine(61_000, 2, &[answer("a", 6)], &l, &mut s).desired_replicas,
            6
        );
    }

    #[test]
    fn scale_from_zero_is_not_a_tolerance_case() {
        let mut l = limits();
        l.min = 0;
        let d = combine(0, 0, &[answer("a", 1)], &l, &mut Stabilizer::default());
        assert_eq!((d.desired_replicas, d.direction), (1, Direction::Up));
    }

    #[test]
    fn without_answers_the_count_stays() {
        let d = combine(0, 3, &[], &limits(), &mut Stabilizer::default());
        assert_eq!((d.desired_replicas, d.policy), (3, None));
    }
}

//! The loop in process: a node with a scaled service, traffic recorded into
//! the upstream's window, ticks driven by the test.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::config;

fn node(policies: &str, service: &str) -> Option<Arc<Node>> {
    // None in a build that skipped plugins/.
    crate::builtins::bytes("scale-target-tracking")?;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:0\"}}]\n\
         upstreams:\n  api:\n    balancer: native\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n\
         routes:\n  - upstream: api\n\
         plugins:\n{policies}\
         scaling:\n  history: 3\n  services:\n    api:\n{service}"
    );
    let cfg = config::load_str(&yaml, Path::new("t.yaml")).expect("valid config");
    Some(Node::new(cfg).expect("plugins load"))
}

const RPS: &str = concat!(
    "  rps:\n    builtin: scale-target-tracking\n    deadline: 1s\n    config:\n",
    "      metric: request-rate\n      target: \"10\"\n",
    "      scale-in-after: 0s\n      scale-in-cooldown: 0s\n",
    "  steps:\n    builtin: scale-step\n    deadline: 1s\n    config:\n",
    "      metric: latency-p99\n      steps: \"0:1, 100:7\"\n",
);

/// `per_sec` requests of `latency` in each of the `secs` seconds before `end`.
fn traffic(node: &Node, end: Instant, per_sec: u32, secs: u32, latency: Duration) {
    let m = node.metrics.upstream("api");
    for s in 1..=secs {
        let at = end - Duration::from_secs(u64::from(s));
        for _ in 0..per_sec {
            m.window().record(at, latency, false);
        }
    }
}

#[test]
fn policies_combine_and_the_board_shows_them() {
    let board = Board::default();
    let Some(node) = node(
        RPS,
        "      max: 6\n      interval: 1s\n      window: 10s\n      policies: [rps, steps]\n",
    ) else {
        return;
    };
    // The windows count seconds from the node's start: measure in its future.
    let now = Instant::now() + Duration::from_secs(11);
    traffic(&node, now, 50, 10, Duration::from_millis(5));
    assert_eq!(board.tick(&node, now, 1_000), 1);
    // Not due again within the interval.
    assert_eq!(
        board.tick(&node, now + Duration::from_millis(500), 1_500),
        0
    );
    let v = board.view();
    let s = &v.services["api"];
    let inputs = s.inputs.as_ref().unwrap();
    assert_eq!(inputs.current_replicas, 2);
    assert!((inputs.request_rate - 50.0).abs() < 1e-9, "{inputs:?}");
    // 50 rps at 10 per replica → 5; p99 5ms → 1 (held at 2); 5 wins, under max 6.
    assert_eq!(
        (s.desired_replicas, s.direction),
        (5, Direction::Up),
        "{}",
        s.reason
    );
    assert!(
        s.reason.starts_with("rps: request-rate 25 rps per replica"),
        "{}",
        s.reason
    );
    let p: Vec<_> = s
        .policies
        .iter()
        .map(|p| (p.plugin.as_str(), p.desired_replicas))
        .collect();
    // The step policy wants 1 but waits out its default 5m scale-in window.
    assert_eq!(p, [("rps", 5), ("steps", 2)]);
    let text = node.metrics.render();
    assert!(
        text.contains(
            "edgeward_scale_desired_replicas{node=\"edgeward\",region=\"local\",service=\"api\"} 5"
        ) || text
            .lines()
            .any(|l| l.starts_with("edgeward_scale_desired_replicas{")
                && l.contains("service=\"api\"")
                && l.ends_with(" 5")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("edgeward_scale_current_replicas{") && l.ends_with(" 2")),
        "{text}"
    );

    // Slow responses: the step policy's 7 wins, clamped to max 6.
    let later = now + Duration::from_secs(20);
    traffic(&node, later, 50, 10, Duration::from_millis(400));
    board.tick(&node, later, 2_000);
    let s = &board.view().services["api"];
    assert_eq!(s.desired_replicas, 6, "{}", s.reason);
    assert!(s.reason.starts_with("steps: latency-p99"), "{}", s.reason);
    assert!(s.reason.ends_with("7 clamped to max 6"), "{}", s.reason);
    // History is bounded.
    for i in 2..6 {
        board.tick(&node, later + Duration::from_secs(i), 1_000 * (i + 1));
    }
    let s = &board.view().services["api"];
    assert_eq!(s.history.len(), 3);
    assert_eq!(s.evaluations, 6);
    let json = serde_json::to_value(board.view()).unwrap();
    assert_eq!(json["services"]["api"]["desiredReplicas"], 6);
    assert!(
        json["services"]["api"]["inputs"]["latencyP95Ms"]
            .as_f64()
            .unwrap()
            > 100.0
    );
}

#[test]
fn scale_down_waits_for_stabilisation_and_replicas_can_be_given() {
    let board = Board::default();
    let Some(node) = node(
        RPS,
        "      min: 2\n      max: 20\n      interval: 1s\n      window: 5s\n      replicas: 10\n      scale-down-stabilization: 3s\n      policies: [rps]\n",
    ) else {
        return;
    };
    let now = Instant::now();
    // No traffic: rps wants 0; the first recommendation is the 10 replicas.
    board.tick(&node, now, 0);
    let s = &board.view().services["api"];
    assert_eq!(s.current_replicas, 10);
    assert_eq!(s.desired_replicas, 10, "{}", s.reason);
    assert!(
        s.reason
            .contains("held at 10 by the 3s stabilisation window"),
        "{}",
        s.reason
    );
    for t in 1..=3 {
        board.tick(&node, now + Duration::from_secs(t), t * 1000);
    }
    let s = &board.view().services["api"];
    assert_eq!(s.desired_replicas, 10, "{}", s.reason);
    board.tick(&node, now + Duration::from_secs(4), 4_000);
    let s = &board.view().services["api"];
    assert_eq!(s.desired_replicas, 2, "{}", s.reason);
    assert!(s.reason.contains("clamped to min 2"), "{}", s.reason);
}

#[test]
fn every_builtin_policy_runs_in_the_gateway() {
    let board = Board::default();
    let sched = concat!(
        "  hours:\n    builtin: scale-scheduled\n    deadline: 1s\n    config:\n",
        "      timezone: Europe/Berlin\n      windows: \"* * * * * => 4\"\n      default: \"1\"\n",
    );
    let Some(node) = node(
        &format!("{RPS}{sched}"),
        "      max: 9\n      interval: 1s\n      policies: [rps, steps, hours]\n",
    ) else {
        return;
    };
    board.tick(&node, Instant::now(), 1_775_000_000_000);
    let s = &board.view().services["api"];
    let p: Vec<_> = s
        .policies
        .iter()
        .map(|p| (p.plugin.as_str(), p.desired_replicas, p.fault.is_none()))
        .collect();
    assert_eq!(
        p,
        [("rps", 0, true), ("steps", 2, true), ("hours", 4, true)],
        "{s:?}"
    );
    assert_eq!(s.desired_replicas, 4, "{}", s.reason);
    assert!(
        s.reason.starts_with("hours: schedule `* * * * *` at "),
        "{}",
        s.reason
    );
}

#[test]
fn traffic_for_a_service_at_zero_asks_for_one_at_once() {
    let board = Board::default();
    let Some(node) = node(
        RPS,
        "      min: 0\n      max: 4\n      interval: 1s\n      window: 5s\n      replicas: 0\n      policies: [rps]\n",
    ) else {
        return;
    };
    let now = Instant::now() + Duration::from_secs(6);
    board.tick(&node, now, 0);
    let s = &board.view().services["api"];
    assert_eq!(
        (s.current_replicas, s.desired_replicas),
        (0, 0),
        "{}",
        s.reason
    );
    // One request (a 502 from no endpoint) within the window.
    node.metrics
        .upstream("api")
        .window()
        .record(now, Duration::from_millis(1), true);
    board.tick(&node, now + Duration::from_secs(1), 1_000);
    let s = &board.view().services["api"];
    assert_eq!(
        (s.desired_replicas, s.direction),
        (1, Direction::Up),
        "{}",
        s.reason
    );
    assert_eq!(
        s.reason,
        "scale-from-zero: 1 requests and no healthy replica"
    );
}

#[test]
fn a_router_is_not_a_policy() {
    if crate::builtins::bytes("round-robin").is_none() {
        return;
    }
    let yaml = "listeners: [{address: \"127.0.0.1:0\"}]\n\
        upstreams:\n  api:\n    balancer: native\n    endpoints: [\"10.0.0.1:80\"]\n\
        routes:\n  - upstream: api\n\
        scaling:\n  services:\n    api:\n      max: 3\n      policies: [round-robin]\n";
    let cfg = config::load_str(yaml, Path::new("t.yaml")).expect("valid config");
    let err = Node::new(cfg)
        .err()
        .expect("a router cannot scale")
        .to_string();
    assert!(err.contains("t.yaml:12:18: plugins.round-robin"), "{err}");
    assert!(
        err.contains("not a component of the `scaler` world"),
        "{err}"
    );
}

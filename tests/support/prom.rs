//! `/metrics` read by a real Prometheus text parser: the Python
//! `prometheus_client` library (`pip install prometheus_client`, pinned in
//! `.ci/run`). A text it cannot parse is a test failure, never a skip.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// Parses stdin with `text_string_to_metric_families` and prints every sample as
/// JSON; non-finite values are sent as text (`inf`, `-inf`, `nan`).
const SCRIPT: &str = r#"
import json, math, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print(f"prometheus_client is not importable ({e}); pip install prometheus_client==0.26.0", file=sys.stderr)
    sys.exit(2)
text = sys.stdin.read()
out = []
try:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            v = float(s.value)
            out.append({"family": fam.name, "type": fam.type, "name": s.name,
                        "labels": dict(s.labels), "value": v if math.isfinite(v) else repr(v)})
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
json.dump(out, sys.stdout)
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawValue {
    Num(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct RawSample {
    family: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: RawValue,
}

/// One sample as the parser saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The family name (counters lose `_total`, histograms their suffixes).
    pub family: String,
    /// `counter`, `gauge`, `histogram`, `unknown`…
    pub kind: String,
    /// The sample's own name, e.g. `edgeward_requests_total`, `x_bucket`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name
            && labels
                .iter()
                .all(|(k, v)| self.labels.get(*k).is_some_and(|x| x == v))
    }
}

/// Every sample of one scrape.
#[derive(Debug, Clone)]
pub struct Samples {
    pub samples: Vec<Sample>,
    /// The text that was parsed, for failure messages.
    pub text: String,
}

/// Runs the Python parser on `text`. Panics — with the parser's message and the
/// text — when python3 or prometheus_client is missing or the text does not parse.
pub async fn parse(text: &str) -> Samples {
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python3 (needed to parse /metrics with prometheus_client)");
    let mut stdin = child.stdin.take().expect("python stdin");
    let input = text.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    });
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the prometheus_client parser finished within 30 s")
        .expect("wait for python3");
    let _ = writer.await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => panic!("{}", stderr.trim()),
        _ => panic!(
            "prometheus_client could not parse /metrics: {}\n--- the text:\n{text}",
            stderr.trim()
        ),
    }
    let raw: Vec<RawSample> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the parser helper printed no JSON ({e}): {stderr}"));
    let samples = raw
        .into_iter()
        .map(|r| Sample {
            family: r.family,
            kind: r.kind,
            name: r.name,
            labels: r.labels,
            value: match r.value {
                RawValue::Num(v) => v,
                RawValue::Text(t) => match t.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    _ => f64::NAN,
                },
            },
        })
        .collect();
    Samples {
        samples,
        text: text.to_owned(),
    }
}

/// `name{k="v",…}` for messages.
fn show(name: &str, labels: &[(&str, &str)]) -> String {
    let mut s = format!("{name}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}={v:?}");
    }
    s.push('}');
    s
}

impl Samples {
    /// Samples named `name` whose labels include every `labels` pair.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.matches(name, labels))
            .collect()
    }

    /// The single sample named `name` with these labels (others may exist),
    /// or `None`. Panics when several match, since the caller meant one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.all(name, labels);
        match found.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!(
                "{} matches {} samples, expected one: {:?}",
                show(name, labels),
                many.len(),
                many.iter().map(|s| &s.labels).collect::<Vec<_>>()
            ),
        }
    }

    /// As [`Samples::get`], panicking with the samples of that name when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {} in /metrics; samples named {name}: {:?}",
                show(name, labels),
                self.all(name, &[])
                    .iter()
                    .map(|s| (&s.labels, s.value))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// The sum over every sample named `name` with these labels (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.all(name, labels).iter().fold(0.0, |a, s| a + s.value)
    }

    /// The type the parser gave the family of a sample named `name`.
    pub fn kind_of(&self, name: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.kind.as_str())
    }

    /// Checks the histogram `base` (`_bucket`, `_count`, `_sum`) for one label
    /// set: buckets present, cumulative counts never decreasing as `le` grows, a
    /// `+Inf` bucket equal to `_count`. Returns `(count, sum)`.
    pub fn histogram(&self, base: &str, labels: &[(&str, &str)]) -> (f64, f64) {
        let what = show(base, labels);
        assert_eq!(
            self.kind_of(&format!("{base}_count")),
            Some("histogram"),
            "{what}: the parser does not see a histogram (missing `# TYPE {base} histogram`?)"
        );
        let count = self.value(&format!("{base}_count"), labels);
        let sum = self.value(&format!("{base}_sum"), labels);
        let mut buckets: Vec<(f64, f64)> = self
            .all(&format!("{base}_bucket"), labels)
            .iter()
            .map(|s| {
                let le = s
                    .labels
                    .get("le")
                    .unwrap_or_else(|| panic!("{what}: a bucket without `le`: {:?}", s.labels));
                let bound = match le.as_str() {
                    "+Inf" | "Inf" | "inf" => f64::INFINITY,
                    other => other
                        .parse()
                        .unwrap_or_else(|_| panic!("{what}: bucket le={other:?} is not a number")),
                };
                (bound, s.value)
            })
            .collect();
        assert!(!buckets.is_empty(), "{what}: no _bucket samples");
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in buckets.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "{what}: bucket le={} appears twice",
                w[0].0
            );
            assert!(
                w[0].1 <= w[1].1,
                "{what}: buckets are not cumulative: le={} has {} but le={} has {}",
                w[0].0,
                w[0].1,
                w[1].0,
                w[1].1
            );
        }
        let (last_le, last) = *buckets.last().expect("buckets");
        assert!(
            last_le.is_infinite(),
            "{what}: no le=\"+Inf\" bucket (largest is {last_le})"
        );
        assert_eq!(
            last, count,
            "{what}: the +Inf bucket ({last}) differs from _count ({count})"
        );
        (count, sum)
    }
}

//! Fuzz targets for every parser at the edge, run as ordinary tests on stable
//! (see README "Fuzzing"). Each target replays its seed corpus
//! (`gateway/fuzz/corpus/<target>/`) and earlier crashes (`gateway/fuzz/crashes/<target>/`),
//! then feeds generated inputs — corpus entries mutated, dictionary tokens spliced,
//! random bytes — for a time budget: `EDGEWARD_FUZZ_SECS` (default 12 s with `CI`
//! set, 2 s otherwise). A failure is shrunk by proptest, saved under `crashes/`,
//! and fails the test with the input.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgeward::fuzz::{self, PluginDecision, PluginEdit, PluginHeader};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });

/// Proptest catches the panics of a failing input and of every shrink step;
/// printed, they would bury the one report that matters.
fn quiet_panics_while_shrinking() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn budget() -> Duration {
    let default = if std::env::var_os("CI").is_some() {
        12
    } else {
        2
    };
    let secs = std::env::var("EDGEWARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// One edit of a corpus entry: (position, byte, kind).
fn mutate(mut v: Vec<u8>, edits: &[(usize, u8, u8, usize)], dict: &[&[u8]]) -> Vec<u8> {
    for &(at, byte, kind, token) in edits {
        let at = if v.is_empty() { 0 } else { at % (v.len() + 1) };
        match kind % 5 {
            0 => v.insert(at, byte),
            1 if at < v.len() => v[at] = byte,
            2 if at < v.len() => {
                let end = (at + 1 + byte as usize % 8).min(v.len());
                v.drain(at..end);
            }
            3 if !dict.is_empty() => {
                let t = dict[token % dict.len()];
                v.splice(at..at, t.iter().copied());
            }
            _ => {
                // Repeat a slice: long lists, deep nesting.
                let end = (at + 1 + byte as usize % 16).min(v.len());
                let piece = v[at.min(end)..end].to_vec();
                for _ in 0..(byte % 8) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
        }
    }
    v
}

fn inputs(corpus: Vec<Vec<u8>>, dict: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
    let seps: &'static [&'static [u8]] = &[b",", b";", b" ", b"=", b"\n", b"", b"\"", b", "];
    let mutated = (
        proptest::sample::select(corpus),
        prop::collection::vec(
            (any::<usize>(), any::<u8>(), any::<u8>(), any::<usize>()),
            0..8,
        ),
    )
        .prop_map(move |(v, edits)| mutate(v, &edits, dict));
    let spliced = prop::collection::vec(
        (
            proptest::sample::select(dict),
            proptest::sample::select(seps),
        ),
        0..16,
    )
    .prop_map(|parts| {
        parts
            .iter()
            .flat_map(|(t, s)| t.iter().chain(s.iter()))
            .copied()
            .collect()
    });
    let random = prop::collection::vec(any::<u8>(), 0..200);
    prop_oneof![5 => mutated, 3 => spliced, 1 => random].boxed()
}

/// Runs `target` over its corpus, its saved crashes, then generated inputs until
/// the budget is spent.
fn run(name: &str, dict: &'static [&'static [u8]], target: impl Fn(&[u8])) {
    let corpus_dir = root().join("corpus").join(name);
    let crash_dir = root().join("crashes").join(name);
    let mut corpus = files(&corpus_dir);
    assert!(
        !corpus.is_empty(),
        "no seed corpus in {}",
        corpus_dir.display()
    );
    for input in files(&crash_dir).iter().chain(&corpus) {
        target(input);
    }
    corpus.push(Vec::new());
    let strategy = inputs(corpus, dict);
    let deadline = Instant::now() + budget();
    let (mut rounds, mut cases) = (0u64, 0u64);
    while rounds == 0 || Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            max_shrink_iters: 2048,
            ..Config::default()
        });
        quiet_panics_while_shrinking();
        QUIET.with(|q| q.set(true));
        let outcome = runner.run(&strategy, |input| {
            target(&input);
            Ok::<(), TestCaseError>(())
        });
        QUIET.with(|q| q.set(false));
        match outcome {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                let at = crash_dir.join(format!("crash-{:016x}", fnv(&input)));
                std::fs::create_dir_all(&crash_dir).unwrap();
                std::fs::write(&at, &input).unwrap();
                panic!(
                    "fuzz target {name} failed: {why}\ninput ({} bytes, saved to {}): {:?}",
                    input.len(),
                    at.display(),
                    String::from_utf8_lossy(&input)
                );
            }
            Err(e) => panic!("fuzz target {name}: {e}"),
        }
        rounds += 1;
        cases += 256;
    }
    eprintln!("fuzz target {name}: {cases} generated inputs");
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

const EMPTY: &[u8] = b"";

fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split(|&c| c == b'\n').collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn yaml_config() {
    const DICT: &[&[u8]] = &[
        b"listeners:\n  - name: http\n    address: 127.0.0.1:0\n",
        b"upstreams:\n  a: { endpoints: [127.0.0.1:1] }\n",
        b"routes:\n  - name: r\n    match: { path-prefix: / }\n    upstream: a\n",
        b"cache: { max-size: 1MiB }",
        b"timeout: 99999999999999s",
        b"max-request-body: 18446744073709551616",
        b"&a [*a]",
        b"!!binary",
        b"{",
        b"- ",
        b"  ",
        b": ",
        b"\t",
        b"'",
        b"~",
        b"<<: *a",
        b"weight: -1",
        b"rate-limit: { requests: 0, per: 0s }",
    ];
    run("yaml_config", DICT, |b| fuzz::yaml_config(&text(b)));
}

#[test]
fn cache_control() {
    const DICT: &[&[u8]] = &[
        b"max-age=",
        b"s-maxage=",
        b"no-cache=\"set-cookie, x\"",
        b"private",
        b"public",
        b"no-store",
        b"must-understand",
        b"stale-while-revalidate=",
        b"stale-if-error=",
        b"max-stale",
        b"min-fresh=",
        b"99999999999999999999999",
        b"\"",
        b"\\",
        b"-1",
        b"\xc3\xa9",
    ];
    run("cache_control", DICT, |b| fuzz::cache_control(&lines(b)));
}

#[test]
fn age() {
    const DICT: &[&[u8]] = &[
        b"0",
        b"18446744073709551615",
        b"2147483648",
        b"-5",
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        b"Thu, 01 Jan 1970 00:00:00 GMT",
        b"Fri, 31 Dec 9999 23:59:59 GMT",
        b"7200, 0",
    ];
    run("age", DICT, |b| {
        let l = lines(b);
        let (head, rest) = l.split_first().unwrap_or((&EMPTY, &[]));
        let seed = fnv(b);
        fuzz::age(rest, head, seed, seed.rotate_left(17));
    });
}

#[test]
fn http_date() {
    const DICT: &[&[u8]] = &[
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        b"Sunday, 06-Nov-94 08:49:37 GMT",
        b"Sun Nov  6 08:49:37 1994",
        b"+0200",
        b"-9999",
        b"29 Feb 2023",
        b"9999",
        b"0000",
        b"24:00:00",
        b"23:59:60",
        b"UTC",
        b"Jan",
        b"31",
        b"1969",
    ];
    run("http_date", DICT, |b| fuzz::http_date(&text(b)));
}

#[test]
fn accept_encoding() {
    const DICT: &[&[u8]] = &[
        b"br",
        b"gzip",
        b"x-gzip",
        b"identity",
        b"*",
        b";q=0",
        b";q=1.000",
        b";q=0.5",
        b";q=1.0001",
        b";q=",
        b";Q=0.001",
        b"deflate",
        b"zstd",
    ];
    run("accept_encoding", DICT, |b| {
        fuzz::accept_encoding(&lines(b))
    });
}

#[test]
fn vary() {
    const DICT: &[&[u8]] = &[
        b"accept-encoding",
        b"Accept-Language",
        b"*",
        b"cookie",
        b"--",
        b"accept-language: en;q=0.5, fr;q=1",
        b"cookie: a=1",
        b"x: ",
        b"\xff",
    ];
    run("vary", DICT, |b| {
        let l = lines(b);
        let split = l.iter().position(|x| *x == b"--").unwrap_or(l.len());
        let req: Vec<(&[u8], &[u8])> = l[split.min(l.len())..]
            .iter()
            .filter_map(|x| {
                let i = x.iter().position(|&c| c == b':')?;
                Some((&x[..i], x[i + 1..].trim_ascii()))
            })
            .collect();
        fuzz::vary(&l[..split], &req);
    });
}

#[test]
fn cookies() {
    const DICT: &[&[u8]] = &[
        b"sid",
        b"=",
        b"; ",
        b";",
        b" ",
        b"\"",
        b"lang=fr",
        b"\xc3\xa9",
    ];
    run("cookies", DICT, |b| {
        let l = lines(b);
        let (name, rest) = l.split_first().unwrap_or((&EMPTY, &[]));
        fuzz::cookies(rest, &text(name));
    });
}

#[test]
fn route_path() {
    const DICT: &[&[u8]] = &[
        b"/admin",
        b"/%61dmin",
        b"/x/../admin",
        b"/./",
        b"//",
        b"%2e",
        b"%2E%2e",
        b"%2f",
        b"%5c",
        b"\\",
        b"%00",
        b"%",
        b"%zz",
        b"%41",
        b"..",
        b".",
        b"?",
        b"#",
        b"http://h",
        b";",
        b"%25",
    ];
    run("route_path", DICT, |b| {
        // "guard\ntarget": a guard that is itself a normal path, else /admin.
        let (guard, target) = match b.iter().position(|&c| c == b'\n') {
            Some(i) => (text(&b[..i]), &b[i + 1..]),
            None => (String::new(), b),
        };
        let normal = guard.starts_with('/')
            && !guard.contains('%')
            && matches!(
                edgeward::matching::normalize_path(&guard),
                Ok(std::borrow::Cow::Borrowed(_))
            );
        let guard = if normal { guard } else { "/admin".to_owned() };
        fuzz::route_path(target, &guard);
    });
}

#[test]
fn purge_json() {
    const DICT: &[&[u8]] = &[
        b"{\"url\":",
        b"{\"prefix\":",
        b"{\"tag\":",
        b"{\"all\":true}",
        b"\"/a/../b\"",
        b"\"https://h.example/a?b\"",
        b"\"relative\"",
        b"\"  \"",
        b"}",
        b"null",
        b"[",
        b"\"\\u0000\"",
    ];
    run("purge_json", DICT, fuzz::purge_json);
}

#[test]
fn load_report() {
    const DICT: &[&[u8]] = &[
        b"TEXT ",
        b"JSON ",
        b"cpu_utilization=",
        b"mem_utilization=",
        b"rps_fractional=",
        b"named_metrics.q=",
        b"NaN",
        b"inf",
        b"-0",
        b"1e309",
        b"{\"cpu_utilization\": 0.5, \"named_metrics\": {\"a\": 1e308}}",
        b"0.3",
    ];
    run("load_report", DICT, |b| fuzz::load_report(&text(b)));
}

/// Bytes → a decision and the ids offered: byte 0 the kind, byte 1 how many ids,
/// then the ids (small, so that gaps and repeats are common), the endpoint, a
/// status, and header lines `S name:value`, `A name:value`, `R name`.
fn decision(b: &[u8]) -> (PluginDecision, Vec<u32>) {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let n = usize::from(at(1) % 9);
    let ids: Vec<u32> = (0..n).map(|i| u32::from(at(2 + i) % 16)).collect();
    let endpoint = u32::from(at(2 + n)) % 20 + if at(3 + n) == 0xff { u32::MAX - 20 } else { 0 };
    let status = u16::from_le_bytes([at(4 + n), at(5 + n)]) % 700;
    let rest = b.get(6 + n..).unwrap_or(&[]);
    let header = |l: &[u8]| {
        let l = text(l);
        let (name, value) = l.split_once(':').unwrap_or((&l, ""));
        PluginHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    };
    let mut edits = Vec::new();
    for l in lines(rest) {
        match l.split_first() {
            Some((b'S', r)) => edits.push(PluginEdit::Set(header(r))),
            Some((b'A', r)) => edits.push(PluginEdit::Append(header(r))),
            Some((_, r)) => edits.push(PluginEdit::Remove(text(r))),
            None => {}
        }
    }
    let d = match at(0) % 3 {
        0 => {
            let half = edits.len() / 2;
            let response_headers = edits.split_off(half);
            PluginDecision::Forward {
                endpoint,
                request_headers: edits,
                response_headers,
            }
        }
        1 => PluginDecision::Respond {
            status,
            headers: lines(rest).into_iter().map(header).collect(),
            body_len: usize::from(at(3 + n)) << 9,
        },
        _ => PluginDecision::Unavailable,
    };
    (d, ids)
}

#[test]
fn router_decision() {
    const DICT: &[&[u8]] = &[
        b"\nSconnection:close",
        b"\nStransfer-encoding:chunked",
        b"\nAset-cookie:a=1",
        b"\nRx-a",
        b"\nSx:\x01",
        b"\nS:x",
        b"\nScontent-length:5",
        b"\xff",
        b"\x00",
    ];
    run("router_decision", DICT, |b| {
        let (d, ids) = decision(b);
        fuzz::router_decision(d, &ids);
    });
}

/// The README's promise, as a property: a path and its spellings an origin reads
/// as the same resource (`/a/../b`, `/%61`, `//a`, `/a/./b`) select the same route.
#[test]
fn normalised_spellings_select_the_same_route() {
    use edgeward::matching::{PathMatch, RouteMatch, normalize_path};
    let routes = [
        PathMatch::Exact("/admin".into()),
        PathMatch::Prefix("/admin".into()),
        PathMatch::Prefix("/api/v1".into()),
        PathMatch::Prefix("/".into()),
    ]
    .map(|p| RouteMatch {
        path: Some(p),
        ..RouteMatch::default()
    });
    let pick = |path: &str| -> Option<usize> {
        let n = normalize_path(path).ok()?;
        let h = http::HeaderMap::new();
        routes
            .iter()
            .position(|r| r.matches(&http::Method::GET, "h", &n, &h))
    };
    let segment = "[a-z]{1,3}|admin|api|v1";
    let config = Config {
        cases: if std::env::var_os("CI").is_some() {
            2000
        } else {
            300
        },
        failure_persistence: None,
        ..Config::default()
    };
    proptest!(config, |(segs in prop::collection::vec(segment, 1..5), spell in prop::collection::vec(0u8..6, 1..5))| {
        let path = format!("/{}", segs.join("/"));
        let want = pick(&path);
        prop_assert!(want.is_some());
        // Respell segment k in one of the ways an origin reads as the same.
        let mut out = String::new();
        for (k, s) in segs.iter().enumerate() {
            match spell[k % spell.len()] {
                0 => out.push_str(&format!("/{s}")),
                1 => out.push_str(&format!("/zz/../{s}")),
                2 => out.push_str(&format!("/./{s}")),
                3 => out.push_str(&format!("//{s}")),
                4 => {
                    let first = s.as_bytes()[0];
                    out.push_str(&format!("/%{first:02x}{}", &s[1..]));
                }
                _ => out.push_str(&format!("/%2e/{s}")),
            }
        }
        prop_assert_eq!(pick(&out), want, "{} vs {}", out, path);
    });
}

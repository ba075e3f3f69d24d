//! The stable hashes against `hash-vectors.tsv`, the file the Python and
//! JavaScript SDKs are tested against too: a router in any language hashes a
//! client or an endpoint to the same number.

use std::net::IpAddr;

use edgeward_sdk::hash;

#[test]
fn hashes_match_the_shared_known_answers() {
    let text = include_str!("hash-vectors.tsv");
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (f, input, want) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        let want: u64 = want.parse().unwrap();
        let got = match f {
            "fnv1a64" => hash::fnv1a64(input.as_bytes()),
            "text" => hash::text(input),
            "ip" => hash::ip(input.parse::<IpAddr>().unwrap()),
            "bucket" => {
                let (k, b) = input.split_once(' ').unwrap();
                hash::bucket(k.parse().unwrap(), b.parse().unwrap())
            }
            other => panic!("line {}: unknown function {other}", n + 1),
        };
        assert_eq!(got, want, "line {}: {line}", n + 1);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} vectors");
}

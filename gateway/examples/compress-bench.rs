//! Compression throughput per encoder and level, on the gateway's own encoders.
//! Run in release: `cargo run --release -p edgeward --example compress-bench`.
//! Prints MB/s of input consumed and the compressed size ratio; the machine and
//! its load shape the absolute numbers, so compare rows of one run.

use std::time::{Duration, Instant};

use edgeward::compress::{Encoder, Encoding, encode_all};

/// A catalogue-like JSON document of about `size` bytes (deterministic).
fn json_doc(size: usize) -> Vec<u8> {
    let mut out = b"[".to_vec();
    let mut i = 0u64;
    while out.len() < size {
        let x = i.wrapping_mul(2_654_435_761) % 100_000;
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"sku\":\"EW-{x:05}\",\"name\":\"Trail pack {}\",\"price\":{}.{:02},\"stock\":{},\"tags\":[\"outdoor\",\"bags\"]}},",
                x % 977,
                x % 300,
                x % 100,
                x % 41
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.push(b']');
    out
}

fn measure(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let started = Instant::now();
    let mut runs = 0u32;
    let mut out = 0;
    while runs < 3 || started.elapsed() < Duration::from_millis(700) {
        out = f();
        runs += 1;
    }
    (started.elapsed().as_secs_f64() / f64::from(runs), out)
}

fn main() {
    println!("input\tencoder\tlevel\tmode\tMB/s\tratio");
    for (name, doc) in [
        ("json-100KiB", json_doc(100 << 10)),
        ("json-1MiB", json_doc(1 << 20)),
    ] {
        let mb = doc.len() as f64 / 1e6;
        let rows = [
            (Encoding::Gzip, 1),
            (Encoding::Gzip, 5),
            (Encoding::Gzip, 9),
            (Encoding::Brotli, 1),
            (Encoding::Brotli, 4),
            (Encoding::Brotli, 5),
            (Encoding::Brotli, 9),
            (Encoding::Brotli, 11),
        ];
        for (enc, level) in rows {
            let (secs, size) = measure(|| encode_all(enc, level, &doc).unwrap().len());
            println!(
                "{name}\t{}\t{level}\twhole\t{:.1}\t{:.3}",
                enc.token(),
                mb / secs,
                size as f64 / doc.len() as f64
            );
        }
        // The streaming path flushes after every upstream chunk (16 KiB here).
        for (enc, level) in [(Encoding::Gzip, 5), (Encoding::Brotli, 4)] {
            let (secs, size) = measure(|| {
                let mut e = Encoder::new(enc, level).unwrap();
                let mut n = 0;
                for chunk in doc.chunks(16 << 10) {
                    n += e.push(chunk).unwrap().len();
                }
                n + e.finish().unwrap().len()
            });
            println!(
                "{name}\t{}\t{level}\tstream-16KiB\t{:.1}\t{:.3}",
                enc.token(),
                mb / secs,
                size as f64 / doc.len() as f64
            );
        }
    }
}

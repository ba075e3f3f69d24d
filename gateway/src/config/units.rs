//! Human-written durations (`30s`, `1500ms`, `2m`) and sizes (`64KiB`, `1MiB`).

use std::time::Duration;

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("\"{text}\" is not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"2m\"")
    })
}

pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" | "k" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => 0,
    };
    let n: Option<usize> = digits.parse().ok();
    match n.and_then(|n| n.checked_mul(scale)).filter(|_| scale > 0) {
        Some(v) => Ok(v),
        None => Err(format!(
            "\"{text}\" is not a size; write a whole number with an optional unit, e.g. \"65536\", \"64KiB\" or \"1MiB\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12XB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }
}

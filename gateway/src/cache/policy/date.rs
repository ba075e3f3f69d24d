//! HTTP dates read leniently, as RFC 9111 §4.2 encourages: besides the three
//! formats of RFC 9110 §5.6.7, the date-times of RFC 5322 (and the
//! liberties senders take with them) are accepted. What is not a date at all
//! (`0`, `-1`, `never`) is refused; a cache then treats an `Expires` as
//! already past (RFC 9111 §5.3).

use std::time::{Duration, SystemTime};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A date from a field value, or `None` when it is not one.
pub fn parse(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(t) = httpdate::parse_http_date(s) {
        return Some(t);
    }
    lenient(s)
}

fn lenient(s: &str) -> Option<SystemTime> {
    let (mut day, mut month, mut year, mut time, mut offset) = (None, None, None, None, None);
    // `06-Nov-94` (RFC 850) splits into its parts too.
    for tok in s
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .flat_map(|t| {
            if t.bytes().any(|b| b.is_ascii_alphabetic()) && t.contains('-') && !t.starts_with('-')
            {
                t.split('-').collect::<Vec<_>>()
            } else {
                vec![t]
            }
        })
    {
        let lower = tok.to_ascii_lowercase();
        if let Some(m) = MONTHS
            .iter()
            .position(|m| lower.len() >= 3 && lower.starts_with(m))
            .filter(|_| month.is_none())
        {
            month = Some(m as u32 + 1);
        } else if DAYS
            .iter()
            .any(|d| lower.len() >= 3 && lower.starts_with(d))
        {
            // The weekday is redundant; RFC 5322 says not to check it.
        } else if matches!(lower.as_str(), "gmt" | "ut" | "utc" | "z") {
            offset.get_or_insert(0);
        } else if tok.contains(':') && time.is_none() {
            time = Some(hms(tok)?);
        } else if let Some(sign) = tok
            .strip_prefix('+')
            .map(|r| (1, r))
            .or(tok.strip_prefix('-').map(|r| (-1, r)))
            && offset.is_none()
            && time.is_some()
        {
            let (sign, digits) = sign;
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hh: i64 = digits[..2].parse().ok()?;
            let mm: i64 = digits[2..].parse().ok()?;
            offset = Some(sign * (hh * 3600 + mm * 60));
        } else if !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = tok.parse().ok()?;
            match tok.len() {
                1 | 2 if day.is_none() => day = Some(n),
                2 if year.is_none() => year = Some(if n < 50 { 2000 + n } else { 1900 + n }),
                4 if year.is_none() => year = Some(n),
                _ => return None,
            }
        } else {
            return None;
        }
    }
    let (day, month, year) = (day?, month?, year?);
    let (h, m, sec) = time?;
    if !(1..=days_in(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day as u32);
    let secs = days * 86_400 + h * 3600 + m * 60 + sec - offset.unwrap_or(0);
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn hms(t: &str) -> Option<(i64, i64, i64)> {
    let parts: Vec<&str> = t.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let num = |p: &str, max: i64| -> Option<i64> {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok().filter(|v| *v <= max)
    };
    let h = num(parts[0], 23)?;
    let m = num(parts[1], 59)?;
    // A leap second reads as the second before it.
    let s = match parts.get(2) {
        Some(p) => num(p, 60)?.min(59),
        None => 0,
    };
    Some((h, m, s))
}

fn days_in(year: i64, month: u32) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<u64> {
        parse(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn lenient_dates() {
        let want = Some(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "sun, 06 nov 1994 08:49:37 gmt",
            "06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 09:49:37 +0100",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun,  06  Nov  1994  08:49:37  GMT ",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(at(s), want, "{s}");
        }
        assert_eq!(at("Sun, 06 Nov 1994 08:49 GMT"), Some(784_111_740));
        for s in [
            "0",
            "-1",
            "",
            "never",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT garbage",
            "1994-11-06",
        ] {
            assert_eq!(at(s), None, "{s:?}");
        }
        assert_eq!(at("Thu, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
    }
}

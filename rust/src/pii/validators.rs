//! Structure checks per kind: checksums (Luhn, IBAN mod-97), number rules (SSN area/group/serial, card issuer
//! prefixes), calendar dates, octets, token randomness, and the word boundaries around a candidate. Each
//! `validate_*` takes a regex hit and returns the (possibly trimmed) match with its base score, or None.

use std::sync::OnceLock;

use super::patterns::is_word_byte;
use super::{ByteMatch, PiiKind};

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

pub(super) fn num(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    })
}

/// Issuer prefixes of the card networks in use (Visa, Mastercard, Amex, Discover, JCB, Diners, `UnionPay`, Maestro).
fn card_prefix_ok(d: &[u8]) -> bool {
    let p2 = num(&d[..2]);
    let p4 = num(&d[..4]);
    let len = d.len();
    match d[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => ((51..=55).contains(&p2) && len == 16) || (p2 == 50 || (56..=58).contains(&p2)),
        b'2' => (2221..=2720).contains(&p4) && len == 16,
        b'3' => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&p4) && len >= 16)
                || ((300..=305).contains(&num(&d[..3])) || p2 == 36 || p2 == 38 || p2 == 39)
                    && len >= 14
        }
        b'6' => true, // Discover 6011/64x/65, UnionPay 62, Maestro 6x: the 6 range is almost all cards.
        _ => false,
    }
}

fn ssn_ok(d: &[u8]) -> bool {
    let area = num(&d[..3]);
    let group = num(&d[3..5]);
    let serial = num(&d[5..9]);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Numbers the SSA voided after they were published (Woolworth's wallet card and others).
    !matches!(&d[..9], b"078051120" | b"219099999" | b"123456789")
}

/// IBAN lengths per country (the SWIFT registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|(_, n)| *n)
}

fn iban_mod97(compact: &[u8]) -> bool {
    let mut rem = 0u32;
    let rotated = compact[4..].iter().chain(compact[..4].iter());
    for &c in rotated {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn date_ok(y: u32, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

fn current_year() -> u32 {
    static YEAR: OnceLock<u32> = OnceLock::new();
    *YEAR.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Good to the day at worst; a birth year is plausible up to this year.
        u32::try_from(1970 + secs / 31_556_952).unwrap_or(2100)
    })
}

fn month_number(word: &[u8]) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w: Vec<u8> = word
        .iter()
        .filter(|b| b.is_ascii_alphabetic())
        .map(u8::to_ascii_lowercase)
        .collect();
    for (i, name) in NAMES.iter().enumerate() {
        let n = name.as_bytes();
        let ok =
            w.as_slice() == n || w.as_slice() == &n[..3] || (i == 8 && w.as_slice() == b"sept");
        if ok {
            return u32::try_from(i + 1).ok();
        }
    }
    None
}

/// Parses the date forms the date pattern finds; returns (year, month, day) when one reading is a real date.
fn parse_date(s: &[u8]) -> Option<(u32, u32, u32)> {
    let mut nums: Vec<(u32, usize)> = Vec::new(); // value, digit count
    let mut month_word: Option<u32> = None;
    let mut seps: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() {
            let st = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            nums.push((num(&s[st..i]), i - st));
            // Ordinal suffixes.
            while i < s.len() && s[i].is_ascii_alphabetic() {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() {
            let st = i;
            while i < s.len() && (s[i].is_ascii_alphabetic() || s[i] == b'.') {
                i += 1;
            }
            let word = &s[st..i];
            if word.eq_ignore_ascii_case(b"of") {
                continue;
            }
            month_word = Some(month_number(word)?);
        } else {
            if matches!(c, b'-' | b'/' | b'.') {
                seps.push(c);
            }
            i += 1;
        }
    }
    if let Some(m) = month_word {
        let (&(d, _), &(y, ylen)) = (nums.first()?, nums.get(1)?);
        return (ylen == 4 && date_ok(y, m, d)).then_some((y, m, d));
    }
    if nums.len() != 3 || seps.len() != 2 || seps[0] != seps[1] {
        return None;
    }
    let (a, b, c) = (nums[0], nums[1], nums[2]);
    if a.1 == 4 {
        return date_ok(a.0, b.0, c.0).then_some((a.0, b.0, c.0));
    }
    let year = match c.1 {
        4 => c.0,
        2 if seps[0] == b'/' => {
            if c.0 + 2000 <= current_year() {
                c.0 + 2000
            } else {
                c.0 + 1900
            }
        }
        _ => return None,
    };
    if date_ok(year, a.0, b.0) {
        Some((year, a.0, b.0))
    } else if date_ok(year, b.0, a.0) {
        Some((year, b.0, a.0))
    } else {
        None
    }
}

/// A token (secret candidate) looks random: long enough, with digits and mixed case.
pub(super) fn looks_random(tok: &[u8]) -> bool {
    let digits = tok.iter().any(u8::is_ascii_digit);
    let upper = tok.iter().any(u8::is_ascii_uppercase);
    let lower = tok.iter().any(u8::is_ascii_lowercase);
    digits && upper && lower
}

pub(super) fn left_ok(t: &[u8], start: usize, cont: &[u8]) -> bool {
    if start == 0 {
        return true;
    }
    let p = t[start - 1];
    if is_word_byte(p) {
        return false;
    }
    if cont.contains(&p) && start >= 2 && t[start - 2].is_ascii_alphanumeric() {
        return false;
    }
    true
}

pub(super) fn right_ok(t: &[u8], end: usize, cont: &[u8]) -> bool {
    if end >= t.len() {
        return true;
    }
    let n = t[end];
    if is_word_byte(n) {
        return false;
    }
    if cont.contains(&n) && end + 1 < t.len() && t[end + 1].is_ascii_alphanumeric() {
        return false;
    }
    true
}

// Validators per kind: each returns the (possibly trimmed) match with its base score, or None.

pub(super) fn validate_email(t: &[u8], mut s: usize, e: usize) -> Option<ByteMatch> {
    // Internationalised local parts (RFC 6531): the ASCII pattern stops at a non-ASCII letter; extend over them.
    while s > 0
        && (t[s - 1] >= 0x80 || t[s - 1].is_ascii_alphanumeric() || matches!(t[s - 1], b'.' | b'_'))
    {
        s -= 1;
    }
    while s < e && matches!(t[s], b'.' | b'-' | b'+' | b'%') {
        s += 1;
    }
    let at = s + memchr::memchr(b'@', &t[s..e])?;
    let local = &t[s..at];
    if local.is_empty() || local.ends_with(b".") || memchr::memmem::find(local, b"..").is_some() {
        return None;
    }
    if e < t.len() && (t[e].is_ascii_alphanumeric() || t[e] == b'@') {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::EmailAddress,
        score: 0.9,
    })
}

pub(super) fn validate_card(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/") || !right_ok(t, e, b".-/") || (s > 0 && t[s - 1] == b'#') {
        return None;
    }
    let raw = &t[s..e];
    let digits: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_digit).collect();
    if !(13..=19).contains(&digits.len()) {
        return None;
    }
    let seps: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_digit())
        .collect();
    if seps.iter().any(|&c| c != seps[0]) {
        return None;
    }
    if !luhn(&digits) || !card_prefix_ok(&digits) || digits.iter().all(|&d| d == digits[0]) {
        return None;
    }
    let score = if seps.is_empty() { 0.6 } else { 0.8 };
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::CreditCard,
        score,
    })
}

pub(super) fn validate_ssn(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/") || !right_ok(t, e, b".-/") {
        return None;
    }
    let raw = &t[s..e];
    let digits: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_digit).collect();
    if digits.len() != 9 || !ssn_ok(&digits) {
        return None;
    }
    let score = match raw.get(3) {
        Some(b'-') => 0.6,
        Some(b' ') => 0.4,
        _ => 0.3,
    };
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::UsSsn,
        score,
    })
}

pub(super) fn validate_iban(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b"") {
        return None;
    }
    let want = iban_length(&t[s..s + 2])?;
    // Walk forward until `want` alphanumerics are consumed; a trailing group may belong to the next word.
    let mut count = 0;
    let mut end = s;
    let mut compact = Vec::with_capacity(want);
    for (i, &b) in t[s..e].iter().enumerate() {
        if b == b' ' {
            continue;
        }
        compact.push(b);
        count += 1;
        if count == want {
            end = s + i + 1;
            break;
        }
    }
    if count != want || !right_ok(t, end, b"") || !iban_mod97(&compact) {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end,
        kind: PiiKind::IbanCode,
        score: 0.9,
    })
}

pub(super) fn validate_ipv4(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    // right_ok also refuses a fifth part: a '.' followed by a digit continues the number.
    if !left_ok(t, s, b".-") || !right_ok(t, e, b".-") {
        return None;
    }
    for part in t[s..e].split(|&b| b == b'.') {
        if part.len() > 1 && part[0] == b'0' {
            return None;
        }
        if num(part) > 255 {
            return None;
        }
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::IpAddress,
        score: 0.6,
    })
}

pub(super) fn validate_ipv6(t: &[u8], s: usize, mut e: usize) -> Option<ByteMatch> {
    if s > 0 && (is_word_byte(t[s - 1]) || t[s - 1] == b':') {
        return None;
    }
    while e > s && matches!(t[e - 1], b'.') {
        e -= 1;
    }
    let colons = memchr::memchr_iter(b':', &t[s..e]).count();
    if colons < 2 || e < t.len() && is_word_byte(t[e]) {
        return None;
    }
    let text = std::str::from_utf8(&t[s..e]).ok()?;
    let parsed = text.parse::<std::net::Ipv6Addr>().is_ok()
        || (text.ends_with(':')
            && !text.ends_with("::")
            && text[..text.len() - 1].parse::<std::net::Ipv6Addr>().is_ok());
    if !parsed {
        return None;
    }
    let e = if text.ends_with(':') && !text.ends_with("::") {
        e - 1
    } else {
        e
    };
    // "::", the unspecified address, is punctuation: every other form std parses is an address, the uncompressed
    // IPv4-mapped one ("0:0:0:0:0:ffff:1.2.3.4") included.
    if &t[s..e] == b"::" {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::IpAddress,
        score: 0.7,
    })
}

pub(super) fn validate_date(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/:") || !right_ok(t, e, b".-/:") {
        return None;
    }
    let (y, _, _) = parse_date(&t[s..e])?;
    if y < 1900 || y > current_year() {
        return None;
    }
    // Part of a timestamp: "2024-01-15T10:30" or "2024-01-15 10:30".
    let rest = &t[e..t.len().min(e + 7)];
    let clock = |r: &[u8]| {
        r.len() >= 4
            && r[0].is_ascii_digit()
            && (r[1] == b':' || (r[1].is_ascii_digit() && r[2] == b':'))
    };
    if rest.first() == Some(&b'T') && clock(&rest[1..]) {
        return None;
    }
    if rest.first() == Some(&b' ') && clock(&rest[1..]) {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::DateOfBirth,
        score: 0.35,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{none, one};
    use super::*;

    /// `digits` padded with zeros to `len`.
    fn padded(digits: &str, len: usize) -> Vec<u8> {
        format!("{digits:0<len$}").into_bytes()
    }

    #[test]
    fn luhn_and_number_helpers() {
        for ok in ["79927398713", "4111111111111111", "378282246310005", "0"] {
            assert!(luhn(ok.as_bytes()), "{ok}");
        }
        for bad in ["79927398710", "4111111111111112", "378282246310006", "1"] {
            assert!(!luhn(bad.as_bytes()), "{bad}");
        }
        assert_eq!(num(b"0"), 0);
        assert_eq!(num(b"2720"), 2720);
        assert_eq!(
            num(b"99999999999999"),
            u32::MAX,
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn card_issuer_prefixes_and_lengths() {
        let ok = |digits: &str, len: usize| card_prefix_ok(&padded(digits, len));
        // Visa: 13, 16 or 19 digits.
        assert!(ok("4", 13) && ok("4", 16) && ok("4", 19));
        assert!(!ok("4", 14) && !ok("4", 15) && !ok("4", 17) && !ok("4", 18));
        // Mastercard 51-55 with 16 digits; 50 and 56-58 are Maestro, any length.
        assert!(ok("51", 16) && ok("55", 16) && !ok("51", 15) && !ok("55", 17));
        assert!(ok("50", 13) && ok("56", 19) && ok("58", 12) && !ok("59", 16));
        // Mastercard 2-series 2221-2720, 16 digits.
        assert!(ok("2221", 16) && ok("2720", 16));
        assert!(!ok("2220", 16) && !ok("2721", 16) && !ok("2221", 15));
        // Amex 34 and 37 with 15 digits; JCB 3528-3589 with 16 or more; Diners 300-305, 36, 38, 39 with 14 or more.
        assert!(ok("34", 15) && ok("37", 15) && !ok("34", 16) && !ok("37", 14) && !ok("35", 15));
        assert!(
            ok("3528", 16)
                && ok("3589", 19)
                && !ok("3527", 16)
                && !ok("3590", 16)
                && !ok("3528", 15)
        );
        assert!(ok("300", 14) && ok("305", 14) && ok("36", 14) && ok("38", 14) && ok("39", 16));
        assert!(!ok("306", 14) && !ok("36", 13) && !ok("33", 14));
        // The 6 range (Discover, UnionPay, Maestro) and nothing else.
        assert!(ok("6", 16) && ok("62", 19));
        for first in ["0", "1", "7", "8", "9"] {
            assert!(!ok(first, 16), "{first}");
        }
    }

    #[test]
    fn ssn_rules() {
        let ok = |d: &str| ssn_ok(d.as_bytes());
        assert!(ok("001010001") && ok("665123456") && ok("667123456") && ok("899991234"));
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "999123456",
            "123001234",
            "123450000",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        for voided in ["078051120", "219099999", "123456789"] {
            assert!(!ok(voided), "{voided}");
        }
    }

    #[test]
    fn iban_checksum_and_lengths() {
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(iban_mod97(b"NO9386011117947"));
        assert!(!iban_mod97(b"GB82WEST12345698765433"));
        assert!(!iban_mod97(b"GB83WEST12345698765432"));
        assert!(
            !iban_mod97(b"GB82WEXT12345698765432"),
            "a letter counts by its own value"
        );
        // Seven letters in a row: the remainder must be taken after every letter, not only after digits.
        assert!(iban_mod97(b"MT84MALT011000012345MTLCAST001S"));
        assert!(!iban_mod97(b"MT84MALT011000012345MTLCAST001T"));
        assert_eq!(iban_length(b"DE"), Some(22));
        assert_eq!(iban_length(b"NO"), Some(15));
        assert_eq!(iban_length(b"LC"), Some(32));
        assert_eq!(iban_length(b"US"), None);
    }

    #[test]
    fn calendar() {
        assert_eq!(days_in_month(2023, 1), 31);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28, "a century is not a leap year");
        assert_eq!(days_in_month(2000, 2), 29, "every fourth century is");
        assert_eq!(days_in_month(2023, 13), 0);
        assert!(date_ok(2024, 2, 29) && date_ok(2023, 12, 31) && date_ok(2023, 1, 1));
        assert!(
            !date_ok(2023, 2, 29)
                && !date_ok(2023, 0, 1)
                && !date_ok(2023, 13, 1)
                && !date_ok(2023, 1, 0)
        );
        let year = current_year();
        assert!((2025..2100).contains(&year), "{year}");
    }

    #[test]
    fn month_names() {
        assert_eq!(month_number(b"jan"), Some(1));
        assert_eq!(month_number(b"January"), Some(1));
        assert_eq!(month_number(b"Sept."), Some(9));
        assert_eq!(month_number(b"sep"), Some(9));
        assert_eq!(month_number(b"DEC"), Some(12));
        assert_eq!(month_number(b"ju"), None);
        assert_eq!(month_number(b"julys"), None);
        assert_eq!(month_number(b"octo"), None);
    }

    #[test]
    fn date_forms() {
        let date = |s: &str| parse_date(s.as_bytes());
        assert_eq!(date("1990-02-28"), Some((1990, 2, 28)));
        assert_eq!(date("1990/2/3"), Some((1990, 2, 3)));
        assert_eq!(date("1990-02-30"), None);
        assert_eq!(date("1990-02/28"), None, "the separators must agree");
        // Month first when both readings are dates, day first when only that one is.
        assert_eq!(date("12/05/1990"), Some((1990, 12, 5)));
        assert_eq!(date("25.12.1990"), Some((1990, 12, 25)));
        assert_eq!(date("25/13/1990"), None);
        // Two-digit years only with slashes: past years of this century, else the last century.
        assert_eq!(date("5/6/85"), Some((1985, 5, 6)));
        assert_eq!(date("5/6/05"), Some((2005, 5, 6)));
        let next = (current_year() + 1) % 100;
        assert_eq!(
            date(&format!("5/6/{next:02}")),
            Some((1900 + next, 5, 6)),
            "next year's two digits read as last century"
        );
        assert_eq!(date("5-6-85"), None);
        assert_eq!(date("12/05/1990 7"), None, "exactly three numbers");
        assert_eq!(date("/05/1990"), None);
        assert_eq!(
            date("3 March"),
            None,
            "a month name needs a year after the day"
        );
        assert_eq!(date("5/6/985"), None);
        assert_eq!(date("1/2/3/4"), None);
        // Month names, with ordinals and "of".
        assert_eq!(date("March 3, 1985"), Some((1985, 3, 3)));
        assert_eq!(date("3rd of March, 1985"), Some((1985, 3, 3)));
        assert_eq!(date("31st Dec 1999"), Some((1999, 12, 31)));
        assert_eq!(date("February 30, 1985"), None);
        assert_eq!(date("March 3, 85"), None);
        assert_eq!(date("Smarch 3, 1985"), None);
    }

    proptest::proptest! {
        /// The date parser answers any text of the date pattern's alphabet, never panics on it.
        #[test]
        fn parse_date_is_total(text in "[0-9A-Za-z ,./-]{0,24}") {
            let _ = parse_date(text.as_bytes());
        }
    }

    #[test]
    fn tokens_look_random_with_digits_and_both_cases() {
        assert!(looks_random(b"aB3"));
        assert!(!looks_random(b"ab3") && !looks_random(b"AB3") && !looks_random(b"aBc"));
    }

    #[test]
    fn boundaries() {
        let t = b"x 1234 y-1234-z 1234";
        assert!(left_ok(t, 2, b"-") && right_ok(t, 6, b"-"));
        assert!(left_ok(t, 0, b"") && right_ok(t, t.len(), b""));
        assert!(!left_ok(t, 3, b"") && !right_ok(t, 5, b""), "inside a word");
        // A continuation character glued to a word continues it: "y-1234" and "1234-z".
        assert!(!left_ok(t, 9, b"-") && !right_ok(t, 13, b"-"));
        assert!(
            left_ok(t, 9, b"") && right_ok(t, 13, b""),
            "unless it is not one"
        );
        assert!(left_ok(b"-1234", 1, b"-"), "at the start of the text");
        assert!(right_ok(b"1234-", 4, b"-"), "at the end of the text");
        assert!(left_ok(b" -1234", 2, b"-") && right_ok(b"1234- ", 4, b"-"));
    }

    /// `validate` run on `item` where it first occurs in `text`: the text and score of what it keeps.
    fn check(
        validate: fn(&[u8], usize, usize) -> Option<ByteMatch>,
        text: &str,
        item: &str,
    ) -> Option<(String, f32)> {
        let s = text.find(item).expect("item in text");
        validate(text.as_bytes(), s, s + item.len())
            .map(|m| (text[m.start..m.end].to_owned(), m.score))
    }

    fn kept(
        validate: fn(&[u8], usize, usize) -> Option<ByteMatch>,
        text: &str,
        item: &str,
    ) -> String {
        check(validate, text, item)
            .map(|(t, _)| t)
            .unwrap_or_default()
    }

    #[test]
    fn email_spans() {
        assert_eq!(
            check(
                validate_email,
                "mail jane@example.com now",
                "jane@example.com"
            ),
            Some(("jane@example.com".to_owned(), 0.9))
        );
        // The ASCII pattern stops at a non-ASCII letter: the span grows back over the whole local part.
        let text = "to a_b.jöhn@example.com";
        assert_eq!(
            kept(validate_email, text, "hn@example.com"),
            "a_b.jöhn@example.com"
        );
        assert_eq!(
            kept(validate_email, "x .jane@example.com", ".jane@example.com"),
            "jane@example.com"
        );
        assert_eq!(
            kept(
                validate_email,
                "x -+%jane@example.com",
                "-+%jane@example.com"
            ),
            "jane@example.com"
        );
        for bad in ["jane.@example.com", "ja..ne@example.com"] {
            assert_eq!(check(validate_email, bad, bad), None, "{bad}");
        }
        assert_eq!(
            check(validate_email, "jane@example.com@x", "jane@example.com"),
            None
        );
        assert_eq!(
            check(validate_email, "jane@example.comx", "jane@example.com"),
            None
        );
        assert_eq!(
            check(validate_email, "jane@example.com.", "jane@example.com").map(|m| m.1),
            Some(0.9)
        );
    }

    #[test]
    fn card_spans() {
        // 19 digits (Visa, UnionPay) is a card length too.
        assert_eq!(
            check(
                validate_card,
                "card 4111111111111111110 ok",
                "4111111111111111110"
            ),
            Some(("4111111111111111110".to_owned(), 0.6))
        );
        assert_eq!(
            check(validate_card, "4111 1111 1111 1111", "4111 1111 1111 1111").map(|m| m.1),
            Some(0.8)
        );
        assert_eq!(
            check(validate_card, "4111-1111-1111-1111", "4111-1111-1111-1111").map(|m| m.1),
            Some(0.8)
        );
        assert!(
            check(validate_card, "4222222222222", "4222222222222").is_some(),
            "13 digits"
        );
        for bad in [
            "4111 1111-1111 1111",  // mixed separators
            "41111111111111111103", // 20 digits
            "411111111116",         // 12 digits
            "4111111111111112",     // Luhn
            "9111111111111117",     // no issuer
            "6666666666666",        // one digit repeated (Luhn-valid, 6 range)
        ] {
            assert_eq!(check(validate_card, bad, bad), None, "{bad}");
        }
        assert_eq!(
            check(validate_card, "#4111111111111111", "4111111111111111"),
            None
        );
        assert_eq!(
            check(validate_card, "x4111111111111111", "4111111111111111"),
            None
        );
        assert_eq!(
            check(validate_card, "4111111111111111.5", "4111111111111111"),
            None
        );
    }

    #[test]
    fn ssn_spans() {
        let score = |text: &str| check(validate_ssn, text, text).map(|m| m.1);
        assert_eq!(score("536-22-1234"), Some(0.6));
        assert_eq!(score("536 22 1234"), Some(0.4));
        assert_eq!(score("536221234"), Some(0.3));
        assert_eq!(score("666-22-1234"), None);
        assert_eq!(check(validate_ssn, "x536-22-1234", "536-22-1234"), None);
        assert_eq!(check(validate_ssn, "536-22-1234-5", "536-22-1234"), None);
        assert_eq!(check(validate_ssn, "ab-536-22-1234", "536-22-1234"), None);
    }

    #[test]
    fn iban_spans() {
        let iban = "DE89 3704 0044 0532 0130 00";
        assert_eq!(
            check(validate_iban, &format!("pay {iban} thanks"), iban),
            Some((iban.to_owned(), 0.9))
        );
        // A regex hit that runs on is cut at the country's length.
        assert_eq!(
            kept(
                validate_iban,
                &format!("{iban} 1234"),
                &format!("{iban} 1234")
            ),
            iban
        );
        assert_eq!(
            kept(
                validate_iban,
                "GB82WEST12345698765432",
                "GB82WEST12345698765432"
            ),
            "GB82WEST12345698765432"
        );
        for bad in [
            "DE89 3704 0044 0532 0130",    // short
            "DE89 3704 0044 0532 0130 01", // checksum
            "US12 3456 7890 1234 5678 90", // no IBAN country
        ] {
            assert_eq!(check(validate_iban, bad, bad), None, "{bad}");
        }
        assert_eq!(
            check(
                validate_iban,
                "xDE89370400440532013000",
                "DE89370400440532013000"
            ),
            None
        );
        assert_eq!(
            check(
                validate_iban,
                "DE89370400440532013000X",
                "DE89370400440532013000X"
            ),
            None
        );
    }

    #[test]
    fn ipv4_spans() {
        assert_eq!(
            check(validate_ipv4, "at 192.168.1.20 now", "192.168.1.20"),
            Some(("192.168.1.20".to_owned(), 0.6))
        );
        for ok in ["0.0.0.0", "255.255.255.255", "10.0.0.5"] {
            assert!(check(validate_ipv4, ok, ok).is_some(), "{ok}");
        }
        for bad in ["256.1.1.1", "1.1.1.256", "01.2.3.4", "1.2.3.04"] {
            assert_eq!(check(validate_ipv4, bad, bad), None, "{bad}");
        }
        assert_eq!(
            check(validate_ipv4, "1.2.3.4.5", "1.2.3.4"),
            None,
            "a fifth part"
        );
        assert!(
            check(validate_ipv4, "at 1.2.3.4. Then", "1.2.3.4").is_some(),
            "a full stop"
        );
        assert_eq!(check(validate_ipv4, "v1.2.3.4", "1.2.3.4"), None);
        assert_eq!(check(validate_ipv4, "a-1.2.3.4", "1.2.3.4"), None);
        assert_eq!(check(validate_ipv4, "1.2.3.4-b", "1.2.3.4"), None);
    }

    #[test]
    fn ipv6_spans() {
        let ip = |text: &str| kept(validate_ipv6, text, text);
        assert_eq!(
            check(
                validate_ipv6,
                "fe80::1ff:fe23:4567:890a",
                "fe80::1ff:fe23:4567:890a"
            )
            .map(|m| m.1),
            Some(0.7)
        );
        assert_eq!(ip("::1"), "::1");
        assert_eq!(ip("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
        assert_eq!(ip("::ffff:192.168.1.1"), "::ffff:192.168.1.1");
        assert_eq!(ip("0:0:0:0:0:ffff:1.2.3.4"), "0:0:0:0:0:ffff:1.2.3.4");
        assert_eq!(ip("fe80::1:"), "fe80::1", "a trailing colon is punctuation");
        assert_eq!(ip("::1."), "::1", "so is a trailing full stop");
        assert_eq!(ip("fe80::1::"), "");
        assert_eq!(ip("1:2:3"), "", "neither compressed nor full");
        assert_eq!(ip("::"), "", "no digit");
        assert_eq!(ip("1:2:3:4:5:6:7:8:9"), "");
        assert_eq!(ip("::12345"), "", "a group has at most four digits");
        assert_eq!(kept(validate_ipv6, "x::1", "::1"), "");
        assert_eq!(kept(validate_ipv6, "1:::1", "::1"), "");
        assert_eq!(kept(validate_ipv6, "::1x", "::1"), "");
        assert_eq!(kept(validate_ipv6, "at ::1 now", "::1"), "::1");
    }

    #[test]
    fn date_spans() {
        assert_eq!(
            check(validate_date, "born 1990-02-28 in", "1990-02-28"),
            Some(("1990-02-28".to_owned(), 0.35))
        );
        assert!(check(validate_date, "1900-01-01", "1900-01-01").is_some());
        assert_eq!(check(validate_date, "1899-12-31", "1899-12-31"), None);
        let this_year = format!("{}-01-01", current_year());
        let next_year = format!("{}-01-01", current_year() + 1);
        assert!(check(validate_date, &this_year, &this_year).is_some());
        assert_eq!(check(validate_date, &next_year, &next_year), None);
        // Part of a timestamp.
        for text in [
            "2024-01-15T10:30",
            "2024-01-15 10:30",
            "2024-01-15 1:30:00",
            "2024-01-15T9:05",
        ] {
            assert_eq!(check(validate_date, text, "2024-01-15"), None, "{text}");
        }
        for text in [
            "2024-01-15 10 apples",
            "2024-01-15 at 10:30",
            "2024-01-15 1:3",
        ] {
            assert!(check(validate_date, text, "2024-01-15").is_some(), "{text}");
        }
        assert_eq!(
            check(validate_date, "2024-01-15T1", "2024-01-15"),
            None,
            "glued to a word"
        );
        assert_eq!(check(validate_date, "x2024-01-15", "2024-01-15"), None);
        assert_eq!(check(validate_date, "2024-01-15:x", "2024-01-15"), None);
        assert_eq!(check(validate_date, "1990-02-30", "1990-02-30"), None);
    }

    #[test]
    fn email() {
        one(
            "write to jane.doe+x@example.co.uk.",
            "jane.doe+x@example.co.uk",
            PiiKind::EmailAddress,
        );
        none("the @ sign and user@localhost");
    }

    #[test]
    fn cards() {
        one(
            "my visa 4111 1111 1111 1111 exp 12/29",
            "4111 1111 1111 1111",
            PiiKind::CreditCard,
        );
        one(
            "card 378282246310005",
            "378282246310005",
            PiiKind::CreditCard,
        );
        none("card 4111 1111 1111 1112");
    }

    #[test]
    fn ssn() {
        one("SSN: 536-22-1234", "536-22-1234", PiiKind::UsSsn);
        none("ssn 666-22-1234, 000-12-3456, 912-34-5678, 536-00-1234, 536-22-0000");
    }

    #[test]
    fn iban() {
        one(
            "pay to DE89 3704 0044 0532 0130 00 and thanks",
            "DE89 3704 0044 0532 0130 00",
            PiiKind::IbanCode,
        );
        one(
            "iban GB82WEST12345698765432",
            "GB82WEST12345698765432",
            PiiKind::IbanCode,
        );
        none("DE89 3704 0044 0532 0130 01");
    }

    #[test]
    fn ip() {
        one(
            "server at 192.168.1.20 is down",
            "192.168.1.20",
            PiiKind::IpAddress,
        );
        one(
            "ping fe80::1ff:fe23:4567:890a now",
            "fe80::1ff:fe23:4567:890a",
            PiiKind::IpAddress,
        );
        one("loopback ::1 only", "::1", PiiKind::IpAddress);
        one(
            "mapped 0:0:0:0:0:ffff:10.0.0.5 here",
            "0:0:0:0:0:ffff:10.0.0.5",
            PiiKind::IpAddress,
        );
        none("upgrade to version 1.2.3.4 today");
        none("see chapter 3.2.1.4 of the manual");
        one("send it to 10.0.0.5 now", "10.0.0.5", PiiKind::IpAddress);
        none("bad 256.1.1.1 and 1.2.3.4.5");
        none("at 10:30:45 sharp");
    }

    #[test]
    fn dob() {
        one(
            "I was born on 12/05/1990 in Ohio",
            "12/05/1990",
            PiiKind::DateOfBirth,
        );
        one("DOB: March 3, 1985", "March 3, 1985", PiiKind::DateOfBirth);
        one(
            "date of birth 1979-02-28.",
            "1979-02-28",
            PiiKind::DateOfBirth,
        );
        none("meeting on 2021-03-04");
        none("born 1990-02-30");
    }
}

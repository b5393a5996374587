//! Phone numbers: a candidate run is split into digit groups, each range of groups is scored by its shape
//! (international, North American 3-3-4, national with a trunk 0, local 3-4), and the best ones are kept.

use super::validators::{left_ok, right_ok};
use super::{ByteMatch, PiiKind};

struct Group {
    start: usize,
    end: usize,
    paren: bool,
    sep_before: u8,
}

/// Splits a phone candidate into digit groups. `None` when parentheses are unbalanced or nested oddly.
fn phone_groups(s: &[u8]) -> Option<(bool, Vec<Group>)> {
    let mut i = 0;
    let plus = s.first() == Some(&b'+');
    if plus {
        i = 1;
    }
    let mut groups = Vec::new();
    let mut sep = 0u8;
    let mut open = false;
    while i < s.len() {
        match s[i] {
            b'(' => {
                if open {
                    return None;
                }
                open = true;
                i += 1;
            }
            b')' => {
                if !open {
                    return None;
                }
                open = false;
                if let Some(g) = groups.last_mut() {
                    let g: &mut Group = g;
                    g.paren = true;
                }
                i += 1;
            }
            b' ' | b'.' | b'-' => {
                sep = s[i];
                i += 1;
            }
            _ => {
                let st = i;
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
                if st == i {
                    return None;
                }
                groups.push(Group {
                    start: st,
                    end: i,
                    paren: false,
                    sep_before: sep,
                });
                sep = 0;
            }
        }
    }
    if open {
        return None;
    }
    Some((plus, groups))
}

/// Scores a run of groups as a phone number; 0 when it has no phone shape.
fn phone_shape(s: &[u8], plus: bool, groups: &[Group]) -> f32 {
    let lens: Vec<usize> = groups.iter().map(|g| g.end - g.start).collect();
    let mut digits: Vec<u8> = Vec::with_capacity(16);
    for g in groups {
        digits.extend_from_slice(&s[g.start..g.end]);
    }
    let n = digits.len();
    let seps: Vec<u8> = groups.iter().skip(1).map(|g| g.sep_before).collect();
    let paren_at = groups.iter().position(|g| g.paren);
    if groups.iter().filter(|g| g.paren).count() > 1 {
        return 0.0;
    }
    if plus {
        if !(8..=15).contains(&n) || digits[0] == b'0' || paren_at == Some(0) {
            return 0.0;
        }
        if groups.len() > 1 && (lens[0] > 4 || lens[1..].iter().any(|&l| l > 8)) {
            return 0.0;
        }
        return if groups.len() == 1 { 0.6 } else { 0.75 };
    }
    // North American Numbering Plan: (area) exchange-line, with an optional leading 1.
    let nanp = |off: usize| -> f32 {
        let l = &lens[off..];
        let area = &s[groups[off].start..groups[off].end];
        if l == [3, 3, 4] && (b'2'..=b'9').contains(&area[0]) {
            let (s1, s2) = (groups[off + 1].sep_before, groups[off + 2].sep_before);
            if groups[off].paren && paren_at == Some(off) {
                return if matches!(s1, 0 | b' ') && matches!(s2, b'-' | b' ' | b'.') {
                    0.8
                } else {
                    0.0
                };
            }
            if paren_at.is_some() || s1 != s2 {
                return 0.0;
            }
            return match s1 {
                b'-' | b'.' => 0.7,
                b' ' => 0.55,
                _ => 0.0,
            };
        }
        if l == [10] && (b'2'..=b'9').contains(&area[0]) && paren_at.is_none() {
            return 0.3;
        }
        0.0
    };
    let north_american = match lens.as_slice() {
        [3, 3, 4] | [10] => nanp(0),
        [1, 3, 3, 4] if digits[0] == b'1' => nanp(1),
        _ => 0.0,
    };
    if north_american > 0.0 {
        return north_american;
    }
    // National numbers with a trunk 0 (UK, EU): 10-11 digits in 2-4 groups.
    if digits[0] == b'0' && (10..=11).contains(&n) && digits[1] != b'0' {
        if groups.len() == 1 {
            return 0.3;
        }
        let french = lens == [2, 2, 2, 2, 2];
        let group_ok = french
            || (2..=4).contains(&groups.len())
                && lens.iter().all(|&l| (2..=6).contains(&l))
                && lens[0] <= 5;
        let sep_ok = seps.iter().all(|&c| c == seps[0]) && matches!(seps[0], b' ' | b'-');
        if group_ok && sep_ok && paren_at.is_none() {
            return 0.6;
        }
        if group_ok && paren_at == Some(0) {
            return 0.6;
        }
        return 0.0;
    }
    // Seven-digit local number: needs a context word.
    if lens == [3, 4] && seps == [b'-'] && digits[0] != b'0' && digits[0] != b'1' {
        return 0.3;
    }
    0.0
}

pub(super) fn validate_phone(t: &[u8], s: usize, e: usize, out: &mut Vec<ByteMatch>) {
    // Trailing separators and a dangling '(' are not part of the number.
    let mut e = e;
    while e > s && matches!(t[e - 1], b'.' | b'-' | b' ' | b'(') {
        e -= 1;
    }
    let raw = &t[s..e];
    let Some((plus, groups)) = phone_groups(raw) else {
        return;
    };
    // A run glued to a word on either side ("DE89 3704 ...", "...1234abc") is part of an identifier: no phone
    // number hides inside it.
    if groups.is_empty() || groups.len() > 12 || !left_ok(t, s, b"") || !right_ok(t, e, b"") {
        return;
    }
    // The run may hold several numbers separated by spaces, or a number next to other figures ("on 2024-01-15
    // 555-123-4567"): take the best group range, then look again left and right of it.
    let mut todo = vec![(0, groups.len())];
    while let Some((lo, hi)) = todo.pop() {
        if let Some((i, j, m)) = best_phone(t, s, raw, plus, &groups, lo, hi) {
            out.push(m);
            todo.push((lo, i));
            todo.push((j, hi));
        }
    }
}

/// The phone number with the most digits among group ranges within [lo, hi), as (i, j, match).
fn best_phone(
    t: &[u8],
    s: usize,
    raw: &[u8],
    plus: bool,
    groups: &[Group],
    lo: usize,
    hi: usize,
) -> Option<(usize, usize, ByteMatch)> {
    let ng = groups.len();
    let mut best: Option<(usize, usize, f32, usize, usize, usize)> = None; // (abs s, abs e, score, digits, i, j)
    for i in lo..hi {
        for j in (i + 1..=hi).rev() {
            let sub = &groups[i..j];
            let use_plus = plus && i == 0;
            let score = phone_shape(raw, use_plus, sub);
            if score <= 0.0 {
                continue;
            }
            // Sub-range edges: what surrounds the chosen groups must not continue the number.
            let st = if use_plus {
                0
            } else {
                sub[0].start - usize::from(sub[0].paren)
            };
            let en = sub[sub.len() - 1].end + usize::from(sub[sub.len() - 1].paren);
            let (abs_s, abs_e) = (s + st, s + en);
            let left = if i == 0 {
                left_ok(t, abs_s, b".-/")
                    && !(abs_s > 0 && matches!(t[abs_s - 1], b'#' | b'$' | b'@' | b'+'))
            } else {
                sub[0].sep_before == b' ' && !raw[..st].ends_with(b"- ")
            };
            let right = if j == ng {
                right_ok(t, abs_e, b".-/:") && !(abs_e < t.len() && matches!(t[abs_e], b'@' | b'%'))
            } else {
                groups[j].sep_before == b' '
            };
            if !left || !right {
                continue;
            }
            let dc: usize = sub.iter().map(|g| g.end - g.start).sum();
            if best.is_none_or(|b| dc > b.3 || (dc == b.3 && score > b.2)) {
                best = Some((abs_s, abs_e, score, dc, i, j));
            }
        }
    }
    let (bs, be, score, _, i, j) = best?;
    Some((
        i,
        j,
        ByteMatch {
            start: bs,
            end: be,
            kind: PiiKind::PhoneNumber,
            score,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{none, one};
    use super::*;

    #[test]
    fn phones() {
        one(
            "call me at (555) 123-4567 tonight",
            "(555) 123-4567",
            PiiKind::PhoneNumber,
        );
        one(
            "London office: +44 20 7946 0958.",
            "+44 20 7946 0958",
            PiiKind::PhoneNumber,
        );
        one("mobile 555-867-5309", "555-867-5309", PiiKind::PhoneNumber);
        one(
            "ring 020 7946 0958 please",
            "020 7946 0958",
            PiiKind::PhoneNumber,
        );
        one(
            "on 2024-01-15 555-123-4567 called",
            "555-123-4567",
            PiiKind::PhoneNumber,
        );
        none("release 1.2.3.4 shipped");
        none("order #5551234567 shipped");
        none("order number 555-123-4567 shipped");
        none("at 2024-01-15 10:30:00 UTC");
        none("scores 10 20 30 40 50");
    }
}

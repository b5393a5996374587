//! The scanner: pass 1 finds digit clusters, `@` and trigger hits and opens windows; pass 2 runs the per-kind
//! regexes inside them and validates each hit; then context words adjust scores and overlaps are resolved.
//! Secrets are matched anchored at their trigger. Offsets are converted to characters last.

use regex_automata::{Anchored, Input};

use super::patterns::{
    any_word, compiled, context_words, is_word_byte, lower_window, Trigger, CTX_AFTER, CTX_BEFORE,
    NEGATIVE_WORDS, TRIGGERS, VERSION_WORDS,
};
use super::phone::validate_phone;
use super::validators::{
    looks_random, validate_card, validate_date, validate_email, validate_iban, validate_ipv4,
    validate_ipv6, validate_ssn,
};
use super::{ByteMatch, PiiKind, PiiMatch};
use crate::error::CoreError;

/// A configured scanner: which kinds to report and the score under which matches are dropped.
#[derive(Debug, Clone)]
pub struct Scanner {
    min_score: f32,
    enabled: [bool; 8],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            min_score: 0.5,
            enabled: [true; 8],
        }
    }
}

/// Where hot windows for one trigger class extend, in bytes.
const DIGIT_PAD: usize = 32;
/// Digits closer than this belong to one cluster ("3rd of September, 1985" has a 15-byte gap).
const DIGIT_GAP: usize = 16;
/// The fewest digits any digit-based item has (an IPv4 address, a date like 1/2/85).
const MIN_DIGITS: usize = 4;
const AT_BEFORE: usize = 64;
const AT_AFTER: usize = 256;

fn push_window(windows: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    if let Some(last) = windows.last_mut() {
        if start <= last.1 {
            last.1 = last.1.max(end);
            return;
        }
    }
    windows.push((start, end));
}

impl Scanner {
    /// `min_score` in [0, 1]; `kinds` restricts what is reported (all kinds when `None`).
    pub fn new(min_score: f32, kinds: Option<&[PiiKind]>) -> Result<Self, CoreError> {
        if !(0.0..=1.0).contains(&min_score) {
            return Err(CoreError::InvalidArgument(format!(
                "min_score must be within [0, 1], got {min_score}"
            )));
        }
        let mut enabled = [kinds.is_none(); 8];
        for k in kinds.unwrap_or(&[]) {
            enabled[k.index()] = true;
        }
        // Compile the patterns now rather than on the first request.
        let _ = compiled();
        Ok(Scanner { min_score, enabled })
    }

    #[must_use]
    pub fn min_score(&self) -> f32 {
        self.min_score
    }

    #[must_use]
    pub fn kinds(&self) -> Vec<PiiKind> {
        PiiKind::ALL
            .into_iter()
            .filter(|k| self.enabled[k.index()])
            .collect()
    }

    /// Matches with character offsets, sorted by start.
    #[must_use]
    pub fn scan(&self, text: &str) -> Vec<PiiMatch> {
        let found = self.scan_bytes(text);
        to_char_offsets(text, &found)
    }

    /// Matches with byte offsets, sorted by start, non-overlapping.
    #[must_use]
    pub fn scan_bytes(&self, text: &str) -> Vec<ByteMatch> {
        let c = compiled();
        let t = text.as_bytes();
        let mut cands: Vec<ByteMatch> = Vec::new();

        // Pass 1: hot bytes and trigger hits -> windows.
        let mut digit_windows: Vec<(usize, usize)> = Vec::new();
        let mut at_windows: Vec<(usize, usize)> = Vec::new();
        let want_digits =
            self.enabled.iter().enumerate().any(|(i, &e)| {
                e && i != PiiKind::EmailAddress.index() && i != PiiKind::Secret.index()
            });
        let secrets = self.enabled[PiiKind::Secret.index()];
        let want_email = self.enabled[PiiKind::EmailAddress.index()];
        let n = t.len();
        // Digits come in clusters (each digit within DIGIT_GAP bytes of the previous one). Every digit-based item
        // has at least MIN_DIGITS digits in one cluster, so clusters with fewer ("12 services", "Q3", "v2.4") open
        // no window: chat text has many such small numbers and this keeps the regexes off them.
        let mut cluster: Option<(usize, usize, usize)> = None; // (first digit, last digit, digit count)
        let flush = |c: Option<(usize, usize, usize)>, windows: &mut Vec<(usize, usize)>| {
            if let Some((first, last, count)) = c {
                if count >= MIN_DIGITS {
                    push_window(
                        windows,
                        first.saturating_sub(DIGIT_PAD),
                        (last + 1 + DIGIT_PAD).min(n),
                    );
                }
            }
        };
        for (i, &b) in t.iter().enumerate() {
            if b.is_ascii_digit() {
                cluster = match cluster {
                    Some((first, last, count)) if i - last <= DIGIT_GAP => {
                        Some((first, i, count + 1))
                    }
                    other => {
                        flush(other, &mut digit_windows);
                        Some((i, i, 1))
                    }
                };
            } else if b == b'@' && want_email {
                push_window(
                    &mut at_windows,
                    i.saturating_sub(AT_BEFORE),
                    (i + 1 + AT_AFTER).min(n),
                );
            }
        }
        if want_digits {
            flush(cluster, &mut digit_windows);
        } else {
            digit_windows.clear();
        }
        let mut ipv6_windows: Vec<(usize, usize)> = Vec::new();
        // Triggers inside a secret already found are skipped: a key block or token is matched once, and a run of
        // repeated prefixes ("eyJeyJ...", nested BEGIN lines) costs linear time, not quadratic.
        let mut skip_until = 0usize;
        for m in c.triggers.find_iter(t) {
            let inside = m.start() < skip_until;
            match TRIGGERS[m.pattern().as_usize()].1 {
                Trigger::Token if secrets && !inside => {
                    if let Some(end) = secret_token(t, m.start(), &mut cands) {
                        skip_until = end;
                    }
                }
                Trigger::Pem if secrets && !inside => {
                    if let Some(end) = secret_pem(t, m.start(), &mut cands) {
                        skip_until = end;
                    }
                }
                Trigger::AwsContext if secrets => secret_aws(t, m.end(), &mut cands),
                Trigger::Ipv6 if self.enabled[PiiKind::IpAddress.index()] => {
                    push_window(
                        &mut ipv6_windows,
                        m.start().saturating_sub(48),
                        (m.end() + 48).min(n),
                    );
                }
                _ => {}
            }
        }

        // Pass 2: per-kind regexes inside the windows.
        for &(ws, we) in &at_windows {
            for m in c.email.find_iter(Input::new(t).range(ws..we)) {
                if let Some(mm) = validate_email(t, m.start(), m.end()) {
                    cands.push(mm);
                }
            }
        }
        for &(ws, we) in &ipv6_windows {
            for m in c.ipv6.find_iter(Input::new(t).range(ws..we)) {
                if let Some(mm) = validate_ipv6(t, m.start(), m.end()) {
                    cands.push(mm);
                }
            }
        }
        for &(ws, we) in &digit_windows {
            self.scan_digit_window(t, ws, we, &mut cands);
        }

        self.finish(t, cands)
    }

    fn scan_digit_window(&self, t: &[u8], ws: usize, we: usize, cands: &mut Vec<ByteMatch>) {
        let c = compiled();
        let input = || Input::new(t).range(ws..we);
        let on = |k: PiiKind| self.enabled[k.index()];
        if on(PiiKind::CreditCard) {
            for m in c.card.find_iter(input()) {
                cands.extend(validate_card(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::UsSsn) {
            for m in c.ssn.find_iter(input()) {
                cands.extend(validate_ssn(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::IbanCode) {
            // IBANs start with two letters, which may sit just before the window's first digit.
            let iban_in = Input::new(t).range(ws..we);
            for m in c.iban.find_iter(iban_in) {
                cands.extend(validate_iban(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::IpAddress) {
            for m in c.ipv4.find_iter(input()) {
                cands.extend(validate_ipv4(t, m.start(), m.end()));
            }
            for m in c.ipv6.find_iter(input()) {
                cands.extend(validate_ipv6(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::DateOfBirth) {
            for m in c.date.find_iter(input()) {
                cands.extend(validate_date(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::PhoneNumber) {
            for m in c.phone.find_iter(input()) {
                validate_phone(t, m.start(), m.end(), cands);
            }
        }
    }

    /// Context boosts, the score floor, and overlap resolution.
    fn finish(&self, t: &[u8], mut cands: Vec<ByteMatch>) -> Vec<ByteMatch> {
        cands.retain(|m| self.enabled[m.kind.index()]);
        for m in &mut cands {
            m.score = adjust_score(t, m);
        }
        cands.retain(|m| m.score >= self.min_score && m.score > 0.0);
        resolve_overlaps(cands)
    }
}

// Secrets, matched anchored at their trigger; each returns the end of what it found.

fn secret_token(t: &[u8], at: usize, cands: &mut Vec<ByteMatch>) -> Option<usize> {
    // A token starts a word: "xsk-..." or "foo-sk-..." are not keys (and a run of prefixes is searched once).
    if at > 0 && (is_word_byte(t[at - 1]) || t[at - 1] == b'-') {
        return None;
    }
    let c = compiled();
    let input = Input::new(t).range(at..).anchored(Anchored::Yes);
    let m = c.token.find(input)?;
    let s = m.start();
    // Dashes are token characters, but a run of five starts a PEM armour line glued to the token.
    let e = memchr::memmem::find(&t[s..m.end()], b"-----").map_or(m.end(), |p| s + p);
    if e - s < 16 {
        return None;
    }
    if e < t.len() && (t[e].is_ascii_alphanumeric()) {
        return None; // part of a longer token of another shape (e.g. an AKIA... with 17+ characters)
    }
    let tok = &t[s..e];
    let random = match tok {
        [b's', b'k', b'-', rest @ ..] => looks_random(rest),
        _ => true,
    };
    if !random {
        return None;
    }
    cands.push(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::Secret,
        score: 0.95,
    });
    Some(e)
}

fn secret_pem(t: &[u8], at: usize, cands: &mut Vec<ByteMatch>) -> Option<usize> {
    let c = compiled();
    let begin = c
        .pem_begin
        .find(Input::new(t).range(at..).anchored(Anchored::Yes))?;
    let mut from = begin.end();
    let mut end = t.len(); // an open block runs to the end of the text (streaming holds it back)
    while let Some(p) = memchr::memmem::find(&t[from..], b"-----END ") {
        let s = from + p;
        if let Some(m) = c
            .pem_end
            .find(Input::new(t).range(s..).anchored(Anchored::Yes))
        {
            end = m.end();
            break;
        }
        from = s + 1;
    }
    cands.push(ByteMatch {
        start: at,
        end,
        kind: PiiKind::Secret,
        score: 1.0,
    });
    Some(end)
}

fn secret_aws(t: &[u8], after: usize, cands: &mut Vec<ByteMatch>) {
    let c = compiled();
    let end = (after + 80).min(t.len());
    for m in c.aws_secret.find_iter(Input::new(t).range(after..end)) {
        let (s, e) = (m.start(), m.end());
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'=';
        let left = s == 0 || !b64(t[s - 1]);
        let right = e == t.len() || !b64(t[e]);
        if left && right && looks_random(&t[s..e]) {
            cands.push(ByteMatch {
                start: s,
                end: e,
                kind: PiiKind::Secret,
                score: 0.85,
            });
        }
    }
}

fn adjust_score(t: &[u8], m: &ByteMatch) -> f32 {
    if m.kind == PiiKind::Secret && m.score >= 0.95 {
        return m.score;
    }
    let before = lower_window(t, m.start.saturating_sub(CTX_BEFORE), m.start);
    let after = lower_window(t, m.end, (m.end + CTX_AFTER).min(t.len()));
    let positive =
        any_word(&before, context_words(m.kind)) || any_word(&after, context_words(m.kind));
    let mut score = m.score;
    match m.kind {
        PiiKind::PhoneNumber | PiiKind::CreditCard | PiiKind::UsSsn => {
            let negative = any_word(&before, NEGATIVE_WORDS)
                || before.ends_with(b"#")
                || before.ends_with(b"# ");
            if negative && !positive {
                score *= 0.3;
            }
        }
        PiiKind::IpAddress => {
            // The 24 bytes before an IPv4 decide whether it reads as a version ("upgrade to 1.2.3.4").
            let near = lower_window(t, m.start.saturating_sub(24), m.start);
            let dotted = t[m.start..m.end].contains(&b'.') && !t[m.start..m.end].contains(&b':');
            if dotted && any_word(&near, VERSION_WORDS) && !positive {
                return 0.0;
            }
        }
        _ => {}
    }
    if positive {
        score = (score + 0.35).min(1.0);
    }
    if m.kind == PiiKind::DateOfBirth && positive {
        score = score.max(0.95);
    }
    score
}

fn resolve_overlaps(mut cands: Vec<ByteMatch>) -> Vec<ByteMatch> {
    cands.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<ByteMatch> = Vec::with_capacity(cands.len());
    let mut i = 0;
    while i < cands.len() {
        // A cluster: candidates chained by overlap.
        let mut j = i + 1;
        let mut cluster_end = cands[i].end;
        while j < cands.len() && cands[j].start < cluster_end {
            cluster_end = cluster_end.max(cands[j].end);
            j += 1;
        }
        if j == i + 1 {
            out.push(cands[i]);
        } else {
            let mut cluster: Vec<ByteMatch> = cands[i..j].to_vec();
            cluster.sort_by(|a, b| {
                (b.end - b.start)
                    .cmp(&(a.end - a.start))
                    .then(b.score.total_cmp(&a.score))
                    .then(a.start.cmp(&b.start))
            });
            let mut kept: Vec<ByteMatch> = Vec::new();
            for m in cluster {
                if kept.iter().all(|k| m.end <= k.start || m.start >= k.end) {
                    kept.push(m);
                }
            }
            kept.sort_by_key(|m| m.start);
            out.extend(kept);
        }
        i = j;
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Offsets.

/// Converts sorted byte matches to char offsets; a no-op copy for ASCII text.
#[must_use]
pub fn to_char_offsets(text: &str, found: &[ByteMatch]) -> Vec<PiiMatch> {
    let conv = |m: &ByteMatch, s: usize, e: usize| PiiMatch {
        start: s,
        end: e,
        kind: m.kind,
        score: m.score,
    };
    if text.is_ascii() {
        return found.iter().map(|m| conv(m, m.start, m.end)).collect();
    }
    let t = text.as_bytes();
    // Count chars as non-continuation bytes, walking forward once over the sorted offsets.
    let mut byte_pos = 0usize;
    let mut char_pos = 0usize;
    let mut advance = |to: usize| -> usize {
        char_pos += t[byte_pos..to]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        byte_pos = to;
        char_pos
    };
    let mut out = Vec::with_capacity(found.len());
    for m in found {
        let s = advance(m.start);
        let e = advance(m.end);
        out.push(conv(m, s, e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{none, one};
    use super::*;

    #[test]
    fn secrets() {
        one(
            "key AKIAIOSFODNN7EXAMPLE ok",
            "AKIAIOSFODNN7EXAMPLE",
            PiiKind::Secret,
        );
        one(
            "use sk-proj-Abc123def456GHI789jkl0 now",
            "sk-proj-Abc123def456GHI789jkl0",
            PiiKind::Secret,
        );
        none("a task-management-system-for-teams thing");
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----";
        one(&format!("here {pem} done"), pem, PiiKind::Secret);
        one(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            PiiKind::Secret,
        );
    }

    #[test]
    fn char_offsets() {
        let s = Scanner::default();
        let text = "héllo → a@b.com";
        let m = s.scan(text);
        assert_eq!(m.len(), 1);
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(
            chars[m[0].start..m[0].end].iter().collect::<String>(),
            "a@b.com"
        );
    }
}

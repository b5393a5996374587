"""SigV4 against AWS's published test suite (tests/providers/data/aws4_testsuite, the POST cases of
aws-sig-v4-test-suite as botocore ships them, Apache-2.0): the gateway's signer (botocore's SigV4Auth behind
aws_auth.SigV4Signer) must produce each case's Authorization header, and the fake Bedrock's verifier (an
implementation of its own) its canonical request and a verdict of valid, so neither is checked only against the
other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import botocore.auth
import pytest
from botocore.credentials import ReadOnlyCredentials

from gateway.providers.aws_auth import SigV4Signer
from tests.fakes import sigv4

SUITE = Path(__file__).parent / "data" / "aws4_testsuite"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
# The session token of the post-sts-token cases (their readme).
TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwth"
    "Ax7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAki"
    "Y9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
CASES = sorted(p.name for p in SUITE.iterdir() if p.is_dir())


@dataclass
class Case:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    canonical: str
    authorization: str

    @property
    def token(self) -> str | None:
        return next((v for n, v in self.headers if n.lower() == "x-amz-security-token"), None)


def load(name: str) -> Case:
    raw = (SUITE / name / f"{name}.req").read_bytes().decode()
    head, _, body = raw.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, target, _ = request_line.split(" ")
    path, _, query = target.partition("?")
    headers = [(n, v) for n, _, v in (line.partition(":") for line in lines)]
    return Case(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body.encode(),
        canonical=(SUITE / name / f"{name}.creq").read_text(),
        authorization=(SUITE / name / f"{name}.authz").read_text().strip(),
    )


def test_the_suite_is_here() -> None:
    assert len(CASES) >= 8
    assert (SUITE / "LICENSE").exists()
    assert (SUITE / "NOTICE").exists()


@pytest.mark.parametrize("name", CASES)
def test_the_gateway_signer_matches_aws(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = load(name)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN.replace(tzinfo=None))
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, case.token, None)
    unsigned = {n: v for n, v in case.headers if n.lower() not in ("x-amz-date", "x-amz-security-token")}
    url = f"https://example.amazonaws.com{case.path}" + (f"?{case.query}" if case.query else "")
    added = SigV4Signer(service="service", region="us-east-1").sign(credentials, url, unsigned, case.body)
    assert added["Authorization"] == case.authorization
    assert added["X-Amz-Date"] == "20150830T123600Z"
    assert added.get("X-Amz-Security-Token") == case.token


@pytest.mark.parametrize("name", CASES)
def test_the_fake_verifier_matches_aws(name: str) -> None:
    case = load(name)
    signed = case.authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    lowered = [(n.lower(), v) for n, v in case.headers]
    assert sigv4.canonical_request(case.method, case.path, case.query, lowered, signed, case.body) == case.canonical
    verdict = sigv4.verify(
        method=case.method,
        raw_path=case.path,
        raw_query=case.query,
        headers=[*case.headers, ("Authorization", case.authorization)],
        body=case.body,
        secrets={ACCESS_KEY: (SECRET_KEY, case.token)},
        region="us-east-1",
        service="service",
        now=WHEN,
    )
    assert verdict is None


def test_the_fake_verifier_refuses_a_changed_body() -> None:
    case = load("post-x-www-form-urlencoded")
    verdict = sigv4.verify(
        method=case.method,
        raw_path=case.path,
        raw_query=case.query,
        headers=[*case.headers, ("Authorization", case.authorization)],
        body=case.body + b"&Param2=value2",
        secrets={ACCESS_KEY: (SECRET_KEY, None)},
        region="us-east-1",
        service="service",
        now=WHEN,
    )
    assert verdict is not None
    assert verdict.kind == "InvalidSignatureException"


def test_a_percent_encoded_path_is_encoded_again() -> None:
    """Bedrock's model ids hold ":" (sent as %3A): services other than S3 sign the path encoded twice."""
    canonical = sigv4.canonical_request("POST", "/model/a.b-v1%3A0/converse", "", [("host", "h")], ["host"], b"")
    assert canonical.split("\n")[1] == "/model/a.b-v1%253A0/converse"

"""A test-side SigV4 verifier for the fake Bedrock, written from AWS's description of the algorithm
(docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) apart from the gateway's signer (botocore's),
and checked against AWS's SigV4 test suite like it (tests/providers/test_sigv4.py): when the two agree on a request,
both agree with AWS.

Canonical request: method, canonical URI (the path as received, each byte outside the unreserved set and `/`
percent-encoded again: services other than S3 double-encode), canonical query (names and values encoded and sorted),
the signed headers (lowercase names, values trimmed and inner spaces collapsed, repeated ones joined by commas), the
signed header list and the SHA-256 of the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;\-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
MAX_SKEW_S = 300


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Iterable[tuple[str, str]], signed: list[str], body: bytes
) -> str:
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    canonical_headers = "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed)
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    query = "&".join(f"{name}={value}" for name, value in sorted(pairs))
    return "\n".join(
        [
            method,
            quote(raw_path or "/", safe="/-_.~"),
            query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def signature(secret: str, date: str, region: str, service: str, string_to_sign: str) -> str:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])


@dataclass(frozen=True)
class Rejection:
    """Why AWS would refuse the request: its exception type and message."""

    kind: str
    message: str


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: dict[str, tuple[str, str | None]],
    region: str,
    service: str,
    now: datetime | None = None,
) -> Rejection | None:
    """None when the request carries a valid signature by a known access key (`secrets`: access key -> secret key
    and session token), else what AWS answers."""
    lowered = [(name.lower(), value) for name, value in headers]
    found = dict(lowered)
    authorization = found.get("authorization")
    if authorization is None:
        return Rejection("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        return Rejection("IncompleteSignatureException", "Authorization header requires 'Credential' parameter.")
    key = match["key"]
    if key not in secrets:
        return Rejection("UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token = secrets[key]
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return Rejection("IncompleteSignatureException", "'Host' and 'X-Amz-Date' must be signed.")
    if token is not None and (found.get("x-amz-security-token") != token or "x-amz-security-token" not in signed):
        return Rejection("UnrecognizedClientException", "The security token included in the request is invalid.")
    if (match["region"], match["service"]) != (region, service):
        return Rejection(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service: '{region}/{service}'.",
        )
    timestamp = found.get("x-amz-date", "")
    try:
        when = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return Rejection("IncompleteSignatureException", "X-Amz-Date is not a valid timestamp.")
    if abs(((now or datetime.now(UTC)) - when).total_seconds()) > MAX_SKEW_S or match["date"] != timestamp[:8]:
        return Rejection("InvalidSignatureException", "Signature expired or not yet current.")
    canonical = canonical_request(method, raw_path, raw_query, lowered, signed, body)
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    expected = signature(secret, match["date"], region, service, string_to_sign(timestamp, scope, canonical))
    if not hmac.compare_digest(expected, match["signature"]):
        return Rejection(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.",
        )
    return None

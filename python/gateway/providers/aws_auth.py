"""AWS credentials from the standard chain, and SigV4 request signatures, through botocore.

Imported only when a bedrock provider is configured (botocore costs ~0.3 s and several MB to import).

- Credentials come from botocore's own resolver, the chain every AWS SDK for Python follows: AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the profile (the provider's `profile`, else AWS_PROFILE) in
  ~/.aws/credentials and ~/.aws/config, with its assume-role, SSO or credential_process settings; a web-identity
  token file (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as EKS sets them); container credentials (ECS); then the
  instance role from the metadata service.
- Resolving or refreshing may call STS or the metadata service, so it runs in a thread (asyncio.to_thread), one at a
  time per provider; temporary credentials are then kept until botocore deems them near expiry (15 minutes before
  it), so a call pays no thread hop in between.
- Signatures are botocore's SigV4Auth over the exact body bytes sent; the tests check it against AWS's published
  SigV4 test suite. botocore writes each canonical request, session token included, to its DEBUG log, and STS
  answers, keys included: its loggers are kept at INFO or above whatever the gateway's level.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    InvalidConfigError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOTokenLoadError,
    UnauthorizedSSOTokenError,
    UnknownCredentialError,
)
from botocore.session import Session

_botocore_log = logging.getLogger("botocore")
if _botocore_log.getEffectiveLevel() < logging.INFO:
    _botocore_log.setLevel(logging.INFO)

SIGNED_RESPONSE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
"""What signing adds to a request."""

# Failures that the same configuration will meet again: the target is misconfigured, not briefly unwell.
_LASTING = (
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    UnknownCredentialError,
    InvalidConfigError,
    SSOTokenLoadError,
    UnauthorizedSSOTokenError,
)
_LASTING_STS_CODES = frozenset(
    {"AccessDenied", "InvalidIdentityToken", "ExpiredTokenException", "InvalidClientTokenId"}
)


class CredentialsUnavailable(Exception):
    """No credentials could be had. `lasting`: the configuration is wrong (retrying cannot help) rather than STS or
    the metadata service failing for now. The message names the cause, never a secret."""

    def __init__(self, message: str, *, lasting: bool) -> None:
        super().__init__(message)
        self.lasting = lasting


class AwsCredentials:
    """One provider's credentials: resolved on first use, refreshed off the event loop when near expiry."""

    def __init__(self, profile: str | None = None) -> None:
        self._session = Session(profile=profile)
        self._source: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._lock = asyncio.Lock()

    def region(self) -> str | None:
        """The region AWS's own tools would use: AWS_REGION, else AWS_DEFAULT_REGION or the profile's `region`
        (botocore reads those two; AWS_REGION is the newer SDKs' name). None when the profile does not exist."""
        region = os.environ.get("AWS_REGION")
        if region:
            return region
        try:
            found = self._session.get_config_variable("region")
        except ProfileNotFound:
            return None
        return str(found) if found else None

    @property
    def latest(self) -> ReadOnlyCredentials | None:
        """The credentials `current()` last returned (None before the first call): what sign() signs with."""
        return self._frozen

    async def current(self) -> ReadOnlyCredentials:
        """Fresh credentials; only the first call and those near expiry wait for a thread."""
        frozen = self._frozen
        if frozen is not None and not self._near_expiry():
            return frozen
        async with self._lock:
            frozen = self._frozen
            if frozen is None or self._near_expiry():
                frozen = self._frozen = await asyncio.to_thread(self._resolve)
            return frozen

    def _near_expiry(self) -> bool:
        source = self._source
        # Reads the expiry botocore stored; no I/O. Static credentials never expire.
        return isinstance(source, RefreshableCredentials) and source.refresh_needed()

    def _resolve(self) -> ReadOnlyCredentials:
        """In a worker thread: walks the chain on first use, then lets botocore refresh what it found."""
        try:
            if self._source is None:
                self._source = self._session.get_credentials()
                if self._source is None:
                    raise CredentialsUnavailable(
                        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a "
                        "web-identity token file, or run with an instance or task role",
                        lasting=True,
                    )
            return self._source.get_frozen_credentials()
        except _LASTING as err:
            message = f"AWS credentials are misconfigured ({_describe(err)})"
            raise CredentialsUnavailable(message, lasting=True) from None
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            raise CredentialsUnavailable(
                f"STS refused to issue AWS credentials ({code or 'ClientError'})", lasting=code in _LASTING_STS_CODES
            ) from None
        except BotoCoreError as err:
            message = f"could not obtain AWS credentials ({_describe(err)})"
            raise CredentialsUnavailable(message, lasting=False) from None


def _describe(err: Exception) -> str:
    # botocore's messages name variables, files and profiles, never key material.
    return f"{type(err).__name__}: {err}"


class SigV4Signer:
    """Signs requests to one AWS service in one region."""

    def __init__(self, *, service: str, region: str) -> None:
        self.service = service
        self.region = region

    def sign(
        self, credentials: ReadOnlyCredentials, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers that authenticate a POST of `body` to `url` (as sent: the path already percent-encoded) with
        `headers` signed too. Host is signed from the URL, as the HTTP client will send it."""
        request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return {name: request.headers[name] for name in SIGNED_RESPONSE_HEADERS if name in request.headers}

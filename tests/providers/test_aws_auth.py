"""AWS credentials through botocore's chain: the environment, a profile, a web-identity token (STS), the instance
role (IMDS) and the container endpoint, each against a local fake; cached until near expiry, refreshed off the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.providers.aws_auth import AwsCredentials, CredentialsUnavailable
from gateway.providers.bedrock import BedrockProvider
from tests.fakes import FakeBedrock
from tests.fakes.aws_identity import ROLE_ARN, FakeAwsIdentity, Identity
from tests.providers.contract import CALL
from tests.providers.samples import hello

HOUR = Identity(
    "ASIAFAKEHOUR00000001", "hour/Secret+Key0123456789abcdefghijklmnop", "hour-session-token", timedelta(hours=1)
)
NEXT = Identity(
    "ASIAFAKENEXT00000002", "next/Secret+Key0123456789abcdefghijklmnop", "next-session-token", timedelta(hours=1)
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS set-up of the machine's: empty config files in tmp_path, no metadata service, no variables."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
async def identity() -> AsyncIterator[FakeAwsIdentity]:
    async with FakeAwsIdentity([HOUR]) as fake:
        yield fake


async def test_environment_variables(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV0000000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    credentials = await AwsCredentials().current()
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "AKIAENV0000000000001",
        "env-secret",
        "env-token",
    )


async def test_a_named_profile_gives_credentials_and_region(aws_env: Path) -> None:
    (aws_env / "config").write_text("[profile dev]\nregion = eu-west-1\n")
    (aws_env / "credentials").write_text(
        "[dev]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = profile-secret\n"
    )
    source = AwsCredentials("dev")
    assert source.region() == "eu-west-1"
    credentials = await source.current()
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "AKIAPROFILE000000001",
        "profile-secret",
        None,
    )


async def test_aws_region_wins_over_the_profile(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (aws_env / "config").write_text("[default]\nregion = eu-west-1\n")
    assert AwsCredentials().region() == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    assert AwsCredentials().region() == "ap-southeast-2"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert AwsCredentials().region() == "us-west-2"


async def test_a_missing_profile_is_a_lasting_failure(aws_env: Path) -> None:
    source = AwsCredentials("nope")
    assert source.region() is None
    with pytest.raises(CredentialsUnavailable) as caught:
        await source.current()
    assert caught.value.lasting
    assert "nope" in str(caught.value)


async def test_no_credentials_anywhere_is_a_lasting_failure(aws_env: Path) -> None:
    with pytest.raises(CredentialsUnavailable) as caught:
        await AwsCredentials().current()
    assert caught.value.lasting
    assert "no AWS credentials found" in str(caught.value)


async def test_a_web_identity_token_is_exchanged_at_sts_once(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, identity: FakeAwsIdentity
) -> None:
    token_file = aws_env / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.fake-service-account-token.sig")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", identity.url)
    source = AwsCredentials()
    for _ in range(3):
        credentials = await source.current()
        assert (credentials.access_key, credentials.token) == (HOUR.access_key, HOUR.token)
    assert identity.web_identity_tokens == ["eyJhbGciOiJSUzI1NiJ9.fake-service-account-token.sig"]


async def test_the_instance_role_is_fetched_once_while_fresh(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, identity: FakeAwsIdentity
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", identity.url)
    source = AwsCredentials()
    for _ in range(3):
        credentials = await source.current()
        assert (credentials.access_key, credentials.secret_key) == (HOUR.access_key, HOUR.secret_key)
    assert identity.fetches == 1


async def test_credentials_near_expiry_are_refreshed_off_the_loop(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore refreshes temporary credentials 15 minutes before they expire: these reach that point in ~3 s.
    soon = Identity("ASIAFAKESOON00000000", "soon-secret", "soon-token", timedelta(minutes=15, seconds=3))
    async with FakeAwsIdentity([soon, NEXT]) as identity:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{identity.url}/container-credentials")
        source = AwsCredentials()
        assert (await source.current()).access_key == soon.access_key
        assert (await source.current()).access_key == soon.access_key
        assert identity.fetches == 1, "cached while fresh"
        await asyncio.sleep(3.5)
        identity.delay = 0.5  # the refresh takes a while: the loop must keep running meanwhile
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        try:
            refreshed = await source.current()
        finally:
            ticker.cancel()
        assert refreshed.access_key == NEXT.access_key
        assert identity.fetches == 2
        # Fetched on the loop, the refresh would let the ticker run once at most; a loaded machine slows the ticker
        # but leaves it dozens of turns in 0.5 s.
        assert len(gaps) >= 5, "the event loop kept running while the credentials were fetched"
        assert (await source.current()).access_key == NEXT.access_key
        assert identity.fetches == 2


async def test_bedrock_signs_with_the_instance_role(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, identity: FakeAwsIdentity
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", identity.url)
    async with FakeBedrock() as bedrock:
        bedrock.credentials = {HOUR.access_key: (HOUR.secret_key, HOUR.token)}
        provider = BedrockProvider(bedrock.provider_config())
        try:
            for _ in range(2):
                assert (await provider.chat(hello(), bedrock.model_config(), CALL)).text
        finally:
            await provider.aclose()
    assert bedrock.requests[0].headers["x-amz-security-token"] == HOUR.token
    assert identity.fetches == 1

"""A fake of the places AWS credentials come from, on one loopback port: the EC2 instance metadata service (IMDSv2:
PUT /latest/api/token, then the role and its credentials under /latest/meta-data/iam/security-credentials/), the
container credentials endpoint (ECS, GET /container-credentials) and STS's AssumeRoleWithWebIdentity (POST /, the
query protocol's form body and XML answer). Shapes from botocore's fetchers (botocore/utils.py, credentials.py) and
the STS API reference.

Each answer hands out the next identity of `identities` (the last one repeats), with its expiry; `fetches` counts
them, `delay` holds each answer back (the test then checks that the event loop keeps running meanwhile).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Self

import orjson
from aiohttp import web

ROLE = "gateway-role"
ROLE_ARN = "arn:aws:iam::123456789012:role/gateway"
IMDS_TOKEN = "AQAEAFakeImdsToken=="


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str
    token: str
    expires_in: timedelta

    def expiration(self) -> str:
        return (datetime.now(UTC) + self.expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeAwsIdentity:
    def __init__(self, identities: list[Identity]) -> None:
        self.identities = list(identities)
        self.fetches = 0
        self.web_identity_tokens: list[str] = []
        self.delay = 0.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_put("/latest/api/token", self._imds_token)
        app.router.add_get("/latest/meta-data/iam/security-credentials/", self._imds_role)
        app.router.add_get(f"/latest/meta-data/iam/security-credentials/{ROLE}", self._imds_credentials)
        app.router.add_get("/container-credentials", self._container_credentials)
        app.router.add_post("/", self._sts)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next(self) -> Identity:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.fetches += 1
        return self.identities.pop(0) if len(self.identities) > 1 else self.identities[0]

    async def _imds_token(self, request: web.Request) -> web.Response:
        if "x-aws-ec2-metadata-token-ttl-seconds" not in request.headers:
            return web.Response(status=400)
        return web.Response(text=IMDS_TOKEN)

    async def _imds_role(self, request: web.Request) -> web.Response:
        if request.headers.get("x-aws-ec2-metadata-token") != IMDS_TOKEN:
            return web.Response(status=401)
        return web.Response(text=ROLE)

    async def _imds_credentials(self, request: web.Request) -> web.Response:
        if request.headers.get("x-aws-ec2-metadata-token") != IMDS_TOKEN:
            return web.Response(status=401)
        identity = await self._next()
        body = {
            "Code": "Success",
            "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Type": "AWS-HMAC",
            "AccessKeyId": identity.access_key,
            "SecretAccessKey": identity.secret_key,
            "Token": identity.token,
            "Expiration": identity.expiration(),
        }
        return web.Response(body=orjson.dumps(body), content_type="text/plain")

    async def _container_credentials(self, request: web.Request) -> web.Response:
        identity = await self._next()
        body = {
            "RoleArn": ROLE_ARN,
            "AccessKeyId": identity.access_key,
            "SecretAccessKey": identity.secret_key,
            "Token": identity.token,
            "Expiration": identity.expiration(),
        }
        return web.json_response(body)

    async def _sts(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("RoleArn") != ROLE_ARN:
            return web.Response(
                status=400, text="<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>"
            )
        self.web_identity_tokens.append(str(form.get("WebIdentityToken")))
        identity = await self._next()
        xml = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:gateway:gateway</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/gateway/{form.get("RoleSessionName")}</Arn>
      <AssumedRoleId>AROAFAKEROLEID:{form.get("RoleSessionName")}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{identity.access_key}</AccessKeyId>
      <SecretAccessKey>{identity.secret_key}</SecretAccessKey>
      <SessionToken>{identity.token}</SessionToken>
      <Expiration>{identity.expiration()}</Expiration>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
        return web.Response(text=xml, content_type="text/xml")

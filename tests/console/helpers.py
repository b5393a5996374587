"""A gateway with the console on, two teams with a team admin and a member each, and an HTTP client that signs in."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request

CONFIG = """
providers:
  - {name: sim, type: simulated, region: eu, simulation: {max_answer_tokens: 16}}
models:
  - {name: fast, provider: sim, tokenizer: o200k_base, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0,
     capabilities: [streaming]}
  - {name: other, provider: sim, tokenizer: o200k_base, capabilities: [streaming]}
guardrails:
  input:
    pii: {default: redact, CREDIT_CARD: block}
residency:
  regions: [eu]
"""
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Team:
    name: str
    admin_key: str
    admin_id: str
    member_key: str
    member_id: str
    call_id: str
    """A call the member made."""


async def team(admin: Admin, name: str, body_policy: str = "none") -> Team:
    await admin.team(name, body_policy=body_policy)
    admin_key, admin_info = await admin.key(name, role="team-admin", name=f"{name}-admin")
    member_key, member_info = await admin.key(name, role="member", name=f"{name}-member")
    answer = await admin.gateway.Chat(chat_request(text="write to bob@example.com"), metadata=bearer(member_key))
    return Team(name, admin_key, admin_info.id, member_key, member_info.id, answer.id)


def base(gateway: Gateway) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}/console"


class Browser:
    """An HTTP client with a cookie jar (unsafe: the console is reached by IP address in tests)."""

    def __init__(self, gateway: Gateway) -> None:
        self.base = base(gateway)
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def sign_in(self, key: str) -> aiohttp.ClientResponse:
        async with self.session.post(self.base + "/login", data={"key": key}, allow_redirects=False) as response:
            await response.read()
            return response

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self) -> str:
        _, html = await self.get("/keys")
        found = _CSRF.search(html)
        assert found is not None, html
        return found[1]

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        async with self.session.post(self.base + path, data=form, allow_redirects=False) as response:
            return response.status, response.headers.get("Location", ""), await response.text()

"""Helpers for tests that issue keys through the Admin API and call the Gateway with them."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2_grpc
from llmgateway.v1 import gateway_pb2 as pb

from tests.server.fixtures import AUTH


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def reason_of(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo in the status")


def chat_request(model: str = "fast", text: str = "Hello there", **params: object) -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[pb.Message(role="user", content=text)], **params)  # type: ignore[arg-type]


@dataclass
class Admin:
    """The Admin and Gateway stubs of one running gateway; admin calls use the bootstrap (admin) key."""

    admin: admin_pb2_grpc.AdminStub
    gateway: gateway_pb2_grpc.GatewayStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Admin:
        return cls(admin_pb2_grpc.AdminStub(channel), gateway_pb2_grpc.GatewayStub(channel))

    async def team(self, name: str, **fields: object) -> apb.Team:
        team: apb.Team = await self.admin.CreateTeam(
            apb.CreateTeamRequest(team=apb.Team(name=name, **fields)),  # type: ignore[arg-type]
            metadata=AUTH,
        )
        return team

    async def key(
        self, team: str = "alpha", budgets: list[apb.Budget] | None = None, **spec: object
    ) -> tuple[str, apb.Key]:
        """Issues a key (creating its team when missing); returns the secret and the key's record."""
        teams = await self.admin.ListTeams(apb.ListTeamsRequest(), metadata=AUTH)
        if team not in {t.name for t in teams.teams}:
            await self.team(team)
        response = await self.admin.CreateKey(
            apb.CreateKeyRequest(spec=apb.KeySpec(team=team, **spec), budgets=budgets or []),  # type: ignore[arg-type]
            metadata=AUTH,
        )
        return response.key, response.info


async def ask(admin: Admin, request: pb.ChatRequest, key: str | None = None) -> pb.ChatResponse:
    """Chat with `key`, else with the bootstrap (admin) key."""
    response: pb.ChatResponse = await admin.gateway.Chat(request, metadata=bearer(key) if key else AUTH)
    return response


async def stream(admin: Admin, request: pb.ChatRequest) -> list[pb.ChatChunk]:
    """Every chunk of a ChatStream with the bootstrap (admin) key."""
    return [chunk async for chunk in admin.gateway.ChatStream(request, metadata=AUTH)]

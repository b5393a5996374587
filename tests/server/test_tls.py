"""TLS and mutual TLS, configured with certificate files, through the generated stubs."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import grpc
import pytest
import trustme
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from gateway.config.loader import parse_config
from gateway.server.app import Gateway, build_gateway
from tests.server.fixtures import AUTH


def tls_config(ca: trustme.CA, tmp_path: Path, *, mutual: bool) -> str:
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    server_cert.private_key_pem.write_to_path(str(key))
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    client_ca = ""
    if mutual:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        client_ca = f", client_ca_file: {tmp_path / 'ca.pem'}"
    return f"""
server:
  tls: {{cert_file: {cert}, key_file: {key}{client_ca}}}
providers: [{{name: sim, type: simulated}}]
models: [{{name: fast, provider: sim}}]
"""


async def call(port: int, credentials: grpc.ChannelCredentials) -> pb.ListModelsResponse:
    options = (("grpc.ssl_target_name_override", "localhost"),)
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials, options=options) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        return await stub.ListModels(pb.ListModelsRequest(), metadata=AUTH, timeout=5)


async def tls_gateway(tmp_path: Path, ca: trustme.CA, *, mutual: bool, http: bool = False) -> Gateway:
    gateway = await build_gateway(
        parse_config(tls_config(ca, tmp_path, mutual=mutual)),
        address="127.0.0.1:0",
        state_dir=tmp_path,
        metrics_address="",
        http_address="127.0.0.1:0" if http else "",
    )
    await gateway.server.start()
    return gateway


async def test_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", AUTH[0][1].removeprefix("Bearer "))
    ca = trustme.CA()
    gateway = await tls_gateway(tmp_path, ca, mutual=False)
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        assert [m.id for m in (await call(gateway.port, trusted)).models] == ["fast"]
        untrusted = grpc.ssl_channel_credentials(root_certificates=trustme.CA().cert_pem.bytes())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(gateway.port, untrusted)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gateway.stop(0)


async def test_mutual_tls_requires_a_client_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", AUTH[0][1].removeprefix("Bearer "))
    ca = trustme.CA()
    gateway = await tls_gateway(tmp_path, ca, mutual=True)
    try:
        without = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(gateway.port, without)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        client = ca.issue_cert("client.example")
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca.cert_pem.bytes(),
            private_key=client.private_key_pem.bytes(),
            certificate_chain=client.cert_chain_pems[0].bytes(),
        )
        assert [m.id for m in (await call(gateway.port, with_cert)).models] == ["fast"]
    finally:
        await gateway.stop(0)


async def test_the_http_front_door_serves_the_same_certificate_and_requires_client_certificates_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", AUTH[0][1].removeprefix("Bearer "))
    ca = trustme.CA()
    gateway = await tls_gateway(tmp_path, ca, mutual=True, http=True)
    assert gateway.http is not None
    url = f"https://localhost:{gateway.http.port}/v1/models"
    headers = {"authorization": AUTH[0][1]}
    try:
        without = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url, headers=headers, ssl=without) as response:
                    await response.read()
            with_cert = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
            client = ca.issue_cert("client.example")
            client.configure_cert(with_cert)
            async with session.get(url, headers=headers, ssl=with_cert) as response:
                assert [m["id"] for m in (await response.json())["data"]] == ["fast"]
    finally:
        await gateway.stop(0)

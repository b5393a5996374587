"""`gateway serve | chat | embed | models | count-tokens`, the admin commands of cli/admin.py and the batch
commands of cli/batch.py.

Client commands read the key from env GATEWAY_API_KEY and the address from --address or env GATEWAY_ADDR; --json
prints machine-readable output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import insights_pb2

from gateway.cli import admin, batch
from gateway.cli.output import print_json, print_table
from gateway.client import SyncGatewayClient

DEFAULT_ADDRESS = "127.0.0.1:50051"
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except grpc.RpcError as err:
        code = err.code() if isinstance(err, grpc.Call) else None
        details = err.details() if isinstance(err, grpc.Call) else str(err)
        print(f"error: {code.name if code else 'RPC'}: {details}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="A typed gRPC gateway to every LLM provider.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway server")
    serve.add_argument("--config", type=Path, help="YAML config (default: the embedded simulated setup)")
    serve.add_argument(
        "--address", default=os.environ.get("GATEWAY_ADDR"), help=f"HOST:PORT (default {DEFAULT_ADDRESS})"
    )
    serve.add_argument("--log-level", default=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    serve.add_argument(
        "--metrics-address",
        help="HOST:PORT of the Prometheus /metrics endpoint ('' for none; default env GATEWAY_METRICS_ADDR, the "
        "config's observe.metrics.address, 127.0.0.1:9464)",
    )
    serve.add_argument(
        "--http-address",
        help="HOST:PORT of the OpenAI-compatible HTTP front door ('' for none; default env GATEWAY_HTTP_ADDR, the "
        "config's server.http_address; off when none is set)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="processes serving the address, supervised (default: the config's server.workers, 1; 0: one per core)",
    )
    serve.set_defaults(handler=_serve)

    chat = _client_command(commands, "chat", "send a prompt and stream the answer")
    chat.add_argument("--model", "-m", required=True)
    chat.add_argument("--system", help="a system message placed before the prompt")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument(
        "--defer",
        type=float,
        metavar="SECONDS",
        help="the call can wait this long: the gateway may hold it to send it with others or at a cheaper price "
        "(implies --no-stream; `gateway deferred ID` fetches the answer if this command is stopped)",
    )
    chat.add_argument(
        "--cache", choices=sorted(_CACHE_MODES), help="the response cache for this call (default: the config's)"
    )
    chat.add_argument("--cache-namespace", default="", help="a cache partition inside the key's team")
    chat.add_argument(
        "--semantic", action=argparse.BooleanOptionalAction, help="allow (or forbid) semantic cache matches"
    )
    chat.add_argument("prompt", help="the prompt; '-' reads it from stdin")
    chat.set_defaults(handler=_chat)

    deferred = _client_command(commands, "deferred", "a deferred call's state, and its answer once it came")
    deferred.add_argument("request_id", help="the id `gateway chat --defer` printed before sending the call")
    deferred.set_defaults(handler=_deferred)

    embed = _client_command(commands, "embed", "embed texts with an embedding model")
    embed.add_argument("--model", "-m", required=True)
    embed.add_argument("--dimensions", type=int, help="shorter vectors, where the model supports it")
    embed.add_argument("--cache", choices=sorted(_CACHE_MODES), help="the cache for this call (default: the config's)")
    embed.add_argument("texts", nargs="+", help="the texts; '-' reads one from stdin")
    embed.set_defaults(handler=_embed)

    models = _client_command(commands, "models", "list the models this key may call")
    models.set_defaults(handler=_models)

    count = _client_command(commands, "count-tokens", "count a text's tokens for a model")
    count.add_argument("--model", "-m", required=True)
    count.add_argument("--chat", action="store_true", help="count the text as one user message of a chat")
    count.add_argument("text", help="the text; '-' reads it from stdin")
    count.set_defaults(handler=_count_tokens)
    feedback = _client_command(commands, "feedback", "rate a call this key made, on metrics the config declares")
    feedback.add_argument("request_id", help="the call's id (printed by `gateway chat --json` as id)")
    feedback.add_argument("--thumbs", action="append", default=[], metavar="METRIC=up|down", help="a boolean metric")
    feedback.add_argument("--score", action="append", default=[], metavar="METRIC=N", help="a float metric")
    feedback.add_argument("--label", action="append", default=[], metavar="METRIC=LABEL", help="a label metric")
    feedback.add_argument("--comment", default="")
    feedback.add_argument(
        "--source", choices=sorted(_SOURCES), default="end_user", help="who gives the feedback (default end_user)"
    )
    feedback.set_defaults(handler=_feedback)
    admin.add_commands(commands)
    batch.add_commands(commands)
    return parser


def _client_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--address", default=os.environ.get("GATEWAY_ADDR", DEFAULT_ADDRESS))
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up")
    return command


def _serve(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config, load_default_config

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else load_default_config()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers is not None and args.workers < 0:
        print("error: --workers: expected 0 (one per core) or more", file=sys.stderr)
        return EXIT_USAGE
    state_dir = Path(os.environ.get("GATEWAY_STATE_DIR", "var"))
    # Imported only here: the supervisor must set up the metrics files before prometheus_client is first imported.
    from gateway.server.supervisor import run_supervisor, worker_count

    workers = worker_count(config.server.workers if args.workers is None else args.workers)
    if workers > 1:
        address = args.address or config.server.address
        try:
            return run_supervisor(
                config,
                address=address,
                state_dir=state_dir,
                metrics_address=args.metrics_address,
                workers=workers,
                http_address=args.http_address,
            )
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE

    import uvloop

    from gateway.server.app import serve

    uvloop.run(
        serve(
            config,
            address=args.address,
            state_dir=state_dir,
            metrics_address=args.metrics_address,
            http_address=args.http_address,
        )
    )
    return 0


def _client(args: argparse.Namespace) -> SyncGatewayClient:
    key = os.environ.get("GATEWAY_API_KEY")
    if not key:
        raise SystemExit("error: set GATEWAY_API_KEY to a gateway key (the server prints one on its first start)")
    return SyncGatewayClient(args.address, key)


def _read(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


_CACHE_MODES = {
    "default": pb.CACHE_MODE_UNSPECIFIED,
    "off": pb.CACHE_MODE_OFF,
    "read_write": pb.CACHE_MODE_READ_WRITE,
    "read_only": pb.CACHE_MODE_READ_ONLY,
    "write_only": pb.CACHE_MODE_WRITE_ONLY,
}


def _chat(args: argparse.Namespace) -> int:
    messages: list[tuple[str, str]] = [("system", args.system)] if args.system else []
    messages.append(("user", _read(args.prompt)))
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.cache or args.cache_namespace or args.semantic is not None:
        params["cache"] = pb.CacheControl(
            mode=_CACHE_MODES[args.cache or "default"],
            namespace=args.cache_namespace,
            allow_semantic=args.semantic,
        )
    with _client(args) as client:
        if args.no_stream or args.json or args.defer is not None:
            if args.defer is not None:
                deferred_id = uuid.uuid4().hex
                sys.stderr.write(
                    f"deferred call {deferred_id}; if this command stops: gateway deferred {deferred_id}\n"
                )
                params["defer_up_to_s"] = args.defer
                params["deferred_id"] = deferred_id
            response = client.chat(args.model, messages, timeout=args.timeout, **params)
            if args.json:
                print_json(response)
            else:
                _print_answer_footer(
                    response.message.content, response.model, response.simulated, response.usage, response.cache
                )
            return 0
        model, simulated = "", False
        for chunk in client.chat_stream(args.model, messages, timeout=args.timeout, **params):
            if chunk.model:
                model, simulated = chunk.model, chunk.simulated
            sys.stdout.write(chunk.delta)
            sys.stdout.flush()
            if chunk.HasField("usage"):
                _print_answer_footer("", model, simulated, chunk.usage, chunk.cache)
    return 0


def _print_answer_footer(text: str, model: str, simulated: bool, usage: pb.Usage, cache: pb.CacheInfo) -> None:
    label = " (simulated)" if simulated else ""
    hit = ""
    if cache.hit:
        hit = (
            f", {cache.kind} cache hit {cache.entry_id} ({cache.age_seconds} s old, similarity {cache.similarity:.3f})"
        )
    sys.stdout.write(
        f"{text}\n\n[{model}{label}: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, "
        f"${usage.cost_usd:.6f}{hit}]\n"
    )


_DEFERRED_STATES = {
    pb.DEFERRED_STATE_PENDING: "pending",
    pb.DEFERRED_STATE_DONE: "done",
    pb.DEFERRED_STATE_FAILED: "failed",
}


def _deferred(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.get_deferred(args.request_id, timeout=args.timeout)
    if args.json:
        print_json(found)
        return 0
    state = _DEFERRED_STATES.get(found.state, "pending")
    if found.state == pb.DEFERRED_STATE_DONE:
        response = found.response
        _print_answer_footer(
            response.message.content, response.model, response.simulated, response.usage, response.cache
        )
    elif found.state == pb.DEFERRED_STATE_FAILED:
        sys.stdout.write(f"{state}: {found.error_code} {found.error_reason}: {found.error_message}\n")
        return 1
    else:
        accepted = dt.datetime.fromtimestamp(found.accepted_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        sys.stdout.write(f"{state}: accepted {accepted} UTC, may wait {found.defer_up_to_s:g} s\n")
    return 0


def _embed(args: argparse.Namespace) -> int:
    params: dict[str, object] = {}
    if args.dimensions is not None:
        params["dimensions"] = args.dimensions
    if args.cache:
        params["cache"] = pb.CacheControl(mode=_CACHE_MODES[args.cache])
    with _client(args) as client:
        response = client.embed(args.model, [_read(text) for text in args.texts], timeout=args.timeout, **params)
    if args.json:
        print_json(response)
        return 0
    label = " (simulated)" if response.simulated else ""
    for embedding in response.embeddings:
        shown = ", ".join(f"{v:.4f}" for v in embedding.values[:4])
        cached = " (cached)" if embedding.cached else ""
        sys.stdout.write(f"[{embedding.index}] [{shown}, ...]{cached}\n")
    usage = response.usage
    sys.stdout.write(
        f"\n[{response.model}{label}: {len(response.embeddings)} vectors of {response.dimensions} dimensions, "
        f"{usage.prompt_tokens} tokens ({usage.cached_prompt_tokens} cached), ${usage.cost_usd:.6f}]\n"
    )
    return 0


def _models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.list_models(timeout=args.timeout)
    if args.json:
        print_json(list(models))
        return 0
    rows = [("MODEL", "PROVIDER", "CONTEXT", "IN $/Mtok", "OUT $/Mtok", "CAPABILITIES")]
    rows += [
        (
            m.id + (" (simulated)" if m.simulated else ""),
            f"{m.provider} ({m.provider_type})",
            str(m.context_window),
            f"{m.input_cost_per_mtok:g}",
            f"{m.output_cost_per_mtok:g}",
            f"embedding, {m.dimensions} dimensions" if m.kind == "embedding" else ",".join(m.capabilities),
        )
        for m in models
    ]
    print_table(rows)
    return 0


def _count_tokens(args: argparse.Namespace) -> int:
    text = _read(args.text)
    with _client(args) as client:
        if args.chat:
            response = client.count_tokens(args.model, messages=[("user", text)], timeout=args.timeout)
        else:
            response = client.count_tokens(args.model, text=text, timeout=args.timeout)
    if args.json:
        print_json(response)
    else:
        kind = "exact" if response.exact else "estimate"
        sys.stdout.write(f"{response.tokens} tokens ({kind}, {response.tokenizer})\n")
    return 0


_SOURCES = {
    "end_user": insights_pb2.FEEDBACK_SOURCE_END_USER,
    "calling_service": insights_pb2.FEEDBACK_SOURCE_CALLING_SERVICE,
    "evaluator": insights_pb2.FEEDBACK_SOURCE_EVALUATOR,
}
_THUMBS = {"up": True, "true": True, "yes": True, "down": False, "false": False, "no": False}


def _feedback(args: argparse.Namespace) -> int:
    ratings = []
    for item in args.thumbs:
        metric, value = _pair("--thumbs", item)
        if value.lower() not in _THUMBS:
            raise SystemExit(f"error: --thumbs {item!r}: the value is up or down")
        ratings.append(insights_pb2.MetricRating(metric=metric, boolean=_THUMBS[value.lower()]))
    for item in args.score:
        metric, value = _pair("--score", item)
        try:
            ratings.append(insights_pb2.MetricRating(metric=metric, score=float(value)))
        except ValueError:
            raise SystemExit(f"error: --score {item!r}: the value is a number") from None
    for item in args.label:
        metric, value = _pair("--label", item)
        ratings.append(insights_pb2.MetricRating(metric=metric, label=value))
    if not ratings:
        raise SystemExit("error: give at least one rating: --thumbs, --score or --label")
    with _client(args) as client:
        response = client.feedback(
            args.request_id, ratings, comment=args.comment, source=_SOURCES[args.source], timeout=args.timeout
        )
    if args.json:
        print_json(response)
        return 0
    rows = [("METRIC", "QUALITY", "")]
    rows += [
        (r.metric, f"{r.quality:.2f}", "replaced an earlier rating" if r.replaced else "") for r in response.recorded
    ]
    print_table(rows)
    return 0


def _pair(flag: str, item: str) -> tuple[str, str]:
    metric, sep, value = item.partition("=")
    if not sep or not metric:
        raise SystemExit(f"error: {flag} {item!r} must look like METRIC=VALUE")
    return metric, value

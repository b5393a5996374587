"""`gateway batch submit | status | results | cancel | list`: the Batches service from the command line.

`submit` reads a file in OpenAI's batch input format, one JSON object a line: `{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body": {...}}`, so a file made for OpenAI's Batch API works as it is; the batch goes to the
gateway model or route given with -m, whatever the lines' bodies name. `results` prints one JSON object a line (a
BatchResult, with proto field names). The key comes from env GATEWAY_API_KEY, the address from --address or env
GATEWAY_ADDR."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import orjson
from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import batches_pb2_grpc

from gateway.batches.input_file import read_input
from gateway.cli.commands import subcommand
from gateway.cli.output import print_json, print_table, to_dict
from gateway.errors import InvalidRequest

BATCH_TIMEOUT_S = 300.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = commands.add_parser("batch", help="submit and follow batches at the providers' batch prices")
    batch = actions.add_subparsers(required=True, metavar="ACTION")
    submit = _batch_command(batch, "submit", "submit a JSONL file of requests (OpenAI's batch input format)", _submit)
    submit.add_argument("file", type=Path, help="the JSONL file; '-' reads stdin")
    submit.add_argument("--model", "-m", required=True, help="the gateway model or route serving every line")
    submit.add_argument("--metadata", action="append", default=[], metavar="NAME=VALUE", help="a label of the batch")
    _batch_command(batch, "status", "a batch's status, counts and cost so far", _status).add_argument("batch_id")
    results = _batch_command(batch, "results", "the results so far, one JSON object a line", _results)
    results.add_argument("batch_id")
    results.add_argument("--follow", "-f", action="store_true", help="wait for the rest until the batch ends")
    _batch_command(batch, "cancel", "cancel a batch", _cancel).add_argument("batch_id")
    listing = _batch_command(batch, "list", "the batches this key may see, newest first", _list)
    listing.add_argument("--limit", type=int, default=20)


def _batch_command(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A batch subcommand: submissions and results of thousands of items may take minutes."""
    return subcommand(actions, name, help_text, handler, timeout_s=BATCH_TIMEOUT_S)


@contextmanager
def _batches(args: argparse.Namespace) -> Iterator[tuple[batches_pb2_grpc.BatchesStub, dict[str, Any]]]:
    key = os.environ.get("GATEWAY_API_KEY")
    if not key:
        raise SystemExit("error: set GATEWAY_API_KEY to a gateway key (the server prints one on its first start)")
    with grpc.insecure_channel(args.address) as channel:
        yield batches_pb2_grpc.BatchesStub(channel), {"metadata": (("authorization", f"Bearer {key}"),)}


def read_lines(content: bytes, model: str) -> list[bpb.BatchItem]:
    """The items of an OpenAI batch input file, each body sent to `model`; SystemExit naming the first bad line."""
    try:
        lines = read_input(content)
    except InvalidRequest as err:
        raise SystemExit(f"error: {err.message}") from None
    return [
        bpb.BatchItem(custom_id=line.custom_id, openai_body=orjson.dumps({**line.body, "model": model}))
        for line in lines
    ]


def _submit(args: argparse.Namespace) -> int:
    content = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    items = read_lines(content, args.model)
    labels = {}
    for label in args.metadata:
        name, sep, value = label.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: --metadata {label!r} must look like NAME=VALUE")
        labels[name] = value
    header = bpb.BatchHeader(model=args.model, metadata=labels)
    messages = [bpb.SubmitBatchRequest(header=header)] + [bpb.SubmitBatchRequest(item=item) for item in items]
    with _batches(args) as (stub, call):
        batch = stub.SubmitBatch(iter(messages), timeout=args.timeout, **call)
    _show(args, batch)
    return 0


def _status(args: argparse.Namespace) -> int:
    with _batches(args) as (stub, call):
        batch = stub.GetBatch(bpb.GetBatchRequest(batch_id=args.batch_id), timeout=args.timeout, **call)
    _show(args, batch)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with _batches(args) as (stub, call):
        batch = stub.CancelBatch(bpb.CancelBatchRequest(batch_id=args.batch_id), timeout=args.timeout, **call)
    _show(args, batch)
    return 0


def _results(args: argparse.Namespace) -> int:
    request = bpb.BatchResultsRequest(batch_id=args.batch_id, follow=args.follow)
    with _batches(args) as (stub, call):
        for result in stub.BatchResults(request, timeout=None if args.follow else args.timeout, **call):
            sys.stdout.write(orjson.dumps(to_dict(result)).decode() + "\n")
            sys.stdout.flush()
    return 0


def _list(args: argparse.Namespace) -> int:
    with _batches(args) as (stub, call):
        listed = stub.ListBatches(bpb.ListBatchesRequest(limit=args.limit), timeout=args.timeout, **call)
    if args.json:
        print_json(list(listed.batches))
        return 0
    rows = [("BATCH", "STATUS", "MODEL", "ITEMS", "DONE", "FAILED", "COST $")]
    rows += [
        (
            b.id,
            _status_name(b.status),
            b.model,
            str(b.counts.total),
            str(b.counts.succeeded),
            str(b.counts.failed),
            f"{b.cost_usd:.6f}",
        )
        for b in listed.batches
    ]
    print_table(rows)
    return 0


def _status_name(status: bpb.BatchStatus.ValueType) -> str:
    return bpb.BatchStatus.Name(status).removeprefix("BATCH_STATUS_").lower()


def _show(args: argparse.Namespace, batch: bpb.Batch) -> None:
    if args.json:
        print_json(batch)
        return
    counts = batch.counts
    sys.stdout.write(
        f"{batch.id}  {_status_name(batch.status)}  {batch.model} on {batch.served_model}@{batch.provider}\n"
        f"items: {counts.total} ({counts.pending} pending, {counts.succeeded} answered, {counts.failed} failed, "
        f"{counts.retried} sent again)\n"
        f"cost so far: ${batch.cost_usd:.6f} of ${batch.estimate_usd:.6f} reserved\n"
        + (f"error: {batch.error}\n" if batch.error else "")
    )

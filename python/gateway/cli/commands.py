"""What every client subcommand of the admin and batch commands takes: the gateway's address, --json and a
deadline."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

DEFAULT_ADDRESS = "127.0.0.1:50051"


def subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    timeout_s: float = 30.0,
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--address", default=os.environ.get("GATEWAY_ADDR", DEFAULT_ADDRESS))
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.add_argument("--timeout", type=float, default=timeout_s, help="seconds before giving up")
    command.set_defaults(handler=handler)
    return command

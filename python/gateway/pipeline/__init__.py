"""The path of a call through the gateway: the chain of stages (chain.py) and the call they share (call.py)."""

from gateway.pipeline.call import Call, CallInfo, CallKind, deadline_from
from gateway.pipeline.chain import CallScope, Pipeline

__all__ = ["Call", "CallInfo", "CallKind", "CallScope", "Pipeline", "deadline_from"]

"""Guardrails: what may pass into a model and out of it, per team policy (config/guardrails.py).

One module per job, composed by the pipeline in this order:
- `input.InputGuard.check(request)`: content rules, injection score, PII block/redact/mask -> InputOutcome
  (the request to send, the placeholder mapping, actions, classification);
- `output.OutputGuard.check(text)` / `.stream()`: PII, secrets and confidential markers out, placeholders restored;
- `anomaly.AnomalyDetector`: per-key usage baselines, flag/throttle/block;
- `injection.InjectionScorer`, `content.ContentRuleChecker`, `classify.classify`: the parts, usable alone;
- `pii`: the one importer of the Rust PII scanner.
"""

from gateway.policy.guardrails.actions import GuardrailAction
from gateway.policy.guardrails.anomaly import AnomalyDetector, AnomalySignal, AnomalyVerdict
from gateway.policy.guardrails.classify import classify
from gateway.policy.guardrails.content import ContentRuleChecker
from gateway.policy.guardrails.injection import InjectionScorer, InjectionVerdict
from gateway.policy.guardrails.input import InputGuard, InputOutcome
from gateway.policy.guardrails.output import OutputGuard, OutputOutcome, OutputStream

__all__ = [
    "AnomalyDetector",
    "AnomalySignal",
    "AnomalyVerdict",
    "ContentRuleChecker",
    "GuardrailAction",
    "InjectionScorer",
    "InjectionVerdict",
    "InputGuard",
    "InputOutcome",
    "OutputGuard",
    "OutputOutcome",
    "OutputStream",
    "classify",
]

"""The learned strategy on the workload issue 20 fixes, beside fixed strategies measured on the same draws.

    python -m benches.routing.learned [--seed 7]

- 4 query types, equally frequent, told apart only by their prompts (code, arithmetic, translation, summaries); the
  router sees no label, only the prompt.
- 3 models at $1, $3 and $10 per million tokens; each call is billed as 1,000 tokens (so its cost is proportional to
  its model's price, as the objective below assumes).
- The simulated provider draws each answer good or bad from the table below (seeded), and every call gets boolean
  feedback: good or not.
- The objective is quality - 0.018 x price: the route's cost_weight is 18 per USD (0.018 x price / (price x 1,000
  tokens / 1e6)).
- At call 20,000 the $1 model's quality on code drops to 0.3; 6,000 calls follow.

The router, the learned strategy and the profiles are the server's own (routing/router.py, routing/learned.py,
learning/); the calls and the feedback are driven in-process, on a simulated clock of one call a second, so that
26,000 calls take seconds. The run is made twice on the same prompts, draws and feedback: as shipped (a long memory
beside the recent one) and, as the reference, with the recent memory alone. Routing overhead is timed on the same
requests for the learned route and a fallback route (the reference: a decision that reads nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.chat import ChatRequest, Message
from gateway.config.loader import validate_config
from gateway.config.schema import GatewayConfig
from gateway.learning.profiles import ProfileBook
from gateway.providers.base import UpstreamCall
from gateway.providers.simulated import SimulatedProvider
from gateway.routing.catalog import ModelCatalog
from gateway.routing.features import RequestFeatures
from gateway.routing.health import HealthBoard
from gateway.routing.learned import LearnedStrategy
from gateway.routing.router import Router
from gateway.tokens import TokenCounter

PRICES = {"m1": 1.0, "m3": 3.0, "m10": 10.0}
TYPES = ("code", "arithmetic", "translation", "summaries")
QUALITY = {
    "m1": {"code": 0.90, "arithmetic": 0.30, "translation": 0.85, "summaries": 0.20},
    "m3": {"code": 0.60, "arithmetic": 0.85, "translation": 0.70, "summaries": 0.80},
    "m10": {"code": 0.95, "arithmetic": 0.95, "translation": 0.95, "summaries": 0.95},
}
PRICE_WEIGHT = 0.018
BILLED_TOKENS = 1000
CALLS = 20_000
DRIFT_CALLS = 2_000
"""The aim: within this many calls of the drift, the $1 model's share of code calls is under 20%."""
AFTER_CALLS = 6_000
"""Calls run after the drift: the aim's 2,000, then 4,000 more to see regret flatten again."""
DRIFTED_CODE_QUALITY = 0.3
HALF_LIFE_S = 1500.0
MEMORY_HALF_LIFE_S = 30 * 86_400.0
"""The config's default: far longer than the run, so in it the long memory forgets nothing."""
# Each kind's prompts begin with a marker the simulated provider's table matches on; the router never reads it.
MARKERS = {"code": "Review this code", "arithmetic": "Compute", "translation": "Translate", "summaries": "Summarize"}


def config(quality: dict[str, dict[str, float]], seed: int, memory_half_life_s: float) -> GatewayConfig:
    table = [
        {"prompt_regex": f"^{MARKERS[kind]}", "good": {model: quality[model][kind] for model in PRICES}}
        for kind in TYPES
    ]
    return validate_config(
        {
            "providers": [{"name": "sim", "type": "simulated", "simulation": {"quality": table, "seed": seed}}],
            "models": [
                {"name": m, "provider": "sim", "input_cost_per_mtok": p, "output_cost_per_mtok": p}
                for m, p in PRICES.items()
            ],
            "feedback": {"metrics": [{"name": "good", "type": "boolean"}]},
            "routes": [
                {
                    "name": "learned",
                    "strategy": "learned",
                    # Cold start: the configured order, cheapest first.
                    "targets": [{"model": m} for m in PRICES],
                    "learned": {
                        "quality": "good",
                        "cost_weight": PRICE_WEIGHT * 1e6 / BILLED_TOKENS,
                        "exploration": 0.1,
                        "min_feedback": 30,
                        "half_life_s": HALF_LIFE_S,
                        "memory_half_life_s": memory_half_life_s,
                    },
                },
                {"name": "fallback", "strategy": "fallback", "targets": [{"model": m} for m in PRICES]},
            ],
        },
        lines={},
        source="benches/routing/learned.py",
    )


class Prompts:
    """Prompts of each kind, varied in wording and content, seeded."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def make(self, kind: str) -> str:
        r = self._rng
        if kind == "code":
            name = r.choice(["total", "parse_rows", "merge", "load_config", "score"])
            body = r.choice(
                [
                    f"def {name}(items):\n    result = 0\n    for item in items:\n        result += item\n"
                    "    return result",
                    f"function {name}(rows) {{\n  const out = [];\n  rows.forEach(r => out.push(r.id));\n"
                    "  return out;\n}",
                    f"fn {name}(v: &[i32]) -> i32 {{\n    let mut s = 0;\n    for x in v {{ s += x; }}\n    s\n}}",
                ]
            )
            ask = r.choice(["Is there a bug?", "Make it faster.", "Add type hints.", "Explain what it does."])
            return f"{MARKERS[kind]}: {ask}\n{body}"
        if kind == "arithmetic":
            a, b, c = r.randint(10, 9999), r.randint(2, 999), r.randint(1, 99)
            op = r.choice(["times", "plus", "divided by", "minus"])
            return f"{MARKERS[kind]} {a} {op} {b}, then add {c}. What is the result?"
        if kind == "translation":
            sentence = r.choice(
                [
                    "Le chat dort sur le canapé depuis ce matin et il ne veut pas sortir.",
                    "Nous avons rendez-vous avec le médecin dans la matinée pour une visite.",
                    "Der Zug kommt heute nicht pünktlich an, weil es auf der Strecke schneit.",
                    "Ich habe das Buch gelesen und es ist sehr spannend, aber auch lang.",
                    "El tren llega tarde porque hay nieve en la vía y los pasajeros esperan.",
                    "Los niños juegan en el parque con sus amigos después de la escuela.",
                ]
            )
            return f"{MARKERS[kind]} into English: {sentence}"
        topic = r.choice(["the quarterly report", "the meeting notes", "this article", "the incident review"])
        sentences = [
            f"The {r.choice(['team', 'company', 'group'])} reviewed the {r.choice(['plan', 'budget', 'schedule'])} "
            f"and found that the {r.choice(['costs', 'delays', 'risks'])} were {r.choice(['higher', 'lower'])} "
            "than expected, so the next steps were agreed with the people who own them."
            for _ in range(r.randint(12, 20))
        ]
        return f"{MARKERS[kind]} {topic} in three sentences:\n" + " ".join(sentences)


@dataclass
class Tally:
    """Expected quality and price of what a policy picked, call by call."""

    quality: list[float]
    price: list[float]
    objective: list[float]

    @classmethod
    def new(cls) -> Tally:
        return cls([], [], [])

    def add(self, model: str, kind: str, quality: dict[str, dict[str, float]]) -> None:
        q = quality[model][kind]
        self.quality.append(q)
        self.price.append(PRICES[model])
        self.objective.append(q - PRICE_WEIGHT * PRICES[model])

    def window(self, start: int, end: int) -> tuple[float, float]:
        """Mean quality, and cost as a share of always using the $10 model, over calls [start, end)."""
        return statistics.fmean(self.quality[start:end]), statistics.fmean(self.price[start:end]) / PRICES["m10"]


def oracle(kind: str, quality: dict[str, dict[str, float]]) -> str:
    return max(PRICES, key=lambda m: quality[m][kind] - PRICE_WEIGHT * PRICES[m])


@dataclass
class Outcome:
    """One run of the learned route over the whole workload, with the fixed strategies scored on the same calls."""

    learned: Tally
    fixed: dict[str, Tally]
    kinds: list[str]
    picks: list[str]
    explored: int
    plan_ns: list[int]
    fallback_ns: list[int]
    profiles: ProfileBook


async def run(seed: int, memory_half_life_s: float) -> Outcome:
    """The same prompts, answers' draws and feedback for every `memory_half_life_s` (the seeded draws do not depend
    on the picks)."""
    rng = random.Random(seed)
    prompts = Prompts(rng)
    drifted = {m: dict(q) for m, q in QUALITY.items()}
    drifted["m1"]["code"] = DRIFTED_CODE_QUALITY
    before, after = config(QUALITY, seed, memory_half_life_s), config(drifted, seed, memory_half_life_s)
    nowhere = Path(tempfile.gettempdir())  # the simulated providers' batch folder: no batch, nothing is written
    catalog = ModelCatalog.from_config(before, nowhere)
    models = {m.name: m for m in before.models}
    clock = [0.0]
    profiles = ProfileBook({"learned": HALF_LIFE_S}, memory_half_lives={"learned": memory_half_life_s})
    strategy = LearnedStrategy(profiles, models, lambda: clock[0], np.random.default_rng(seed))
    router = Router(catalog, HealthBoard(before.circuit_breaker), random.Random(seed), strategy)
    providers = [SimulatedProvider(before.providers[0], nowhere), SimulatedProvider(after.providers[0], nowhere)]
    counter = TokenCounter()
    out = Outcome(
        Tally.new(), {name: Tally.new() for name in (*PRICES, "random", "oracle")}, [], [], 0, [], [], profiles
    )
    for number in range(CALLS + AFTER_CALLS):
        clock[0] = float(number)
        table = QUALITY if number < CALLS else drifted
        provider = providers[0] if number < CALLS else providers[1]
        kind = rng.choice(TYPES)
        request = ChatRequest("learned", [Message("user", prompts.make(kind))])
        features = _features(request, counter)
        started = time.thread_time_ns()
        plan = router.plan("learned", features)
        out.plan_ns.append(time.thread_time_ns() - started)
        started = time.thread_time_ns()
        router.plan("fallback", features)
        out.fallback_ns.append(time.thread_time_ns() - started)
        assert plan.learned is not None
        model = plan.candidates[0].model
        result = await provider.chat(request, model, UpstreamCall(f"bench-{number}", None))
        good = result.text.startswith(f"[simulated {model.name}: good answer]")
        prompt_tokens = features.prompt_tokens(model)
        arm = ("learned", plan.learned.query_type, model.name)
        profiles.observe_call(
            arm,
            clock[0],
            ok=True,
            latency_s=0.5,
            cost_usd=PRICES[model.name] * BILLED_TOKENS / 1e6,
            answer_tokens=max(BILLED_TOKENS - prompt_tokens, 0),
        )
        profiles.observe_quality(arm, clock[0], 1.0 if good else 0.0)
        out.kinds.append(kind)
        out.picks.append(model.name)
        out.explored += plan.learned.explored
        out.learned.add(model.name, kind, table)
        for name in PRICES:
            out.fixed[name].add(name, kind, table)
        out.fixed["random"].add(rng.choice(list(PRICES)), kind, table)
        out.fixed["oracle"].add(oracle(kind, table), kind, table)
    return out


def _features(request: ChatRequest, counter: TokenCounter) -> RequestFeatures:
    return RequestFeatures(
        request,
        team="bench",
        streaming=False,
        count_prompt=lambda m: counter.count_chat(request.messages, m.upstream, m.tokenizer).tokens,
        prompt_bound=counter.upper_bound(request),
    )


def _report(runs: dict[str, Outcome]) -> None:
    """`runs`: the shipped strategy first, then the references."""
    shipped = next(iter(runs.values()))
    fixed = shipped.fixed
    start, end = 10_000, CALLS
    oracle_q, _ = fixed["oracle"].window(start, end)
    print(f"calls {start + 1:,}-{end:,} (expected quality of the model picked; cost as a share of always-$10):")
    print(f"  {'policy':<22} {'quality':>8} {'of oracle':>10} {'cost':>7}")
    for name, tally in (*((n, o.learned) for n, o in runs.items()), *fixed.items()):
        q, c = tally.window(start, end)
        print(f"  {name:<22} {q:>8.4f} {q / oracle_q:>10.1%} {c:>7.1%}")
    q, c = shipped.learned.window(start, end)
    print(f"  aim: quality >= 95% of oracle ({q / oracle_q:.1%}), cost <= 60% of $10 ({c:.1%})")
    marks = list(range(0, CALLS + AFTER_CALLS + 1, 2000))
    print(f"regret against the oracle (objective) added per 2,000 calls; the drift at call {CALLS:,}:")
    print(f"  {'calls to':<22} " + " ".join(f"{m // 1000:>3}k" for m in marks[1:]))
    for name, out in runs.items():
        regret = np.concatenate(
            ([0.0], np.cumsum(np.array(fixed["oracle"].objective) - np.array(out.learned.objective)))
        )
        added = " ".join(f"{regret[b] - regret[a]:>4.0f}" for a, b in itertools.pairwise(marks))
        print(f"  {name:<22} {added}   total {regret[-1]:.0f}, explored {out.explored / len(out.picks):.1%}")
    print(f"after the drift ($1 model's code quality {DRIFTED_CODE_QUALITY}): $1's share of code calls per 250 calls")
    for name, out in runs.items():
        shares = []
        for a in range(CALLS, CALLS + DRIFT_CALLS, 250):
            code = [p for k, p in zip(out.kinds[a : a + 250], out.picks[a : a + 250], strict=True) if k == "code"]
            shares.append(f"{code.count('m1') / len(code):>4.0%}")
        print(f"  {name:<22} " + " ".join(shares))
    print("routing decision per call, CPU time of the thread (same requests, query type included):")
    plan_ns, fallback_ns = shipped.plan_ns, shipped.fallback_ns
    for name, figure in (
        ("median", statistics.median),
        ("mean", statistics.fmean),
        ("p99", lambda xs: float(np.percentile(xs, 99))),
    ):
        learned_us, fallback_us = figure(plan_ns) / 1000, figure(fallback_ns) / 1000
        print(
            f"  {name}: learned {learned_us:.1f} us, fallback {fallback_us:.1f} us: "
            f"overhead {learned_us - fallback_us:.1f} us"
        )
    seen = sorted({p.query_type for p in shipped.profiles.profiles(float(len(shipped.picks)))})
    print("query types seen: " + ", ".join(seen))


async def compare(seed: int) -> None:
    runs = {
        "learned": await run(seed, MEMORY_HALF_LIFE_S),
        # The reference: no long memory (it forgets as fast as the recent one), the strategy before the change test.
        "learned, recent only": await run(seed, HALF_LIFE_S),
    }
    _report(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(compare(args.seed))


if __name__ == "__main__":
    main()

"""The learned verdict through its public surface: the shipped file loads and scores, a file trained on other
features is refused with the fix, and the matcher's hard vetoes hold whatever a model says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cache.semantic.matcher import DEFAULT_THRESHOLD, SemanticMatcher
from gateway.cache.semantic.pair_features import FEATURES
from gateway.cache.semantic.pair_model import MODEL_FILE, PairModel, Tree, load_pair_model, shipped_pair_model
from gateway.config.cache import CacheConfig

ALWAYS = PairModel("always", base=50.0, trees=(), threshold=0.5, floor=0.6)
NEVER = PairModel("never", base=-50.0, trees=(), threshold=0.5, floor=0.6)


def test_the_shipped_model_is_versioned_and_says_what_trained_it() -> None:
    raw = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    model = shipped_pair_model()
    assert model.version == raw["version"] == "verify-pair-v4"
    assert "near_miss_corpus.py" in raw["trained_on"]
    assert "data/independent/verify_pairs.jsonl" in raw["trained_on"]
    assert "data/independent-2/verify_pairs.jsonl" in raw["trained_on"]
    assert "data/independent-3/verify_pairs.jsonl" in raw["trained_on"]
    assert raw["validated_floor_on"] == ["tests/cache/near_miss_holdout.py", "tests/cache/near_miss_holdout3.py"]
    assert raw["held_out"] == ["data/independent-4"]
    assert set(raw["out_of_fold"]) == {"data/independent", "data/independent-2", "data/independent-3"}, (
        "the k-fold figures docs quote"
    )
    assert 0.5 < model.threshold < 1.0
    assert len(model.trees) == 500, "5 seeds of 100 trees"


def test_the_default_thresholds_are_the_models_floor() -> None:
    """The cache's configured floor, the matcher's default and the cosine the model was trained from are one value:
    a lower one would ask the model about pairs it never saw, a higher one hide the rewordings it learned."""
    assert shipped_pair_model().floor == DEFAULT_THRESHOLD == CacheConfig().similarity_threshold == 0.65
    assert SemanticMatcher().threshold == DEFAULT_THRESHOLD


def test_a_tree_is_walked_to_its_leaf_and_leaves_add_to_the_log_odds() -> None:
    tree = Tree(feature=(0, -2, -2), threshold=(0.9, 0.0, 0.0), left=(1, -1, -1), right=(2, -1, -1), value=(0, -1, 1))
    model = PairModel("t", base=0.0, trees=(tree, tree), threshold=0.5, floor=0.6)
    assert model.probability([0.95] + [0.0] * (len(FEATURES) - 1)) == pytest.approx(1 / (1 + 2.718281828459045**-2))
    assert model.probability([0.80] + [0.0] * (len(FEATURES) - 1)) < 0.5


def test_a_model_trained_on_other_features_is_refused(tmp_path: Path) -> None:
    raw = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    raw["features"] = raw["features"][:-1]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"retrain it with scripts/train_verify_model\.py"):
        load_pair_model(path)


@pytest.mark.parametrize(
    ("cached", "asked", "kind"),
    [
        ("convert 5 km to miles", "convert 50 km to miles", "number"),
        ("how do I enable dark mode", "how do I not enable dark mode", "negation"),
        ("flights from Paris to Rome", "flights from Rome to Paris", "direction"),
        ("How do I rename a file in Linux?", "How do I rename a file in Windows?", "entity"),
    ],
)
def test_hard_rules_veto_whatever_the_model_says(cached: str, asked: str, kind: str) -> None:
    verdict = SemanticMatcher(model=ALWAYS).accepts(cached, asked, 0.99)
    assert not verdict.same
    assert verdict.kind == kind


def test_the_model_decides_what_the_rules_let_through() -> None:
    cached, asked = "What makes the sky appear blue?", "Why is the sky blue?"
    assert SemanticMatcher(model=ALWAYS).accepts(cached, asked, 0.9).same
    refused = SemanticMatcher(model=NEVER).accepts(cached, asked, 0.9)
    assert refused.kind == "model"
    assert refused.reason.startswith("model: 0.000 < 0.50 (constraint:")
    assert not SemanticMatcher(model=None).accepts(cached, asked, 0.9).same, "the rules alone miss this rewording"
    assert not SemanticMatcher(model=ALWAYS).accepts(cached, asked, 0.64).same, "below the cosine threshold"

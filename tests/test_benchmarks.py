"""Statistics of the benchmark scripts (benchmarks/*.py): what the README's comparison figures are made of."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy_vs_fer  # noqa: E402
import inference_speed  # noqa: E402
import search_compare  # noqa: E402


def test_a_face_the_peer_gives_no_result_for_is_counted_and_wrong_not_angry():
    names = list(accuracy_vs_fer.LABELS)
    y = np.array([0, 0, 3, 3])
    probs = np.zeros((4, 7))
    probs[1, 0] = probs[2, 3] = probs[3, 3] = 1.0  # face 0: no result (all zeros, argmax would say 'angry')
    found = np.array([False, True, True, True])
    scores = accuracy_vs_fer.peer_scores(y, probs, found, names)
    assert scores["undetected"] == 1
    assert scores["accuracy"] == pytest.approx(3 / 4) and scores["accuracy_detected_only"] == pytest.approx(1.0)
    # angry: 1 of 2 recalled, precision 1 -> F1 2/3; happy perfect; macro over the classes present
    assert scores["per_class_f1"]["angry"] == pytest.approx(2 / 3) and scores["per_class_f1"]["happy"] == 1.0
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_welch_t_matches_scipy_and_a_hand_computation():
    a, b = [0.40, 0.42, 0.38, 0.41, 0.39], [0.30, 0.36, 0.33, 0.31]
    got = search_compare.welch_t(a, b)
    ma, mb = np.mean(a), np.mean(b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    assert got["t"] == pytest.approx((ma - mb) / np.sqrt(va + vb))
    assert got["df"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 3))
    from scipy import stats  # installed with scikit-learn (dev extra)

    ref = stats.ttest_ind(a, b, equal_var=False)
    assert got["t"] == pytest.approx(ref.statistic) and got["p_two_sided"] == pytest.approx(ref.pvalue)
    assert search_compare.welch_t([1.0], b)["t"] is None


def test_end_to_end_timing_alternates_blocks_of_consecutive_calls_per_tool():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    result = inference_speed.interleaved(fns, seconds=0.0, min_rounds=3, block=4)
    timed = calls[4:]  # two warm-up calls each
    assert timed == (["a"] * 4 + ["b"] * 4) * 3
    assert result["a"]["runs"] == result["b"]["runs"] == 12 and result["a"]["interleaved"] == "blocks of 4 calls"

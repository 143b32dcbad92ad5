"""nasfer.metrics against scikit-learn on random and edge-case inputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import sklearn.metrics as sk  # the dev extra: a missing install must fail, not skip
from hypothesis import given, settings
from hypothesis import strategies as st

from nasfer import metrics

K = 7
LABELS = [f"c{i}" for i in range(K)]


def random_case(seed: int, n: int, k: int = K, absent: tuple[int, ...] = (), ties: bool = False):
    """Labels (with some classes absent), softmax-ish probs correlated with the truth."""
    rng = np.random.default_rng(seed)
    classes = np.array([c for c in range(k) if c not in absent])
    y = rng.choice(classes, size=n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if ties:
        logits = np.round(logits, 0)  # many exactly equal scores
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def sklearn_reference(y, probs, k=K):
    pred = probs.argmax(1)
    present = sorted(set(y.tolist()))
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    macro = sk.precision_recall_fscore_support(y, pred, labels=present, average="macro", zero_division=0)
    weighted = sk.precision_recall_fscore_support(y, pred, labels=list(range(k)), average="weighted",
                                                  zero_division=0)
    return {"cm": sk.confusion_matrix(y, pred, labels=list(range(k))), "p": p, "r": r, "f": f, "s": s,
            "macro": macro, "weighted_f1": weighted[2], "acc": sk.accuracy_score(y, pred)}


def check_against_sklearn(y, probs, k=K):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our code must never warn
        report = metrics.classification_report(y, probs, LABELS[:k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on ill-defined metrics; we only want its numbers
        ref = sklearn_reference(y, probs, k)
    np.testing.assert_array_equal(np.array(report["confusion"]), ref["cm"])
    for i, name in enumerate(LABELS[:k]):
        pc = report["per_class"][name]
        assert pc["precision"] == pytest.approx(ref["p"][i])
        assert pc["recall"] == pytest.approx(ref["r"][i])
        assert pc["f1"] == pytest.approx(ref["f"][i])
        assert pc["support"] == ref["s"][i]
    assert report["macro_precision"] == pytest.approx(ref["macro"][0])
    assert report["macro_recall"] == pytest.approx(ref["macro"][1])
    assert report["macro_f1"] == pytest.approx(ref["macro"][2])
    assert report["weighted_f1"] == pytest.approx(ref["weighted_f1"])
    assert report["accuracy"] == pytest.approx(ref["acc"])
    for i, name in enumerate(LABELS[:k]):
        positive = y == i
        if positive.all() or not positive.any():
            assert report["roc_auc"][name] is None
        else:
            assert report["roc_auc"][name] == pytest.approx(sk.roc_auc_score(positive, probs[:, i]))
    rows_without_ties = all(len(set(row.tolist())) == k for row in probs)
    if k > 2 and rows_without_ties:  # sklearn breaks ties by class order, we count them for the true class
        assert report["top2_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y, probs, k=2, labels=list(range(k))))
    json.dumps(report, allow_nan=False)  # plain, finite, JSON-safe
    return report


@pytest.mark.parametrize("seed", range(5))
def test_random_inputs_match_sklearn(seed):
    y, probs = random_case(seed, n=200 + 37 * seed)
    check_against_sklearn(y, probs)


@pytest.mark.parametrize("absent", [(6,), (1, 6), (0, 2, 4)])
def test_absent_classes_match_sklearn_and_auc_is_null(absent):
    y, probs = random_case(10, n=150, absent=absent)
    report = check_against_sklearn(y, probs)
    for c in absent:
        assert report["per_class"][LABELS[c]]["support"] == 0
        assert report["per_class"][LABELS[c]]["recall"] == 0.0
        assert report["roc_auc"][LABELS[c]] is None


def test_perfect_predictions():
    y = np.tile(np.arange(K), 5)
    probs = np.full((len(y), K), 0.01)
    probs[np.arange(len(y)), y] = 0.94
    report = check_against_sklearn(y, probs)
    assert report["accuracy"] == report["macro_f1"] == report["top2_accuracy"] == 1.0
    assert all(v == 1.0 for v in report["roc_auc"].values())
    assert report["ece"] == pytest.approx(0.06)


def test_all_one_class_truth_and_prediction():
    y = np.full(20, 3)
    probs = np.zeros((20, K))
    probs[:, 3] = 1.0
    report = check_against_sklearn(y, probs)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert all(v is None for v in report["roc_auc"].values())  # no negatives for 3, no positives elsewhere


def test_all_predicted_one_wrong_class_is_zero_not_nan():
    y = np.tile(np.arange(K), 3)
    probs = np.zeros((len(y), K))
    probs[:, 0] = 1.0
    report = check_against_sklearn(y, probs)
    assert report["per_class"]["c1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}


def test_empty_input_is_all_zero_and_warning_free():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = metrics.classification_report(np.zeros(0, int), np.zeros((0, K)), LABELS)
    assert report["n"] == 0 and report["accuracy"] == 0.0 and report["macro_f1"] == 0.0
    assert report["confusion"] == [[0] * K] * K
    assert set(report["roc_auc"].values()) == {None}
    assert report["ece"] == 0.0


def test_report_keys_and_types():
    y, probs = random_case(3, 50)
    report = metrics.classification_report(y, probs, LABELS)
    assert list(report) == ["n", "labels", "accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1",
                            "per_class", "confusion", "roc_auc", "ece", "top2_accuracy"]
    assert type(report["n"]) is int and report["labels"] == LABELS
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1", "ece", "top2_accuracy"):
        assert type(report[key]) is float
    assert all(type(v) is int for row in report["confusion"] for v in row)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 60), st.integers(2, 5), st.booleans())
def test_property_matches_sklearn(seed, n, k, ties):
    rng = np.random.default_rng(seed)
    absent = tuple(c for c in range(k) if rng.random() < 0.2)
    if len(absent) == k:
        absent = absent[1:]
    y, probs = random_case(seed, n, k=k, absent=absent, ties=ties)
    check_against_sklearn(y, probs, k)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("drop", [False, True])
def test_roc_curve_matches_sklearn_including_ties(ties, drop):
    rng = np.random.default_rng(7)
    y = rng.random(300) < 0.3
    scores = rng.random(300) + 0.5 * y
    if ties:
        scores = np.round(scores, 1)
    fpr, tpr, thr = metrics.roc_curve(y, scores, drop_intermediate=drop)
    rfpr, rtpr, rthr = sk.roc_curve(y, scores, drop_intermediate=drop)
    np.testing.assert_allclose(fpr, rfpr)
    np.testing.assert_allclose(tpr, rtpr)
    np.testing.assert_array_equal(thr, rthr)
    assert metrics.auc(fpr, tpr) == pytest.approx(sk.auc(rfpr, rtpr))
    assert metrics.binary_roc_auc(y, scores) == pytest.approx(sk.roc_auc_score(y, scores))


def test_roc_undefined_without_negatives_is_none_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.binary_roc_auc(np.ones(5), np.arange(5.0)) is None
        assert metrics.binary_roc_auc(np.zeros(5), np.arange(5.0)) is None
        fpr, tpr, _ = metrics.roc_curve(np.ones(5), np.arange(5.0))
    assert np.isnan(fpr).all() and tpr[-1] == 1.0


def test_all_scores_tied_gives_half_auc():
    y = np.array([0, 1, 0, 1, 1])
    assert metrics.binary_roc_auc(y, np.full(5, 0.3)) == pytest.approx(sk.roc_auc_score(y, np.full(5, 0.3))) == 0.5


def _ece_loop(y, probs, n_bins):
    """Reference ECE written the slow, obvious way."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [(c > lo or (b == 0 and c >= lo)) and c <= hi for c in conf]
        inside = np.array(inside)
        if inside.any():
            total += inside.sum() / len(y) * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_and_reliability_bins(n_bins):
    y, probs = random_case(4, 400)
    assert metrics.expected_calibration_error(y, probs, n_bins) == pytest.approx(_ece_loop(y, probs, n_bins))
    bins = metrics.reliability_bins(y, probs, n_bins)
    assert len(bins) == n_bins and sum(b["count"] for b in bins) == 400
    assert bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    for b in bins:
        if b["count"]:
            assert b["lower"] <= b["confidence"] <= b["upper"] + 1e-12


def test_ece_of_a_perfectly_calibrated_bin_is_zero():
    # confidence 0.75 everywhere, right 3 times in 4
    probs = np.array([[0.75, 0.25]] * 4)
    y = np.array([0, 0, 0, 1])
    assert metrics.expected_calibration_error(y, probs) == pytest.approx(0.0)


def test_top_k_ties_do_not_depend_on_class_order():
    probs = np.array([[0.4, 0.3, 0.3], [0.4, 0.3, 0.3]])
    assert metrics.top_k_accuracy(np.array([1, 2]), probs, k=2) == 1.0
    assert metrics.top_k_accuracy(np.array([0, 0]), probs, k=1) == 1.0


def test_confusion_rejects_out_of_range_and_mismatch():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metrics.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="true labels"):
        metrics.confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match="columns"):
        metrics.classification_report([0, 1], np.zeros((2, 3)), ["a", "b"])

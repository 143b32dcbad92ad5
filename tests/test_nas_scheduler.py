"""Successive halving (ASHA): who gets promoted, and when."""

import pytest

from nasfer.nas.scheduler import SuccessiveHalving


def test_asha_promotes_the_top_third_as_results_arrive():
    sh = SuccessiveHalving(n_rungs=3, eta=3)
    assert sh.promotion() is None
    for key, score in [("a", 0.30), ("b", 0.50)]:
        sh.report(key, 0, score)
    assert sh.promotion() is None  # floor(2 / 3) = 0 may move up
    sh.report("c", 0, 0.40)
    assert sh.promotion() == ("b", 1)
    sh.report("b", 1, 0.55)
    assert sh.promotion() is None
    for key, score in [("d", 0.9), ("e", 0.1), ("f", 0.2)]:
        sh.report(key, 0, score)
    assert sh.promotion() == ("d", 1)  # the best child is promoted whenever it arrived
    sh.report("d", 1, 0.6)
    for key in "ghi":
        sh.report(key, 0, 0.0)
    assert sh.promotion() == ("c", 1)  # 9 at rung 0: top 3 (d, b, c)
    sh.report("c", 1, 0.7)
    assert sh.promotion() == ("c", 2)  # 3 at rung 1: the best goes to the reference
    assert sh.highest("c") == 1 and sh.highest("zz") == -1


def test_state_round_trip_and_bad_arguments():
    sh = SuccessiveHalving(2, 2)
    sh.report("a", 0, 1.0)
    other = SuccessiveHalving(2, 2)
    other.load_state_dict(sh.state_dict())
    assert other.scores(0) == {"a": 1.0}
    with pytest.raises(ValueError):
        SuccessiveHalving(0)
    with pytest.raises(ValueError):
        SuccessiveHalving(2, eta=1)
    with pytest.raises(ValueError):
        other.load_state_dict(SuccessiveHalving(3, 2).state_dict())

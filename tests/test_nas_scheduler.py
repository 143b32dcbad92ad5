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
    for key in "jkl":
        sh.report(key, 0, 0.0)
    # one candidate per rung, highest first: a search short of time takes the first it can afford
    assert list(sh.promotions()) == [("c", 2), ("a", 1)]  # 12 at rung 0: top 4 (d, b, c, a)
    sh.drop("c")  # its promotion to rung 2 failed: not proposed again, and no one takes its slot
    assert list(sh.promotions()) == [("a", 1)]
    again = SuccessiveHalving(n_rungs=3, eta=3)
    again.load_state_dict(sh.state_dict())
    assert list(again.promotions()) == [("a", 1)]


def test_near_the_end_a_lower_promotion_that_fits_beats_a_new_child(tmp_path):
    from nasfer.nas.config import SearchConfig
    from nasfer.nas.search import SearchRun

    run = SearchRun(SearchConfig(out=str(tmp_path), rungs=("10s@24", "1e@48", "3e@48"), budget_minutes=1),
                    lambda spec, fidelity: 0.5)
    for i, key in enumerate("abcdefghijkl"):
        run.scheduler.report(key, 0, 0.1 * i if i < 9 else 0.0)
    for key in "ihg":
        run.scheduler.report(key, 1, 0.5)
    run.durations = {0: [5.0], 1: [20.0], 2: [70.0]}  # 60 s left: rung 2 does not fit, rung 1 does
    assert list(run.scheduler.promotions()) == [("i", 2), ("f", 1)]
    assert run.next_job() == ("f", 1)


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

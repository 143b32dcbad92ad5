"""The search loop: toy rewards, a tiny end-to-end search on generated faces, resume, and the CLI."""

import json

import numpy as np
import pytest
from fixtures_data import pattern_image

from nasfer.cli import main
from nasfer.data import FaceDataset
from nasfer.errors import ModelError
from nasfer.nas.evaluators import mnas_reward
from nasfer.nas.genotype import Genotype
from nasfer.nas.search import LOG_FILE, STATE_FILE, SearchConfig, load_search_data, make_evaluator, search

TINY = dict(image_size=16, F=4, N=1, B=3, batch_size=16, eval_batch=32, subset=0, val_size=42,
            shared_steps=4, controller_steps=5, top_k=2, progress=False)


def _toy(genotype: Genotype) -> float:
    ops = genotype.ops()
    return sum(op == "sep_conv_3x3" for op in ops) / len(ops)


@pytest.fixture(scope="module")
def faces() -> FaceDataset:
    """210 learnable Training faces of 7 classes plus 14 PublicTest ones the search must never read."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 32)
    images = np.stack([pattern_image(int(label), rng) for label in labels])
    splits = np.array((["Training"] * 30 + ["PublicTest"] * 2) * 7)
    images[splits == "PublicTest"] = 255  # recognisable if they leaked in
    return FaceDataset(images=images, labels=labels, splits=splits,
                       sources=np.array([f"face{i}" for i in range(len(labels))]))


def _lines(out):
    return [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]


def test_search_with_a_toy_reward_learns_and_random_does_not(tmp_path):
    common = dict(budget_minutes=5.0, max_steps=240, controller_lr=0.02, B=3, top_k=3, progress=False)
    learned = search(SearchConfig(out=str(tmp_path / "rl"), strategy="reinforce", **common), reward_fn=_toy)
    control = search(SearchConfig(out=str(tmp_path / "rnd"), strategy="random", **common), reward_fn=_toy)
    s, c = learned.summary, control.summary
    assert s["steps"] == c["steps"] == 240 and s["shared_steps"] == 0  # no data, no shared weights
    assert s["reward_mean_last_quarter"] > s["reward_mean_first_quarter"] + 0.3
    assert c["reward_mean_last_quarter"] < c["reward_mean_first_quarter"] + 0.1
    assert learned.score > control.score and _toy(learned.best) >= 0.8
    assert Genotype.load(tmp_path / "rl" / "best_genotype.json") == learned.best


def test_search_stops_at_the_time_budget(tmp_path):
    result = search(SearchConfig(out=str(tmp_path / "t"), budget_minutes=0.03, B=2, progress=False), reward_fn=_toy)
    assert 1.8 <= result.summary["elapsed_s"] < 10 and result.summary["steps"] > 10


def test_search_data_holds_out_validation_from_training_only(faces):
    data = load_search_data(SearchConfig(**TINY), faces)
    assert len(data.train_y) + len(data.val_y) == 210 and len(data.val_y) == 42
    assert data.train_x.shape[1:] == (1, 16, 16) and data.val_x.max() < 255
    assert sorted(np.bincount(data.val_y.numpy()).tolist()) == [6] * 7  # stratified


def test_end_to_end_search_writes_log_and_genotype_and_resumes(tmp_path, faces):
    out = tmp_path / "search"
    cfg = SearchConfig(out=str(out), budget_minutes=2.0, max_steps=7, **TINY)  # stops inside epoch 2
    first = search(cfg, dataset=faces)
    assert first.summary["steps"] == 7 and first.summary["shared_steps"] == 8
    records = _lines(out)
    controller = [r for r in records if r["kind"] == "controller"]
    assert [r["step"] for r in controller] == list(range(1, 8))
    for key in ("reward", "baseline", "entropy", "genotype", "elapsed", "accuracy"):
        assert key in controller[0]
    assert all(0.0 <= r["reward"] <= 1.0 for r in controller)
    for name in ("best_genotype.json", "summary.json", STATE_FILE, "best_normal.png", "best_reduction.png"):
        assert (out / name).is_file(), name
    best = Genotype.load(out / "best_genotype.json")
    assert len(best.normal) == 3 and best == first.best
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] + summary["n_val"] == 210 and len(summary["top_k"]) >= 2

    # A step written after the last saved state (an interruption) is dropped and redone on resume.
    with open(out / LOG_FILE, "a") as f:
        f.write(json.dumps({"kind": "controller", "step": 8, "lost": True}) + "\n")
    resumed = search(SearchConfig(out=str(out), budget_minutes=2.0, max_steps=20, **TINY), dataset=faces)
    controller = [r for r in _lines(out) if r["kind"] == "controller"]
    assert [r["step"] for r in controller] == list(range(1, 21)) and not any("lost" in r for r in controller)
    # epoch 2 went on where it stopped (no second shared phase): 4 epochs of 4 shared + 5 controller steps
    assert resumed.summary["steps"] == 20 and resumed.summary["shared_steps"] == 16
    assert len(_lines(out)) == 4 + 20

    again = search(SearchConfig(out=str(out), budget_minutes=2.0, max_steps=20, **TINY), dataset=faces)
    assert again.summary["steps"] == 20 and len(_lines(out)) == 4 + 20  # finished: nothing is redone

    with pytest.raises(ModelError, match=r"other settings \(F: 4 -> 6\)"):
        search(SearchConfig(out=str(out), budget_minutes=2.0, max_steps=30, **{**TINY, "F": 6}), dataset=faces)


def test_from_scratch_strategy_and_latency_aware_reward(tmp_path, faces):
    cfg = SearchConfig(out=str(tmp_path / "full"), strategy="reinforce-full", budget_minutes=2.0, max_steps=2,
                       child_steps=2, **{**TINY, "controller_steps": 2, "top_k": 1})
    result = search(cfg, dataset=faces)
    assert result.summary["steps"] == 2 and result.summary["shared_steps"] == 0
    assert 0.0 <= result.summary["accuracy"] <= 1.0
    # common random numbers: a child's score depends on the child only, so differences are architecture
    evaluator = make_evaluator(cfg, load_search_data(cfg, faces))
    child = Genotype.from_dict(_lines(tmp_path / "full")[0]["genotype"])
    assert evaluator(child) == evaluator(child) == _lines(tmp_path / "full")[0]["accuracy"]

    assert mnas_reward(0.6, 10.0, 10.0, -0.07) == pytest.approx(0.6)
    assert mnas_reward(0.6, 20.0, 10.0, -0.07) == pytest.approx(0.6 * 2 ** -0.07)
    assert mnas_reward(0.6, None, 0.0, -0.07) == 0.6
    lat = search(SearchConfig(out=str(tmp_path / "lat"), budget_minutes=2.0, max_steps=2, B=5, top_k=1,
                              controller_steps=2, target_ms=5.0, progress=False), reward_fn=_toy)
    record = _lines(tmp_path / "lat")[0]
    assert record["latency_ms"] > 0
    assert record["reward"] == pytest.approx(mnas_reward(record["accuracy"], record["latency_ms"], 5.0, -0.07))
    assert lat.summary["latency_ms"] > 0


def test_cli_search(tmp_path, learnable_folder, capsys):
    out = tmp_path / "cli"
    code = main(["search", "--data", str(learnable_folder), "--out", str(out), "--budget-minutes", "1",
                 "--max-steps", "3", "--image-size", "16", "--filters", "4", "--cells", "1", "--blocks", "2",
                 "--val-size", "35", "--shared-steps", "2", "--controller-steps", "3", "--top-k", "1",
                 "--no-progress"])
    assert code == 0
    assert "best genotype" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] + summary["n_val"] == 280  # train/ only: test/ is never read
    assert main(["search", "--out", str(tmp_path / "x")]) == 2
    assert "--data is required" in capsys.readouterr().err

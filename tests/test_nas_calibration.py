"""benchmarks/proxy_calibration.py end to end on tiny generated data: picks architectures by ONNX latency,
trains references and proxies, writes honest statistics, and resumes without redoing finished work."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibration_stats  # noqa: E402
import proxy_calibration  # noqa: E402


def test_score_proxy_statistics():
    perfect = calibration_stats.score_proxy([1, 2, 3, 4, 5, 6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 200)
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["top1_regret"] == 0.0
    assert perfect["tau_top_half"] == pytest.approx(1.0) and perfect["tau_ci95"] == [pytest.approx(1.0)] * 2
    reversed_ = calibration_stats.score_proxy([6, 5, 4, 3, 2, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 200)
    assert reversed_["kendall_tau"] == pytest.approx(-1.0) and reversed_["top1_regret"] == pytest.approx(0.5)


def test_calibration_end_to_end_and_resume(tmp_path, learnable_folder):
    work, out = tmp_path / "work", tmp_path / "calibration.json"
    argv = ["--data", str(learnable_folder), "--work-dir", str(work), "--out", str(out), "--n-macro", "2",
            "--latency-range", "0.0001", "1000", "--max-candidates", "6", "--blocks", "2", "--ref-epochs", "1",
            "--second-seed", "1", "--proxies", "2s@16", "3s@24", "--no-hand", "--bootstrap", "20"]
    assert proxy_calibration.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["status"] == "complete"
    models = result["models"]
    assert len(models) == 2 and sum(m["second_seed"] for m in models) == 1
    for m in models:
        assert m["latency"]["ms_per_face_b1"] > 0 and m["params"] > 0
        assert 0.0 <= m["reference"]["0"] <= 1.0 and set(m["proxies"]) == {"2s@16", "3s@24"}
    twice = next(m for m in models if m["second_seed"])
    assert 0.0 <= twice["reference"]["1"] <= 1.0 and result["noise_ceiling"]["n"] == 1
    assert set(result["proxies"]) == {"2s@16", "3s@24", "training-free: params", "training-free: flops"}
    assert result["proxies"]["2s@16"]["n"] == 2

    # resume: nothing finished is trained again
    histories = sorted(work.glob("*/ref-s*/history.json"))
    stamps = [p.stat().st_mtime_ns for p in histories]
    proxies = {p: p.read_text() for p in work.glob("*/proxies.json")}
    assert proxy_calibration.main(argv) == 0
    assert [p.stat().st_mtime_ns for p in histories] == stamps
    assert {p: p.read_text() for p in work.glob("*/proxies.json")} == proxies
    assert json.loads(out.read_text())["models"] == models


def test_an_existing_draw_with_empty_latency_bins_is_topped_up(tmp_path):
    args = proxy_calibration.parse_args(["--data", "x", "--n-macro", "2", "--latency-range", "0.0001", "1000",
                                         "--max-candidates", "4", "--blocks", "2", "--no-hand"])
    work = tmp_path / "work"
    work.mkdir()
    first = {"id": "macro-01", "name": "macro", "kwargs": {"spec": None}, "second_seed": False}
    (work / "models.json").write_text(json.dumps({"drawn_with": {}, "models": [first]}))
    models = proxy_calibration.pick_models(args, work)
    assert [m["id"] for m in models] == ["macro-01", "macro-00"]
    assert models[1]["latency"]["ms_per_face_b1"] > 0 and models[1]["params"] > 0
    assert json.loads((work / "models.json").read_text())["models"] == models  # frozen again


def test_a_frozen_list_follows_the_hand_designs(tmp_path, monkeypatch, capsys):
    """NASNet-A moved from the mobile size (outside the latency range, ~45 min an epoch) to 1 @ 8 after the draw."""
    monkeypatch.setattr(proxy_calibration, "HAND", [("vgg-tiny", "vgg", {"width": 4})])
    args = proxy_calibration.parse_args(["--data", "x", "--n-macro", "1"])
    work = tmp_path / "work"
    work.mkdir()
    macro = {"id": "macro-00", "name": "macro", "kwargs": {"spec": None}, "second_seed": True}
    stale = {"id": "nasnet-a", "name": "nasnet-a-mobile", "kwargs": {}, "second_seed": False}
    resized = {"id": "vgg-tiny", "name": "vgg", "kwargs": {"width": 8}, "second_seed": True}  # same id, old size
    (work / "models.json").write_text(json.dumps({"drawn_with": {}, "models": [macro, stale, resized]}))
    (work / "vgg-tiny").mkdir()
    (work / "vgg-tiny" / "proxies.json").write_text('{"2s@16": {"accuracy": 0.9, "seconds": 1}}')  # old size's
    no_hand = proxy_calibration.parse_args(["--data", "x", "--n-macro", "1", "--no-hand"])
    assert proxy_calibration.pick_models(no_hand, work) == [macro]  # and the file keeps its hand entries:
    assert len(json.loads((work / "models.json").read_text())["models"]) == 3
    models = proxy_calibration.pick_models(args, work)
    assert [m["id"] for m in models] == ["macro-00", "vgg-tiny"] and models[0] == macro
    assert models[1]["kwargs"] == {"width": 4} and not (work / "vgg-tiny").exists()
    assert (work / "vgg-tiny.replaced-1" / "proxies.json").is_file()  # kept, never read for the new model
    assert models[1]["latency"]["ms_per_face_b1"] > 0 and models[1]["params"] > 0 and not models[1]["second_seed"]
    assert json.loads((work / "models.json").read_text())["models"] == models
    assert "nasnet-a: no longer in the hand designs; dropped" in capsys.readouterr().out
    assert proxy_calibration.pick_models(args, work) == models  # the same list on the next resume


def test_a_nasnet_reference_trains_at_its_cells_and_width(tmp_path, monkeypatch):
    import nasfer.train

    seen = []
    monkeypatch.setattr(nasfer.train, "fit", lambda cfg, data_cfg, progress: seen.append(cfg))
    monkeypatch.setattr(proxy_calibration, "best_val", lambda history: 0.5)
    args = proxy_calibration.parse_args(["--data", "x", "--ref-epochs", "2"])
    model = {"id": "nasnet-a-1@8", "name": "nasnet-a-mobile", "kwargs": {"F": 8, "N": 1}}
    assert proxy_calibration.reference(model, args, tmp_path, 0) == 0.5
    assert (seen[0].arch, seen[0].width, seen[0].cells, seen[0].epochs) == ("nasnet-a-mobile", 8, 1, 2)


def test_models_train_fastest_first():
    models = [{"id": i, "latency": {"ms_per_face_b1": ms}} for i, ms in (("a", 0.3), ("slow", 22.0), ("b", 0.1),
                                                                          ("c", 1.9))]
    assert [m["id"] for m in proxy_calibration.training_order(models)] == ["b", "a", "c", "slow"]


def test_remeasure_rewrites_the_frozen_latencies(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    model = {"id": "vgg-tiny", "name": "vgg", "kwargs": {"width": 4}, "latency": {"ms_per_face_b1": 999.0}}
    (work / "models.json").write_text(json.dumps({"drawn_with": {}, "models": [dict(model)]}))
    proxy_calibration.remeasure([model], work)
    saved = json.loads((work / "models.json").read_text())["models"][0]["latency"]
    assert saved == model["latency"] and 0 < saved["ms_per_face_b1"] < 999.0


def test_the_readme_tables_and_no_proxy_chosen_on_too_few_architectures(tmp_path, capsys):
    models = [{"id": f"m{i}", "params": 1000 * (i + 1), "flops": 1e6 * (i + 1), "latency": {"ms_per_face_b1": 0.1 * (i + 1)},
               "reference": {"0": 0.4 + 0.01 * i}, "proxies": {"1e@48": {"accuracy": 0.2 + 0.01 * i, "seconds": 5.0}}}
              for i in range(3)]
    args = proxy_calibration.parse_args(["--proxies", "1e@48", "--bootstrap", "10"])
    stats = calibration_stats.analyse(models, args)
    assert stats["proxies"]["1e@48"]["kendall_tau"] == pytest.approx(1.0)
    assert stats["cheapest_proxy_with_tau_0_6"] is None  # 3 architectures: a perfect tau by chance is likely
    more = models + [{**models[0], "id": f"x{i}", "reference": {"0": 0.5 + 0.01 * i},
                      "proxies": {"1e@48": {"accuracy": 0.3 + 0.01 * i, "seconds": 5.0}}} for i in range(6)]
    assert calibration_stats.analyse(more, args)["cheapest_proxy_with_tau_0_6"] == "1e@48"
    result = {"status": "PARTIAL", "date": "d", **stats, "models": models}
    (tmp_path / "r.json").write_text(json.dumps(result))
    assert proxy_calibration.main(["--table", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| 1e@48 | 3 | 1.00 |" in out and "| m2 | 3,000 | 3.0 M | 0.300 | 0.4200 | 0.2200 |" in out
    assert proxy_calibration.main([]) == 2  # neither --data nor --table


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    """Before: a missing --data was found after minutes of picking architectures, as a traceback."""
    data = tmp_path / "data"
    data.mkdir()
    for argv, says in ((["--data", str(tmp_path / "nope.zip")], "no such file"),
                       (["--data", str(data), "--proxies", "3x@9"], "fidelity '3x@9'"),
                       (["--data", str(data), "--latency-range", "0.5", "0.05"], "LOW < HIGH"),
                       (["--data", str(data), "--split-file", str(tmp_path / "x.json")], "no such file"),
                       (["--data", str(data), "--blocks", "0"], "--blocks must be at least 1"),
                       (["--table", str(data)], "not a results file")):
        assert proxy_calibration.main(argv + ["--work-dir", str(tmp_path / "w")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_the_search_is_rewarded_at_the_proxy_the_committed_calibration_chose():
    """Issue 11: the search uses the cheapest proxy with Kendall tau >= 0.6 against full training, and every
    higher rung is a calibrated fidelity that ranks at least as well."""
    from nasfer.nas.config import SearchConfig

    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/proxy_calibration.json").read_text())
    assert result["complete"] is True and len(result["models"]) >= 15
    rungs = SearchConfig().rungs
    assert rungs[0] == result["cheapest_proxy_with_tau_0_6"]
    taus = [result["proxies"][r]["kendall_tau"] for r in rungs]
    assert taus[0] >= 0.6 and all(later >= taus[0] for later in taus[1:])

"""Statistics of the benchmark scripts (benchmarks/*.py): what the README's comparison figures are made of."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy_vs_fer  # noqa: E402
import default_candidates  # noqa: E402
import fer_row  # noqa: E402
import finetune_crossval  # noqa: E402
import inference_speed  # noqa: E402
import memory_format  # noqa: E402
import model_table  # noqa: E402
import pareto  # noqa: E402
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


def _row(name, ms, acc, **extra):
    return {"name": name, "ms_per_face_batch_1_one_thread": ms, "accuracy": acc, **extra}


def test_pareto_front_keeps_the_rows_no_other_row_beats_fastest_first():
    rows = [_row("slow-good", 6.0, 0.68), _row("fast", 0.3, 0.63), _row("dominated", 0.6, 0.59),
            _row("same-accuracy-slower", 0.5, 0.63), _row("twin-a", 2.0, 0.66), _row("twin-b", 2.0, 0.66),
            _row("same-speed-worse", 6.0, 0.67), _row("unscored", 0.1, None)]
    assert pareto.pareto_front(rows) == [1, 4, 5, 0]  # identical figures: both on the front, table order
    assert pareto.pareto_front([_row("only", 1.0, 0.5)]) == [0]
    assert pareto.pareto_front([_row("unscored", 1.0, None)]) == [] and pareto.pareto_front([]) == []


@pytest.mark.parametrize("with_fer", [False, True])
def test_the_pareto_plot_writes_a_png_with_and_without_the_fer_row(tmp_path, with_fer):
    import matplotlib.image

    rows = [_row("nasfer-default", 6.4, 0.683, package="nasfer"), _row("nasfer-fast", 0.29, 0.633, package="nasfer"),
            _row("nasnet-a", 5.0, 0.65, package="nasfer")]
    if with_fer:
        rows.append(_row("fer 25.10.3", 0.56, 0.586, package="fer"))
    out = pareto.plot_pareto(rows, tmp_path / "plots" / "pareto.png", title="test")
    assert out == tmp_path / "plots" / "pareto.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > height > 300
    with pytest.raises(ValueError, match="no row"):
        pareto.plot_pareto([_row("unscored", 1.0, None)], tmp_path / "none.png")
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a file where the plot's folder would go: one line for a command, no traceback
    with pytest.raises(SystemExit, match="--plot .*a-file/x.png: cannot write it"):
        pareto.write_plot(rows, blocked / "x.png")


def test_model_table_fer_flag_without_fer_says_in_one_line_which_python_to_use(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fer", None)  # as in nasfer's own environment: import fer fails
    with pytest.raises(SystemExit) as exc:
        model_table.main(["no-such-model.onnx", "--fer"])  # fails on fer before looking at the models
    message = str(exc.value.code)
    assert "\n" not in message and "`fer` package" in message and "python" in message and "venv" in message


def test_model_table_names_missing_model_files_instead_of_a_traceback():
    with pytest.raises(SystemExit, match="no such model file: no-such-model.onnx"):
        model_table.main(["no-such-model.onnx"])


def test_keras_multiply_adds_count_as_nasfers_count_flops_does():
    import torch.nn as nn

    from nasfer.models.baselines import count_flops

    # the same network twice: torch (counted by nasfer) and Keras layer descriptions (counted for fer's model)
    torch_net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                              nn.Conv2d(8, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=4),
                              nn.Flatten(), nn.Linear(16 * 10 * 10, 7))
    keras_layers = [("Conv2D", {"kernel_size": (3, 3)}, (12, 12, 1), (10, 10, 8)),
                    ("BatchNormalization", {}, (10, 10, 8), (10, 10, 8)),
                    ("SeparableConv2D", {"kernel_size": (3, 3), "depth_multiplier": 1}, (10, 10, 8), (10, 10, 16)),
                    ("Conv2D", {"kernel_size": (3, 3), "groups": 4}, (10, 10, 16), (10, 10, 16)),
                    ("Dense", {}, (1600,), (7,))]
    ours = sum(fer_row.layer_multiply_adds(*layer) for layer in keras_layers)
    assert ours == count_flops(torch_net, size=12, in_channels=1)
    assert fer_row.layer_multiply_adds("DepthwiseConv2D", {"kernel_size": (3, 3), "depth_multiplier": 2},
                                       (5, 5, 4), (5, 5, 8)) == 5 * 5 * 4 * 2 * 9
    assert fer_row.layer_multiply_adds("Conv2D", {"kernel_size": (1, 1), "data_format": "channels_first"},
                                       (3, 4, 4), (5, 4, 4)) == 16 * 5 * 3
    assert fer_row.layer_multiply_adds("LSTM", {}, (4, 3), (4, 2)) is None


def test_fer_accuracy_is_taken_from_the_stored_accuracy_vs_fer_result():
    stored = json.loads(fer_row.ACCURACY_FILE.read_text())
    got = fer_row.fer_accuracy(stored, "PublicTest", 0)
    entry = stored["fer_offsets_0"]
    assert got["accuracy"] == entry["accuracy"] and got["macro_f1"] == entry["macro_f1"]
    assert got["command"] == stored["command"] and got["n"] == stored["n"]
    with pytest.raises(ValueError, match="split"):
        fer_row.fer_accuracy(stored, "PrivateTest", 0)
    with pytest.raises(ValueError, match="offsets 7"):
        fer_row.fer_accuracy(stored, "PublicTest", 7)


def test_finetune_compare_pairs_a_zero_shot_result_with_a_run_by_fold(tmp_path, monkeypatch):
    """Regression: `compare` read `code_revision` from both files, which a zero-shot result has not (KeyError)."""
    def result(accuracies, **extra):
        folds = [{"fold": i + 1, "accuracy": a, "macro_f1": a / 2} for i, a in enumerate(accuracies)]
        return {"command": "cmd", "folds_finished": len(folds), "accuracy": {}, "macro_f1": {}, "per_fold": folds,
                **extra}

    (tmp_path / "finetune_crossval_zs.json").write_text(json.dumps(result([0.7, 0.8, 0.9])))
    (tmp_path / "finetune_crossval_ft.json").write_text(json.dumps(result([0.6, 0.9], code_revision="abc")))
    monkeypatch.setattr(finetune_crossval, "RESULTS", tmp_path)
    args = type("Args", (), {"a": "zs", "b": "ft", "out": "pair.json"})()
    assert finetune_crossval.compare(args) == 0
    out = json.loads((tmp_path / "pair.json").read_text())
    assert out["folds_compared"] == [1, 2] and out["zs"]["code_revision"] is None and out["ft"]["code_revision"] == "abc"
    assert out["paired"]["accuracy"]["difference"]["per_fold"] == [-0.1, 0.1]
    assert out["command"].endswith("compare zs ft --out pair.json")


def test_finetune_summary_reads_best_pt_so_kept_starting_weights_show(tmp_path):
    """A fold whose fine-tuning kept the starting weights: best_epoch 0 and their validation score, not the
    best epoch's from history.json (which never holds the starting point)."""
    import torch

    fold = tmp_path / "fold-01"
    fold.mkdir()
    (fold / "test.json").write_text(json.dumps({"n": 10, "accuracy": 0.8, "macro_f1": 0.7}))
    (fold / "config.json").write_text(json.dumps({"train": {"epochs": 2, "batch_size": 32, "lr": 1e-3}}))
    (fold / "history.json").write_text(json.dumps([{"val_acc": 0.5, "seconds": 1.0}, {"val_acc": 0.6, "seconds": 1.0}]))
    torch.save({"epoch": -1, "metrics": {"val_accuracy": 0.75, "best_val_accuracy": 0.75}}, fold / "best.pt")
    (row,) = finetune_crossval.summarize(tmp_path)["per_fold"]
    assert row["best_epoch"] == 0 and row["best_val_accuracy"] == 0.75
    (fold / "best.pt").unlink()
    (row,) = finetune_crossval.summarize(tmp_path)["per_fold"]
    assert row["best_epoch"] == 2 and row["best_val_accuracy"] == 0.6


def test_a_search_that_trained_no_child_is_summarized_without_a_winner(tmp_path):
    """A search whose children were all over --max-latency-ms ends with best: null in summary.json (it used
    to name an untrained child); the comparison scripts read such a search instead of failing on None."""
    run = tmp_path / "search"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "space": "macro", "strategy": "random", "config": {"seed": 0, "threads": 1}, "children": 2,
        "children_per_rung": [0], "rungs": ["150s@24"], "elapsed_s": 60.0, "cpu_s": 50.0, "best": None,
        "no_winner": "all 2 children were slower than --max-latency-ms"}))
    (run / "search_log.jsonl").write_text("".join(json.dumps(
        {"kind": "child", "child": i, "reward": 0.0, "skipped": "latency"}) + "\n" for i in range(2)))
    row = search_compare.summarize(run)
    assert row["best"] is None and row["children"] == 2


def test_search_compare_summarises_a_logs_rewards_and_entropies(tmp_path):
    """Restored (4eab632 dropped it with the old log format): the figures the strategy comparison reports,
    from a log whose values are known: rewards 0..7 and entropies 8..1 over eight children."""
    run = tmp_path / "search"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "space": "macro", "strategy": "reinforce", "config": {"seed": 1, "threads": 2}, "children": 8,
        "children_per_rung": [8], "rungs": ["150s@24"], "elapsed_s": 120.0, "cpu_s": None, "best": None}))
    rows = [{"kind": "child", "child": i, "reward": float(i), "entropy": float(8 - i)} for i in range(8)]
    (run / "search_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [{"kind": "start"}, *rows]))
    row = search_compare.summarize(run, early=2)
    assert row["rewards"] == [float(i) for i in range(8)] and row["best_rung0_reward"] == 7.0
    assert row["reward_mean_by_quarter"] == [0.5, 2.5, 4.5, 6.5]
    assert row["entropy_by_quarter"] == [7.5, 5.5, 3.5, 1.5]
    assert (row["entropy_first"], row["entropy_last"]) == (8.0, 1.0)
    assert (row["mean_reward_first_early"], row["mean_reward_after_early"]) == (0.5, 4.5)
    assert row["minutes"] == 2.0 and row["cpu_hours"] == pytest.approx(120.0 * 2 / 3600)  # no cpu_s: x threads
    assert (row["strategy"], row["seed"], row["children"]) == ("reinforce", 1, 8)


def test_the_default_is_the_most_accurate_allowed_candidate_unless_a_faster_one_is_as_good():
    """The rule of issue 13's release, fixed before PublicTest is read (benchmarks/default_candidates.py)."""
    rows = [{"name": "k6-tta", "passes": 12, "accuracy": 0.7150},
            {"name": "k2-tta", "passes": 4, "accuracy": 0.7080},
            {"name": "k3-notta", "passes": 3, "accuracy": 0.7075},
            {"name": "k2-notta", "passes": 2, "accuracy": 0.6990}]
    choose = default_candidates.choose
    assert choose(rows, max_passes=4, prefer_passes=3, within=0.1)["name"] == "k3-notta"  # 0.05 points, faster
    assert choose(rows, max_passes=4, prefer_passes=3, within=0.01)["name"] == "k2-tta"  # too far: the best wins
    assert choose(rows, max_passes=12, prefer_passes=3, within=0.1)["name"] == "k6-tta"  # the slow one allowed
    assert choose(rows, max_passes=1, prefer_passes=1, within=0.1) is None

    tied = [{"name": "slow", "passes": 4, "accuracy": 0.7}, {"name": "fast", "passes": 2, "accuracy": 0.7}]
    assert choose(tied, max_passes=4, prefer_passes=1, within=0.0)["name"] == "fast"  # a tie goes to fewer passes


def test_the_chosen_candidate_replaces_the_default_only_when_more_accurate():
    """Issue 13's release: the rule's pick (here 70.37%) must beat today's default on the same validation images
    (70.44%) to replace it; equal is not enough, and no candidate replaces nothing."""
    replaces = default_candidates.replaces
    assert not replaces({"accuracy": 0.7037}, {"accuracy": 0.7044})
    assert not replaces({"accuracy": 0.7044}, {"accuracy": 0.7044})
    assert replaces({"accuracy": 0.7051}, {"accuracy": 0.7044})
    assert not replaces(None, {"accuracy": 0.5})


def test_memory_format_benchmark_never_runs_channels_last_where_nasfer_train_would_not():
    """mini-Xception at width 4 in channels_last corrupts the heap (torch 2.13): the row says it was skipped."""
    from nasfer.models import create_model

    risky = memory_format.model_row("mini-xception/4", create_model("mini-xception", width=4), batch=2, seconds=0)
    assert risky["picked"] == "contiguous" and risky["channels_last"] is None and "channels_last_skipped" in risky
    assert risky["contiguous"]["images_per_second"] > 0 and "speedup" not in risky
    plain = memory_format.model_row("vgg/4", create_model("vgg", width=4), batch=2, seconds=0)
    assert plain["picked"] == "channels_last" and plain["speedup"] > 0
    assert plain["channels_last"]["images_per_second"] > 0 and "channels_last_skipped" not in plain


def test_model_table_records_the_cpu_and_each_models_speed_and_card_figures(tiny_onnx, tmp_path):
    """Before: the JSON named the kernel (`machine`) but not the CPU, so runs on different CPUs looked alike."""
    from common import cpu_model_name, cpu_speed_flags

    out = tmp_path / "table.json"
    model_table.main([str(tiny_onnx), "--rounds", "1", "--seconds", "0.05", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["cpu"] and result["cpu"] == (cpu_model_name() or result["cpu"])
    assert result["cpu_flags"] == cpu_speed_flags()
    (row,) = result["models"]
    assert row["model"] == str(tiny_onnx) and row["params"] > 0 and row["quantization"] == "fp32"
    assert row["ms_per_face_batch_1_one_thread"] > 0 and row["faces_per_s_batch_64"] > 0


def test_every_speed_file_names_the_cpu_with_one_definition(monkeypatch):
    """Before: inference_speed.py and load_test.py built the CPU name with their own fallbacks (load_test left it
    out where /proc/cpuinfo has no model name), so speed files of one machine could name it differently."""
    import common
    import load_test

    monkeypatch.setattr(common, "cpu_model_name", lambda: None)  # a CPU whose cpuinfo has no model name
    expected = common.cpu_model()
    assert expected
    assert inference_speed.machine()["cpu"] == expected
    assert load_test.machine()["cpu_model"] == expected


def test_speed_files_record_the_cpus_int8_and_bf16_flags():
    """Before: a speed file named the CPU model only, and one model name covers VMs with and without AVX-512
    VNNI (int8) or BF16, so the README could not say from a file which one a number was measured on."""
    from common import cpu_speed_flags

    info = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 sha_ni\n"
    assert cpu_speed_flags(info) == ["avx2", "avx512_bf16", "avx512_vnni", "avx512f"]
    assert cpu_speed_flags("processor\t: 0\nflags\t\t: fpu sse2 avx2\n") == ["avx2"]
    assert inference_speed.machine()["cpu_flags"] == cpu_speed_flags()


def test_cpu_identity_tells_apart_cpus_of_one_name_with_other_int8_flags():
    """Speed files are compared only within one CPU identity: the model name alone covered VMs with and without
    AVX-512 VNNI, whose int8 speeds differ about 2x (README, "On a CPU without VNNI")."""
    from common import cpu_identity, cpu_model

    vnni = "processor : 0\nflags : fpu avx2 avx512f avx512_vnni sse2\n"
    avx2 = "processor : 0\nflags : fpu avx2 sse2\n"
    assert cpu_identity(vnni) == f"{cpu_model()} (avx2 avx512_vnni avx512f)"
    assert cpu_identity(avx2) == f"{cpu_model()} (avx2)" != cpu_identity(vnni)
    assert cpu_identity("processor : 0\nflags : fpu neon\n") == cpu_model()


def test_a_candidate_whose_selection_keeps_one_member_is_none_even_beside_an_older_ensemble(tmp_path, monkeypatch):
    """default_candidates called `nasfer ensemble`, whose status 1 with an ensemble.pt present stopped the run;
    since it calls write_ensemble (which returns 0 or 1 only), that case went on to score an older run's
    ensemble.pt as this selection's."""
    import argparse

    import nasfer.cli
    import nasfer.commands.ensemble

    monkeypatch.setattr(nasfer.commands.ensemble, "write_ensemble", lambda cfg, log, predictions: 1)
    monkeypatch.setattr(nasfer.cli, "main", lambda argv: pytest.fail(f"nothing to evaluate: {argv}"))
    (tmp_path / "greedy-k2-tta").mkdir()
    (tmp_path / "greedy-k2-tta" / "ensemble.pt").write_bytes(b"an older run's ensemble")
    args = argparse.Namespace(checkpoints=["a/best.pt", "b/best.pt"], data="faces", split_file="splits.json",
                              threads=1, work_dir=str(tmp_path))
    assert default_candidates.candidate(args, 2, True, {}) is None


class _Read(Exception):
    pass


@pytest.fixture
def split_images_kwargs(monkeypatch):
    """The keyword arguments a benchmark passes to nasfer.quantize.split_images (which then stops the run)."""
    import nasfer.quantize

    seen: dict = {}

    def capture(*args, **kwargs):
        seen.update(kwargs)
        raise _Read

    monkeypatch.setattr(nasfer.quantize, "split_images", capture)
    return seen


def test_validation_benchmarks_read_face_crops_for_a_model_trained_on_them(tmp_path, monkeypatch,
                                                                           split_images_kwargs):
    """Review of session 24: tta_validation.py and int8_agreement.py drew the validation images without the
    model's training config, so a --detect-faces model was scored on whole photos (quantize and evaluate did not)."""
    import int8_agreement
    import nasfer.runtime.engine
    import tta_validation
    from fixtures_evaluate import save_tiny_checkpoint
    from nasfer.checkpoint import load_checkpoint, save_checkpoint

    config = {"train": {"detect_faces": True}, "data": {"data": "photos"}}
    path = save_tiny_checkpoint(tmp_path / "crops.pt")
    ckpt = load_checkpoint(path)
    ckpt["config"] = config
    save_checkpoint(path, ckpt)
    monkeypatch.setattr(sys, "argv", ["tta_validation.py", str(path), "--data", str(tmp_path)])
    with pytest.raises(_Read):
        tta_validation.main()
    assert split_images_kwargs.pop("training") == config

    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"")
    card = {"labels": ["happy", "sad"], "preprocessing": {"size": 48}, "training": {"config": config}}
    monkeypatch.setattr(nasfer.runtime.engine, "read_card", lambda path: card)
    with pytest.raises(_Read):
        int8_agreement.main(["--data", str(tmp_path), "--split-file", "s.json", "--out", str(tmp_path / "r.json"),
                             "--pairs", f"{tmp_path / 'a.onnx'}={tmp_path / 'b.onnx'}"])
    assert split_images_kwargs["training"] == config


def test_default_candidates_says_why_it_cannot_write_instead_of_a_traceback(tmp_path, capsys):
    """Review of session 24: only NasferError and ValueError were caught; a --work-dir under a file (an OSError)
    ended in a traceback."""
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SystemExit) as stopped:
        default_candidates.main(["--checkpoints", "a.pt", "b.pt", "--split-file", "s.json",
                                 "--work-dir", str(tmp_path / "file" / "work")])
    assert str(stopped.value).startswith("default_candidates: ") and "file" in str(stopped.value)

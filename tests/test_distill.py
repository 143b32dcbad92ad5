"""Knowledge distillation: soft targets from a teacher, computed once, cached, reused on resume."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nasfer.distill as distill
from fixtures_models import interrupt_and_resume
from nasfer.checkpoint import load_checkpoint, load_model
from nasfer.config import DataConfig, TrainConfig
from nasfer.data import read_dataset
from nasfer.data.augment import Augment
from nasfer.errors import ModelError
from nasfer.preprocessing import Preprocessing
from nasfer.train import evaluate_model, fit


def cfg(out, **kw) -> TrainConfig:
    base = dict(arch="vgg", width=8, epochs=4, batch_size=32, lr=5e-3, out=str(out), val_fraction=0.15,
                rotation=0.0, scale=0.0, crop_padding=2, seed=1, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The pattern task (train/ and test/), and a teacher trained on it with heavy label smoothing: its
    outputs are soft and far from the one-hot labels, so a student that copies them is easy to tell."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_data import write_class_tree

    root = tmp_path_factory.mktemp("distill")
    write_class_tree(root / "data" / "train", per_class=40, seed=3)
    write_class_tree(root / "data" / "test", per_class=8, seed=4)
    teacher = fit(cfg(root / "teacher", epochs=3, label_smoothing=0.6), DataConfig(data=str(root / "data")),
                  progress=False)
    return root / "data", teacher / "best.pt"


def kl_to_teacher(student: str, teacher: str, data) -> float:
    """Mean KL(teacher || student) at T = 1 on the test images."""
    test = read_dataset(data).select_split("test")
    p = {}
    for name, path in (("s", student), ("t", teacher)):
        model, ckpt = load_model(path)
        p[name] = evaluate_model(model, test.images, Preprocessing.from_dict(ckpt["preprocessing"]))
    return float(np.mean(np.sum(p["t"] * (np.log(p["t"] + 1e-12) - np.log(p["s"] + 1e-12)), axis=1)))


def count_teacher_runs(monkeypatch):
    """Counts the teacher's runs over the training images: ({"teacher": n}, the counting function, installed)."""
    calls = {"teacher": 0}
    compute = distill.teacher_log_probs

    def counting(*args, **kwargs):
        calls["teacher"] += 1
        return compute(*args, **kwargs)

    monkeypatch.setattr(distill, "teacher_log_probs", counting)
    return calls, counting


@pytest.mark.slow
def test_a_distilled_student_moves_toward_its_teacher(task, tmp_path):
    data, teacher = task
    data_cfg = DataConfig(data=str(data))
    plain = fit(cfg(tmp_path / "plain"), data_cfg, progress=False)
    taught = fit(cfg(tmp_path / "taught", teacher=str(teacher), distill_alpha=0.9, distill_temperature=2.0), data_cfg,
                 progress=False)
    kl_plain, kl_taught = kl_to_teacher(plain / "best.pt", teacher, data), kl_to_teacher(taught / "best.pt", teacher, data)
    assert kl_taught < 0.5 * kl_plain, (kl_taught, kl_plain)
    # the checkpoint (hence the model card) records the teacher and the method
    ckpt = load_checkpoint(taught / "best.pt")
    record = ckpt["config"]["distillation"]
    assert ckpt["config"]["train"]["teacher"] == str(teacher)
    assert record["kind"] == "checkpoint" and record["alpha"] == 0.9 and record["temperature"] == 2.0
    assert len(record["sha256"]) == 64 and record["labels"] == list(ckpt["labels"])
    assert json.loads((taught / "config.json").read_text())["distillation"]["sha256"] == record["sha256"]


@pytest.mark.slow
def test_teacher_outputs_are_cached_and_reused_on_resume(task, tmp_path, monkeypatch):
    data, teacher = task
    data_cfg = DataConfig(data=str(data))
    kw = dict(epochs=3, teacher=str(teacher), mixup=0.2, rotation=5.0)
    calls, counting = count_teacher_runs(monkeypatch)
    fit(cfg(tmp_path / "straight", **kw), data_cfg, progress=False)
    assert calls["teacher"] == 1  # once for the whole run, not once per epoch

    def refuse(*args, **kwargs):
        raise AssertionError("the teacher was run again although its outputs are cached")

    def cached_then_refused():  # after the interruption: the teacher ran once more, its outputs are cached
        assert calls["teacher"] == 2 and (tmp_path / "resumed" / distill.CACHE_NAME).is_file()
        monkeypatch.setattr(distill, "teacher_log_probs", refuse)

    interrupt_and_resume(monkeypatch, lambda: fit(cfg(tmp_path / "resumed", **kw), data_cfg, progress=False),
                         stop_when=lambda trainer, n: n == 2, before_resume=cached_then_refused)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key

    # another teacher (or other images) is another key: the stale cache is recomputed, not used
    monkeypatch.setattr(distill, "teacher_log_probs", counting)
    other = distill.Teacher("other", "checkpoint", teacher, "0" * 64, distill.resolve_teacher(str(teacher)).labels)
    trainer_data = read_dataset(data).select_split("train")
    images = torch.from_numpy(trainer_data.images[:10]).unsqueeze(1)
    keys = np.array([f"k{i}" for i in range(10)])
    cache = tmp_path / "resumed" / distill.CACHE_NAME
    distill.load_or_compute(other, images, keys, trainer_data.label_names, cache)
    assert calls["teacher"] == 3
    distill.load_or_compute(other, images, keys, trainer_data.label_names, cache)
    assert calls["teacher"] == 3
    distill.load_or_compute(other, images[:9], keys[:9], trainer_data.label_names, cache)
    assert calls["teacher"] == 4


def test_onnx_teacher_through_the_engine_matches_its_checkpoint(task, tmp_path):
    from nasfer.cli import main

    data, teacher = task
    onnx = tmp_path / "teacher.onnx"
    assert main(["export", "--checkpoint", str(teacher), "--out", str(onnx)]) == 0
    images = read_dataset(data).select_split("test").images[:20]
    labels = tuple(load_checkpoint(teacher)["labels"])
    by_engine = distill.teacher_log_probs(distill.resolve_teacher(str(onnx)), images, labels)
    by_torch = distill.teacher_log_probs(distill.resolve_teacher(str(teacher)), images, labels)
    assert distill.resolve_teacher(str(onnx)).kind == "onnx"
    for a, b in zip(by_engine, by_torch):
        np.testing.assert_allclose(np.exp(a), np.exp(b), atol=1e-4)
    assert not np.allclose(by_torch[0], by_torch[1])  # the mirror images really are other inputs


def test_flipped_images_take_the_mirror_targets_and_the_loss_is_hintons():
    x = torch.arange(4 * 48 * 48, dtype=torch.float32).reshape(4, 1, 48, 48) % 251
    aug = Augment(crop_padding=0, flip=True, rotation=0.0, scale=0.0)
    out, flipped = aug.apply(x, torch.Generator().manual_seed(3))
    assert torch.equal(aug(x, torch.Generator().manual_seed(3)), out)  # apply draws what __call__ draws
    assert flipped.any() and not flipped.all()
    for i in range(4):
        expected = torch.flip(x[i], dims=[2]) if flipped[i] else x[i]
        torch.testing.assert_close(out[i], expected, atol=1e-3, rtol=0)

    log_p = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32))
    log_m = np.log(np.array([[0.2, 0.7, 0.1], [0.8, 0.1, 0.1]], dtype=np.float32))
    targets = distill.TeacherTargets(log_p, log_m, temperature=1.0)
    got = targets.targets(torch.tensor([0, 1]), torch.tensor([False, True]))
    torch.testing.assert_close(got, torch.tensor([[0.7, 0.2, 0.1], [0.8, 0.1, 0.1]]))
    soft = distill.TeacherTargets(log_p, log_m, temperature=4.0).probs
    torch.testing.assert_close(soft, torch.softmax(torch.from_numpy(log_p) / 4.0, 1))

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    t = 3.0
    teacher = torch.softmax(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]) / t, 1)
    expected = t * t * (teacher * (teacher.log() - F.log_softmax(logits / t, 1))).sum(1).mean()
    torch.testing.assert_close(distill.distillation_loss(logits, teacher, t), expected)
    assert float(distill.distillation_loss(teacher.log() * t, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_teacher_errors_are_clear(task, tmp_path, capsys):
    from nasfer.cli import main

    data, teacher = task
    with pytest.raises(ModelError, match="no output for bored"):
        distill.label_columns(("angry", "happy"), ("happy", "bored"))
    assert distill.label_columns(("angry", "happy", "sad"), ("sadness", "anger")) == [2, 0]
    assert main(["train", "--data", str(data), "--teacher", str(tmp_path / "nope.pt"), "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope.pt" in err and "not found" in err and "Traceback" not in err
    assert main(["train", "--data", str(data), "--teacher", str(teacher), "--distill-alpha", "1.5", "--epochs", "1",
                 "--out", str(tmp_path / "o2")]) == 2
    assert "--distill-alpha must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_a_campaigns_second_distilled_training_reuses_the_first_ones_teacher_outputs(task, tmp_path, monkeypatch):
    """benchmarks/retrain.py seeds a new training's folder with a sibling's cache; nasfer train takes it only
    where its key matches (before: each training of a campaign ran the teacher again, ~5 min per training)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import retrain

    data, teacher = task
    data_cfg = DataConfig(data=str(data))
    calls, _ = count_teacher_runs(monkeypatch)
    kw = dict(epochs=1, teacher=str(teacher))
    retrain.run_train(cfg(tmp_path / "train-a-s1", **kw), data_cfg)
    assert calls["teacher"] == 1
    retrain.run_train(cfg(tmp_path / "train-b-s1", width=4, **kw), data_cfg)  # another student, same images
    assert calls["teacher"] == 1 and (tmp_path / "train-b-s1" / distill.CACHE_NAME).is_file()
    retrain.run_train(cfg(tmp_path / "train-a-s2", seed=2, **kw), data_cfg)  # another split: other training images
    assert calls["teacher"] == 2  # the seeded copy did not match its key: computed, not used
    retrain.run_train(cfg(tmp_path / "train-c-s1", width=4, **{**kw, "teacher": None}), data_cfg)
    assert not (tmp_path / "train-c-s1" / distill.CACHE_NAME).exists()  # no teacher: nothing copied

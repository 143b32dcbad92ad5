"""Transfer learning and custom datasets: fine-tuning, new label sets, split files, the way to serving."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_data import pattern_image, png_bytes, write_class_tree
from fixtures_models import interrupt_and_resume
from nasfer.checkpoint import load_checkpoint, load_model
from nasfer.config import DataConfig, TrainConfig
from nasfer.data import read_dataset
from nasfer.errors import DataError, ModelError
from nasfer.finetune import head_parameter_names, load_init_checkpoint, match_labels, transfer_weights
from nasfer.labels import EMOTIONS
from nasfer.models import create_model, list_models
from nasfer.preprocessing import Preprocessing
from nasfer.train import Trainer, fit, prepare_run

NEW_LABELS = ("alpha", "beta", "gamma")  # drawn with the patterns of angry, disgust, fear


def tiny_cfg(out, **kw) -> TrainConfig:
    base = dict(arch="vgg", width=8, epochs=5, batch_size=32, lr=5e-3, out=str(out), val_fraction=0.15,
                rotation=0.0, scale=0.0, crop_padding=2, seed=1, test_fraction=0.2)
    base.update(kw)
    if base.get("init_from"):  # the architecture comes from the checkpoint (--width with --init-from is refused)
        base.pop("width")
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A width-8 VGG trained on the 7 canonical labels of the pattern task (best.pt)."""
    root = tmp_path_factory.mktemp("pretrain")
    write_class_tree(root / "data", per_class=30, seed=3)
    run = fit(tiny_cfg(root / "run"), DataConfig(data=str(root / "data")), progress=False)
    return run / "best.pt"


@pytest.fixture(scope="module")
def new_labels_folder(tmp_path_factory) -> Path:
    """A custom dataset with no split and labels of its own: alpha/, beta/, gamma/."""
    root = tmp_path_factory.mktemp("custom") / "faces"
    write_class_tree(root, per_class=30, seed=5, classes=NEW_LABELS)
    return root


@pytest.fixture(scope="module")
def finetuned(pretrained, new_labels_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "run"
    cfg = tiny_cfg(out, init_from=str(pretrained), label_set="folders", freeze_epochs=1, epochs=4)
    return fit(cfg, DataConfig(data=str(new_labels_folder)), progress=False)


def test_finetuning_a_new_label_set_learns_it_with_a_new_head(finetuned):
    ckpt = load_checkpoint(finetuned / "best.pt")
    assert ckpt["labels"] == list(NEW_LABELS)
    info = ckpt["finetune"]
    assert info["head"] == ["head.3"] and not info["head_kept"]
    assert set(info["reinitialised"]) == {"head.3.weight", "head.3.bias"}
    assert info["head_rows"] == {label: None for label in NEW_LABELS}
    assert "features.0.0.weight" in info["loaded"]
    model, _ = load_model(finetuned / "best.pt")
    assert model.head[3].out_features == 3
    test = json.loads((finetuned / "test.json").read_text())
    assert test["n"] == 18 and test["labels"] == list(NEW_LABELS) and test["tta"] == "flip"  # 20% of 3 x 30, stratified
    assert test["accuracy"] >= 0.8, f"accuracy {test['accuracy']:.2f} where chance is 0.33"
    config = json.loads((finetuned / "config.json").read_text())
    assert config["train"]["init_from"] and config["labels"] == list(NEW_LABELS)


def test_finetuning_keeps_the_starting_weights_when_no_epoch_beats_them(pretrained, tmp_path, monkeypatch):
    """Regression: best.pt was the best *epoch*, so fine-tuning that only made a model worse on validation
    (a strong model on a few hundred faces of its own domain) returned the worse model."""
    data = tmp_path / "data"
    write_class_tree(data, per_class=12, seed=9)  # the pretrained task's labels: the head is kept
    original = Trainer.train_epoch

    def ruin(self, epoch):  # an epoch that leaves the network at chance
        result = original(self, epoch)
        with torch.no_grad():
            for p in self.model.parameters():
                p.zero_()
        return result

    monkeypatch.setattr(Trainer, "train_epoch", ruin)
    run = fit(tiny_cfg(tmp_path / "run", init_from=str(pretrained), epochs=2), DataConfig(data=str(data)),
              progress=False)
    best, start = load_checkpoint(run / "best.pt"), load_checkpoint(pretrained)
    assert best["epoch"] == -1 and best["history"] == []  # best_epoch 0 in a card: the starting weights
    assert all(torch.equal(v, start["state_dict"][k]) for k, v in best["state_dict"].items())
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and best["metrics"]["val_accuracy"] > max(h["val_acc"] for h in history)


def test_a_start_with_new_head_rows_is_not_kept_as_best(pretrained, tmp_path, monkeypatch, capsys):
    """Regression (user review): a label the checkpoint does not know starts with a random head row, yet the
    starting weights were kept as best.pt when no epoch beat them, so that label's row was never trained."""
    data = tmp_path / "data"
    write_class_tree(data, per_class=12, seed=9, classes=("happy", "sad", "grumpy"))
    scored = []
    monkeypatch.setattr(Trainer, "score_starting_point", lambda self: scored.append(True))
    run = fit(tiny_cfg(tmp_path / "run", init_from=str(pretrained), label_set="folders", epochs=1),
              DataConfig(data=str(data)), progress=False)
    best = load_checkpoint(run / "best.pt")
    assert scored == [] and best["epoch"] == 0 and best["finetune"]["head_rows"]["grumpy"] is None
    assert best["finetune"]["head_rows"]["happy"] == "happy"


def test_the_transfer_summary_counts_the_head_apart_from_the_body(pretrained):
    """The log said "N tensors loaded, 2 re-initialised" for a head whose rows were all copied."""
    model = create_model("vgg", num_classes=7, width=8)
    labels = sorted(EMOTIONS)  # the same labels in another order: a new head, every row copied
    report = transfer_weights(model, load_checkpoint(pretrained), labels, head_parameter_names("vgg", {"width": 8}))
    first, *rest = report.summary().splitlines()
    assert "re-initialised" not in first and "2 head tensors rebuilt" in first and report.fresh_rows == []
    assert any("rows initialised fresh:   none" in line for line in rest)


def test_frozen_backbone_is_really_frozen_then_released(pretrained, new_labels_folder, tmp_path):
    cfg = tiny_cfg(tmp_path / "run", init_from=str(pretrained), label_set="folders", freeze_epochs=1, epochs=2,
                   backbone_lr_mult=0.1)
    trainer = prepare_run(cfg, DataConfig(data=str(new_labels_folder)), progress=False)
    groups = {g["name"]: g for g in trainer.opt.optimizer.param_groups}
    assert groups["backbone"]["initial_lr"] == pytest.approx(0.1 * groups["head"]["initial_lr"])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    init = load_checkpoint(pretrained)["state_dict"]
    trainer.train_epoch(0)
    after = trainer.model.state_dict()
    for name, value in after.items():
        if name.startswith("head.3."):
            assert not torch.equal(value, before[name]), f"{name} did not train"
        else:  # weights, BatchNorm running stats and counters: all as loaded from the checkpoint
            assert torch.equal(value, before[name]) and torch.equal(value, init[name].to(value.dtype)), name
    trainer.train_epoch(1)
    assert not torch.equal(trainer.model.state_dict()["features.0.0.weight"], before["features.0.0.weight"])
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_finetuning_resumes_exactly_across_the_unfreeze(pretrained, new_labels_folder, tmp_path, monkeypatch):
    data_cfg = DataConfig(data=str(new_labels_folder))
    kw = dict(init_from=str(pretrained), label_set="folders", freeze_epochs=1, epochs=3, rotation=5.0, mixup=0.2)
    fit(tiny_cfg(tmp_path / "straight", **kw), data_cfg, progress=False)
    interrupt_and_resume(monkeypatch, lambda: fit(tiny_cfg(tmp_path / "resumed", **kw), data_cfg, progress=False),
                         stop_when=lambda trainer, n: len(trainer.history) == 1)  # epoch 1 recorded: stop in 2
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_split_folders_are_used_as_they_are():
    from nasfer.data.splits import draw_split

    labels = np.array([0, 1] * 10)
    official = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 4)
    roles = draw_split(labels, official == "train", official, val_fraction=0.3)
    assert roles.tolist() == ["train"] * 12 + ["val"] * 4 + ["test"] * 4  # a val/ folder: nothing carved
    official = np.array(["Training"] * 16 + ["PublicTest"] * 4)
    roles = draw_split(labels, official == "Training", official, val_fraction=0.25)
    assert (roles[:16] == "val").sum() == 4 and roles[16:].tolist() == ["PublicTest"] * 4
    # FER2013 files all named Training_* in plain class folders: no test split of their own, so one is held out
    # (before: none was, in silence)
    official = np.array(["Training"] * 20)
    roles = draw_split(labels, official == "Training", official, val_fraction=0.25, test_fraction=0.2)
    assert (roles == "test").sum() == 4 and (roles == "val").sum() == 4 and (roles == "train").sum() == 12


def test_same_labels_keep_the_head_and_synonyms_keep_their_rows(pretrained):
    ckpt = load_checkpoint(pretrained)
    model = create_model("vgg", num_classes=7, width=8)
    head = head_parameter_names("vgg", {"num_classes": 7, "width": 8})
    report = transfer_weights(model, ckpt, list(EMOTIONS), head)
    assert report.head_kept and not report.reinitialised
    assert torch.equal(model.state_dict()["head.3.weight"], ckpt["state_dict"]["head.3.weight"])

    labels = ["anger", "contempt", "happiness"]  # CK+-style folder names
    model = create_model("vgg", num_classes=3, width=8)
    report = transfer_weights(model, ckpt, labels, head_parameter_names("vgg", {"num_classes": 3, "width": 8}))
    assert report.head_rows == {"anger": "angry", "contempt": None, "happiness": "happy"}
    w_old, w_new = ckpt["state_dict"]["head.3.weight"], model.state_dict()["head.3.weight"]
    assert torch.equal(w_new[0], w_old[EMOTIONS.index("angry")]) and torch.equal(w_new[2], w_old[EMOTIONS.index("happy")])
    assert "contempt" in report.summary() and "anger<-angry" in report.summary()
    assert match_labels(["sadness", "bored"], list(EMOTIONS)) == {"sadness": "sad", "bored": None}


@pytest.mark.parametrize("name", [m for m in list_models() if m != "ensemble"])
def test_head_is_found_for_every_registered_model(name):
    kwargs = {"num_classes": 5, "in_channels": 1}
    head = head_parameter_names(name, kwargs)
    assert head, f"no head found for {name}"
    shapes = create_model(name, **kwargs).state_dict()
    assert all(shapes[n].shape[0] == 5 for n in head)


def test_an_ensemble_is_refused_as_a_starting_point(pretrained, tmp_path):
    """An ensemble is built from trained members, not fine-tuned: start_from says to fine-tune a member."""
    from nasfer.checkpoint import save_checkpoint
    from nasfer.finetune import start_from

    ckpt = load_checkpoint(pretrained)
    ckpt["model"] = {"name": "ensemble", "kwargs": {"members": []}}
    save_checkpoint(tmp_path / "ens.pt", ckpt)
    with pytest.raises(ModelError, match="ensemble cannot be fine-tuned.*members"):
        start_from(tmp_path / "ens.pt", list(NEW_LABELS))


def test_onnx_and_missing_init_are_clear_errors(tmp_path, new_labels_folder, capsys):
    from nasfer.cli import main

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    (tmp_path / "model.json").write_text(json.dumps({"training": {"command": "nasfer train --out runs/x"}}))
    with pytest.raises(ModelError, match=r"fine-tuning needs the training checkpoint \(\.pt\).*runs/x"):
        load_init_checkpoint(onnx)
    rc = main(["train", "--data", str(new_labels_folder), "--init-from", str(onnx), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs the training checkpoint" in err and "Traceback" not in err
    assert main(["train", "--data", str(new_labels_folder), "--freeze-epochs", "2", "--out", str(tmp_path / "p")]) == 2
    assert "needs --init-from" in capsys.readouterr().err


def test_split_file_reproduces_a_run_exactly(new_labels_folder, tmp_path):
    data_cfg = DataConfig(data=str(new_labels_folder))
    first = fit(tiny_cfg(tmp_path / "a", label_set="folders", epochs=1), data_cfg, progress=False)
    split = json.loads((first / "splits.json").read_text())
    assert split["counts"] == {"test": 18, "train": 60, "val": 12}
    assert all(not k.startswith(str(new_labels_folder)) for k in split["splits"])  # keys relative to the data
    # Another seed would draw another split; the split file wins, and the same seed gives the same weights.
    again = fit(tiny_cfg(tmp_path / "b", label_set="folders", epochs=1, split_file=str(first / "splits.json")),
                data_cfg, progress=False)
    assert json.loads((again / "splits.json").read_text())["splits"] == split["splits"]
    a, b = torch.load(first / "last.pt", weights_only=False), torch.load(again / "last.pt", weights_only=False)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    other = prepare_run(tiny_cfg(tmp_path / "c", label_set="folders", seed=7, split_file=str(first / "splits.json")),
                    data_cfg, progress=False)
    assert dict(zip(other.data.keys.tolist(), other.data.roles.tolist())) == split["splits"]
    drawn = prepare_run(tiny_cfg(tmp_path / "d", label_set="folders", seed=7), data_cfg, progress=False)
    assert dict(zip(drawn.data.keys.tolist(), drawn.data.roles.tolist())) != split["splits"]


def test_split_file_must_match_the_dataset(new_labels_folder, tmp_path):
    data_cfg = DataConfig(data=str(new_labels_folder))
    keys = read_dataset(new_labels_folder, label_set="folders").sources
    mapping = {k.split(":", 1)[1]: "train" for k in keys.tolist()}
    mapping.pop(next(iter(mapping)))
    path = tmp_path / "split.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(DataError, match="1 image.*not in it"):
        prepare_run(tiny_cfg(tmp_path / "r", label_set="folders", split_file=str(path)), data_cfg, progress=False)
    path.write_text(json.dumps({**mapping, "gone/x.png": "val", "alpha/img_0000.png": "val"}))
    with pytest.raises(DataError, match="not in the dataset"):
        prepare_run(tiny_cfg(tmp_path / "r", label_set="folders", split_file=str(path)), data_cfg, progress=False)
    # both directions at once, each counted and named (before: the first name of the first direction only)
    kept = {k: v for k, v in mapping.items() if k not in sorted(mapping)[:4]}
    path.write_text(json.dumps({**kept, "gone/x.png": "val"}))
    with pytest.raises(DataError) as refused:
        prepare_run(tiny_cfg(tmp_path / "r", label_set="folders", split_file=str(path)), data_cfg, progress=False)
    message, absent = str(refused.value), [k.split(":", 1)[1] for k in keys.tolist() if k.split(":", 1)[1] not in kept]
    assert f"{len(absent)} image(s) of the dataset are not in it" in message and len(absent) == 5
    assert "1 image(s) it names are not in the dataset (gone/x.png)" in message
    assert message.count(", ...") == 1 and sum(k in message for k in absent) == 3  # 3 named, the count complete


def test_images_of_any_size_and_colour_are_read(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, name in enumerate(NEW_LABELS):
        (tmp_path / name).mkdir()
        big = np.kron(pattern_image(i, rng), np.ones((5, 4), np.uint8))  # 240x192
        Image.fromarray(np.stack([big, big // 2, big], -1)).save(tmp_path / name / "rgb.jpg")
        (tmp_path / name / "gray.png").write_bytes(png_bytes(pattern_image(i, rng, size=64)))
    data = read_dataset(tmp_path, label_set="folders")
    assert data.images.shape == (6, 48, 48) and data.images.dtype == np.uint8


def test_detect_faces_crops_the_face_out_of_a_photo(tmp_path):
    from nasfer.data.facecrop import read_face_crops
    from nasfer.runtime.faces import Box

    class OneBox:  # a stand-in detector (FaceDetector protocol): the face is where we put it
        def detect(self, image):
            assert image.ndim == 3 and image.shape[2] == 3
            return [Box(60, 40, 96, 96)]

    photo = np.full((240, 320), 30, np.uint8)
    photo[40:136, 60:156] = 220
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "photo.png").write_bytes(png_bytes(photo))
    plain = read_dataset(tmp_path)
    cropped = read_face_crops(tmp_path, detector=OneBox())
    assert cropped.images.shape == (1, 48, 48)
    assert cropped.images.mean() > 200 > plain.images.mean()  # the bright face fills the crop
    assert any("face cropped in 1 of 1" in n for n in cropped.notes)


def test_detect_faces_crops_16_bit_and_float_photos_as_predict_shows_them(tmp_path):
    """The readers scale 16-bit and float images like the runtime (gray_to_uint8), but --detect-faces re-read
    them with OpenCV's 8-bit conversion: a 12-bit PNG's face crop kept the high byte (0..15, black) and a
    float TIFF could not be decoded, so it kept its whole-image thumbnail."""
    from PIL import Image

    from nasfer.data.facecrop import read_face_crops
    from nasfer.runtime.faces import Box, crop_face
    from nasfer.runtime.images import decode

    class OneBox:
        def detect(self, image):
            return [Box(60, 40, 96, 96)]

    photo = np.full((240, 320), 0.1)
    photo[40:136, 60:156] = np.linspace(0.5, 1.0, 96)
    (tmp_path / "happy").mkdir()
    Image.fromarray((photo * 4095).astype(np.uint16)).save(tmp_path / "happy" / "twelve.png")
    Image.fromarray(photo.astype(np.float32), mode="F").save(tmp_path / "happy" / "float.tiff")
    cropped = read_face_crops(tmp_path, detector=OneBox())
    assert any("face cropped in 2 of 2" in n for n in cropped.notes), cropped.notes
    for image, source in zip(cropped.images, cropped.sources.tolist()):
        shown = decode((tmp_path / source.split(":", 1)[1]).read_bytes(), max_pixels=10**7)
        served = crop_face(shown, Box(60, 40, 96, 96), 48)
        assert image.mean() > 150 and np.abs(image.astype(int) - served.astype(int)).max() <= 1, source


@pytest.mark.real_data
def test_detect_faces_with_haar_finds_real_faces_in_photos(fer2013_zip, tmp_path):
    """FER2013 faces pasted into larger noisy pictures: Haar finds most, and the crops look like the faces."""
    import zipfile

    import cv2

    from nasfer.data.facecrop import read_face_crops

    with zipfile.ZipFile(fer2013_zip) as zf:
        names = sorted(n for n in zf.namelist() if "/PublicTest_" in n and "/happy/" in n)[:10]
        faces = [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in names]
    rng = np.random.default_rng(0)
    (tmp_path / "happy").mkdir()
    for i, face in enumerate(faces):
        canvas = rng.integers(60, 120, (240, 320)).astype(np.uint8)
        canvas[50:194, 100:244] = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
        (tmp_path / "happy" / f"photo{i}.png").write_bytes(png_bytes(canvas))
    plain, cropped = read_dataset(tmp_path), read_face_crops(tmp_path)
    found = [i for i in range(len(faces)) if not np.array_equal(plain.images[i], cropped.images[i])]
    assert len(found) >= 5 and any(f"face cropped in {len(found)} of 10" in n for n in cropped.notes)

    def corr(a, b):
        return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])

    originals = {f"happy/photo{i}.png": face for i, face in enumerate(faces)}
    key = [s.split(":", 1)[1] for s in cropped.sources.tolist()]
    crop_corr = np.mean([corr(cropped.images[i], originals[key[i]]) for i in found])
    plain_corr = np.mean([corr(plain.images[i], originals[key[i]]) for i in found])
    assert crop_corr > plain_corr + 0.2, (crop_corr, plain_corr)


def test_detect_faces_rejects_csv(fer_csv):
    from nasfer.data.facecrop import read_face_crops

    with pytest.raises(DataError, match="needs image files"):
        read_face_crops(fer_csv)


# ---------------------------------------------------------------------------- to serving, unchanged


@pytest.fixture(scope="module")
def custom_onnx(finetuned, tmp_path_factory) -> Path:
    """The fine-tuned alpha/beta/gamma model exported with `nasfer export` (ONNX + card)."""
    from nasfer.cli import main

    onnx = tmp_path_factory.mktemp("export") / "custom.onnx"
    assert main(["export", "--checkpoint", str(finetuned / "best.pt"), "--out", str(onnx)]) == 0
    return onnx


def test_custom_labels_reach_the_model_card_and_the_engine(custom_onnx, finetuned, new_labels_folder):
    from nasfer.runtime.engine import Classifier
    from nasfer.train import evaluate_model

    card = json.loads(custom_onnx.with_suffix(".json").read_text())
    assert card["labels"] == list(NEW_LABELS)
    clf = Classifier(custom_onnx)
    assert list(clf.labels) == list(NEW_LABELS)
    data = read_dataset(new_labels_folder, label_set="folders")
    probs = clf.predict(data.images)
    assert probs.shape == (len(data), 3) and (probs.argmax(1) == data.labels).mean() >= 0.8
    model, ckpt = load_model(finetuned / "best.pt")
    torch_probs = evaluate_model(model, data.images[:8], Preprocessing.from_dict(ckpt["preprocessing"]))
    assert np.allclose(probs[:8], torch_probs, atol=1e-4)


def test_custom_labels_reach_predict_cli(custom_onnx, new_labels_folder, capsys):
    from nasfer.cli import main

    image = new_labels_folder / "beta" / "img_0000.png"
    assert main(["predict", str(image), "--json", "--detector", "none", "--model", str(custom_onnx)]) == 0
    printed = capsys.readouterr().out
    assert '"beta"' in printed and not any(f'"{e}"' in printed for e in EMOTIONS)


def test_custom_labels_reach_the_service(custom_onnx, new_labels_folder):
    from nasfer.service import ServeConfig, create_app

    client = create_app(ServeConfig(model=str(custom_onnx), detector="none")).test_client()
    image = new_labels_folder / "beta" / "img_0000.png"
    with image.open("rb") as fh:
        resp = client.post("/v1/emotions", data={"image": (fh, image.name)}, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["model"]["labels"] == list(NEW_LABELS)
    assert body["faces"] and body["faces"][0]["label"] == "beta"
    assert set(body["faces"][0]["scores"]) == set(NEW_LABELS)
    card = client.get("/v1/model")
    assert card.status_code == 200 and card.get_json()["labels"] == list(NEW_LABELS)


def test_a_custom_label_model_exports_and_quantizes_on_its_own_folders(finetuned, new_labels_folder, tmp_path, capsys):
    """Custom class folders are refused when read with the canonical labels (user review); export's parity
    images and int8 calibration read them with the model's own labels, on the run's own split."""
    from nasfer.cli import main

    onnx = tmp_path / "custom.onnx"
    assert main(["export", "--checkpoint", str(finetuned / "best.pt"), "--out", str(onnx),
                 "--parity-data", str(new_labels_folder)]) == 0
    argv = ["export", "--onnx", str(onnx), "--quantize", "int8", "--calibration-data", str(new_labels_folder),
            "--max-accuracy-drop", "100", "--out", str(tmp_path / "int8.onnx")]
    capsys.readouterr()
    assert main(argv) == 2 and "--label-set: pass its splits.json" in capsys.readouterr().err
    assert main([*argv, "--split-file", str(finetuned / "splits.json")]) == 0
    card = json.loads((tmp_path / "int8.json").read_text())
    from nasfer.data.splits import read_split_file

    held_out = sum(role == "val" for role in read_split_file(finetuned / "splits.json").values())
    assert card["labels"] == list(NEW_LABELS) and card["quantization"]["parity"]["n"] == held_out > 0

import numpy as np
import pytest

from nasfer.data import detect_kind, read_dataset, stratified_split
from nasfer.errors import DataError
from nasfer.labels import EMOTIONS


def test_fer_csv_reads_rows_and_skips_bad_ones(fer_csv):
    data = read_dataset(fer_csv)
    assert detect_kind(fer_csv) == "fer2013-csv"
    assert len(data) == 14 and data.images.shape == (14, 48, 48) and data.images.dtype == np.uint8
    assert set(data.split_names()) == {"Training", "PublicTest", "PrivateTest"}
    reasons = [str(s) for s in data.skipped]
    assert len(reasons) == 3
    assert "row 16: expected 2304 pixels, got 2303" in reasons[0]
    assert "row 17: non-numeric pixel value 'x'" in reasons[1]
    assert "row 18: emotion must be an integer 0-6, got '9'" in reasons[2]


def test_fer_csv_strict_fails_on_first_bad_row(fer_csv):
    with pytest.raises(DataError, match="row 16"):
        read_dataset(fer_csv, strict=True)


def test_fer_csv_missing_columns(tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("label,data\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        read_dataset(bad)


def test_fer_csv_inside_zip(fer_csv, tmp_path):
    import zipfile

    zpath = tmp_path / "csv.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(fer_csv, "fer2013/fer2013.csv")
    assert detect_kind(zpath) == "fer2013-csv"
    assert len(read_dataset(zpath)) == 14


def test_kaggle_zip_takes_split_from_file_prefix(kaggle_zip):
    data = read_dataset(kaggle_zip)
    assert detect_kind(kaggle_zip) == "fer2013"
    counts = {s: int((data.splits == s).sum()) for s in data.split_names()}
    assert counts == {"Training": 21, "PublicTest": 7, "PrivateTest": 7}
    assert len(data.skipped) == 1 and "Training_broken.jpg: corrupt or unsupported image" in str(data.skipped[0])
    assert len(data.select_split("publictest")) == 7
    assert len(data.select_split("test")) == 14
    assert len(data.select_split("all")) == 35
    with pytest.raises(ValueError, match="split 'val' not found"):
        data.select_split("val")


def test_ckplus_contempt_excluded_with_note(ckplus_dir):
    assert detect_kind(ckplus_dir) == "ckplus"
    data = read_dataset(ckplus_dir)
    assert len(data) == 36  # 6 classes x 3 subjects x 2 frames; contempt's 6 left out
    assert any("6 'contempt' images excluded" in n for n in data.notes)
    assert set(data.split_names()) == {"all"}
    mapped = read_dataset(ckplus_dir, contempt="neutral")
    assert len(mapped) == 42
    assert mapped.class_counts()["neutral"] == 6
    assert any("mapped to 'neutral'" in n for n in mapped.notes)


def test_images_at_the_top_of_a_folder_dataset_are_counted_in_a_note(ckplus_dir):
    """An image beside the class folders has no label: it is not read, and now the notes say how many (the run
    log prints them); before, it was dropped without a word (review of session 23)."""
    import shutil

    assert not any("at the top" in n for n in read_dataset(ckplus_dir).notes)
    first = next(p for p in sorted(ckplus_dir.rglob("*.png")))
    for name in ("loose1.png", "loose2.PNG"):
        shutil.copy(first, ckplus_dir / name)
    (ckplus_dir / "README.txt").write_text("not an image")
    data = read_dataset(ckplus_dir)
    assert len(data) == 36 and any(n.startswith("2 image files at the top of") for n in data.notes), data.notes


def test_messy_folder_skips_and_counts(messy_folder):
    import shutil

    # user review: the images of a class folder that is no emotion were "skipped ... unreadable" in silence
    with pytest.raises(DataError, match=r"class folder 'bored' \(1 image\) is not a canonical emotion label.*"
                                        r"--label-set folders"):
        read_dataset(messy_folder)
    shutil.rmtree(messy_folder / "bored")
    data = read_dataset(messy_folder)
    assert detect_kind(messy_folder) == "folder"
    assert data.class_counts() == {**{e: 0 for e in EMOTIONS}, "happy": 2, "sad": 2, "neutral": 2}
    reasons = sorted(s.reason for s in data.skipped)
    assert reasons == ["corrupt or unsupported image", "not an image file"]  # unreadable files: still skipped
    with pytest.raises(DataError, match="corrupt|not an image"):
        read_dataset(messy_folder, strict=True)


def test_custom_label_set_from_folder_names(messy_folder):
    data = read_dataset(messy_folder, label_set="folders")
    assert data.label_names == ("bored", "happiness", "neutral", "sad")
    assert len(data) == 7


def test_empty_and_missing_dataset(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable images"):
        read_dataset(tmp_path / "empty")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"abc")
    with pytest.raises(DataError, match="expected a folder, a .zip"):
        read_dataset(junk)


def test_images_of_other_sizes_are_resized(tmp_path):
    from fixtures_data import png_bytes

    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "big.png").write_bytes(png_bytes(np.full((200, 160), 7, np.uint8)))
    data = read_dataset(tmp_path)
    assert data.images.shape == (1, 48, 48)


def test_stratified_split_is_seeded_and_keeps_rare_classes():
    labels = np.array([0] * 100 + [1] * 3 + [2] * 1)
    keep, held = stratified_split(labels, 0.1, seed=5)
    keep2, held2 = stratified_split(labels, 0.1, seed=5)
    assert np.array_equal(held, held2) and np.array_equal(keep, keep2)
    assert set(np.concatenate([keep, held]).tolist()) == set(range(len(labels)))
    assert not set(keep) & set(held)
    assert (labels[held] == 1).sum() == 1 and (labels[held] == 0).sum() == 10
    assert (labels[held] == 2).sum() == 0  # a single sample stays in training


@pytest.mark.real_data
def test_real_fer2013_zip(fer2013_zip):
    data = read_dataset(fer2013_zip)
    assert len(data.select_split("Training")) == 28709
    assert data.select_split("PublicTest").class_counts() == {
        "angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607}
    assert not data.skipped


def test_fer_csv_an_unknown_usage_is_a_skipped_row_not_a_split_of_its_own(fer_csv):
    """Before: a row with Usage "Train" (a typo) or "Bogus" became a split of that name, neither trained on nor
    scored, without a word; the official names in another case are the official splits."""
    text = fer_csv.read_text().splitlines()
    pixels = text[1].split(",")[1]
    fer_csv.write_text("\n".join([*text, f"0,{pixels},Train", f"1,{pixels},publictest"]) + "\n")
    ds = read_dataset(fer_csv)
    assert set(ds.split_names()) == {"Training", "PublicTest", "PrivateTest"}
    reasons = [str(s) for s in ds.skipped]
    assert len(ds) == 15 and len(reasons) == 4
    assert "Usage must be one of Training, PublicTest, PrivateTest, got 'Train'" in reasons[-1]


@pytest.mark.parametrize("label_set", ["folders", "canonical"])
def test_a_class_folder_inside_another_is_refused_not_a_class_of_its_own(tmp_path, label_set):
    """User review: my_faces/happy/session2/*.png was read as a class 'session2' (--label-set folders) beside
    'happy', silently; with the canonical labels, happy/sad/x.png became a sad face. The class is the folder that
    holds the image, so a folder holding images and also a folder of images is ambiguous: refused, naming both."""
    from fixtures_data import png_bytes, write_class_tree

    write_class_tree(tmp_path / "faces", per_class=3, classes=("happy", "sad"))
    nested = tmp_path / "faces" / "happy" / ("session2" if label_set == "folders" else "sad")
    nested.mkdir()
    (nested / "x.png").write_bytes(png_bytes(np.full((48, 48), 9, np.uint8)))
    with pytest.raises(DataError, match=r"'happy' holds images and also the folder 'happy/(session2|sad)'"):
        read_dataset(tmp_path / "faces", label_set=label_set)


def test_class_folders_under_a_split_or_wrapper_folder_are_not_nested(tmp_path):
    from fixtures_data import write_class_tree

    write_class_tree(tmp_path / "d" / "my_faces", per_class=2, classes=("happy", "sad"), split="train")
    write_class_tree(tmp_path / "d" / "my_faces", per_class=2, classes=("happy", "sad"), split="test")
    data = read_dataset(tmp_path / "d", label_set="folders")
    assert data.label_names == ("happy", "sad") and len(data) == 8


def test_folder_labels_that_normalise_alike_are_refused_not_merged(tmp_path):
    """Before: 'very-happy' and 'very happy' became one label, very_happy, in silence; folders that differ only
    by case across train/ and test/ ('Happy', 'happy') are refused the same way, since they are two names."""
    from fixtures_data import write_class_tree

    write_class_tree(tmp_path / "faces", per_class=2, classes=("very-happy", "very happy", "sad"))
    with pytest.raises(DataError, match=r"'very happy', 'very-happy' would be one label, 'very_happy'"):
        read_dataset(tmp_path / "faces", label_set="folders")
    write_class_tree(tmp_path / "split", per_class=2, classes=("Happy", "sad"), split="train")
    write_class_tree(tmp_path / "split", per_class=2, classes=("happy", "sad"), split="test")
    with pytest.raises(DataError, match="'Happy', 'happy' would be one label"):
        read_dataset(tmp_path / "split", label_set="folders")
    write_class_tree(tmp_path / "ok", per_class=2, classes=("Very Happy", "sad"))
    assert read_dataset(tmp_path / "ok", label_set="folders").label_names == ("sad", "very_happy")


def test_16_bit_and_float_images_train_as_predict_shows_them():
    """Before: a 12-bit PNG was read for training with OpenCV's 8-bit conversion (high byte only: values 0..15,
    almost black) while predict scaled it to 0..255, and 32-bit float TIFFs were skipped as unreadable."""
    import io

    from PIL import Image

    from nasfer.data.readers import decode_gray
    from nasfer.runtime.images import decode

    ramp = np.linspace(0, 1, 48 * 48).reshape(48, 48)
    pictures = {"12-bit PNG": (Image.fromarray((ramp * 4095).astype(np.uint16)), "PNG"),
                "float TIFF": (Image.fromarray(ramp.astype(np.float32), mode="F"), "TIFF"),
                "8-bit PNG": (Image.fromarray((ramp * 255).astype(np.uint8)), "PNG")}
    for name, (picture, fmt) in pictures.items():
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)
        trained = decode_gray(buffer.getvalue())
        shown = decode(buffer.getvalue(), max_pixels=10**6)
        assert trained is not None and trained.dtype == np.uint8 and trained.max() == 255, name
        assert np.array_equal(trained, shown[..., 0]), name

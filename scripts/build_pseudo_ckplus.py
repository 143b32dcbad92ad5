"""Build a small CK+-style folder dataset from held-out FER2013 Training faces grouped into pseudo-subjects.

    python scripts/build_pseudo_ckplus.py --fer ../shared/datasets/fer2013.zip --out /tmp/ckplus_pseudo \
        [--split-file ~/nasfer-runs/vgg32-long-s0/splits.json]

writes `OUT/CK+48/<class>/S<subject>_<sequence>_<frame>.png` (48x48 grayscale PNG) and `OUT/manifest.json`
(which FER2013 image became which file). It exists to check the fine-tuning pipeline
(`nasfer crossval --init-from default`) on a dataset shaped like CK+48 without CK+ itself, which is
licensed and cannot be shipped:

- the six CK+48 classes other than contempt (FER2013 has no contempt), with CK+48's class counts
  (anger 135, disgust 177, fear 75, happy 207, sadness 84, surprise 249), each capped at the faces the
  validation split has (disgust: about 45);
- faces drawn from the validation role of FER2013 Training: the images `nasfer train` holds out with
  seed 0 and --val-fraction 0.1 (the split of every shipped model's members: the old default's, which drew
  it so, and the new ones', which reuse vgg32-long-s0/splits.json, the same images), or of `--split-file`.
  The shipped models never trained on them, and PublicTest is never read: fine-tuning on this set trains on
  Training images only, as the protocol asks. The figures measured on it are a pipeline check, not a CK+
  result and not a FER2013 result;
- 123 pseudo-subjects (CK+48 has 123): each face is assigned to a subject at random (seeded); within a
  subject, faces of one class form a "sequence". The faces of one pseudo-subject are different people,
  so subject-independent folds here guard nothing real; they exercise the same code path as CK+.

The images are written outside the repository (FER2013 images never enter it). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: CK+48 folder name -> (canonical FER2013 label, CK+48 image count)
CLASSES = {
    "anger": ("angry", 135), "disgust": ("disgust", 177), "fear": ("fear", 75), "happy": ("happy", 207),
    "sadness": ("sad", 84), "surprise": ("surprise", 249),
}
SUBJECTS = 123


def build(fer: Path, out: Path, seed: int = 0, *, split_file: Path | None = None, split_seed: int = 0,
          val_fraction: float = 0.1, subjects: int = SUBJECTS) -> dict:
    """Write the folder dataset from the validation role of FER2013 Training (of `split_file`, or drawn as
    `nasfer train --seed split_seed --val-fraction val_fraction` draws it); return the manifest (also written
    to OUT/manifest.json). Raises DataError for unreadable data or a split file of other images."""
    from PIL import Image

    from nasfer.config import TrainConfig
    from nasfer.data import read_dataset
    from nasfer.data.splits import VAL, sample_keys
    from nasfer.train import plan_split

    if split_file is None and Path(fer).suffix.lower() == ".csv":
        raise SystemExit(f"{fer}: a fer2013.csv is read in row order, so the seed-{split_seed} draw is not the one the "
                         "shipped models held out (they trained from the Kaggle zip); give --split-file")
    data = read_dataset(fer)
    roles = plan_split(data, TrainConfig(seed=split_seed, val_fraction=val_fraction),
                       sample_keys(data.sources, str(Path(fer).expanduser())), str(split_file) if split_file else None)
    held_out = roles == VAL
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, int]] = []  # (CK+ class, index into data)
    for folder, (label, count) in CLASSES.items():
        pool = np.flatnonzero(held_out & (data.labels == data.label_names.index(label)))
        take = min(count, len(pool))
        chosen += [(folder, int(i)) for i in rng.choice(pool, size=take, replace=False)]
    if len(chosen) < subjects:
        raise SystemExit(f"{len(chosen)} held-out faces cannot fill {subjects} pseudo-subjects")
    subject_of = rng.integers(0, subjects, size=len(chosen))
    subject_of[:subjects] = rng.permutation(subjects)  # every pseudo-subject has at least one face
    root = out / "CK+48"
    if root.exists() and any(root.rglob("*.png")):
        raise SystemExit(f"{root} already holds images: remove it or choose another --out")
    frames: dict[tuple[int, str], int] = {}
    files = []
    for (folder, i), subject in zip(chosen, subject_of.tolist()):
        sequence = list(CLASSES).index(folder) + 1
        frame = frames.get((subject, folder), 0) + 1
        frames[(subject, folder)] = frame
        name = f"S{subject + 1:03d}_{sequence:03d}_{frame:08d}.png"
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[i]).save(root / folder / name)
        files.append({"file": f"{folder}/{name}", "fer2013": str(data.sources[i])})
    manifest = {
        "format": "nasfer-pseudo-ckplus/2", "source": str(fer), "split": "Training, validation role",
        "split_file": str(split_file) if split_file else None,
        "split_seed": None if split_file else split_seed, "val_fraction": None if split_file else val_fraction,
        "seed": seed, "subjects": subjects, "n": len(files),
        "class_counts": {folder: sum(f["file"].startswith(folder + "/") for f in files) for folder in CLASSES},
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fer", type=Path, default=Path("../shared/datasets/fer2013.zip"),
                        help="FER2013 zip or folder (Kaggle layout with PublicTest_ files, or fer2013.csv)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ckplus_pseudo"),
                        help="output folder, outside the repository (default: /tmp/ckplus_pseudo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the face draw and the pseudo-subjects")
    parser.add_argument("--split-file", type=Path, help="a training run's splits.json: take its validation role "
                                                        "(default: the split nasfer train draws with seed 0)")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo):
        print(f"error: {args.out} is inside the repository; FER2013 images must not enter it", file=sys.stderr)
        return 2
    from nasfer.errors import NasferError

    try:
        manifest = build(args.fer, args.out, args.seed, split_file=args.split_file)
    except NasferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['n']} faces of {manifest['subjects']} pseudo-subjects to {args.out / 'CK+48'} "
          f"({', '.join(f'{k} {v}' for k, v in manifest['class_counts'].items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

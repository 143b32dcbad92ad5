"""Build a small CK+-style folder dataset from FER2013 PublicTest faces grouped into pseudo-subjects.

    python scripts/build_pseudo_ckplus.py --fer ../shared/datasets/fer2013.zip --out /tmp/ckplus_pseudo

writes `OUT/CK+48/<class>/S<subject>_<sequence>_<frame>.png` (48x48 grayscale PNG) and `OUT/manifest.json`
(which FER2013 image became which file). It exists to check the fine-tuning pipeline
(`nasfer crossval --init-from default`) on a dataset shaped like CK+48 without CK+ itself, which is
licensed and cannot be shipped:

- the six CK+48 classes other than contempt (FER2013 has no contempt), with CK+48's class counts
  (anger 135, disgust 177, fear 75, happy 207, sadness 84, surprise 249), disgust capped at the 56
  disgust faces PublicTest has: 806 faces;
- faces drawn from FER2013's PublicTest split only, which the shipped default model never trained on
  (it trained on Training; PublicTest is its test split), so fine-tuning it here does not see its own
  training images. The figures measured on this set are a pipeline check, not a CK+ result and not a
  FER2013 result;
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


def build(fer: Path, out: Path, seed: int = 0) -> dict:
    """Write the folder dataset; return the manifest (also written to OUT/manifest.json)."""
    from PIL import Image

    from nasfer.data import read_dataset

    data = read_dataset(fer).select_split("PublicTest")
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, int]] = []  # (CK+ class, index into data)
    for folder, (label, count) in CLASSES.items():
        pool = np.flatnonzero(data.labels == data.label_names.index(label))
        take = min(count, len(pool))
        chosen += [(folder, int(i)) for i in rng.choice(pool, size=take, replace=False)]
    subject_of = rng.integers(0, SUBJECTS, size=len(chosen))
    subject_of[:SUBJECTS] = rng.permutation(SUBJECTS)  # every pseudo-subject has at least one face
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
        "format": "nasfer-pseudo-ckplus/1", "source": str(fer), "split": "PublicTest", "seed": seed,
        "subjects": SUBJECTS, "n": len(files),
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo):
        print(f"error: {args.out} is inside the repository; FER2013 images must not enter it", file=sys.stderr)
        return 2
    manifest = build(args.fer, args.out, args.seed)
    print(f"wrote {manifest['n']} faces of {manifest['subjects']} pseudo-subjects to {args.out / 'CK+48'} "
          f"({', '.join(f'{k} {v}' for k, v in manifest['class_counts'].items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

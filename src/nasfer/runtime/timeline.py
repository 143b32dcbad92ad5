"""Per-face emotion timelines of a video: what each tracked face showed, summarised and plotted.

`Timeline` collects, for every tracked face id, the smoothed probabilities of each analysed frame
(`add`), then gives per-face summaries (`summaries`): first and last time seen (seconds), analysed
frames, the label of the mean probabilities, mean probabilities, mean confidence (the smoothed top
probability) and the share of the face's analysed time spent under each smoothed label (every
analysed frame stands for the same time, so shares are frame fractions). `write_json` stores them
beside the timeline CSV; `plot` draws one panel per face: the probabilities over time in seconds,
with the smoothed label as a coloured band. matplotlib comes from the optional `plots` extra.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import NasferError

PLOTS_HINT = "the timeline plot needs matplotlib: pip install 'nasfer[plots]'"


@dataclass
class FaceSummary:
    """One tracked face. Times in seconds from the start of the video; shares sum to 1."""

    id: int
    first_s: float
    last_s: float
    frames: int
    label: str
    mean_scores: dict[str, float]
    mean_confidence: float = 0.0
    time_share: dict[str, float] = field(default_factory=dict)


@dataclass
class _Series:
    times: list[float] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)


class Timeline:
    """Smoothed probabilities per face id over time (labels in the model's order)."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.faces: dict[int, _Series] = {}

    def add(self, result: Any) -> None:
        """Record an analysed `nasfer.runtime.video.FrameResult` (its faces carry the smoothed scores)."""
        for face_id, face in zip(result.ids, result.faces):
            series = self.faces.setdefault(int(face_id), _Series())
            series.times.append(float(result.time_s))
            series.probs.append(np.array([face.scores[k] for k in self.labels], np.float64))

    def series(self, face_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(times (T,) seconds, probabilities (T, K)) of one face."""
        s = self.faces[face_id]
        return np.asarray(s.times), np.stack(s.probs)

    def summaries(self) -> list[FaceSummary]:
        out = []
        for face_id in sorted(self.faces):
            times, probs = self.series(face_id)
            mean = probs.mean(axis=0)
            top = probs.argmax(axis=1)
            counts = np.bincount(top, minlength=len(self.labels)) / len(top)
            out.append(FaceSummary(
                id=face_id, first_s=round(float(times[0]), 3), last_s=round(float(times[-1]), 3), frames=len(times),
                label=self.labels[int(np.argmax(mean))],
                mean_scores={k: round(float(v), 4) for k, v in zip(self.labels, mean)},
                mean_confidence=round(float(probs.max(axis=1).mean()), 4),
                time_share={k: round(float(v), 4) for k, v in zip(self.labels, counts)}))
        return out

    def write_json(self, path: str | Path, **about: Any) -> Path:
        """Write `{**about, "labels", "faces": [FaceSummary as dicts]}` to `path` (UTF-8 JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**about, "labels": self.labels, "faces": [asdict(s) for s in self.summaries()]}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    def plot(self, path: str | Path, title: str = "") -> Path:
        """PNG with one panel per face: probability (0..1) of each label against time (s); a band above
        the curves shows the smoothed label. NasferError with the install hint without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise NasferError(PLOTS_HINT) from None
        from .annotate import label_color

        ids = sorted(self.faces)
        n = max(1, len(ids))
        fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 1.2), squeeze=False, sharex=True)
        colors = {k: tuple(c / 255 for c in label_color(k)) for k in self.labels}
        for ax, face_id in zip(axes[:, 0], ids):
            times, probs = self.series(face_id)
            for j, label in enumerate(self.labels):
                ax.plot(times, probs[:, j], color=colors[label], label=label, lw=1.5)
            step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
            edges = np.append(times, times[-1] + step)
            for i, k in enumerate(probs.argmax(axis=1)):  # the smoothed label as a band above the curves
                ax.axvspan(edges[i], edges[i + 1], ymin=1.02, ymax=1.12, color=colors[self.labels[k]],
                           clip_on=False, lw=0)
            ax.set_ylim(0, 1)
            ax.set_ylabel("probability")
            ax.set_title(f"face #{face_id}", loc="left", pad=14)
            ax.grid(alpha=0.3)
        if not ids:
            axes[0, 0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[-1, 0].set_xlabel("time (s)")
        handles, names = axes[0, 0].get_legend_handles_labels()
        if handles:  # below the panels; the band above each panel uses the same colours
            fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize="small", frameon=False,
                       title="probability (lines) and smoothed label (band above each panel)",
                       title_fontsize="small")
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize="medium")
        path = plot_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout(rect=(0, 0.1 / n + 0.04, 1, 0.97))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def companion_json(csv_path: str | Path) -> Path:
    """`timeline.csv` -> `timeline.json`: where the per-face summary of a timeline CSV goes."""
    return Path(csv_path).with_suffix(".json")


def plot_path(path: str | Path) -> Path:
    """The file `Timeline.plot(path)` writes: `path`, with ".png" added when it has no suffix (matplotlib's
    `savefig` rule: the suffix chooses the format, PNG without one)."""
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + ".png")


__all__ = ["Timeline", "FaceSummary", "companion_json", "plot_path", "PLOTS_HINT"]

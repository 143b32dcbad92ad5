"""Draw the web client's app icons (PNG, 192 and 512 px) with Pillow.

    python scripts/make_icons.py            # writes src/nasfer/service/static/icons/icon-{192,512}.png

The icon is a face inside the corner brackets of a detection box, on a full-bleed square so it also
works as a "maskable" icon (everything that matters lies inside the central 80% safe zone).
Drawn at 4x and downsampled for smooth edges; the output is deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "src" / "nasfer" / "service" / "static" / "icons"
SIZES = (192, 512)
BG_TOP, BG_BOTTOM = (20, 120, 112), (10, 72, 68)
FACE = (255, 204, 77)
INK = (38, 28, 10)
WHITE = (255, 255, 255)


def draw_icon(size: int) -> Image.Image:
    s = size * 4
    img = Image.new("RGB", (s, s))
    px = ImageDraw.Draw(img)
    for y in range(s):  # vertical gradient background
        t = y / (s - 1)
        px.line([(0, y), (s, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(BG_TOP, BG_BOTTOM)))

    d = ImageDraw.Draw(img)
    c = s / 2
    # detection-box corner brackets, inside the 80% safe zone
    m, arm, w = s * 0.2, s * 0.13, max(4, round(s * 0.035))
    for sx, sy in ((m, m), (s - m, m), (m, s - m), (s - m, s - m)):
        dx = arm if sx < c else -arm
        dy = arm if sy < c else -arm
        d.line([(sx, sy), (sx + dx, sy)], fill=WHITE, width=w)
        d.line([(sx, sy), (sx, sy + dy)], fill=WHITE, width=w)
        r = w / 2
        d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=WHITE)
        d.ellipse([sx + dx - r, sy - r, sx + dx + r, sy + r], fill=WHITE)
        d.ellipse([sx - r, sy + dy - r, sx + r, sy + dy + r], fill=WHITE)

    # the face
    fr = s * 0.2
    d.ellipse([c - fr, c - fr, c + fr, c + fr], fill=FACE)
    er = s * 0.026
    for ex in (c - fr * 0.38, c + fr * 0.38):
        ey = c - fr * 0.22
        d.ellipse([ex - er, ey - er * 1.3, ex + er, ey + er * 1.3], fill=INK)
    # smile: an arc
    sw = max(3, round(s * 0.024))
    d.arc([c - fr * 0.55, c - fr * 0.45, c + fr * 0.55, c + fr * 0.58], start=20, end=160, fill=INK, width=sw)
    return img.resize((size, size), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        path = args.out / f"icon-{size}.png"
        draw_icon(size).save(path, format="PNG", optimize=True)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

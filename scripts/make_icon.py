"""Draw the application icon: ``resources/icons/segviewer.svg`` and ``segviewer.png`` (256 px).

An axial MRI slice (grey head, lighter brain) with a segmentation overlay (an orange region
with a blue outline) on a dark rounded square. The SVG is the source; the PNG is drawn with
Pillow from the same shapes, so neither depends on an SVG renderer. Run from the repository
root: ``python scripts/make_icon.py``. ``segviewer --install-desktop-entry`` converts the PNG
to ``.ico`` / ``.icns`` where Windows or macOS need them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZE = 256

# shapes in a 256 x 256 box: (kind, box or points, fill, outline, outline width)
BACKGROUND = (8, 8, 248, 248)
HEAD = (44, 28, 212, 228)
BRAIN = (60, 46, 196, 210)
REGION = (112, 70, 180, 150)


def svg() -> str:
    def ellipse(box: tuple[int, int, int, int], fill: str, stroke: str = "", width: int = 0) -> str:
        x0, y0, x1, y1 = box
        extra = f' stroke="{stroke}" stroke-width="{width}"' if stroke else ""
        return (
            f'<ellipse cx="{(x0 + x1) / 2:g}" cy="{(y0 + y1) / 2:g}" rx="{(x1 - x0) / 2:g}" '
            f'ry="{(y1 - y0) / 2:g}" fill="{fill}"{extra}/>'
        )

    x0, y0, x1, y1 = BACKGROUND
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" '
            f'viewBox="0 0 {SIZE} {SIZE}">',
            f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="40" '
            'fill="#2d2d30"/>',
            ellipse(HEAD, "#8c8c8c"),
            ellipse(BRAIN, "#c8c8c8"),
            ellipse(REGION, "#ff8c1a", "#2a82da", 8),
            "</svg>",
            "",
        ]
    )


def png() -> Image.Image:
    scale = 4  # draw large, then shrink: smooth edges without an anti-aliasing renderer
    im = Image.new("RGBA", (SIZE * scale, SIZE * scale), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)

    def s(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        return (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)

    d.rounded_rectangle(s(BACKGROUND), radius=40 * scale, fill=(45, 45, 48, 255))
    d.ellipse(s(HEAD), fill=(140, 140, 140, 255))
    d.ellipse(s(BRAIN), fill=(200, 200, 200, 255))
    half = 4 * scale
    r = REGION
    d.ellipse(s((r[0] - 4, r[1] - 4, r[2] + 4, r[3] + 4)), fill=(42, 130, 218, 255))
    d.ellipse(
        (s(r)[0] + half, s(r)[1] + half, s(r)[2] - half, s(r)[3] - half), fill=(255, 140, 26, 255)
    )
    return im.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "segviewer.svg").write_text(svg(), encoding="utf-8")
    png().save(OUT / "segviewer.png", optimize=True)
    print(f"wrote {OUT / 'segviewer.svg'} and {OUT / 'segviewer.png'}")


if __name__ == "__main__":
    main()

"""Regenerate the README screenshots from the bundled demo (offscreen, no display needed).

    QT_QPA_PLATFORM=offscreen python scripts/make_screenshots.py [--out screenshots]

Writes main.png, class_toggles.png, outline.png, heatmap.png, export_dialog.png,
three_view.png, model.png (the model dialog over the window after running the bundled
model) and errors.png (the model's grey matter against the reference tissue probabilities:
"Errors vs reference" on the slice with the most errors); the last two need TensorFlow.
All through the public Python API (``segviewer.ui.api.view``).
``--only model.png`` regenerates just the named pictures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "screenshots"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="write only these pictures (e.g. model.png)"
    )
    args = parser.parse_args(argv)
    only: set[str] | None = set(args.only) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # Screenshots must not depend on (or change) the user's saved window layout.
    settings_dir = tempfile.TemporaryDirectory()
    os.environ["SEGVIEWER_SETTINGS"] = str(Path(settings_dir.name) / "settings.ini")

    from segviewer.ui.api import view
    from segviewer.ui.app import demo_paths

    t1, prob, classes = demo_paths()
    v = view(t1, prob, classes)
    win = v.window
    win.resize(1400, 900)
    v.wait_idle()

    def shot(name: str) -> None:
        if not wanted(name):
            return
        v.wait_idle()
        path = out / name
        win.grab().save(str(path), "PNG")
        print(f"wrote {path}")

    # 1. The default view: axial slice through the ventricles, tissue classes filled.
    v.set_view("axial")
    v.set_slice(52)
    win.canvas.reset_zoom()
    shot("main.png")

    # 2. Grey matter hidden, white matter recoloured: only the LUT changes.
    v.set_class_visible(1, False)
    v.set_class_color(2, "#3ddc84")
    v.set_opacity(0.6)
    shot("class_toggles.png")
    v.set_class_visible(1, True)
    v.set_class_color(2, "#4aa3df")

    # 3. Outline + fill on a coronal slice (how boundaries are reviewed).
    v.set_view("coronal")
    v.set_slice(60)
    v.set_opacity(0.35)
    v.set_mode("both", 1)
    shot("outline.png")
    v.set_mode("fill")

    # 4. Uncertainty: normalised entropy heatmap with its colour bar.
    v.set_view("axial")
    v.set_slice(52)
    v.set_opacity(0.8)
    v.set_display("entropy")
    shot("heatmap.png")
    v.set_display("labels")
    v.set_opacity(0.5)

    # 5. The export dialog over the window.
    dlg = win.show_export_dialog()
    dlg.what_checks["overlays"].setChecked(True)
    dlg.format_checks["png"].setChecked(True)
    dlg.folder_edit.setText(str(Path.home() / "segviewer_export"))
    dlg.adjustSize()
    v.wait_idle()
    if wanted("export_dialog.png"):
        dlg.grab().save(str(out / "export_dialog.png"), "PNG")
        print(f"wrote {out / 'export_dialog.png'}")
    dlg.close()

    # 6. Linked three-view with the crosshair.
    v.set_view("three")
    win.state.set_cursor((40, 70, 50))
    win.reset_zoom()
    shot("three_view.png")

    # 7. The model dialog over the window, after running the bundled model on the demo T1.
    if wanted("model.png"):
        model_shot(v, out / "model.png")

    # 8. Errors vs reference: the bundled model's prediction against the tissue probabilities.
    if wanted("errors.png"):
        errors_shot(v, prob, out / "errors.png")
    v.close()
    settings_dir.cleanup()
    return 0


def model_shot(v: Any, path: Path) -> None:
    """Run the bundled model through the window, then draw its dialog over the window."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter

    from segviewer.io.sniff import tensorflow_available
    from segviewer.ui.app import demo_model_path

    if not tensorflow_available():
        print("skipped model.png: TensorFlow is not installed", file=sys.stderr)
        return
    from PySide6.QtGui import QColor

    win = v.window
    v.set_view("axial")
    v.set_slice(52)
    v.run_model(demo_model_path())
    dlg = win.model_dialog(True)
    dlg.adjustSize()
    v.wait_idle()
    win.reset_zoom()  # after the layout has settled from the three-view
    v.wait_idle()
    # Offscreen, the dialog is its own top-level window: composite it over the window grab
    # the way a desktop shows it (right of centre, over the canvas).
    canvas = win.grab()
    pic = dlg.grab()
    painter = QPainter(canvas)
    # Over the right half of the canvas, leaving the class panel visible.
    central = win.centralWidget().geometry()
    x = max(0, central.right() - pic.width() - 24)
    y = max(0, central.top() + (central.height() - pic.height()) // 2)
    painter.drawPixmap(QPoint(x, y), pic)
    painter.setPen(QColor(110, 110, 116))
    painter.drawRect(x - 1, y - 1, pic.width() + 1, pic.height() + 1)
    painter.end()
    canvas.save(str(path), "PNG")
    print(f"wrote {path}")
    dlg.close()


def errors_shot(v: Any, reference: Path, path: Path) -> None:
    """Model prediction vs the demo's reference: grey-matter errors on the worst axial slice."""
    from segviewer.io.sniff import tensorflow_available
    from segviewer.ui.app import demo_model_path

    if not tensorflow_available():
        print("skipped errors.png: TensorFlow is not installed", file=sys.stderr)
        return
    win = v.window
    if win.model_dialog(False).isVisible():
        win.model_dialog(False).close()
    v.set_view("axial")
    if "model" not in win.state.provenance:
        v.run_model(demo_model_path())
    v.set_reference(reference)
    v.set_opacity(0.5)
    v.set_display("errors", 1)
    win.canvas.set_slice(52)
    win.jump_to_error_slice(1)  # E: the slice where grey matter disagrees most
    win.reset_zoom()
    v.wait_idle()
    win.grab().save(str(path), "PNG")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the README screenshots from the bundled demo (offscreen, no display needed).

    QT_QPA_PLATFORM=offscreen python scripts/make_screenshots.py [--out screenshots]

Writes main.png, class_toggles.png, outline.png, heatmap.png, export_dialog.png,
three_view.png, model.png (the model dialog over the window after running the bundled
model) and errors.png (the model's grey matter against the reference tissue probabilities:
"Errors vs reference" on the slice with the most errors); the last two need TensorFlow.
many_classes.png shows a 114-class atlas-like label map made from the demo (each tissue
class split into 38 regions, long names): the legend lists the classes of each pane's
slice, the class panel is searchable and sorted by volume. report_three_view.png and
report_lightbox.png are File > Save report picture's three views and lightbox.
case_table.png, slice_table.png and side_by_side.png show a test set built from the demo
(four cases, two predictions each; see :func:`demo_test_set`).
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

    # 6b. Report pictures (File > Save report picture): three views and a lightbox.
    from segviewer.io.render import write_picture

    for kind, name in (("three", "report_three_view.png"), ("lightbox", "report_lightbox.png")):
        if wanted(name):
            pic = win.controller.report_picture(kind, view="axial", every=8, width=1400)
            write_picture(pic, out / name, dpi=150, force=True)
            print(f"wrote {out / name}")

    # 7. The model dialog over the window, after running the bundled model on the demo T1.
    if wanted("model.png"):
        model_shot(v, out / "model.png")

    # 8. Errors vs reference: the bundled model's prediction against the tissue probabilities.
    if wanted("errors.png"):
        errors_shot(v, prob, out / "errors.png")

    # 9. A 114-class label map: legend per pane, class panel sorted by volume.
    if wanted("many_classes.png"):
        many_class_shot(v, out / "many_classes.png")
    v.close()

    # 9-11. A test set: case table, slice table, two predictions side by side.
    if any(wanted(n) for n in TESTSET_SHOTS):
        testset_shots(out, wanted)
    settings_dir.cleanup()
    return 0


def many_class_case(labels: Any, n_classes: int = 114) -> tuple[Any, Any]:
    """A label prediction with ``n_classes`` classes (long names) made from the demo tissue
    labels by splitting each tissue class into regions of the volume, as an atlas looks."""
    import numpy as np

    from segviewer.core.classes import ClassTable, default_color
    from segviewer.core.layout import detect_layout
    from segviewer.core.types import Prediction, PredictionKind

    per = -(-(n_classes - 1) // 3)
    half = -(-per // 2)
    i0 = np.arange(labels.shape[0])[:, None, None] * 2 // labels.shape[0]
    i1 = np.arange(labels.shape[1])[None, :, None] * half // labels.shape[1]
    region = (i0 * half + i1) % per
    t = labels.astype(np.int64)
    out = np.where((t > 0) & (t < 4), 1 + ((t - 1) * per + region) % (n_classes - 1), 0)
    tissues = ("cortical grey matter", "cerebral white matter", "cerebrospinal fluid")
    entries = [(0, "background", (0, 0, 0))] + [
        (
            k,
            f"{('Left', 'Right')[k % 2]} {tissues[(k - 1) // per % 3]} region {k}",
            default_color(k),
        )
        for k in range(1, n_classes)
    ]
    table, _ = ClassTable.from_entries(entries)
    layout = detect_layout(out.shape, labels.shape, has_class_axis=False)
    pred = Prediction(
        out.astype(np.uint8), PredictionKind.LABELS, layout, n_classes, source="114 classes"
    )
    return pred, table


def many_class_shot(v: Any, path: Path) -> None:
    """The window on a 114-class label map, three views, class panel sorted by volume."""
    win = v.window
    # the labels alone, whatever the pictures before left on (errors.png: a reference)
    v.set_reference(None)
    v.set_display("labels")
    pred, table = many_class_case(win.label_result.labels)
    win.set_prediction(pred, table=table)
    v.wait_idle()
    v.set_view("three")
    win.state.set_cursor((40, 60, 52))
    win.class_panel.set_sort("volume")
    win.reset_zoom()
    v.wait_idle()
    win.grab().save(str(path), "PNG")
    print(f"wrote {path}")


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


TESTSET_SHOTS = ("case_table.png", "slice_table.png", "side_by_side.png")


def demo_test_set(folder: Path) -> Path:
    """Four cases of the demo T1 for the test-set pictures (written to ``folder``).

    Prediction A is the demo's tissue probabilities (so the doubt columns exist), the
    reference is their arg-max with a different, realistic-looking damage per case (white
    matter relabelled grey on a slab, a shifted boundary), prediction B is the reference with
    another damage (a few slices of white matter missed). So A and B each win some cases.
    """
    import csv

    import nibabel as nib
    import numpy as np

    from segviewer.ui.app import demo_paths

    t1, prob, _classes = demo_paths()
    img = nib.load(t1)
    ref0 = np.argmax(np.asarray(nib.load(prob).dataobj), axis=-1).astype(np.uint8)
    rows = []
    for i in range(4):
        cid = f"sub-{i + 1:02d}"
        ref = ref0.copy()
        slab = slice(36 + 3 * i, 40 + 6 * i)
        part = ref[: ref.shape[0] // 2, :, slab]
        part[part == 2] = 1  # on one side the reference says grey where A says white
        ref = np.roll(ref, i % 2, axis=0)
        b = ref.copy()
        n_lost = (8, 16, 4, 30)[i]  # B misses more on some cases than on others
        lost = slice(38, 38 + n_lost)
        b[:, :, lost][b[:, :, lost] == 2] = 0  # B misses white matter on some slices
        nib.save(nib.Nifti1Image(ref, img.affine), folder / f"{cid}_ref.nii.gz")  # type: ignore[attr-defined]
        nib.save(nib.Nifti1Image(b, img.affine), folder / f"{cid}_b.nii.gz")  # type: ignore[attr-defined]
        rows.append(
            {
                "id": cid,
                "image": str(t1),
                "prediction": str(prob),
                "reference": f"{cid}_ref.nii.gz",
                "prediction_b": f"{cid}_b.nii.gz",
                "classes": str(_classes),
            }
        )
    path = folder / "cases.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def testset_shots(out: Path, wanted: Any) -> None:
    """The window reviewing :func:`demo_test_set`."""
    import time

    from PySide6.QtCore import QEventLoop, Qt
    from PySide6.QtWidgets import QApplication

    from segviewer.ui.main_window import MainWindow

    tmp = tempfile.TemporaryDirectory()
    src = demo_test_set(Path(tmp.name))
    win = MainWindow()
    win.resize(1600, 1000)
    win.show()
    f = win.testset

    def settle(timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            if win.is_idle():
                QApplication.processEvents()
                if win.is_idle():
                    return

    f.open_test_set(src)
    settle()
    # measure every case (Ctrl+N walks the table), then sort by B - A Dice of white matter
    for _ in range(3):
        f.step(1)
        settle()
    table = f.panel.case_table
    table.class_combo.setCurrentText("white matter")
    table.class_combo.activated.emit(table.class_combo.currentIndex())
    f.session.set_note("sub-02", verdict="reject", comment="white matter relabelled")
    f.session.set_note("sub-01", verdict="accept")
    settle()
    table.sort_by("dice_diff")  # where B got worse first
    first = table.case_ids()[0]
    f.driver.open_case(first)
    settle()
    f.compare_dock.hide()
    win.resizeDocks([f.dock], [640], Qt.Orientation.Horizontal)
    f.panel.splitter.setSizes([560, 340])
    win.state.set_display("errors", 2)
    settle()
    if wanted("case_table.png"):
        win.grab().save(str(out / "case_table.png"), "PNG")
        print(f"wrote {out / 'case_table.png'}")
    st = f.panel.slice_table
    st.class_combo.setCurrentIndex(2)
    st.class_combo.activated.emit(2)
    # "Dice below 0.8" where it matters: at least 100 wrong voxels; the lowest Dice first
    st.set_filter("dice < 0.8 and fp + fn > 100")
    st.sort_by("dice")
    if st.slices():
        f.driver.go_to_slice(st.slices()[0])
        st.select_slice(st.slices()[0])
    f.panel.splitter.setSizes([250, 650])
    settle()
    if wanted("slice_table.png"):
        win.grab().save(str(out / "slice_table.png"), "PNG")
        print(f"wrote {out / 'slice_table.png'}")
    win.state.set_display("labels")
    # the slice where both "only A right" and "only B right" are widest
    import numpy as np

    from segviewer.core import review

    res = f.session.last_pair
    if res is not None and win.state.label_result is not None:
        codes = review.disagreement_map(
            win.state.label_result.labels, res.labels_b, win.state.reference, 2, n_classes=3
        )
        axis = f.driver.slice_axis()
        other = tuple(a for a in range(3) if a != axis)
        both = np.minimum(
            (codes == review.DIS_ONLY_A).sum(axis=other),
            (codes == review.DIS_ONLY_B).sum(axis=other),
        )
        f.driver.go_to_slice(int(np.argmax(both)))
    f.dock.hide()
    f.compare_dock.show()
    f.compare_view.set_disagreement(True, 2)
    settle()
    # a taller window, most of it for the two panes (the class panel stays beside them)
    win.resize(1600, 1250)
    settle()
    win.resizeDocks([f.compare_dock], [820], Qt.Orientation.Vertical)
    settle()
    f.compare_view.reset_zoom()
    settle()
    if wanted("side_by_side.png"):
        win.grab().save(str(out / "side_by_side.png"), "PNG")
        print(f"wrote {out / 'side_by_side.png'}")
    win.close()
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

"""The test-set review widgets on their own: case table, slice table, two-prediction view.

Driven as a user would (header clicks, typing a filter and Enter, clicks and double-clicks
on rows, the wheel, clicks on the image) on the demo MRI; checks what the widgets show
(row order, counts, messages, pixels) and the signals they send.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from segviewer.core import metrics, orientation, review
from segviewer.core.progress import run_to_end
from segviewer.core.types import Volume
from segviewer.io.classtables import load_class_table


def _click_header(qtbot: Any, table: Any, column: str) -> None:
    header = table.view.horizontalHeader()
    col = table.model.columns.index(column)
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def _row_point(table: Any, row: int) -> QPoint:
    return table.view.visualRect(table.model.index(row, 0)).center()


CASES = [
    {"case": "s1", "class": "grey", "model": "a", "dice": 0.91, "hd95_mm": 2.0},
    {"case": "s1", "class": "grey", "model": "b", "dice": 0.70, "hd95_mm": 6.5},
    {"case": "s2", "class": "grey", "model": "a", "dice": 0.55, "hd95_mm": math.nan},
    {"case": "s2", "class": "grey", "model": "b", "dice": 0.80, "hd95_mm": 3.0},
    {"case": "s3", "class": "grey", "model": "a", "dice": 0.85, "hd95_mm": 4.0},
    {"case": "s3", "class": "grey", "model": "b", "dice": 0.84, "hd95_mm": 4.1},
    {"case": "s1", "class": "white", "model": "a", "dice": 0.95, "hd95_mm": 1.0},
]


@pytest.fixture
def case_table(qtbot: Any) -> Any:
    from segviewer.ui.case_table import CaseTable

    t = CaseTable()
    qtbot.addWidget(t)
    t.resize(700, 400)
    t.set_classes(["grey", "white"], "grey")
    rows = review.pivot_cases(CASES, "grey")
    for r in rows:
        r["verdict"] = {"s2": "reject"}.get(str(r["case"]), "")
    t.set_rows(rows)
    t.show()
    qtbot.waitExposed(t)
    return t


def test_case_table_sorts_by_header_clicks_missing_last(qtbot: Any, case_table: Any) -> None:
    t = case_table
    assert t.model.columns[:4] == ["case", "dice", "dice_b", "dice_diff"]
    assert "dice_diff" in t.model.columns
    _click_header(qtbot, t, "dice_diff")
    first = t.case_ids()
    _click_header(qtbot, t, "dice_diff")
    second = t.case_ids()
    # one of the two clicks sorts ascending: where B got worse first
    assert {tuple(first), tuple(second)} == {("s1", "s3", "s2"), ("s2", "s3", "s1")}
    _click_header(qtbot, t, "hd95_mm")
    up = t.case_ids()
    _click_header(qtbot, t, "hd95_mm")
    down = t.case_ids()
    assert up[-1] == down[-1] == "s2"  # its HD95 is missing: last both ways
    assert t.model.headerData(t.model.columns.index("dice_diff"), Qt.Orientation.Horizontal) == (
        "Dice B−A"
    )
    # the shown text: 3 decimals, missing as a dash, verdict coloured
    i = t.model.find("case", "s2")
    assert t.model.data(t.model.index(i, t.model.columns.index("hd95_mm"))) == "–"
    vcol = t.model.columns.index("verdict")
    bg = t.model.data(t.model.index(i, vcol), Qt.ItemDataRole.BackgroundRole)
    assert bg.name() == "#c62828"


def test_case_table_filter_typed_and_bad_filter(qtbot: Any, case_table: Any) -> None:
    t = case_table
    qtbot.keyClicks(t.filter_edit, "Dice below 0.9 and verdict = none")
    qtbot.keyClick(t.filter_edit, Qt.Key.Key_Return)
    assert t.case_ids() == ["s3"]
    assert t.count.text() == "1 of 3 cases"
    t.filter_edit.clear()
    qtbot.keyClicks(t.filter_edit, "dise < 0.9")
    qtbot.keyClick(t.filter_edit, Qt.Key.Key_Return)
    assert t.filter_error.startswith("no column 'dise' to filter on; the columns are:")
    assert t.message.isVisible()
    assert len(t.case_ids()) == 3  # the bad filter changed nothing (the box was cleared first)
    t.filter_edit.clear()
    assert not t.message.isVisible()


def test_case_table_double_click_and_neighbours(qtbot: Any, case_table: Any) -> None:
    t = case_table
    t.model.sort_by("dice")
    assert t.case_ids() == ["s2", "s3", "s1"]
    with qtbot.waitSignal(t.case_activated) as sig:
        # a real double-click is a press, a release, then the double-click event
        qtbot.mouseClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(t, 1))
        qtbot.mouseDClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(t, 1))
    assert sig.args == ["s3"]
    assert t.neighbour("s3", 1) == "s1"
    assert t.neighbour("s3", -1) == "s2"
    assert t.neighbour("s1", 1) is None
    assert t.neighbour(None, 1) == "s2"
    # new rows keep the current case selected
    t.select_case("s1")
    t.set_rows(review.pivot_cases(CASES, "grey"))
    assert t.current_case() == "s1"
    with qtbot.waitSignal(t.class_changed) as sig2:
        t.class_combo.setCurrentIndex(1)
        t.class_combo.activated.emit(1)
    assert sig2.args == ["white"]


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> dict[str, Any]:
    img = nib.load(demo_dir / "t1.nii.gz")
    vol = Volume(np.asarray(img.dataobj, np.float32), img.affine, source="t1")  # type: ignore[attr-defined]
    p = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, np.float32)  # type: ignore[attr-defined]
    ref = np.argmax(p, axis=-1).astype(np.uint8)
    a = np.roll(ref, 2, axis=0)  # model A: shifted two voxels along axis 0
    b = ref.copy()
    b[:, :, 50:] = np.where(b[:, :, 50:] == 2, 1, b[:, :, 50:])  # model B: upper white -> grey
    table, _ = load_class_table(demo_dir / "classes.json").fitted(3)
    return {"volume": vol, "probs": p, "ref": ref, "a": a, "b": b, "table": table}


def test_slice_table_presets_click_and_doubt(qtbot: Any, demo: dict[str, Any]) -> None:
    from segviewer.ui.slice_table import SliceTable

    t = SliceTable()
    qtbot.addWidget(t)
    t.resize(600, 500)
    t.show()
    qtbot.waitExposed(t)
    t.set_classes(list(demo["table"].names), 2)
    a = demo["a"].copy()
    a[:, :, 30][a[:, :, 30] == 2] = 0  # slice 30 (axis 2): white matter missed entirely
    case = metrics.case_metrics(a, demo["ref"], 3, (2.0, 2.0, 2.0), 2, slice_distances=False)
    t.set_slice_rows(review.slice_rows(case, 2))
    assert t.count.text() == f"{a.shape[2]} slices"
    preset = list(review.PRESET_FILTERS).index("In the reference, missing in the prediction") + 1
    t.preset_combo.setCurrentIndex(preset)
    t.preset_combo.activated.emit(preset)
    assert t.slices() == [30]
    with qtbot.waitSignal(t.slice_activated) as sig:
        qtbot.mouseClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(t, 0))
    assert sig.args == [30]
    # "Dice below 0.8", sorted by Dice: the lowest first, every shown one below 0.8
    t.preset_combo.setCurrentIndex(1)
    t.preset_combo.activated.emit(1)
    _click_header(qtbot, t, "dice")
    dices = [r["dice"] for r in t.model.rows]
    assert dices and all(d < 0.8 for d in dices) and dices == sorted(dices)

    # no reference: ranked by the model's doubt, most doubtful first
    p = demo["probs"].copy()
    p[:, :, 40] = 1.0 / 3.0
    from segviewer.core.layout import parse_layout
    from segviewer.core.types import Prediction, PredictionKind

    pred = Prediction(
        p, PredictionKind.PROBABILITIES, parse_layout("xyzc", p.shape, p.shape[:3]), 3
    )
    labels = np.argmax(p, axis=-1).astype(np.uint8)
    unc = metrics.uncertainty(pred, labels, 2)
    case = metrics.case_metrics(labels, None, 3, (2.0, 2.0, 2.0), 2, uncertainty=unc)
    no_ref = review.slice_rows(case, None, uncertainty=unc)
    t2 = SliceTable()
    qtbot.addWidget(t2)
    t2.set_slice_rows(no_ref)
    assert t2.slices()[0] == 40
    assert t2.model.sort_key == ("low_confidence_voxels", True)
    # presets that need a reference are greyed out
    item = t2.preset_combo.model().item(1)  # type: ignore[attr-defined]
    assert not item.isEnabled()


def _compare_view(qtbot: Any, demo: dict[str, Any], reference: bool = True) -> Any:
    from segviewer.ui.compare_view import CompareView

    v = CompareView()
    qtbot.addWidget(v)
    v.resize(1000, 620)
    v.set_appearance(demo["table"], [True, True, True], 0.5, (300.0, 600.0))
    v.set_data(
        demo["volume"],
        demo["a"],
        demo["b"],
        demo["ref"] if reference else None,
        names=("model A", "model B"),
    )
    v.show()
    qtbot.waitExposed(v)
    return v


def test_compare_view_disagreement_pixels(qtbot: Any, demo: dict[str, Any]) -> None:
    v = _compare_view(qtbot, demo)
    ax = orientation.display_axes(demo["volume"].affine, "axial")
    v.set_axes(ax)
    v.set_slice(60)
    v.set_appearance(demo["table"], [True, True, True], 0.2, (300.0, 600.0))
    plain = v.pane_image(0).copy()  # classes at the dimmed opacity, as under the overlay
    v.set_disagreement(True, None)
    codes = v.disagreement_slice()
    a, b, ref = (orientation.take_slice(x, ax, 60) for x in (demo["a"], demo["b"], demo["ref"]))
    # independent expectation of the codes
    assert np.array_equal(codes == review.DIS_AGREE, a == b)
    assert np.array_equal(codes == review.DIS_ONLY_A, (a != b) & (a == ref))
    assert np.array_equal(codes == review.DIS_ONLY_B, (a != b) & (b == ref))
    assert (codes == review.DIS_ONLY_A).any() and (codes == review.DIS_ONLY_B).any()
    img_a, img_b = v.pane_image(0), v.pane_image(1)
    from segviewer.ui.compare_view import DISAGREEMENT_OPACITY

    lut = review.disagreement_lut(DISAGREEMENT_OPACITY)
    for code in (review.DIS_ONLY_A, review.DIS_ONLY_B):
        r, c = np.argwhere(codes == code)[0]
        alpha = lut[code, 3] / 255.0
        expect = np.rint(plain[r, c, :3] * (1 - alpha) + lut[code, :3] * alpha)
        assert np.array_equal(img_a[r, c, :3], expect.astype(np.uint8))
        # the colour dominates the pixel in both panes
        rgb = np.array(review.DISAGREEMENT_COLORS[code], float)
        for img in (img_a, img_b):
            assert np.abs(img[r, c, :3].astype(float) - rgb).max() < 80
    # agreeing pixels are untouched
    same = codes == review.DIS_AGREE
    assert np.array_equal(img_a[same], plain[same])
    assert "only model A agrees" in v.legend.text() and v.legend.isVisible()
    # the screen shows it too: at the centre of an "only B" pixel, in both panes
    from segviewer.ui.canvas import qimage_to_array

    shot = qimage_to_array(v.graphics.grab().toImage())[..., :3].astype(int)
    r, c = np.argwhere(codes == review.DIS_ONLY_B)[
        len(np.argwhere(codes == review.DIS_ONLY_B)) // 2
    ]
    for pane in (0, 1):
        scene = v.boxes[pane].mapViewToScene(
            pg_point((c + 0.5) * ax.col_spacing, (r + 0.5) * ax.row_spacing)
        )
        p = v.graphics.mapFromScene(scene)
        ratio = shot.shape[1] / v.graphics.width()
        on_screen = shot[int(p.y() * ratio), int(p.x() * ratio)]
        assert np.abs(on_screen - v.pane_image(pane)[r, c, :3]).max() <= 3


def test_compare_view_without_reference_and_per_class(qtbot: Any, demo: dict[str, Any]) -> None:
    v = _compare_view(qtbot, demo, reference=False)
    before = v.pane_image(0).copy()
    qtbot.mouseClick(v.dis_check, Qt.MouseButton.LeftButton)  # the user ticks the box
    assert v.dis_check.isChecked() and not np.array_equal(before, v.pane_image(0))
    assert v.dis_class_combo.count() == 3  # all labels + the two foreground classes
    v.dis_class_combo.setCurrentIndex(2)
    v.dis_class_combo.activated.emit(2)
    codes = v.disagreement_slice()
    ax = orientation.display_axes(demo["volume"].affine, "axial")
    a, b = (orientation.take_slice(x, ax, v.slice) for x in (demo["a"], demo["b"]))
    assert set(np.unique(codes)) <= {review.DIS_AGREE, review.DIS_DIFFER}
    assert np.array_equal(codes == review.DIS_DIFFER, (a == 2) != (b == 2))
    assert "A and B differ" in v.legend.text()


def test_compare_view_links_slice_zoom_crosshair(qtbot: Any, demo: dict[str, Any]) -> None:
    v = _compare_view(qtbot, demo)
    start = v.slice
    with qtbot.waitSignal(v.slice_changed) as sig:
        v.step_slice(3)
    assert sig.args == [start + 3]
    # zoom the left pane: the right pane's range follows
    v.boxes[0].scaleBy((0.5, 0.5))
    r0, r1 = v.boxes[0].viewRange(), v.boxes[1].viewRange()
    assert np.allclose(r0, r1)
    # click in the right pane: the crosshair is at the same place in both
    box = v.boxes[1]
    (x0, x1), (y0, y1) = box.viewRange()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    target = box.mapViewToScene(pg_point(cx, cy))
    view_pos = v.graphics.mapFromScene(target)
    with qtbot.waitSignal(v.clicked) as clicked:
        qtbot.mouseClick(v.graphics.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
    ijk = clicked.args[0]
    assert ijk[2] == v.slice  # axial: slice axis is image axis 2 for this RAS image
    pos = v.crosshair_positions()
    assert pos[0] is not None and pos[0] == pos[1]
    assert abs(pos[0][0] - cx) <= 2.0 and abs(pos[0][1] - cy) <= 2.0
    # metrics of A, B vs the reference and A vs B
    pair = run_to_end(review.compare_pair(demo["a"], demo["b"], demo["ref"], 3))
    v.set_pair_comparison(pair)
    rows = v.metrics.model.rows
    assert [r["class"] for r in rows] == list(demo["table"].names[1:])
    assert pair.a_vs_reference is not None and pair.b_vs_reference is not None
    assert rows[1]["dice_diff"] == pytest.approx(
        pair.b_vs_reference.per_class[2].dice - pair.a_vs_reference.per_class[2].dice
    )
    assert v.titles[0].text().startswith("model A — mean Dice 0.")


def pg_point(x: float, y: float) -> Any:
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_note_panel_clicks_and_enter(qtbot: Any) -> None:
    from segviewer.io.notes import Note
    from segviewer.ui.note_panel import NotePanel

    p = NotePanel()
    qtbot.addWidget(p)
    p.show()
    qtbot.waitExposed(p)
    with qtbot.waitSignal(p.note_edited) as sig:
        qtbot.mouseClick(p.buttons["reject"], Qt.MouseButton.LeftButton)
    assert sig.args == ["case", "reject", ""]
    # another verdict replaces it; typing a comment and Enter sends both
    qtbot.mouseClick(p.buttons["unsure"], Qt.MouseButton.LeftButton)
    assert not p.buttons["reject"].isChecked() and p.verdict() == "unsure"
    p.set_scope("slice")
    qtbot.keyClicks(p.comment, "partial volume?")
    with qtbot.waitSignal(p.note_edited) as sig2:
        qtbot.keyClick(p.comment, Qt.Key.Key_Return)
    assert sig2.args == ["slice", "unsure", "partial volume?"]
    # clicking the checked verdict clears it
    with qtbot.waitSignal(p.note_edited) as sig3:
        qtbot.mouseClick(p.buttons["unsure"], Qt.MouseButton.LeftButton)
    assert sig3.args == ["slice", "", "partial volume?"]
    with qtbot.assertNotEmitted(p.note_edited):
        p.show_note(Note("c", verdict="accept", comment="ok", updated="2026-12-01T20:00:00Z"))
    assert p.verdict() == "accept" and p.comment.text() == "ok"
    assert p.saved.text() == "saved 20:00 UTC" and p.saved.toolTip() == "2026-12-01T20:00:00Z"

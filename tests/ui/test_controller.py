"""ViewerController without any widget: a mock view answers its questions (as ndv tests its
controller against ``MagicMock(spec=ArrayView)``). Real files: the bundled demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import numpy as np
import pytest
from ui_helpers import demo_prediction

from segviewer.core.classes import ClassTable
from segviewer.core.types import Prediction, PredictionKind, SegviewerError
from segviewer.io.classtables import load_class_table
from segviewer.ui.controller import Notice, OpenKind, OpenRequest, ViewerController, ViewerView
from segviewer.ui.settings import Settings
from segviewer.ui.state import Change

TIMEOUT = 30_000


@pytest.fixture
def controller(qtbot: Any) -> Iterator[ViewerController]:
    """A controller with a mock view, no widget anywhere; settings kept in memory."""
    view = MagicMock(spec=ViewerView)
    c = ViewerController(settings=Settings(persistent=False), view=view)
    c.notices: list[Notice] = []  # type: ignore[misc]
    c.notified.connect(c.notices.append)  # type: ignore[attr-defined]
    c.changes: list[Change] = []  # type: ignore[misc]
    c.state.changed.connect(c.changes.append)  # type: ignore[attr-defined]
    yield c
    c.shutdown()


def _idle(qtbot: Any, c: ViewerController) -> None:
    qtbot.waitUntil(c.is_idle, timeout=TIMEOUT)


def _errors(c: Any) -> list[str]:
    return [n.text for n in c.notices if n.is_error]


def test_the_queue_opens_image_prediction_classes_in_order(
    controller: Any, qtbot: Any, demo_dir: Path
) -> None:
    c = controller
    order: list[str] = []
    c.image_loaded.connect(lambda _v: order.append("image"))
    c.prediction_loaded.connect(lambda _p: order.append("prediction"))
    c.open_files(demo_dir / "t1.nii.gz", demo_dir / "tissue_prob.nii.gz", demo_dir / "classes.json")
    # one request is running, the others wait in the typed queue
    assert [r.kind for r in c.queued()] == [OpenKind.PREDICTION, OpenKind.CLASSES]
    _idle(qtbot, c)
    qtbot.waitUntil(lambda: c.state.label_result is not None, timeout=TIMEOUT)
    st = c.state
    assert order == ["image", "prediction"]
    assert st.volume is not None and st.volume.shape == (98, 116, 94)
    assert st.prediction is not None and st.prediction.n_classes == 3
    assert (
        st.table is not None and st.table.names == load_class_table(demo_dir / "classes.json").names
    )
    assert st.classes_path is not None and st.classes_path.endswith("classes.json")
    # the labels were computed once, for this prediction, and the counts add up
    assert int(st.label_result.counts.sum()) == 98 * 116 * 94
    assert not _errors(c)


def test_a_newer_image_supersedes_a_slower_older_one(
    controller: Any, qtbot: Any, demo_dir: Path, nibabel_anatomical: Path
) -> None:
    c = controller
    c.open_image(demo_dir / "t1.nii.gz")
    c.open_image(nibabel_anatomical)  # started before the first finished
    _idle(qtbot, c)
    assert c.state.volume is not None
    assert c.state.image_path == str(nibabel_anatomical)
    assert c.changes.count(Change.DATA) == 1


def test_an_error_is_one_notice_with_the_exception_and_stops_the_queue(
    controller: Any, qtbot: Any, tmp_path: Path, demo_dir: Path
) -> None:
    c = controller
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    c.open_files(bad, demo_dir / "tissue_prob.nii.gz")
    _idle(qtbot, c)
    errors = [n for n in c.notices if n.is_error]
    assert len(errors) == 1 and "broken.nii.gz" in errors[0].text
    assert isinstance(errors[0].exception, SegviewerError)
    assert c.queued() == [] and c.state.volume is None and c.state.prediction is None
    # no image: a prediction is refused with a message saying what to do
    assert c.open_prediction(demo_dir / "tissue_prob.nii.gz") is None
    assert "Open an image first" in _errors(c)[-1]


def test_class_table_fitted_once_with_a_warning(
    controller: Any, qtbot: Any, demo_dir: Path
) -> None:
    c = controller
    c.set_image(_demo_volume(demo_dir))
    two = ClassTable.default(2).with_name(1, "lesion")
    c.set_class_table(two)
    c.changes.clear()
    warnings = c.set_prediction(demo_prediction(demo_dir, (98, 116, 94)))
    assert warnings and "2 classes" in warnings[0]
    st = c.state
    assert st.table is not None and len(st.table) == 3 and st.table[1].name == "lesion"
    assert c.changes.count(Change.DATA) == 1 and Change.LUT not in c.changes
    assert any("2 classes" in n.text for n in c.notices if not n.is_error)


def test_a_model_result_is_fitted_once_and_labelled_once(
    controller: Any, qtbot: Any, demo_dir: Path
) -> None:
    """The model session hands prediction, card table and threshold over in one call: one
    state change, one labels job, no repaint of the old prediction with the new table."""
    c = controller
    c.set_image(_demo_volume(demo_dir))
    c.set_prediction(demo_prediction(demo_dir, (98, 116, 94)))
    _idle(qtbot, c)
    started: list[str] = []
    c.runner.progress.connect(
        lambda job: started.append(job.channel) if job.progress is None else None
    )
    c.changes.clear()
    old = c.state.prediction
    probs = np.asarray(old.channels_first()[1:2])  # one sigmoid channel: "white matter"
    sigmoid = Prediction(
        np.ascontiguousarray(probs),
        PredictionKind.SIGMOID,
        _channels_first_layout(probs.shape),
        2,
        source="model.keras",
        values_are_probabilities=True,
    )
    card_table = ClassTable.from_names(("background", "lesion"), ("#000000", "#ff0000"))
    c.show_model_prediction(
        sigmoid, {"model": {"path": "model.keras"}}, "model.keras", table=card_table, threshold=0.7
    )
    _idle(qtbot, c)
    st = c.state
    assert c.changes[0] is Change.DATA and Change.LUT not in c.changes
    assert Change.LABELS not in c.changes  # the threshold came with the prediction
    assert started.count("labels") == 1
    assert st.mask_settings.threshold == pytest.approx(0.7)
    assert (
        st.table is not None and st.table[1].name == "lesion" and st.table[1].color == (255, 0, 0)
    )
    assert st.label_result is not None and st.prediction is sigmoid
    want = int(np.count_nonzero(probs[0] >= 0.7))
    assert int(st.label_result.counts[1]) == want


def test_the_view_is_asked_to_resample_only_when_interactive(
    controller: Any, qtbot: Any, demo_dir: Path, tmp_path: Path
) -> None:
    import nibabel as nib

    c = controller
    c.set_image(_demo_volume(demo_dir))
    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").get_fdata(), np.float32)
    coarse = tmp_path / "coarse.npy"
    np.save(coarse, np.ascontiguousarray(probs[::2, ::2, ::2]))
    c.interactive = False
    c.open_prediction(coarse)
    _idle(qtbot, c)
    c.view.ask_resample.assert_not_called()
    assert c.state.prediction is None and "(49, 58, 47" in _errors(c)[-1]
    c.interactive = True
    c.view.ask_resample.return_value = True
    c.open_prediction(coarse)
    _idle(qtbot, c)
    c.view.ask_resample.assert_called_once()
    assert c.state.prediction is not None and c.state.prediction.spatial_shape == (98, 116, 94)


def test_the_view_picks_a_dicom_series(
    controller: Any, qtbot: Any, mr_small: Path, tmp_path: Path
) -> None:
    import pydicom

    folder = tmp_path / "study"
    folder.mkdir()
    for uid in ("1.2.3.1", "1.2.3.2"):
        ds = pydicom.dcmread(mr_small)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = uid + ".1"
        ds.save_as(folder / f"{uid}.dcm", enforce_file_format=True)
    c = controller
    c.view.choose_series.return_value = "1.2.3.2"
    c.open_image(folder)
    _idle(qtbot, c)
    assert c.view.choose_series.call_count == 1
    assert c.state.volume is not None and c.state.volume.metadata["series_uid"] == "1.2.3.2"


def test_error_slices_walk_down_and_back_up(controller: Any) -> None:
    c = controller
    c.state.reference = np.zeros((2, 2, 2), np.uint8)  # only "a reference exists" matters here
    counts = np.array([0, 5, 9, 5, 0, 1])
    key = ("axial", 1)
    assert c.error_slice(counts, 0, 1, key) == 2  # first press: the worst slice
    assert c.error_slice(counts, 2, 1, key) == 1  # ties: lower index first
    assert c.error_slice(counts, 1, 1, key) == 3
    assert c.error_slice(counts, 3, -1, key) == 1
    assert c.error_slice(counts, 4, 1, key) == 2  # scrolled away: start again at the worst
    assert c.error_slice(None, 2, 1, key) is None  # comparison still running: a note
    assert "being computed" in c.notices[-1].text and not c.notices[-1].is_error


def test_requests_are_typed_and_dispatched_by_kind(controller: Any, demo_dir: Path) -> None:
    c = controller
    seen: list[OpenRequest] = []
    c.register_opener(OpenKind.IMAGE, lambda r: seen.append(r))
    c.register_opener(OpenKind.CLASSES, lambda r: (seen.append(r), c.advance()))
    c.submit(
        [OpenRequest(OpenKind.CLASSES, "a.json"), OpenRequest(OpenKind.IMAGE, "b.nii", frame=2)]
    )
    assert [r.kind for r in seen] == [OpenKind.CLASSES, OpenKind.IMAGE]
    assert seen[1].frame == 2 and c.queued() == []


def _demo_volume(demo_dir: Path) -> Any:
    from segviewer.io.images import load_image

    return load_image(demo_dir / "t1.nii.gz")


def _channels_first_layout(shape: tuple[int, ...]) -> Any:
    from segviewer.core.layout import parse_layout

    return parse_layout("CDHW", shape, shape[1:])

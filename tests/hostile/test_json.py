"""Hostile JSON (class tables, model cards, model configs) gives one clear error, also on a
worker thread, where the window reads them (issue 13, item 3)."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest

from segviewer.core.types import SegviewerError
from segviewer.inference.card import load_card
from segviewer.io.classtables import read_class_table
from segviewer.io.common import json_depth, load_json

NESTED = "[" * 100_000 + "]" * 100_000


def test_json_depth_skips_strings() -> None:
    assert json_depth('{"a": "[[[[", "b": [[1], {"c": "]]"}]}') == 3
    assert json_depth("") == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NESTED, "nested more than"),
        ('{"index": ' + "9" * 5000 + "}", "cannot accept"),
        ("[NaN]", "cannot accept"),
        ("{", "not valid JSON"),
    ],
)
def test_load_json_refuses_in_one_line(text: str, message: str) -> None:
    with pytest.raises(SegviewerError, match=message) as info:
        load_json(text, "x.json", finite=True)
    assert "\n" not in str(info.value)


def test_nested_class_table_and_model_card_on_a_worker_thread(tmp_path: Path) -> None:
    (tmp_path / "classes.json").write_text(NESTED)
    (tmp_path / "card.json").write_text(NESTED)
    errors: list[BaseException] = []

    def work() -> None:
        for call in (
            lambda: read_class_table(tmp_path / "classes.json"),
            lambda: load_card(tmp_path / "card.json"),
        ):
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - collected and checked below
                errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "reading hostile JSON hung"
    assert len(errors) == 2 and all(isinstance(e, SegviewerError) for e in errors), errors
    assert all("nested more than" in str(e) for e in errors)


def test_nested_keras_config_refused(tmp_path: Path) -> None:
    from segviewer.inference.model import _read_config

    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", NESTED)
    with pytest.raises(SegviewerError, match="nested more than"):
        _read_config(tmp_path / "m.keras", "keras")

"""Model cards: reading, writing, validation, lookup next to the model, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segviewer.core.types import SegviewerError
from segviewer.inference.card import (
    ModelCard,
    card_for_model,
    card_path_for,
    find_card,
    load_card,
    save_card,
)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    card = ModelCard(
        class_names=("background", "tumour"),
        class_colors=("#000000", "#ff0000"),
        output_kind="sigmoid",
        outputs_are_probabilities=True,
        normalization="percentile",
        normalization_scope="slice",
        percentile_low=1.0,
        percentile_high=99.0,
        nonzero=True,
        slice_axis=0,
        transpose=True,
        flip_rows=True,
        size_policy="resize",
        pad_mode="constant",
        pad_value=-1.5,
        downsampling=16,
        batch_size=4,
        threshold=0.3,
        description="test",
    )
    path = tmp_path / "unet.segviewer.json"
    save_card(card, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and data["class_names"] == ["background", "tumour"]
    assert load_card(path) == card
    assert [p.name for p in tmp_path.iterdir()] == ["unet.segviewer.json"]  # no temp left


def test_demo_card_matches_classes_json(demo_dir: Path) -> None:
    card = load_card(demo_dir / "model.segviewer.json")
    classes = json.loads((demo_dir / "classes.json").read_text(encoding="utf-8"))["classes"]
    assert card.class_names == tuple(c["name"] for c in classes)
    assert card.class_colors == tuple(c["color"] for c in classes)
    assert (card.normalization, card.slice_axis, card.output_kind) == (
        "zscore",
        2,
        "probabilities",
    )


def test_classes_list_form_is_accepted() -> None:
    card = ModelCard.from_dict(
        {
            "classes": [
                {"index": 1, "name": "fg", "color": "#00ff00"},
                {"index": 0, "name": "bg", "color": "#000000"},
            ]
        }
    )
    assert card.class_names == ("bg", "fg") and card.class_colors == ("#000000", "#00ff00")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"normalisation": "zscore"}, ["unknown field", "normalisation", "normalization"]),
        ({"normalization": "robust"}, ["normalization", "zscore", "'robust'"]),
        ({"slice_axis": 3}, ["slice_axis", "3"]),
        ({"slice_axis": "2"}, ["slice_axis", "integer"]),
        ({"percentile_low": 99, "percentile_high": 1}, ["percentile_low", "99"]),
        ({"class_names": ["a", "b"], "class_colors": ["#000000"]}, ["2 class names", "1 colours"]),
        ({"class_colors": ["red"]}, ["#rrggbb", "red"]),
        ({"batch_size": 0}, ["batch_size", "positive"]),
        ({"format_version": 7}, ["format_version", "7"]),
        ({"flip_rows": "yes"}, ["flip_rows", "true or false"]),
    ],
)
def test_bad_cards_are_refused_with_a_clear_message(
    data: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(SegviewerError) as e:
        ModelCard.from_dict(data, source="model card x.json")
    for w in words:
        assert w in str(e.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "m.segviewer.json"
    p.write_text('{\n  "normalization": "zscore",\n}', encoding="utf-8")
    with pytest.raises(SegviewerError, match=r"not valid JSON \(line 3"):
        load_card(p)


def test_card_is_found_next_to_model_and_inside_savedmodel(tmp_path: Path) -> None:
    model = tmp_path / "unet.keras"
    model.write_bytes(b"")
    assert card_path_for(model) == tmp_path / "unet.segviewer.json"
    assert card_for_model(model) is None
    save_card(ModelCard(normalization="minmax"), tmp_path / "unet.segviewer.json")
    found = card_for_model(model)
    assert found is not None and found.normalization == "minmax"

    sm = tmp_path / "exported"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"")
    assert card_for_model(sm) is None
    save_card(ModelCard(slice_axis=1), sm / "segviewer.json")
    inside = card_for_model(sm / "saved_model.pb")
    assert inside is not None and inside.slice_axis == 1
    assert find_card(sm) == sm / "segviewer.json"
    save_card(ModelCard(slice_axis=0), tmp_path / "exported.segviewer.json")
    beside = card_for_model(sm)
    assert beside is not None and beside.slice_axis == 0  # the sibling card wins


def test_overrides_replace_fields_and_are_validated() -> None:
    card = ModelCard(normalization="zscore", batch_size=8)
    new = card.with_overrides({"batch_size": 2, "slice_axis": 0, "threshold": None})
    assert (new.batch_size, new.slice_axis, new.normalization, new.threshold) == (
        2,
        0,
        "zscore",
        0.5,
    )
    assert card.with_overrides(None) is card
    with pytest.raises(SegviewerError, match="override: unknown field"):
        card.with_overrides({"batchsize": 2})
    with pytest.raises(SegviewerError, match="size_policy"):
        card.with_overrides({"size_policy": "crop"})


def test_parse_overrides_reads_json_values_and_refuses_bad_items() -> None:
    from segviewer.inference import parse_overrides

    got = parse_overrides(
        ["slice_axis=0", "normalization=zscore", "nonzero=true", "batch_size=null"]
    )
    assert got == {"slice_axis": 0, "normalization": "zscore", "nonzero": True, "batch_size": None}
    with pytest.raises(SegviewerError, match="KEY=VALUE"):
        parse_overrides(["slice_axis"])

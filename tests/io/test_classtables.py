"""Class tables from segviewer JSON/CSV, ITK-SNAP, FreeSurferColorLUT and 3D Slicer files."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from segviewer.core.classes import ClassTable, default_color
from segviewer.core.types import SegviewerError
from segviewer.io.classtables import load_class_table, read_class_table, save_class_table

# Verbatim excerpts of the published formats.
FREESURFER = """\
#$Id: FreeSurferColorLUT.txt,v 1.105 2015/07/29 18:24:02 greve Exp $

#No. Label Name:                            R   G   B   A

0   Unknown                                 0   0   0   0
1   Left-Cerebral-Exterior                  70  130 180 0
2   Left-Cerebral-White-Matter              245 245 245 0
3   Left-Cerebral-Cortex                    205 62  78  0
4   Left-Lateral-Ventricle                  120 18  134 0
41  Right-Cerebral-White-Matter             0   225 0   0
"""

ITKSNAP = """\
################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Label 1, tumour core"
    2     0  255    0        1  1  1    "Oedema"
    3     0    0  255      0.5  1  0    "Enhancing tumour"
"""

SLICER = """\
# Color table file /usr/share/Slicer/ColorFiles/GenericColors.txt
# 4 values
0 Background 0 0 0 0
1 tissue 128 174 128 255
2 bone 241 214 145 255
3 skin 177 122 101 255
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_demo_json(demo_dir: Path) -> None:
    t = load_class_table(demo_dir / "classes.json")
    assert t.names == ("background", "grey matter", "white matter")
    assert t[1].color == (0xE6, 0xA2, 0x3C) and t[2].color == (0x4A, 0xA3, 0xDF)


def test_freesurfer_lut_sparse_indices_are_filled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = _write(tmp_path, "FreeSurferColorLUT.txt", FREESURFER)
    t, warn = read_class_table(p)
    assert len(t) == 42
    assert t.names[:5] == (
        "Unknown",
        "Left-Cerebral-Exterior",
        "Left-Cerebral-White-Matter",
        "Left-Cerebral-Cortex",
        "Left-Lateral-Ventricle",
    )
    assert t[41].name == "Right-Cerebral-White-Matter" and t[41].color == (0, 225, 0)
    assert t[5].name == "class 5" and t[5].color == default_color(5)
    assert len(warn) == 1 and "indices 5-40 are not listed (36 of 42)" in warn[0]
    with caplog.at_level(logging.WARNING, logger="segviewer.io.classtables"):
        load_class_table(p)
    assert "5-40" in caplog.text


def test_itksnap_label_description(tmp_path: Path) -> None:
    t = load_class_table(_write(tmp_path, "labels.txt", ITKSNAP))
    assert t.names == ("Clear Label", "Label 1, tumour core", "Oedema", "Enhancing tumour")
    assert t[1].color == (255, 0, 0) and t[3].color == (0, 0, 255)


def test_slicer_ctbl(tmp_path: Path) -> None:
    t = load_class_table(_write(tmp_path, "generic.ctbl", SLICER))
    assert t.names == ("Background", "tissue", "bone", "skin")
    assert t[2].color == (241, 214, 145)


def test_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    t = load_class_table(_write(tmp_path, "labels.json", ITKSNAP))  # misnamed
    assert t.names[2] == "Oedema"
    t = load_class_table(_write(tmp_path, "lut.csv", SLICER))
    assert t.names[3] == "skin"


@pytest.mark.parametrize(
    "text",
    [
        "index,name,color\n0,background,#000000\n1,grey matter,#E6A23C\n2,white matter,#4aa3df\n",
        "index;name;r;g;b\n0;background;0;0;0\n1;grey matter;230;162;60\n2;white matter;74;163;223\n",
        "0\tbackground\t0\t0\t0\n1\tgrey matter\t230\t162\t60\n2\twhite matter\t74\t163\t223\n",
    ],
)
def test_csv_variants(tmp_path: Path, text: str) -> None:
    t = load_class_table(_write(tmp_path, "t.csv", text))
    assert t.names == ("background", "grey matter", "white matter")
    assert t[1].color == (230, 162, 60) and t[2].color == (74, 163, 223)


def test_json_rgb_lists_short_hex_and_missing_colour(tmp_path: Path) -> None:
    doc = [
        {"index": 0, "name": "background", "color": [0, 0, 0]},
        {"index": 1, "name": "lesion", "color": "#f00"},
        {"index": 2, "name": "vessel"},
    ]
    t = load_class_table(_write(tmp_path, "t.json", json.dumps(doc)))
    assert t[1].color == (255, 0, 0) and t[2].color == default_color(2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("# only a comment\n", "only comments"),
        (
            '{"classes": [{"index": 0, "name": "a"}, {"index": 0, "name": "b"}]}',
            "index 0 appears twice",
        ),
        (
            '{"classes": [{"index": 0, "name": "a"}, {"index": 1, "name": "A"}]}',
            "name 'A' is used by classes 0 and 1",
        ),
        ('{"classes": [{"index": 0, "name": "a", "color": "#zzzzzz"}]}', "is not '#rrggbb'"),
        ('{"classes": [{"index": 0, "name": "a", "color": [0, 0, 300]}]}', "outside 0..255"),
        ('{"classes": [{"index": "0", "name": "a"}]}', "must be a whole number"),
        ('{"classes": [}', "not valid JSON (line 1"),
        ('{"labels": []}', 'expected {"classes"'),
        ('{"classes": []}', "no classes found"),
        ("0,a,#000000\n1,b\n2,c,1,2\n", "got 4 fields"),
        ("0 Background 0 0 0 0\n1 tissue 128 x 128 255\n", "line 2: colour value 'x'"),
        ('    0 0 0 0 0 0 0 "Clear"\n    1 255 0 0 1 1 "Broken"\n', "8 fields"),
        ("hello world\n", "cannot tell which class-table format"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(SegviewerError, match=re.escape(message)):
        load_class_table(p)


def test_binary_and_missing_files(tmp_path: Path, demo_dir: Path) -> None:
    with pytest.raises(SegviewerError, match="not a class table|binary"):
        load_class_table(demo_dir / "t1.nii.gz")
    with pytest.raises(SegviewerError, match="no such file"):
        load_class_table(tmp_path / "missing.json")


@pytest.mark.parametrize("ext", [".json", ".csv", ".txt", ".ctbl", ".lut"])
def test_save_round_trip(tmp_path: Path, ext: str) -> None:
    t = ClassTable.default(5).with_name(1, "grey matter").with_name(2, 'Label, with "quotes"')
    t = t.with_color(3, (1, 2, 3))
    path = save_class_table(t, tmp_path / f"table{ext}")
    back = load_class_table(path)
    assert len(back) == 5
    assert back.colors.tolist() == t.colors.tolist()
    if ext in (".ctbl", ".lut"):
        assert back.names[1] == "grey_matter"
    elif ext == ".txt":
        assert back.names[2] == "Label, with 'quotes'"
    else:
        assert back.names == t.names
    with pytest.raises(SegviewerError, match="already exists"):
        save_class_table(t, path)
    save_class_table(t.with_color(1, (9, 9, 9)), path, force=True)
    assert load_class_table(path)[1].color == (9, 9, 9)


def test_save_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="unknown class-table extension '.xml'"):
        save_class_table(ClassTable.default(2), tmp_path / "t.xml")
    assert list(tmp_path.iterdir()) == []

"""A test set: the list of cases (image, prediction, reference, ...) that ``evaluate`` scores
and the window steps through.

Three ways to describe one (README, "Test sets"):

* **A CSV file** with a header row. Columns (any order; other columns are kept in
  :attr:`Case.extra` and otherwise ignored):

  ``image`` (required), ``prediction`` (required unless a model makes the predictions),
  ``reference``, ``classes`` (a class table for this case), ``id`` (default: the image's
  file name without its ending), ``prediction_b`` (a second model's prediction of the same
  image). Relative paths are relative to the CSV's folder. Empty cells mean "none"; blank
  lines and lines starting with ``#`` are skipped.
* **A folder** holding ``images/`` and ``predictions/`` (a pair), optionally
  ``references/`` (a triple) and ``predictions_b/``. Files (or DICOM series folders) are
  matched by their name without the file ending, so ``images/case01.nii.gz`` goes with
  ``predictions/case01.npy``; nnU-Net's channel suffix is understood
  (``images/case01_0000.nii.gz`` goes with ``predictions/case01.nii.gz``).
* **A glob** of case folders (``"study/*/"``), each holding one file whose name starts with
  ``image`` and one starting with ``prediction``, optionally ``reference``,
  ``prediction_b`` and ``classes``; the folder name is the case id.

Everything is checked when the list is read, before any case is opened: missing files,
duplicate ids, images without a prediction and predictions without an image raise one
:class:`~segviewer.core.types.SegviewerError` naming the case (CSV: the line) and saying
what to do.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from segviewer.core.types import SegviewerError
from segviewer.io.common import compound_suffix, natural_key

__all__ = ["Case", "CaseList", "load_cases", "CSV_COLUMNS", "FOLDER_NAMES", "case_key"]

#: The columns a test-set CSV understands.
CSV_COLUMNS = ("image", "prediction", "reference", "classes", "id", "prediction_b")
#: Sub-folder of a test-set folder -> the :class:`Case` field it fills.
FOLDER_NAMES: Mapping[str, str] = {
    "images": "image",
    "predictions": "prediction",
    "references": "reference",
    "predictions_b": "prediction_b",
}
# nnU-Net names input channels case_0000.nii.gz, case_0001.nii.gz ...; the prediction is case.
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Case:
    """One case of a test set.

    Attributes
    ----------
    id
        Unique name of the case (used in every output row and file name).
    image
        The MRI image (a file, or a folder holding a DICOM series or 2-D images).
    prediction
        The model's output for the image; ``None`` when a model will make it.
    reference
        The reference segmentation (ground truth), or ``None``.
    classes
        A class table for this case, or ``None`` (the test set's or the default one).
    prediction_b
        A second prediction of the same image (another model or version), or ``None``.
    extra
        Other CSV columns of the case's row, as text (e.g. a site or a scanner).
    """

    id: str
    image: Path
    prediction: Path | None = None
    reference: Path | None = None
    classes: Path | None = None
    prediction_b: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def paths(self) -> dict[str, Path]:
        """The case's files by role (``image``, ``prediction``...), only those it has."""
        out: dict[str, Path] = {"image": self.image}
        for name in ("prediction", "reference", "classes", "prediction_b"):
            p = getattr(self, name)
            if p is not None:
                out[name] = p
        return out


@dataclass(frozen=True)
class CaseList:
    """The cases of a test set, in the order they were listed.

    Attributes
    ----------
    source
        What was read: the CSV file, the folder, or the glob pattern (as given).
    kind
        ``"csv"``, ``"folder"`` or ``"glob"``.
    root
        The folder the test set lives in (the CSV's folder, the test-set folder, or the
        glob's fixed leading folder): where sidecar files such as review notes go.
    cases
        The cases.
    """

    source: str
    kind: str
    root: Path
    cases: tuple[Case, ...]

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> Case:
        return self.cases[index]

    @property
    def has_reference(self) -> bool:
        """Whether any case has a reference segmentation."""
        return any(c.reference is not None for c in self.cases)

    @property
    def has_prediction_b(self) -> bool:
        """Whether any case has a second prediction."""
        return any(c.prediction_b is not None for c in self.cases)

    def by_id(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise SegviewerError(f"the test set {self.source} has no case {case_id!r}")


def case_key(path: Path) -> str:
    """A file's name without its ending (``case01.nii.gz`` -> ``case01``); folders keep
    their whole name."""
    if path.is_dir():
        return path.name
    suffix = compound_suffix(path)
    name = path.name
    return name[: len(name) - len(suffix)] if suffix else name


def load_cases(source: str | os.PathLike[str], *, need_prediction: bool = True) -> CaseList:
    """Read a test set from a CSV file, a folder or a glob of case folders.

    Parameters
    ----------
    source
        A ``.csv`` file, a folder with ``images/`` and ``predictions/``, or a glob pattern
        of case folders (see the module docstring).
    need_prediction
        Whether every case must have a prediction (``False`` when a model will run on the
        images).

    Returns
    -------
    CaseList

    Raises
    ------
    SegviewerError
        Unknown source, unreadable CSV, missing columns or files, duplicate ids, unmatched
        images or predictions, an empty test set.
    """
    text = os.fspath(source)
    p = Path(text).expanduser()
    if p.is_file():
        if compound_suffix(p) not in (".csv", ".tsv"):
            raise SegviewerError(
                f"{p}: a test set is a .csv file, a folder with images/ and predictions/, or "
                "a glob of case folders; this is none of them"
            )
        cl = _from_csv(p, need_prediction)
    elif p.is_dir():
        cl = _from_folder(p, need_prediction)
    elif _GLOB_CHARS & set(text):
        cl = _from_glob(text, need_prediction)
    else:
        raise SegviewerError(f"{p}: no such file or folder; give a test-set CSV, folder or glob")
    if not cl.cases:
        raise SegviewerError(f"the test set {text} has no cases")
    return cl


# --------------------------------------------------------------------------------------------
# CSV


def _from_csv(path: Path, need_prediction: bool) -> CaseList:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegviewerError(f"{path}: cannot read the test-set CSV ({exc})") from None
    lines = [
        (n, line)
        for n, line in enumerate(raw.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise SegviewerError(f"{path}: the test-set CSV is empty; it needs a header row")
    delimiter = "\t" if compound_suffix(path) == ".tsv" or "\t" in lines[0][1] else ","
    rows = list(csv.reader([line for _, line in lines], delimiter=delimiter))
    header = [h.strip().lower() for h in rows[0]]
    where = f"{path}, line {lines[0][0]}"
    if "image" not in header:
        raise SegviewerError(
            f"{where}: the header has no 'image' column (it has {', '.join(header) or 'nothing'}); "
            f"a test-set CSV starts with a header such as: {','.join(CSV_COLUMNS[:3])}"
        )
    if need_prediction and "prediction" not in header:
        raise SegviewerError(
            f"{where}: the header has no 'prediction' column; add one, or give a model to "
            "make the predictions"
        )
    dup = sorted({h for h in header if header.count(h) > 1 and h})
    if dup:
        raise SegviewerError(f"{where}: the column {dup[0]!r} appears twice in the header")
    base = path.parent
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for (line_no, _), row in zip(lines[1:], rows[1:], strict=True):
        where = f"{path}, line {line_no}"
        if len(row) > len(header):
            raise SegviewerError(
                f"{where}: {len(row)} values but the header names {len(header)} columns; "
                "quote paths that contain the delimiter"
            )
        cells = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}
        files: dict[str, Path | None] = {}
        for col in ("image", "prediction", "reference", "classes", "prediction_b"):
            files[col] = _csv_path(cells.get(col, ""), base, where, col)
        image = files["image"]
        if image is None:
            raise SegviewerError(f"{where}: the 'image' cell is empty; every case needs an image")
        if need_prediction and files["prediction"] is None:
            raise SegviewerError(
                f"{where}: the 'prediction' cell is empty; give the prediction file of this "
                "case, or a model to make it"
            )
        case_id = cells.get("id", "") or case_key(image)
        _check_unique(case_id, seen, line_no, where)
        extra = {h: v for h, v in cells.items() if h not in CSV_COLUMNS and h}
        cases.append(
            Case(
                id=case_id,
                image=image,
                prediction=files["prediction"],
                reference=files["reference"],
                classes=files["classes"],
                prediction_b=files["prediction_b"],
                extra=extra,
            )
        )
    return CaseList(source=str(path), kind="csv", root=base, cases=tuple(cases))


def _csv_path(cell: str, base: Path, where: str, column: str) -> Path | None:
    if not cell:
        return None
    p = Path(cell).expanduser()
    if not p.is_absolute():
        p = base / p
    if not p.exists():
        raise SegviewerError(
            f"{where}: the {column} {cell!r} does not exist ({p}); paths are relative to the "
            "CSV's folder"
        )
    return p


def _check_unique(case_id: str, seen: dict[str, int], line_no: int, where: str) -> None:
    if case_id in seen:
        raise SegviewerError(
            f"{where}: the case id {case_id!r} is already used on line {seen[case_id]}; "
            "give every case a unique 'id' (or unique image file names)"
        )
    seen[case_id] = line_no


# --------------------------------------------------------------------------------------------
# folder


def _entries(folder: Path) -> dict[str, Path]:
    """Key -> path of the visible entries of a folder; two entries with one key is an error."""
    out: dict[str, Path] = {}
    for e in sorted(folder.iterdir(), key=lambda q: natural_key(q.name)):
        if e.name.startswith("."):
            continue
        k = case_key(e)
        if k in out:
            raise SegviewerError(
                f"{folder}: {out[k].name} and {e.name} have the same case name {k!r}; keep one "
                "file per case in each folder"
            )
        out[k] = e
    return out


def _match(key: str, others: Mapping[str, Path]) -> str | None:
    if key in others:
        return key
    stripped = _CHANNEL_SUFFIX.sub("", key)
    return stripped if stripped in others else None


def _from_folder(folder: Path, need_prediction: bool) -> CaseList:
    subs = {name: folder / name for name in FOLDER_NAMES if (folder / name).is_dir()}
    if "images" not in subs or (need_prediction and "predictions" not in subs):
        raise SegviewerError(
            f"{folder}: a test-set folder holds images/ and predictions/ (and optionally "
            "references/ and predictions_b/) with files matched by name; or give a CSV"
        )
    images = _entries(subs["images"])
    others = {name: _entries(d) for name, d in subs.items() if name != "images"}
    used: dict[str, set[str]] = {name: set() for name in others}
    cases: list[Case] = []
    missing: dict[str, list[str]] = {}
    for key, image in images.items():
        fields: dict[str, Path | None] = {}
        for name, entries in others.items():
            k = _match(key, entries)
            if k is None:
                fields[FOLDER_NAMES[name]] = None
                if name in ("predictions", "references"):
                    missing.setdefault(name, []).append(image.name)
                continue
            used[name].add(k)
            fields[FOLDER_NAMES[name]] = entries[k]
        # the prediction's name (nnU-Net: the image's without the _0000 channel suffix)
        pred = fields.get("prediction")
        case_id = case_key(pred) if pred is not None else _CHANNEL_SUFFIX.sub("", key)
        cases.append(Case(id=case_id, image=image, **fields))  # type: ignore[arg-type]
    for name, names in missing.items():
        if name == "predictions" and not need_prediction:
            continue
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise SegviewerError(
            f"{folder / name}: no file for the image(s) {shown}; every image needs a file of "
            "the same name (without the ending) there"
        )
    for name, entries in others.items():
        orphans = [entries[k].name for k in entries if k not in used[name]]
        if orphans:
            shown = ", ".join(orphans[:3]) + (
                f" and {len(orphans) - 3} more" if len(orphans) > 3 else ""
            )
            raise SegviewerError(
                f"{folder / name}: {shown} match no image in {subs['images']}; "
                "files are matched by name without the ending"
            )
    ids: dict[str, int] = {}
    for i, c in enumerate(cases, start=1):
        _check_unique(c.id, ids, i, str(folder))
    return CaseList(source=str(folder), kind="folder", root=folder, cases=tuple(cases))


# --------------------------------------------------------------------------------------------
# glob of case folders


def _glob_root(pattern: str) -> Path:
    parts: list[str] = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _role_of(name: str) -> str | None:
    low = name.lower()
    # longest role name first: "prediction_b..." is not a "prediction"
    for role in ("prediction_b", "prediction", "reference", "classes", "image"):
        if low.startswith(role):
            return role
    return None


def _from_glob(pattern: str, need_prediction: bool) -> CaseList:
    matches = sorted(
        (Path(m) for m in glob.glob(os.path.expanduser(pattern))), key=lambda q: natural_key(str(q))
    )
    folders = [m for m in matches if m.is_dir()]
    if not matches:
        raise SegviewerError(f"the pattern {pattern!r} matches nothing; check it (quote it)")
    if not folders:
        raise SegviewerError(
            f"the pattern {pattern!r} matches files, not case folders; a glob test set "
            "matches one folder per case (e.g. 'study/*/'), each holding image.* and "
            "prediction.*"
        )
    cases: list[Case] = []
    ids: dict[str, int] = {}
    for i, folder in enumerate(folders, start=1):
        found: dict[str, Path] = {}
        for e in sorted(folder.iterdir(), key=lambda q: natural_key(q.name)):
            role = _role_of(e.name)
            if role is None or e.name.startswith("."):
                continue
            if role in found:
                raise SegviewerError(
                    f"{folder}: both {found[role].name} and {e.name} look like the {role}; "
                    f"keep one file whose name starts with '{role}'"
                )
            found[role] = e
        if "image" not in found:
            raise SegviewerError(f"{folder}: no file whose name starts with 'image'")
        if need_prediction and "prediction" not in found:
            raise SegviewerError(
                f"{folder}: no file whose name starts with 'prediction'; add the case's "
                "prediction, or give a model to make it"
            )
        _check_unique(folder.name, ids, i, str(folder))
        cases.append(Case(id=folder.name, **found))  # type: ignore[arg-type]
    return CaseList(source=pattern, kind="glob", root=_glob_root(pattern), cases=tuple(cases))

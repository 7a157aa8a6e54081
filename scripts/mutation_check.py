"""Mutation check: would the tests notice if a promise of the README broke?

Each mutation below changes one line of segviewer the way a careless edit could (the argmax
tie rule, a display flip, the affine a NIfTI writer stores, the atomic rename, the pickle
refusal, slice ranges, the class-toggle path, the DICOM privacy filter, normalisation
options, layout rules, threshold comparisons, Dice denominators, ...). The script copies the
checkout to a temporary folder, applies one mutation at a time there, runs the tests that
guard it, and reports whether they failed (the mutation was *caught*) or passed (it
*survived*). A mutation whose line is no longer in the source is reported as *stale*: the
list must follow the code.

Not part of CI (it runs the relevant tests once per mutation: a few minutes). Run it before
closing an issue that touches a guarded area::

    python scripts/mutation_check.py              # all mutations
    python scripts/mutation_check.py --list       # what is checked
    python scripts/mutation_check.py --only tie-rule --only dice-denominator

Exit status 0 when every mutation was caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file in the repository
    old: str  # exact text, must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids)
    promise: str  # what breaks
    more: tuple[tuple[str, str, str], ...] = ()  # further (path, old, new) edits


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "tie-rule",
        "segviewer/core/masks.py",
        "np.greater(x, prev, out=gt)",
        "np.greater_equal(x, prev, out=gt)",
        ("tests/core/test_masks.py",),
        "ties in the argmax go to the lower class (as np.argmax)",
    ),
    Mutation(
        "kernel-tie-rule",
        "segviewer/core/kernels.py",
        '"        g = v > b",',
        '"        g = v >= b",',
        ("tests/core/test_kernels.py",),
        "the compiled labels kernel gives ties to the lower class and equals the numpy path",
    ),
    Mutation(
        "kernel-invalid",
        "segviewer/core/kernels.py",
        '"        bad |= (b == np.inf) | (b == -np.inf)",',
        '"        bad |= b == np.inf",',
        ("tests/core/test_kernels.py",),
        "in the compiled kernel a voxel whose scores are all -inf is invalid, never class 0",
    ),
    Mutation(
        "seg-frame-of-reference",
        "segviewer/io/dicomseg.py",
        "if seg_for and img_for and seg_for != img_for:",
        "if seg_for and img_for and seg_for == img_for and False:",
        ("tests/io/test_dicomseg.py::test_seg_of_another_frame_of_reference_is_refused",),
        "a DICOM SEG of another frame of reference than the image's is refused",
    ),
    Mutation(
        "seg-codes-from-table",
        "segviewer/io/dicomseg.py",
        "elif (known := table_codes.get(s.index)) is not None:",
        "elif (known := table_codes.get(s.index)) is not None and False:",
        ("tests/io/test_dicomseg.py::test_segment_codes_travel_with_the_class_table",),
        "a SEG exported from a SEG's class table keeps its segment codes",
    ),
    Mutation(
        "threshold-comparison",
        "segviewer/core/masks.py",
        "np.greater_equal(best, t, out=fg)",
        "np.greater(best, t, out=fg)",
        ("tests/core/test_masks.py",),
        "a sigmoid output equal to the threshold is foreground (p >= threshold)",
    ),
    Mutation(
        "display-flip",
        "segviewer/core/orientation.py",
        "flip_rows=bool(flip_rows),",
        "flip_rows=not bool(flip_rows),",
        ("tests/core/test_orientation.py",),
        "slices are shown in the radiological convention (superior/anterior at the top)",
    ),
    Mutation(
        "nifti-affine",
        "segviewer/io/writers.py",
        "img.set_sform(aff, code=sform_code)",
        "img.set_sform(np.eye(4), code=sform_code)",
        ("tests/io/test_writers.py",),
        "exported NIfTI files keep the image's affine (open aligned in other viewers)",
    ),
    Mutation(
        "atomic-rename",
        "segviewer/io/atomic.py",
        "tmp = temp_name_for(final)",
        "tmp = final",
        ("tests/io/test_atomic.py", "tests/io/test_interrupted_writers.py"),
        "files are written under a temporary name and renamed when complete",
    ),
    Mutation(
        "pickle-refusal",
        "segviewer/io/arrays.py",
        "    if dtype.hasobject:\n        raise SegviewerError(",
        "    if False:\n        raise SegviewerError(",
        ("tests/io/test_arrays.py", "tests/io/test_predictions.py"),
        "a pickled .npy / .npz is never unpickled",
        more=(
            (
                "segviewer/io/arrays.py",
                'arr = np.load(path, mmap_mode="r", allow_pickle=False)',
                'arr = np.load(path, mmap_mode="r", allow_pickle=True)',
            ),
            (
                "segviewer/io/arrays.py",
                "with np.load(path, allow_pickle=False) as npz:",
                "with np.load(path, allow_pickle=True) as npz:",
            ),
        ),
    ),
    Mutation(
        "slices-bounds",
        "segviewer/core/export_plan.py",
        "if not -n_slices <= i < n_slices:",
        "if not -n_slices <= i < n_slices - 1:",
        ("tests/cli/test_cli.py", "tests/io/test_export.py"),
        "--slices accepts the last slice",
    ),
    Mutation(
        "dialog-slice-range",
        "segviewer/ui/export_dialog.py",
        "slices = tuple(range(a, b + 1))",
        "slices = tuple(range(a, b))",
        ("tests/ui/test_window_promises.py", "tests/ui/test_app_api.py"),
        "the export dialog's range includes its last slice",
    ),
    Mutation(
        "dialog-range-maximum",
        "segviewer/ui/export_dialog.py",
        "s.setRange(0, n - 1)",
        "s.setRange(0, n - 2)",
        ("tests/ui/test_window_promises.py",),
        "the export dialog's range reaches the last slice",
    ),
    Mutation(
        "class-toggle-recomputes",
        "segviewer/ui/state.py",
        "            self.visible[index] = bool(visible)\n            self._lut_changed()",
        "            self.visible[index] = bool(visible)\n            self._lut_changed()\n"
        "            self.changed.emit(Change.LABELS)",
        ("tests/ui/test_window_promises.py",),
        "toggling a class never recomputes masks",
    ),
    Mutation(
        "phi-filter",
        "segviewer/io/dicom.py",
        '    "Modality": "modality",',
        '    "Modality": "modality",\n    "InstitutionName": "institution",\n'
        '    "StudyDate": "study_date",',
        ("tests/cli/test_privacy.py",),
        "no patient, study or institution field is written anywhere",
    ),
    Mutation(
        "nonzero-normalisation",
        "segviewer/inference/preprocess.py",
        "keep = (x != 0) if nonzero else None",
        "keep = None",
        ("tests/inference/test_preprocess.py",),
        "nonzero=True computes the statistics over non-zero voxels",
    ),
    Mutation(
        "dice-denominator",
        "segviewer/core/compare.py",
        "d = 2.0 * tp / (n_pred + n_ref)",
        "d = 2.0 * tp / (n_pred + n_ref + 1)",
        ("tests/core/test_compare.py",),
        "Dice = 2 TP / (|P| + |R|)",
    ),
    Mutation(
        "hd95-percentile",
        "segviewer/core/metrics.py",
        "hd95 = max(float(np.percentile(d_pr, 95)), float(np.percentile(d_rp, 95)))",
        "hd95 = max(float(np.percentile(d_pr, 90)), float(np.percentile(d_rp, 90)))",
        ("tests/core/test_metrics.py",),
        "HD95 is the 95th percentile of the surface distances",
    ),
    Mutation(
        "layout-preference",
        "segviewer/core/layout.py",
        "return (c.inversions, c.class_rank, -sum(1 for a in c.squeeze if a == 0))",
        "return (-c.inversions, c.class_rank, -sum(1 for a in c.squeeze if a == 0))",
        ("tests/core/test_layout.py",),
        "among layouts that fit, the documented order of preference is applied",
    ),
    Mutation(
        "resample-direction",
        "segviewer/core/resample.py",
        "    return np.linalg.inv(a) @ b",
        "    return np.linalg.inv(b) @ a",
        ("tests/core/test_resample.py",),
        "a prediction on another grid is resampled through both affines (world space)",
    ),
    Mutation(
        "manifest-paths",
        "segviewer/io/export.py",
        "    return Path(text).name",
        "    return text",
        ("tests/io/test_export.py", "tests/cli/test_cli.py", "tests/hostile"),
        "the manifest names sources by file name unless --full-paths",
    ),
    Mutation(
        "seg-identifiers-consent",
        "segviewer/io/export.py",
        "    if not request.allow_identifiers:",
        "    if False:",
        ("tests/io/test_dicomseg.py",),
        "a DICOM SEG (which carries identifiers) is only written with explicit consent",
        # the writer checks consent too (defence in depth): both checks go
        more=(("segviewer/io/dicomseg.py", "    if not allow_identifiers:", "    if False:"),),
    ),
)


def _copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _run_one(m: Mutation, copy: Path, timeout: int) -> tuple[str, float, str]:
    originals: dict[Path, str] = {}
    for rel, old, new in ((m.path, m.old, m.new), *m.more):
        target = copy / rel
        if not target.is_file():
            _restore(originals)
            return "stale", 0.0, f"{rel} does not exist"
        text = target.read_text(encoding="utf-8")
        originals.setdefault(target, text)
        n = text.count(old)
        if n != 1:
            _restore(originals)
            return "stale", 0.0, f"{old.strip()[:40]!r} occurs {n} times in {rel}"
        target.write_text(text.replace(old, new), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(copy), QT_QPA_PLATFORM="offscreen")
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired:
        rc, out = -1, "timed out"
    finally:
        _restore(originals)
    took = time.monotonic() - t0
    last = next((ln for ln in reversed(out.splitlines()) if ln.strip()), "")
    if rc == 0:
        return "SURVIVED", took, last
    if rc == 5:
        return "stale", took, "no tests ran: " + last
    if rc == -1:
        return "timeout", took, last
    return "caught", took, last


def _restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run this mutation (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutation")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:26} {m.path:34} {m.promise}")
        return 0
    results: list[tuple[Mutation, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="segviewer-mutation-") as tmp:
        copy = Path(tmp)
        _copy_checkout(copy)
        for m in chosen:
            status, took, last = _run_one(m, copy, args.timeout)
            results.append((m, status, took, last))
            print(f"{status:9} {m.name:26} {took:6.1f} s  {last[:90]}", flush=True)
    print()
    print("| mutation | file | promise | result |")
    print("|---|---|---|---|")
    for m, status, _took, _last in results:
        print(f"| {m.name} | `{m.path}` | {m.promise} | {status} |")
    bad = [m.name for m, status, _t, _l in results if status != "caught"]
    print()
    print(
        f"{len(results) - len(bad)} of {len(results)} mutations caught"
        + (f"; not caught: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

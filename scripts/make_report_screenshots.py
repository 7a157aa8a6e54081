"""Screenshots of `segviewer evaluate`'s report.html: screenshots/evaluate_report.png (summary
and distributions) and screenshots/evaluate_worst_case.png (the worst case with its worst
slice).

Builds the demo test set of scripts/make_screenshots.py (the demo T1 with damaged
references and a second prediction), runs ``segviewer evaluate`` on it in this process, and
renders two parts of the report with headless Chromium (Debian: ``apt-get install
chromium``)::

    python scripts/make_report_screenshots.py [--out screenshots] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_screenshots import demo_test_set  # noqa: E402

from segviewer.cli import main as segviewer  # noqa: E402

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _part(html: str, keep: tuple[str, ...]) -> str:
    """The report with only the ``<h2>`` sections named in ``keep`` (the header stays)."""
    pieces = re.split(r"(?=<h2>)", html)
    head, sections = pieces[0], pieces[1:]
    kept = [s for s in sections if any(s.startswith(f"<h2>{k}</h2>") for k in keep)]
    tail = "</body></html>" if "</body>" in html and not any("</body>" in s for s in kept) else ""
    return head + "".join(kept) + tail


def _shoot(chromium: str, html: Path, png: Path, size: tuple[int, int], profile: Path) -> None:
    subprocess.run(
        [
            chromium,
            *_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "set").mkdir()
        cases = demo_test_set(tmp / "set")
        report_dir = tmp / "evaluation"
        rc = segviewer(["evaluate", str(cases), "--out", str(report_dir), "--workers", "0"])
        if rc != 0:
            print(f"segviewer evaluate exited {rc}", file=sys.stderr)
            return rc
        html = (report_dir / "report.html").read_text(encoding="utf-8")
        # the temporary folder's name is not worth showing
        html = html.replace(str(tmp), "demo")
        shots = {
            "evaluate_report.png": (("Summary", "Distributions over cases"), (1240, 1330)),
            "evaluate_worst_case.png": (("Worst cases",), (1240, 700)),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (sections, size) in shots.items():
            page = tmp / f"{name}.html"
            page.write_text(_part(html, sections), encoding="utf-8")
            target = tmp / name
            _shoot(args.chromium, page, target, size, tmp / "profile")
            shutil.move(str(target), args.out / name)
            print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

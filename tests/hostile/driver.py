"""Run many ``segviewer`` command lines fast, each in its own process, and measure each.

``python tests/hostile/driver.py JOBS.json RESULTS.json`` imports segviewer's command line
once, then for every job forks a child that runs ``segviewer.cli.main(argv)`` -- the
function ``python -m segviewer`` calls -- with stdout and stderr going to files, and exits
with its status. The parent collects each child's exit status and peak memory
(``os.wait4``: the child's own ``ru_maxrss``) and kills children that run past their time
limit. Forking saves the interpreter start and imports for each of several hundred cases;
every child is still a separate process with its own memory, exit status and signals.

POSIX only (``os.fork``); ``test_hostile.py`` falls back to one ``python -m segviewer``
subprocess per job elsewhere.

A job is ``{"argv": [...], "cwd": DIR, "out": PREFIX, "timeout": SECONDS}``; a result adds
``rc``, ``maxrss_kib``, ``seconds``, ``timed_out`` and the paths ``PREFIX.stdout`` /
``PREFIX.stderr``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
from typing import Any


def _child(job: dict[str, Any]) -> None:
    out = os.open(job["out"] + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(job["out"] + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(job["cwd"])
    # A safety net for the machine running the tests, far above the bound the test asserts.
    limit = int(job.get("address_space_limit", 0))
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rc = 70
    try:
        from segviewer.cli import main

        rc = int(main(job["argv"]))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        rc = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def _digest(folder: str) -> str:
    """Names, sizes and contents of every entry under ``folder`` (hidden ones included)."""
    import hashlib

    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        dirnames.sort()
        h.update(dirpath.encode("utf-8", "surrogateescape"))
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            h.update(name.encode("utf-8", "surrogateescape"))
            if os.path.islink(p):
                h.update(os.readlink(p).encode("utf-8", "surrogateescape"))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def run_jobs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``jobs`` one after another in forked children; return one result per job."""
    import importlib

    # import once, before forking: each child then starts with the libraries loaded
    for name in (
        "segviewer.cli",
        "segviewer.cli.info",
        "segviewer.cli.export",
        "segviewer.cli.compare",
        "segviewer.io.images",
        "segviewer.io.predictions",
        "segviewer.io.export",
        "segviewer.io.classtables",
        "segviewer.core.masks",
        "segviewer.core.compare",
        "segviewer.io.render",
        "nibabel",
        "pydicom",
        "pydicom.pixels",
        "PIL.Image",
        "PIL.PngImagePlugin",
        "tifffile",
        "nrrd",
    ):
        with contextlib.suppress(ImportError):  # a module another segviewer may not have
            importlib.import_module(name)

    results = []
    for job in jobs:
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(job)
        timed_out = False
        deadline = start + float(job.get("timeout", 60))
        while True:
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid:
                break
            if time.monotonic() > deadline and not timed_out:
                os.kill(pid, signal.SIGKILL)
                timed_out = True
            time.sleep(0.005)
        rc = os.waitstatus_to_exitcode(status)
        results.append(
            {
                **job,
                "watch_digest": _digest(job["watch"]) if job.get("watch") else None,
                "rc": rc,
                "maxrss_kib": int(usage.ru_maxrss),
                "seconds": round(time.monotonic() - start, 3),
                "timed_out": timed_out,
            }
        )
    return results


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        jobs = json.load(f)
    results = run_jobs(jobs)
    with open(argv[1], "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A model opened and run in a child process, so TensorFlow never runs in the caller's process.

Importing TensorFlow holds Python's global interpreter lock for seconds (module initialisation
in C), and so does some of its work: in a worker thread of the window that stalls the event
loop. :class:`ModelProcess` runs :func:`~segviewer.inference.model.iter_open_model` and
:func:`~segviewer.inference.runner.predict` (the one implementation of opening and running a
model) in a child process instead: a fresh interpreter (``sys.executable``; a Qt process is
never forked, and the caller's main module is not imported again, unlike multiprocessing's
*spawn*). The caller's side only waits on a queue, which releases the lock.

What crosses the process boundary:

- requests, progress, results and errors: one JSON object per line on the child's standard
  input and on a copy of its standard output (its ``print`` output and TensorFlow's messages go
  to standard error); an error travels as its type name and message and is raised again here
  as the same segviewer error (:class:`~segviewer.inference.model.TrustRequired`,
  :class:`~segviewer.core.types.SegviewerError`);
- arrays: ``.npy`` files in a private temporary folder (the image going in, the raw outputs
  coming back), read with ``allow_pickle=False``; outputs larger than
  :data:`~segviewer.inference.runner.MEMMAP_BYTES` stay memory-mapped, as in-process runs keep
  them.

The generators yield :class:`~segviewer.core.types.Progress` at least every :data:`POLL_S`
seconds, so a worker running them can be cancelled at once. Cancelling asks the child to stop
after its current batch and kills it if it has not within :data:`CANCEL_GRACE_S`; a killed or
crashed child is started again (and the model reopened) by the next run. A child ends with its
:class:`ModelProcess` (:meth:`ModelProcess.close`), at interpreter exit, and whenever the
process that started it ends, however it ends (its standard input closes).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from segviewer.core.layout import Layout
from segviewer.core.progress import run_to_end
from segviewer.core.types import Prediction, PredictionKind, Progress, SegviewerError, Volume
from segviewer.inference.card import ModelCard
from segviewer.inference.model import ModelHandle, TrustRequired

__all__ = ["ModelProcess", "ModelProcessError", "POLL_S", "CANCEL_GRACE_S"]

#: Longest time between two yields of the generators (how soon a cancel is noticed).
POLL_S = 0.1
#: How long a cancelled run may take to stop at its next batch before the child is killed.
CANCEL_GRACE_S = 3.0


class ModelProcessError(SegviewerError):
    """The model's process stopped unexpectedly, or failed with an unexpected error."""


class _Channel:
    """JSON lines: written to ``out``; read from ``inp`` by a thread into :attr:`inbox` (None
    once ``inp`` is closed: the other process ended or closed it). The child passes the
    ``inbox`` its bootstrap thread fills instead of ``inp`` (see :data:`_BOOTSTRAP`)."""

    def __init__(
        self,
        inp: IO[bytes] | None,
        out: IO[bytes],
        name: str = "segviewer-model-reader",
        inbox: queue.Queue[dict[str, Any] | None] | None = None,
    ) -> None:
        self.inbox: queue.Queue[dict[str, Any] | None] = (
            inbox if inbox is not None else queue.Queue()
        )
        #: ``inp`` has closed (the other process has ended, or is ending).
        self.eof = False
        self._out = out
        self._lock = threading.Lock()
        if inp is not None:
            threading.Thread(target=self._read, args=(inp,), name=name, daemon=True).start()

    def _read(self, inp: IO[bytes]) -> None:
        try:
            for line in inp:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict):
                        self.inbox.put(message)
        except (OSError, ValueError):
            pass
        finally:
            self.eof = True
            self.inbox.put(None)

    def send(self, message: Mapping[str, Any]) -> None:
        """Raises OSError (BrokenPipeError) or ValueError when the other side is gone."""
        data = json.dumps(message).encode() + b"\n"
        with self._lock:
            self._out.write(data)
            self._out.flush()


# --- messages ------------------------------------------------------------------------------


def handle_to_dict(handle: ModelHandle) -> dict[str, Any]:
    """Every fact of a :class:`ModelHandle` as JSON (not the loaded model itself)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(handle):
        if f.name in ("model", "owner", "runners"):
            continue
        v = getattr(handle, f.name)
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, PredictionKind):
            v = v.value
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def handle_from_dict(data: Mapping[str, Any]) -> ModelHandle:
    """The :class:`ModelHandle` described by :func:`handle_to_dict`, without a model: what the
    caller's process knows of a model open in the child."""
    d: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    d["path"] = Path(d["path"])
    if d.get("output_kind") is not None:
        d["output_kind"] = PredictionKind(d["output_kind"])
    return ModelHandle(**d)


def _prediction_to_dict(prediction: Prediction) -> dict[str, Any]:
    layout = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(prediction.layout).items()
    }
    return {
        "kind": prediction.kind.value,
        "layout": layout,
        "n_classes": int(prediction.n_classes),
        "source": prediction.source,
        "values_are_probabilities": bool(prediction.values_are_probabilities),
        "notes": list(prediction.notes),
    }


def _error_to_dict(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "segviewer": isinstance(exc, SegviewerError),
        "message": str(exc),
    }


def _error_from_dict(error: Mapping[str, Any], what: str) -> SegviewerError:
    """The exception the child reported, as the segviewer error it was (same message)."""
    text = str(error.get("message", ""))
    if error.get("type") == TrustRequired.__name__:
        return TrustRequired(text)
    if error.get("segviewer"):
        return SegviewerError(text)
    if error.get("type") == "MemoryError":
        return ModelProcessError(
            f"the model ran out of memory while {what}; close other programs, set a smaller "
            "batch_size in the model card, or use a machine with more memory"
        )
    return ModelProcessError(
        f"Unexpected error in the model process while {what} ({error.get('type')}): {text}. "
        "Please report it with the model that caused it."
    )


def _how_it_ended(code: int | None) -> str:
    """How a child with exit status ``code`` ended, for a message (``"was killed (...)"``)."""
    if code is None:
        return "stopped answering"
    if code >= 0:
        return f"exited with status {code}"
    try:
        sig = signal.Signals(-code).name
    except ValueError:
        sig = f"signal {-code}"
    if -code == getattr(signal, "SIGKILL", 9):
        return f"was killed ({sig}; the system kills the largest process when memory runs out)"
    if -code in (getattr(signal, "SIGSEGV", 11), getattr(signal, "SIGBUS", 7)):
        return f"crashed ({sig}, inside TensorFlow or the model)"
    return f"was stopped by {sig}"


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# --- the caller's side ---------------------------------------------------------------------

_LIVE: weakref.WeakSet[ModelProcess] = weakref.WeakSet()
# Children stopped in the background and not yet reaped, with their folders.
_ENDING: set[tuple[subprocess.Popen[bytes] | None, Path | None]] = set()
_ENDING_LOCK = threading.Lock()


def _end(popen: subprocess.Popen[bytes] | None, folder: Path | None) -> None:
    """Kill and reap a child, close its pipes, remove its folder (any step may be done)."""
    if popen is not None:
        with contextlib.suppress(OSError):
            popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=30.0)
        for stream in (popen.stdin, popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@atexit.register
def _kill_all() -> None:
    """At interpreter exit, no child outlives its window and no folder is left (the children
    would also end on their own, when their standard input closes)."""
    for mp in list(_LIVE):
        mp.close(wait=True)
    with _ENDING_LOCK:  # daemon threads stop with the interpreter: finish their work here
        ending = list(_ENDING)
        _ENDING.clear()
    for popen, folder in ending:
        _end(popen, folder)


class ModelProcess:
    """One model, opened in a child process; runs it on volumes.

    Not started by construction: :meth:`open` starts the child and opens the model there.
    The generators may run in any thread, one at a time (a second waits for the first);
    :meth:`close` may be called from any thread.

    Attributes
    ----------
    handle
        What the child reported about the open model (:class:`ModelHandle` without the
        Keras model itself), None before :meth:`open` succeeded.
    """

    def __init__(self) -> None:
        self.handle: ModelHandle | None = None
        self._path: Path | None = None
        self._trust = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._chan: _Channel | None = None
        self._folder: Path | None = None
        self._lock = threading.Lock()  # one request at a time
        self._ids = itertools.count(1)
        self._closed = False
        self._died = ""  # how the last child ended, when it ended by itself

    # -- queries ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The child's process id (None when no child is running)."""
        popen = self._popen
        return None if popen is None else popen.pid

    @property
    def alive(self) -> bool:
        """A child runs and its output is open (a killed child may close its output before
        the system reports it ended: its threads are still being torn down)."""
        popen, chan = self._popen, self._chan
        return popen is not None and chan is not None and not chan.eof and popen.poll() is None

    @property
    def folder(self) -> Path | None:
        """The private temporary folder arrays are exchanged through (None when closed)."""
        return self._folder

    # -- requests --------------------------------------------------------------------------
    def open(
        self, path: str | os.PathLike[str], trust: bool = False
    ) -> Generator[Progress, None, ModelHandle]:
        """Start a fresh child and open the model there (see
        :func:`~segviewer.inference.model.iter_open_model`); yields its progress."""
        p = Path(path).expanduser()
        yield from self._acquire()
        try:
            self._stop_child(wait=True)
            yield Progress(0, 3, "starting the model process")
            self._start()
            handle = yield from self._open_in_child(p, trust)
            self.handle, self._path, self._trust = handle, p, trust
            return handle
        finally:
            self._lock.release()

    def predict(
        self,
        volume: Volume,
        *,
        card: ModelCard | None = None,
        overrides: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> Generator[Progress, None, tuple[Prediction, dict[str, Any]]]:
        """Run the open model on ``volume`` in the child: same arguments, progress and result
        as :func:`~segviewer.inference.runner.predict`. A child that stopped since is started
        again (and the model reopened) first."""
        if self._path is None:
            raise SegviewerError("no model is open in the model process; open a model first")
        name = self._path.name
        yield from self._acquire()
        try:
            if not self.alive:
                if not self._died and self._popen is not None:  # ended while idle
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._popen.wait(timeout=2.0)
                    self._died = f"it {_how_it_ended(self._popen.returncode)}"
                why = f" ({self._died})" if self._died else ""
                self._stop_child(wait=True)
                yield Progress(0, 3, f"restarting the model process{why}")
                self._start()
                self.handle = yield from self._open_in_child(self._path, self._trust)
            folder = self._require_folder()
            fd, name_in = tempfile.mkstemp(prefix="volume-", suffix=".npy", dir=folder)
            volume_file = Path(name_in)
            try:
                try:
                    with os.fdopen(fd, "wb") as fh:
                        np.save(fh, np.asarray(volume.data), allow_pickle=False)
                except OSError as e:
                    raise SegviewerError(
                        f"cannot hand the image to the model's process through {folder}: "
                        f"{e.strerror or e}; free disk space there (or set TMPDIR to a larger "
                        "disk) and run the model again"
                    ) from None
                request = {
                    "op": "predict",
                    "volume": volume_file.name,
                    "source": volume.source,
                    "affine": np.asarray(volume.affine, dtype=np.float64).tolist(),
                    "card": None if card is None else card.to_dict(),
                    "overrides": None if overrides is None else dict(overrides),
                    "batch_size": batch_size,
                }
                result = yield from self._request(request, f"running model {name}")
            finally:
                _remove(volume_file)
            return self._take_prediction(result)
        finally:
            self._lock.release()

    def close(self, *, wait: bool = False) -> None:
        """Stop the child (killed: it holds nothing worth saving) and remove the folder.

        Returns at once unless ``wait``: the child is reaped and the folder removed in a
        background thread. A request running in another thread then ends with an error
        (cancel its job first).
        """
        self._closed = True
        self.handle = None
        self._stop_child(wait=wait)

    # -- internals -------------------------------------------------------------------------
    def _acquire(self) -> Generator[Progress, None, None]:
        while not self._lock.acquire(timeout=POLL_S):
            yield Progress(0, 0, "waiting for the previous model run to stop")
        if self._closed:
            self._lock.release()
            raise SegviewerError("the model was closed; open it again")

    def _require_folder(self) -> Path:
        if self._folder is None:
            raise SegviewerError("the model was closed; open it again")
        return self._folder

    def _start(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="segviewer-model-"))
        # The child imports what this process imports (segviewer itself, a trusted model's
        # custom layers), from the same places.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(folder)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise SegviewerError(
                f"cannot start a process for the model ({sys.executable}): {e.strerror or e}; "
                "close other programs and try again"
            ) from None
        assert popen.stdin is not None and popen.stdout is not None
        self._popen, self._folder, self._died = popen, folder, ""
        self._chan = _Channel(popen.stdout, popen.stdin)
        _LIVE.add(self)
        if self._closed:  # closed from another thread while this one was starting it
            self._stop_child(wait=True)
            raise SegviewerError("the model was closed; open it again")

    def _open_in_child(self, path: Path, trust: bool) -> Generator[Progress, None, ModelHandle]:
        result = yield from self._request(
            {"op": "open", "path": str(path), "trust": trust}, f"opening model {path.name}"
        )
        return handle_from_dict(result["handle"])

    def _request(
        self, message: dict[str, Any], what: str
    ) -> Generator[Progress, None, dict[str, Any]]:
        """Send one request and relay the child's progress until its result or error."""
        chan = self._chan
        if chan is None:
            raise SegviewerError("the model was closed; open it again")
        rid = next(self._ids)
        last = Progress(0, 0, "waiting for the model's process")
        finished = False
        try:
            try:
                chan.send({"id": rid, **message})
            except (OSError, ValueError):
                raise self._child_died(what) from None
            while True:
                try:
                    reply = chan.inbox.get(timeout=POLL_S)
                except queue.Empty:
                    yield last  # nothing new: lets a cancel in the caller's thread through
                    continue
                if reply is None:
                    raise self._child_died(what)
                if reply.get("id") != rid:
                    continue  # a late message of an abandoned request
                if "progress" in reply:
                    done, total, text = reply["progress"]
                    last = Progress(int(done), int(total), str(text))
                    yield last
                elif "error" in reply:
                    finished = True
                    raise _error_from_dict(reply["error"], what)
                elif "result" in reply:
                    finished = True
                    result: dict[str, Any] = reply["result"]
                    return result
        finally:
            if not finished:
                self._abandon(rid)

    def _abandon(self, rid: int) -> None:
        """A request ended early (cancelled, or the child died): stop it in the child within
        :data:`CANCEL_GRACE_S`, else kill the child."""
        chan = self._chan
        if self._closed or chan is None or not self.alive:
            self._stop_child(wait=True)
            return
        try:
            chan.send({"id": rid, "op": "cancel"})
            deadline = time.monotonic() + CANCEL_GRACE_S
            while (left := deadline - time.monotonic()) > 0:
                reply = chan.inbox.get(timeout=left)
                if reply is None:
                    break
                if reply.get("id") != rid:
                    continue
                if "result" in reply:  # it finished just before the cancel arrived
                    logits = reply["result"].get("logits")
                    if isinstance(logits, str) and self._folder is not None:
                        _remove(self._folder / Path(logits).name)
                if "result" in reply or "error" in reply or "cancelled" in reply:
                    return
        except (queue.Empty, OSError, ValueError):
            pass
        self._stop_child(wait=True)  # still busy in its batch (or gone): kill it

    def _child_died(self, what: str) -> SegviewerError:
        if self._closed:
            return SegviewerError(f"the model was closed while {what}")
        popen = self._popen
        code = None
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=2.0)
            code = popen.returncode
        how = _how_it_ended(code)
        self._stop_child(wait=True)
        self._died = f"it {how}"
        return ModelProcessError(
            f"the model's process {how} while {what}; the window is unaffected: run the model "
            "again (it is reopened), with a smaller batch_size in the model card if memory is "
            "short"
        )

    def _stop_child(self, *, wait: bool) -> None:
        """Kill the child (if any) and remove its folder; ``wait=False``: reap it in the
        background, so the calling (GUI) thread never waits for the operating system."""
        popen, folder = self._popen, self._folder
        self._popen = self._chan = self._folder = None
        if popen is None and folder is None:
            return
        if wait:
            _end(popen, folder)
            return
        if popen is not None:
            with contextlib.suppress(OSError):
                popen.kill()  # at once; reaping may take the system a moment
        item = (popen, folder)
        with _ENDING_LOCK:
            _ENDING.add(item)

        def finish() -> None:
            _end(popen, folder)
            with _ENDING_LOCK:
                _ENDING.discard(item)

        threading.Thread(target=finish, name="segviewer-model-reaper", daemon=True).start()

    def _take_prediction(self, result: Mapping[str, Any]) -> tuple[Prediction, dict[str, Any]]:
        """The child's result as a :class:`Prediction` over the raw outputs it wrote."""
        from segviewer.inference.runner import MEMMAP_BYTES

        folder = self._require_folder()
        written = folder / Path(str(result["logits"])).name
        try:
            if written.stat().st_size > MEMMAP_BYTES:
                # Big: keep it memory-mapped, outside the folder (which goes with the child),
                # as long as the prediction lives (exports check memory-mapped files).
                fd, name = tempfile.mkstemp(
                    prefix="segviewer-logits-", suffix=".npy", dir=folder.parent
                )
                os.close(fd)
                kept = Path(name)
                os.replace(written, kept)
                data: np.ndarray = np.load(kept, mmap_mode="r", allow_pickle=False)
                weakref.finalize(data, _remove, kept)
            else:
                data = np.load(written, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SegviewerError(
                f"cannot read the model's outputs from {written}: {e}; free disk space in "
                f"{folder.parent} (or set TMPDIR to a larger disk) and run the model again"
            ) from None
        finally:
            _remove(written)
        p = result["prediction"]
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in p["layout"].items()
        }
        layout = Layout(**fields)
        prediction = Prediction(
            data=data,
            kind=PredictionKind(p["kind"]),
            layout=layout,
            n_classes=int(p["n_classes"]),
            source=str(p["source"]),
            values_are_probabilities=bool(p["values_are_probabilities"]),
            notes=tuple(str(n) for n in p["notes"]),
        )
        return prediction, dict(result["provenance"])


# --- the child's side ----------------------------------------------------------------------


class _Cancelled(Exception):
    pass


#: The child's program (``python -c``; the folder is its argument). Before anything heavy is
#: imported, a thread reads the requests from standard input, and ends the process as soon as
#: that closes: the parent closed it or ended (however: even killed, it cannot leave the child
#: running), whatever the child is doing then (importing TensorFlow, in a batch).
_BOOTSTRAP = """
import json, os, queue, signal, sys, threading
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides what stops
inbox = queue.Queue()
def read():
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            inbox.put(message)
    os._exit(0)
threading.Thread(target=read, name="segviewer-requests", daemon=True).start()
from segviewer.inference.process import _child_main
_child_main(inbox)
"""


def _child_main(inbox: queue.Queue[dict[str, Any] | None]) -> None:
    """The child process: serve the requests :data:`_BOOTSTRAP` puts in ``inbox``."""
    folder = Path(sys.argv[1])
    # Messages go out on a copy of standard output; what anything prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(_Channel(None, out, inbox=inbox), folder)


def _next_request(chan: _Channel) -> dict[str, Any]:
    message = chan.inbox.get()
    if message is None:  # the parent closed the pipe or ended
        os._exit(0)
    return message


def _serve(chan: _Channel, folder: Path) -> None:
    from segviewer.inference.model import iter_open_model

    handle: ModelHandle | None = None
    while True:
        request = _next_request(chan)
        rid, op = request.get("id"), request.get("op")
        if op == "cancel":
            continue  # for a request that has already ended
        reply: dict[str, Any]
        try:
            if op == "open":
                handle = None
                handle = _drive(
                    chan, rid, iter_open_model(request["path"], trust=bool(request["trust"]))
                )
                result: dict[str, Any] = {"handle": handle_to_dict(handle)}
            elif op == "predict":
                if handle is None:
                    raise SegviewerError("no model is open in the model process; open one first")
                result = _predict(chan, rid, handle, request, folder)
            else:
                raise ValueError(f"unknown request {op!r}")
        except _Cancelled:
            reply = {"id": rid, "cancelled": True}
        except (BrokenPipeError, EOFError):
            os._exit(0)  # the parent is gone
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
            reply = {"id": rid, "error": _error_to_dict(e)}
        else:
            reply = {"id": rid, "result": result}
        try:
            chan.send(reply)
        except (OSError, ValueError):
            os._exit(0)


def _drive(chan: _Channel, rid: Any, gen: Generator[Progress, None, Any]) -> Any:
    """Run a progress generator, sending its progress; between steps, stop on a cancel (the
    generator is closed then: a cancelled run removes its temporary output)."""

    def step(p: Progress) -> None:
        chan.send({"id": rid, "progress": [p.done, p.total, p.message]})
        while True:
            try:
                message = chan.inbox.get_nowait()
            except queue.Empty:
                return
            if message is None:
                os._exit(0)
            if message.get("op") == "cancel" and message.get("id") == rid:
                raise _Cancelled

    return run_to_end(gen, step)


def _predict(
    chan: _Channel, rid: Any, handle: ModelHandle, request: Mapping[str, Any], folder: Path
) -> dict[str, Any]:
    from segviewer.inference.runner import predict

    data = np.load(folder / Path(str(request["volume"])).name, mmap_mode="r", allow_pickle=False)
    volume = Volume(data, np.asarray(request["affine"]), source=str(request["source"]))
    card = None if request.get("card") is None else ModelCard.from_dict(request["card"])
    prediction, provenance = _drive(
        chan,
        rid,
        predict(
            volume,
            handle,
            card=card,
            overrides=request.get("overrides"),
            batch_size=request.get("batch_size"),
            workdir=folder,
        ),
    )
    name = f"logits-{rid}.npy"
    out = prediction.data
    target = folder / name
    moved = False
    if isinstance(out, np.memmap) and out.filename is not None:
        # A big output is already a file in the folder: hand it over as it is.
        out.flush()
        with contextlib.suppress(OSError):
            os.replace(out.filename, target)
            moved = True
    if not moved:
        partial = folder / (name + ".partial")
        with partial.open("wb") as fh:
            np.save(fh, np.asarray(out), allow_pickle=False)
        os.replace(partial, target)
    return {
        "logits": name,
        "prediction": _prediction_to_dict(prediction),
        "provenance": provenance,
    }

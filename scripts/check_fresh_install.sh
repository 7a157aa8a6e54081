#!/usr/bin/env bash
# Run the README's two install commands as a new user would: on a fresh clone, with a stock
# system Python (default: Debian's /usr/bin/python3, which refuses `pip install` outside a
# virtual environment, PEP 668). The commands are read from the README's first ```bash
# block, so the README cannot drift from what is checked.
#
# usage: scripts/check_fresh_install.sh [--model | --full] [--python PYTHON] [--keep]
#
#   (default)  quick: command 1 without [model] (no TensorFlow download), the demo window
#              drawn offscreen into a PNG (--screenshot), `segviewer --version` and
#              `segviewer doctor`; then command 2 without [model] and a few test files
#              (command line, doctor, desktop entry, portability, layering). A few minutes.
#   --model    both install commands as written (with TensorFlow: the demo runs the bundled
#              model), the same few test files plus their TensorFlow tests.
#   --full     both commands exactly as written (TensorFlow and the whole suite): about as
#              long as CI itself.
#   --python   the interpreter to check (it becomes `python3` for the commands).
#   --keep     leave the clone and its .venv in place (the path is printed).
#
# Needs git and the python3-venv package (Debian/Ubuntu: sudo apt install python3-venv).
# The clone is made from this repository's committed HEAD: commit before checking.
set -euo pipefail

mode=quick
python=/usr/bin/python3
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) mode=full ;;
    --model) mode=model ;;
    --python) python="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "check_fresh_install: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$python" ]; then
  echo "check_fresh_install: $python not found; give --python PYTHON" >&2
  exit 2
fi
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
  echo "check_fresh_install: $python has no venv/ensurepip; install python3-venv (apt)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/segviewer-fresh.XXXXXX")"
if [ "$keep" = 1 ]; then
  echo "check_fresh_install: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# The README's commands, from its first ```bash block: every line that is not a comment.
mapfile -t commands < <(awk '/^```bash$/ {n++; next} /^```$/ && n == 1 {exit} n == 1 && NF && !/^#/' "$repo/README.md")
if [ "${#commands[@]}" -ne 2 ]; then
  echo "check_fresh_install: expected 2 commands in README.md's first bash block, found ${#commands[@]}" >&2
  exit 2
fi
install_demo="${commands[0]}"
install_test="${commands[1]}"

# The window needs no display for --screenshot; a script cannot close an open window.
install_demo="${install_demo/segviewer --demo/segviewer --demo --screenshot demo.png}"
subset="tests/cli tests/test_layers.py tests/test_portability.py"
if [ "$mode" = quick ]; then
  install_demo="${install_demo//\[model\]/}"
  install_test="${install_test//,model\]/]}"
  install_test="${install_test/python -m pytest/python -m pytest -q -m \"not slow and not tf\" $subset}"
elif [ "$mode" = model ]; then
  install_test="${install_test/python -m pytest/python -m pytest -q -m \"not slow\" $subset}"
fi

echo "check_fresh_install: $("$python" --version) ($python), $mode check of $(git -C "$repo" rev-parse --short HEAD)"
git clone -q "$repo" "$work/segviewer"
mkdir "$work/bin"
ln -s "$python" "$work/bin/python3"   # the README says python3: make it this one
export PATH="$work/bin:$PATH"
export QT_QPA_PLATFORM=offscreen
# Nothing of the user's settings may leak into (or out of) the check.
export SEGVIEWER_SETTINGS="$work/settings.ini"
cd "$work/segviewer"

start=$SECONDS
echo "+ $install_demo"
bash -c "$install_demo"
# From another folder, so that `import segviewer` cannot pick up the clone itself.
(cd "$work" && DEMO_PNG="$work/segviewer/demo.png" segviewer/.venv/bin/python - <<'EOF'
import os
from pathlib import Path

import numpy as np
from PIL import Image

import segviewer
from segviewer.io.bundled import icon_path

# A real install (not the clone): the wheel must carry the demo data and the icon.
assert ".venv" in Path(segviewer.__file__).parts, segviewer.__file__
assert icon_path(".png").is_file() and icon_path(".svg").is_file()
with Image.open(os.environ["DEMO_PNG"]) as im:
    pixels = np.asarray(im.convert("RGB"))
assert pixels.shape[0] >= 300 and pixels.shape[1] >= 400, pixels.shape
assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the demo screenshot is blank"
print(f"demo.png {pixels.shape[1]} x {pixels.shape[0]} px from {segviewer.__file__}")
EOF
)
.venv/bin/segviewer --version
doctor_args=()
if [ "$mode" = quick ]; then doctor_args=(--no-tensorflow); fi
.venv/bin/segviewer doctor "${doctor_args[@]}"
echo "check_fresh_install: command 1 passed in $((SECONDS - start)) s"

start=$SECONDS
echo "+ $install_test"
bash -c "$install_test"
echo "check_fresh_install: command 2 passed in $((SECONDS - start)) s"
echo "check_fresh_install: OK"

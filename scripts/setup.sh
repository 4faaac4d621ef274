#!/usr/bin/env bash
# Set up orchestrion on a fresh Debian/Ubuntu machine: FluidSynth + a GM SoundFont (apt, only
# when missing), a virtualenv in .venv with the CPU build of torch and the package.
# usage: bash scripts/setup.sh [--dev]      (--dev adds the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"

need_apt=()
command -v fluidsynth >/dev/null 2>&1 || ldconfig -p 2>/dev/null | grep -q libfluidsynth || need_apt+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -f /usr/share/soundfonts/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${need_apt[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and exactly pinned: a looser requirement pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".${extra}"

#!/usr/bin/env bash
# Set up clustersweep here: install the package (with the test tools given --dev) and make sure
# Fashion-MNIST is available (dataset.path, cache, system package, or a mirror; where no mirror
# answers and apt-get is there, Debian's dataset-fashion-mnist package is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [ "${1:-}" = "--dev" ]; then extras="[dev]"; fi
python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".${extras}"
if python -m clustersweep.data fetch; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing Debian's dataset-fashion-mnist package" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
  python -m clustersweep.data fetch
else
  echo "setup: no data source worked and apt-get is not available; set dataset.path (see README)" >&2
  exit 1
fi

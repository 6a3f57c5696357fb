#!/usr/bin/env bash
# Set up clustersweep here: install the package (with the test tools and the Ray launcher given --dev, the Ray
# launcher alone given --cluster) and make sure Fashion-MNIST is available (dataset.path, cache, system package,
# or a mirror; where no mirror answers and apt-get is there, Debian's dataset-fashion-mnist package is installed).
# --dev also installs Debian's chromium and postgresql where apt-get is there and they are missing (the offline plot
# test draws in chromium; the team-store test starts its own PostgreSQL, with the driver from the `team` extra).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
case "${1:-}" in
  --dev) extras="[dev,cluster]" ;;
  --cluster) extras="[cluster]" ;;
esac
pip=(python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
"${pip[@]}" -e ".${extras}"
if [ -n "$extras" ]; then
  # Without its pins: cloudpickle<3 (for its AWS launcher only) would break joblib; ray comes with [cluster].
  "${pip[@]}" --no-deps "hydra-ray-launcher==1.2.2"
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
needs=()
if [ "${1:-}" = "--dev" ]; then
  command -v chromium >/dev/null 2>&1 || needs+=(chromium)  # tests/test_plots_offline.py draws in it
  # tests/test_postgres.py starts its own server; Debian keeps initdb and pg_ctl off PATH
  command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || needs+=(postgresql)
fi
if [ ${#needs[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's ${needs[*]} (for the tests)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${needs[@]}" >/dev/null
fi
if python -m clustersweep.data fetch; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's dataset-fashion-mnist package" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
  python -m clustersweep.data fetch
else
  echo "setup: no data source worked and apt-get is not available; set dataset.path (docs/reference.md)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Start an MLflow tracking server for a team's sweeps (docs/cluster.md).
#   bash scripts/serve_tracking.sh [--host 127.0.0.1] [--port 5000] [--store mlruns/server] [mlflow server options…]
# Bound to loopback unless --host says otherwise; SQLite backend store <store>/mlflow.db; artifacts under
# <store>/artifacts, proxied by the server (--serve-artifacts): clients only need its URL. Other options pass to
# `mlflow server`, e.g. `--backend-store-uri postgresql://…` for a team's database (it wins over the SQLite one).
set -euo pipefail
cd "$(dirname "$0")/.."
host=127.0.0.1 port=5000 store=mlruns/server
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    *) break ;;
  esac
done
mkdir -p "$store"
store=$(cd "$store" && pwd)
# Server-side jobs (GenAI evaluation workers) are not used by clustersweep: six fewer processes, faster start.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
echo "serve_tracking: http://$host:$port (store $store)" >&2
exec mlflow server --host "$host" --port "$port" --workers 1 \
  --backend-store-uri "sqlite:///$store/mlflow.db" \
  --serve-artifacts --artifacts-destination "$store/artifacts" "$@"

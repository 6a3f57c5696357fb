#!/usr/bin/env bash
# Start an MLflow tracking server for a team's sweeps (docs/cluster.md).
#   bash scripts/serve_tracking.sh [--host 127.0.0.1] [--port 5000] [--store mlruns/server]
#        [--backend-store-uri URI] [--artifacts-destination DIR|URI] [mlflow server options…]
# Bound to loopback unless --host says otherwise. Runs and metrics go to --backend-store-uri (else
# $MLFLOW_BACKEND_STORE_URI, else the SQLite file <store>/mlflow.db): a team's is PostgreSQL,
# `postgresql://user@db:5432/mlflow` (driver: `pip install -e .[team]`; a password in ~/.pgpass, or in the URI
# given by the variable: never on a command line). Artifacts go to --artifacts-destination (else
# $MLFLOW_ARTIFACTS_DESTINATION, else <store>/artifacts): a folder or an object store (`s3://bucket/mlflow`, with
# boto3), proxied by the server (--serve-artifacts): clients only need its URL. Other options pass to `mlflow server`.
set -euo pipefail
cd "$(dirname "$0")/.."
host=127.0.0.1 port=5000 store=mlruns/server
backend=${MLFLOW_BACKEND_STORE_URI:-} artifacts=${MLFLOW_ARTIFACTS_DESTINATION:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --backend-store-uri) backend=$2; shift 2 ;;
    --artifacts-destination) artifacts=$2; shift 2 ;;
    *) break ;;
  esac
done
mkdir -p "$store"
store=$(cd "$store" && pwd)
# mlflow server reads both from its environment: a password in the URI stays off every command line (`ps`).
export MLFLOW_BACKEND_STORE_URI=${backend:-sqlite:///$store/mlflow.db}
export MLFLOW_ARTIFACTS_DESTINATION=${artifacts:-$store/artifacts}
# Server-side jobs (GenAI evaluation workers) are not used by clustersweep: six fewer processes, faster start.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
shown=${MLFLOW_BACKEND_STORE_URI/:\/\/*:*@/://***@}
echo "serve_tracking: http://$host:$port (runs $shown, artifacts $MLFLOW_ARTIFACTS_DESTINATION)" >&2
exec mlflow server --host "$host" --port "$port" --workers 1 --serve-artifacts "$@"

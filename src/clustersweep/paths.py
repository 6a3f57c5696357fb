"""Where the checkout's parts are: the project root, its configs, its default MLflow store."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"

"""A throwaway PostgreSQL server in a folder, on loopback: to try a team's tracking store on one machine.

    python scripts/local_postgres.py start DIR [--port P]   # prints postgresql://mlflow:PASSWORD@127.0.0.1:P/mlflow
    python scripts/local_postgres.py stop DIR
    python scripts/local_postgres.py restart DIR

`start` makes the cluster on first use (DIR/data; password in DIR/password, port in DIR/port, log in DIR/log),
starts it on 127.0.0.1:P with its unix socket in DIR, makes the database `mlflow` owned by the password user
`mlflow`, and prints its URI; on a running server it only prints the URI. Without --port: the last one, else a
free one. PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user and DIR
becomes its own.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

USER = DATABASE = "mlflow"


class Failed(Exception):
    """What went wrong, in one line."""


def bin_dir() -> Path:
    """The folder of pg_ctl, initdb, psql and createdb: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not dirs:
        raise Failed("PostgreSQL is not installed (no pg_ctl): apt-get install postgresql")
    return Path(dirs[-1]).parent


def server_user() -> list[str]:
    """The prefix that runs a PostgreSQL program as the server's user: `postgres` when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Failed("PostgreSQL cannot run as root and there is no `postgres` user: run as another user") from None
    return ["runuser", "-u", "postgres", "--"]


def run(folder: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """A PostgreSQL program as the server's user, in the folder; Failed with its last line if it fails."""
    res = subprocess.run([*server_user(), *cmd], cwd=folder, capture_output=True, text=True)
    if check and res.returncode != 0:
        said = (res.stderr.strip() or res.stdout.strip() or f"exit {res.returncode}").splitlines()[-1]
        raise Failed(f"{Path(cmd[0]).name} failed: {said}")
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(folder: Path) -> bool:
    if not (folder / "data" / "PG_VERSION").exists():
        return False
    return run(folder, str(bin_dir() / "pg_ctl"), "status", "-D", str(folder / "data"), check=False).returncode == 0


def uri(folder: Path) -> str:
    password, port = (folder / "password").read_text().strip(), (folder / "port").read_text().strip()
    return f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"


def start(folder: Path, port: int | None) -> str:
    pg = bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    if running(folder):
        return uri(folder)
    data = folder / "data"
    if not (data / "PG_VERSION").exists():
        (folder / "password").write_text(secrets.token_hex(16) + "\n")
        (folder / "password").chmod(0o600)
        if server_user():  # root: the folder (its log, socket and data) is the postgres user's
            owner = pwd.getpwnam("postgres")
            for path in (folder, folder / "password"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            if run(folder, "test", "-r", str(folder / "password"), check=False).returncode != 0:
                raise Failed(f"the postgres user cannot reach {folder} (a parent folder is closed to it): use another")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale"]
        run(folder, str(pg / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={folder / 'password'}", *auth)
    port = port or (int((folder / "port").read_text()) if (folder / "port").exists() else free_port())
    (folder / "port").write_text(f"{port}\n")
    log = folder / "log"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
    started = run(
        folder, str(pg / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(log), "-o", options, check=False
    )
    if started.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise Failed(f"PostgreSQL did not start on 127.0.0.1:{port}: {' '.join(tail) or started.stderr.strip()}")
    socket_args = ["-h", str(folder), "-p", str(port), "-U", USER]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
    if not run(folder, str(pg / "psql"), "-X", "-tA", *socket_args, "-d", "postgres", "-c", query).stdout.strip():
        run(folder, str(pg / "createdb"), *socket_args, DATABASE)
    return uri(folder)


def stop(folder: Path) -> None:
    folder = folder.resolve()
    if running(folder):
        run(folder, str(bin_dir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(folder / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "restart"])
    parser.add_argument("dir", type=Path, help="the server's folder (made on first start)")
    parser.add_argument("--port", type=int, help="on 127.0.0.1 (default: the last one, else a free one)")
    args = parser.parse_args()
    try:
        if args.command in ("stop", "restart"):
            stop(args.dir)
        if args.command in ("start", "restart"):
            print(start(args.dir, args.port))
    except (Failed, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

"""Advice that is a command that works, made of the user's own overrides: for a key that the chosen config of its
group lacks (Hydra's "Could not override 'clusterer.covariance_type'"), the run — or under -m the sweeps, one per
swept choice — each keeping the keys its choice has; for a setting of the whole sweep that was swept, one sweep
per value."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from hydra import initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clustersweep.errors import ConfigError
from clustersweep.paths import CONF_DIR

_MISSING = re.compile(r"Could not override '([^']+)'")
_ABSENT = object()


def reworded(e: BaseException, argv: list[str]) -> BaseException:
    """`e`, an error of `python run.py *argv`, as a ConfigError with the command(s) that work when it is a key of
    another choice than the chosen one; else `e` itself."""
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # not a command line Hydra would take: nothing to build on
        return e
    said = key_of_another_choice(e, list(args.overrides), bool(args.multirun))
    return e if said is None else ConfigError(said)


def key_of_another_choice(e: BaseException, overrides: list[str], multirun: bool) -> str | None:
    """What to run instead when `e` is Hydra's refusal of a key the chosen config of its group lacks, given the
    command line's `overrides` (`multirun`: under -m); None for any other error."""
    found = _MISSING.search(str(e))
    if found is None:
        return None
    key = found[1]
    group, _, leaf = key.rpartition(".")
    path = group.replace(".", "/")  # a nested group's path: hydra/launcher
    with _config_loader() as loader:
        if not group or not loader.repository.group_exists(path):
            return None
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
        asked = {key, *(o.key_or_group for o in parsed if o.key_or_group.startswith(f"{group}."))}
        keys = {c: _keys(loader, path, c, asked) for c in loader.get_group_options(path)}
    given = next((o for o in parsed if o.key_or_group == key), None)
    said = key if given is None else given.input_line
    mine = next((o for o in parsed if o.key_or_group == path), None)
    having = [c for c, has in keys.items() if key in has]

    def command(choice: str | None = None) -> str:
        """The user's overrides with `choice` for the group and only its keys; None: the group's fixed keys as
        sweeps of one."""
        args = [] if choice is None or mine is not None else [f"{path}={choice}"]
        for o in parsed:
            if o.key_or_group == path and choice is not None:
                args.append(f"{path}={choice}")
            elif choice is None and o.key_or_group in asked and not o.is_sweep_override():
                args.append(f"{o.key_or_group}=choice({o.get_value_element_as_str()})")
            elif choice is None or o.is_add() or o.is_delete() or _kept(o.key_or_group, group, keys[choice]):
                args.append(o.input_line)
        return _shown([*(["-m"] if multirun else []), *args])

    if mine is not None and mine.is_sweep_override():
        swept = [c for c in mine.sweep_string_iterator() if c in keys]
        if all(keys[c] == asked for c in swept):  # only the default choice lacks them
            return (
                f"{said} is not allowed: under -m, Hydra sets the fixed values on the default {group}, which has no "
                f"key {leaf!r}, before it sweeps the choices; every swept choice has it, as a sweep of one: "
                + command()
            )
        lacking = ", ".join(f"{path}={c} has no {_named(asked - keys[c], group)}" for c in swept if asked - keys[c])
        return (
            f"{said} is not allowed: under -m, a sweep's values apply to every {group} it sweeps, and {lacking}: "
            "run one sweep per choice: " + " and ".join(command(c) for c in swept)
        )
    chosen = f"the chosen {group}"
    if not having:
        shown = _shown(["--cfg", "job", *(o.input_line for o in parsed if o.key_or_group != key)])
        nor = f"nor has any other {group} choice (a typo?)"
        return f"{said} is not allowed: {chosen} has no key {leaf!r}, {nor}; {shown} shows every key"
    others = f" (so do {', '.join(f'{path}={c}' for c in having[1:])})" if having[1:] else ""
    return (
        f"{said} is not allowed: {chosen} has no key {leaf!r}; {path}={having[0]} has it{others}: {command(having[0])}"
    )


def one_sweep_per_value(overrides: list[str], key: str) -> str:
    """`python run.py -m` with the command line's `overrides`, once per value of the swept `key`."""
    with _config_loader() as loader:
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    swept = next(o for o in parsed if o.key_or_group == key)
    return " and ".join(
        _shown(["-m", *(f"{key}={v}" if o is swept else o.input_line for o in parsed)])
        for v in swept.sweep_string_iterator()
    )


@contextmanager
def _config_loader() -> Iterator:
    """The running Hydra's config loader, else one of the project's config (a command line that did not compose)."""
    ready = GlobalHydra.instance().is_initialized()
    with nullcontext() if ready else initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def _keys(loader, path: str, choice: str, asked: set[str]) -> set[str]:  # noqa: ANN001 - a ConfigLoader
    """Which of the `asked` keys the config has with `choice` for its group at `path`."""
    try:
        cfg = loader.load_configuration("config", [f"{path}={choice}"], RunMode.RUN)
    except (HydraException, OmegaConfBaseException):
        return set()
    return {k for k in asked if OmegaConf.select(cfg, k, default=_ABSENT) is not _ABSENT}


def _named(keys: set[str], group: str) -> str:
    leaves = [repr(k[len(group) + 1 :]) for k in sorted(keys)]
    return f"key {leaves[0]}" if len(leaves) == 1 else f"keys {', '.join(leaves)}"


def _kept(key: str, group: str, has: set[str]) -> bool:
    return not key.startswith(f"{group}.") or key in has


def _shown(args: list[str]) -> str:
    return "`python run.py " + " ".join(shlex.quote(a) for a in args) + "`"

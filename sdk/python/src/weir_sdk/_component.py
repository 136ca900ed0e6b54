"""The glue between a :class:`weir_sdk.Transform` and the ``weir:transform``
world. Imported only inside a component build (``weir plugin build`` writes an
entry module that calls :func:`world`); never needed by tests.

What it must never do: copy a record on either side of the boundary. The
lifted records are instances of the bindings' ``Record``; the SDK's helpers
(``json``, ``with_json``, ``header``, …) are attached to that class instead,
so a transform sees the same methods natively and inside the component. On
the way out, the bindings read attributes, so the SDK's own ``Record``,
``Failure`` and ``BatchResult`` are lowered as they are.
"""

from __future__ import annotations

# The standard library loads some modules lazily, on first use; a component
# holds only what was imported while it was built, so import them now:
# `datetime.strptime` imports `_strptime`, and `str.encode` / `bytes.decode`
# look codecs up as `encodings.<name>` (all of them, a few hundred KiB).
import _strptime  # noqa: F401
import calendar  # noqa: F401
import encodings
import importlib
import json
import pkgutil

for _codec in pkgutil.iter_modules(encodings.__path__):
    try:
        importlib.import_module(f"encodings.{_codec.name}")
    except Exception:  # a platform's own codec (mbcs, oem on Windows)
        pass

import componentize_py_types
import wit_world
from wit_world.imports import host, types

import weir_sdk
from weir_sdk import Record, Transform

_LEVELS = {
    "trace": types.Level.TRACE,
    "debug": types.Level.DEBUG,
    "info": types.Level.INFO,
    "warn": types.Level.WARN,
    "error": types.Level.ERROR,
}

for _name in ("json", "with_value", "with_json", "header"):
    setattr(types.Record, _name, getattr(Record, _name))


def _host_log(level: str, message: str) -> None:
    host.log(_LEVELS[level], message)


weir_sdk.log._sink = _host_log


def _refusal(what: str, error: BaseException) -> componentize_py_types.Err:
    if isinstance(error, ImportError):
        return componentize_py_types.Err(_import_hint(error))
    return componentize_py_types.Err(f"{what}: {type(error).__name__}: {error}")


def _import_hint(error: ImportError) -> str:
    return (
        f"{error}: the component holds only the modules imported while it was built; "
        f"import {error.name or 'it'} at the top of the plugin's module and build again"
    )


def world(transform: type[Transform]) -> type:
    """The class componentize-py exports as ``WitWorld`` for ``transform``.

    componentize-py may make a new ``WitWorld`` for each call, so the live
    instance is kept here, in the closure, not on ``self``. Until ``init``
    succeeds it is built from ``{}`` (its defaults), as the Rust kit does.
    """
    info = transform.info()
    live: list[Transform] = []

    def instance() -> Transform:
        if not live:
            live.append(transform({}))
        return live[0]

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> types.Info:
            return types.Info(info.name, info.version, info.state_version)

        def init(self, config: str) -> None:
            try:
                built = transform(json.loads(config or "{}"))
            except Exception as e:
                raise _refusal("the configuration is refused", e) from None
            live[:] = [built]

        # The bindings lower any object with the record's (or result's)
        # attributes, so what the transform returns goes back as it is: no
        # second object per output record.
        def process(self, batch, now_ms: int) -> types.BatchResult:
            try:
                return instance().process(batch, now_ms)
            except ImportError as e:
                raise ImportError(_import_hint(e)) from e

        def on_tick(self, now_ms: int) -> list:
            return instance().on_tick(now_ms)

        def snapshot(self) -> bytes:
            return bytes(instance().snapshot())

        def restore(self, state: bytes) -> None:
            try:
                instance().restore(state)
            except Exception as e:
                raise _refusal("the state is refused", e) from None

    WitWorld.__qualname__ = WitWorld.__name__ = "WitWorld"
    return WitWorld

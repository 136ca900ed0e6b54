"""Write weir transforms in Python.

A transform is a subclass of :class:`Transform`. The same class runs natively
under pytest and, built with ``weir plugin build``, inside a WebAssembly
component of the ``weir:transform`` world, where the host calls it batch by
batch. Nothing here imports the component bindings: they are attached by
``weir_sdk._component`` at build time only.
"""

from __future__ import annotations

import json as _json
import logging as _logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = [
    "BatchResult",
    "ConfigError",
    "Failure",
    "Header",
    "Info",
    "Invalid",
    "Record",
    "Transform",
    "loads",
    "log",
    "settings",
]


@dataclass(slots=True)
class Header:
    """One record header: a name and raw bytes."""

    name: str
    value: bytes


@dataclass(slots=True)
class Record:
    """One record: raw bytes plus the metadata the source gave it.

    Inside a component the host's records are passed to the transform as they
    were lifted (an object of the same shape, with the same helpers), so
    reading a field never copies it again.
    """

    value: bytes
    key: bytes | None = None
    timestamp_ms: int = 0
    headers: list[Header] = field(default_factory=list)

    def json(self) -> Any:
        """The value parsed as JSON (:func:`loads`)."""
        return loads(self.value)

    def with_value(self, value: bytes) -> "Record":
        """A record with this one's key, timestamp and headers and a new value."""
        return type(self)(
            key=self.key,
            value=value,
            timestamp_ms=self.timestamp_ms,
            headers=self.headers,
        )

    def with_json(self, doc: Any) -> "Record":
        """A record with this one's metadata and ``doc`` as compact JSON."""
        return self.with_value(dumps(doc))

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, or ``None``."""
        for h in self.headers:
            if h.name == name:
                return h.value
        return None

    @classmethod
    def from_json(
        cls,
        doc: Any,
        key: bytes | str | None = None,
        timestamp_ms: int = 0,
        headers: Iterable[Header] = (),
    ) -> "Record":
        """A new record whose value is ``doc`` as compact JSON."""
        if isinstance(key, str):
            key = key.encode()
        return cls(
            value=dumps(doc), key=key, timestamp_ms=timestamp_ms, headers=list(headers)
        )


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every call: `json.loads` with a keyword argument builds a
# new decoder each time, a cost per record.
_DECODER = _json.JSONDecoder(parse_constant=_not_json)


def loads(data: bytes | str) -> Any:
    """JSON (UTF-8 when bytes) as strictly as weir's Rust side reads it:
    ``NaN`` and ``Infinity``, which Python's ``json`` accepts, are refused
    (``ValueError``, as for any other invalid JSON, or invalid UTF-8)."""
    if not isinstance(data, str):
        data = bytes(data).decode()
    return _DECODER.decode(data)


def dumps(doc: Any) -> bytes:
    """Compact JSON, UTF-8 (the form weir's sinks and Rust plugins write)."""
    return _json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Failure:
    """A record of the batch that could not be processed: its index and why."""

    index: int
    reason: str


@dataclass(slots=True)
class BatchResult:
    """What :meth:`Transform.process` returns: outputs and failures."""

    outputs: list = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Info:
    """What the host's ``describe`` reports."""

    name: str
    version: str
    state_version: int


class Invalid(Exception):
    """Raised from :meth:`Transform.transform`: this record is invalid, and
    the message is the reason the dead-letter sink records."""


class ConfigError(ValueError):
    """The configuration is refused; the message names the key."""


# Faults of the plugin itself, not of one record: they stop the batch (the
# host keeps the previous version) instead of dead-lettering every record.
_PLUGIN_FAULTS = (ImportError, MemoryError, RecursionError, SystemError)


class Transform:
    """Base class of a weir transform.

    Set ``name``, ``version`` and (for a stateful transform) ``state_version``
    as class attributes; override ``transform`` for record-by-record work or
    ``process`` for batch work, and ``on_tick``, ``snapshot``, ``restore``
    when the transform keeps state.
    """

    name: str = ""
    version: str = "0.0.0"
    state_version: int = 0

    def __init__(self, config: Mapping[str, Any]):
        """Builds the transform from its section of the host configuration
        (``{}`` when there is none). Raise to refuse the configuration."""
        self.config = config

    @classmethod
    def info(cls) -> Info:
        """Name, version and state format version; never needs an instance."""
        return Info(cls.name or _kebab(cls.__name__), cls.version, cls.state_version)

    def transform(self, record: Record) -> Record | Iterable[Record] | None:
        """One record in, zero, one or several out; ``raise Invalid(reason)``
        for a record that cannot be processed."""
        raise NotImplementedError(
            f"{type(self).__name__} must override transform(record) or process(records, now_ms)"
        )

    def process(self, records: Sequence[Record], now_ms: int) -> BatchResult:
        """One batch. ``now_ms`` is the host's wall clock, the only clock a
        transform has. By default calls :meth:`transform` for each record."""
        outputs: list = []
        failures: list[Failure] = []
        transform = self.transform
        for index, record in enumerate(records):
            try:
                out = transform(record)
            except Invalid as e:
                failures.append(Failure(index, str(e)))
                continue
            except _PLUGIN_FAULTS:
                raise
            except Exception as e:  # a bad record must not stop the pipeline
                failures.append(Failure(index, f"{type(e).__name__}: {e}"))
                continue
            if out is None:
                continue
            if isinstance(out, (list, tuple)):
                outputs.extend(out)
            elif hasattr(out, "value"):
                outputs.append(out)
            else:
                outputs.extend(out)
        return BatchResult(outputs, failures)

    def on_tick(self, now_ms: int) -> list[Record]:
        """Time-driven output (closed windows). ``now_ms`` is the largest
        s64 when a bounded input has ended: emit everything still open."""
        return []

    def snapshot(self) -> bytes:
        """The transform's state, for checkpoints and hot swaps."""
        return b""

    def restore(self, state: bytes) -> None:
        """Replaces the state with one ``snapshot`` wrote (same
        ``state_version``). Raise to refuse it."""
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state but was given {len(state)} bytes; "
                "override restore(state) or set state_version"
            )


def _kebab(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i:
            out.append("-")
        out.append(c.lower())
    return "".join(out)


def settings(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> SimpleNamespace:
    """The config merged over ``defaults``, as attributes (``max-speed-mph``
    becomes ``max_speed_mph``). An unknown key or a value of the wrong type
    raises :class:`ConfigError` naming the key, so typos are refused."""
    out = dict(defaults)
    for key, value in config.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(f"unknown key `{key}` (known keys: {known})")
        want = type(defaults[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if defaults[key] is not None and not isinstance(value, want):
            raise ConfigError(
                f"`{key}` must be {want.__name__}, not {type(value).__name__} ({value!r})"
            )
        out[key] = value
    return SimpleNamespace(**{k.replace("-", "_"): v for k, v in out.items()})


class _Log:
    """``weir_sdk.log.info("…")``: the host's log inside a component,
    Python's ``logging`` (logger ``weir.plugin``) natively."""

    def __init__(self) -> None:
        self._sink: Callable[[str, str], None] | None = None
        self._logger = _logging.getLogger("weir.plugin")

    def _emit(self, level: str, message: str) -> None:
        if self._sink is not None:
            self._sink(level, message)
        else:
            self._logger.log(_LEVELS[level], message)

    def trace(self, message: str) -> None:
        self._emit("trace", message)

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warn(self, message: str) -> None:
        self._emit("warn", message)

    def error(self, message: str) -> None:
        self._emit("error", message)


_LEVELS = {
    "trace": 5,
    "debug": _logging.DEBUG,
    "info": _logging.INFO,
    "warn": _logging.WARNING,
    "error": _logging.ERROR,
}

log = _Log()

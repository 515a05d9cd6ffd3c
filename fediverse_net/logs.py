"""Structured logs: one JSON line per request and per federation event."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import IO, Any

import orjson

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, _TS_FORMAT),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _AccessWriter:
    """Request log lines written straight to the configured handler's stream.

    A logging.LogRecord, its caller lookup, the formatter and one write + flush per request cost
    about a third of an actor GET (benchmark B1). The line is the one JsonFormatter would write;
    lines are batched and written once per event loop turn (one write under load, not 30).
    Used only while `configure()`'s handler is the sole root handler, so tests capturing logs or
    another logging setup still get ordinary records.
    """

    def __init__(self) -> None:
        self.handler: logging.StreamHandler[IO[str]] | None = None
        self.pending: list[bytes] = []
        self.scheduled = False
        self._second = -1
        self._ts = b""

    def usable(self, logger: logging.Logger) -> bool:
        handler = self.handler
        if (
            handler is None
            or logging.root.handlers != [handler]
            or handler.filters
            or logging.root.filters
            or not logger.isEnabledFor(logging.INFO)
        ):
            return False
        # Every logger between `logger` and the root must pass the record on untouched.
        current: logging.Logger | None = logger
        while current is not None and current is not logging.root:
            if current.handlers or current.filters or not current.propagate or current.disabled:
                return False
            current = current.parent
        return True

    def timestamp(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:  # the formatted time changes once a second: format it once
            self._second = second
            self._ts = time.strftime(_TS_FORMAT, time.localtime(now)).encode()
        return self._ts

    def write(self, line: bytes) -> None:
        self.pending.append(line)
        if self.scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        handler = self.handler
        if not self.pending or handler is None:
            self.pending.clear()
            return
        text = b"".join(self.pending).decode()
        self.pending.clear()
        with handler.lock or _NO_LOCK:
            try:
                handler.stream.write(text)
                handler.stream.flush()
            except (OSError, ValueError):  # a closed stderr must not break requests
                pass


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
_access = _AccessWriter()
atexit.register(_access.flush)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "tortoise", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _access.flush()
    _access.handler = handler


_RESERVED = frozenset({"ts", "level", "logger", "msg"})


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Log one federation event with its fields (activity id, type, host…), never whole payloads.

    With `configure()`'s handler alone, the line JsonFormatter would write is built here and
    written by the batching writer (the logging path was ~6% of an inbox POST, benchmark B3);
    otherwise (tests capturing logs, another setup) it is an ordinary record.
    """
    if _access.usable(logger) and _RESERVED.isdisjoint(fields):
        try:
            encoded = orjson.dumps(fields, default=str)
        except TypeError:  # e.g. an int beyond 64 bits: the logging path reports it, as before
            pass
        else:
            _access.write(_line(logger, message, encoded))
            return
    logger.info(message, extra={"fields": fields})


def _line(logger: logging.Logger, message: str, fields: bytes) -> bytes:
    """`{"ts","level","logger","msg", …fields}` + newline; `fields` is an encoded JSON object."""
    head = (
        b'{"ts":"'
        + _access.timestamp()
        + b'","level":"info","logger":'
        + orjson.dumps(logger.name)
        + b',"msg":'
        + orjson.dumps(message)
    )
    if fields == b"{}":
        return head + b"}\n"
    return head + b"," + fields[1:] + b"\n"


def request_line(logger: logging.Logger, method: str, path: str, status: int, ms: float) -> None:
    """The access log line of one request: `{"ts", "level", "logger", "msg": "request", method…}`."""
    if not _access.usable(logger):
        event(logger, "request", method=method, path=path, status=status, ms=ms)
        return
    _access.write(
        _line(logger, "request", orjson.dumps({"method": method, "path": path, "status": status, "ms": ms}))
    )

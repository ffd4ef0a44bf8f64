#!/usr/bin/env python3
"""Gantry model server: the process that runs one replica of a model deployment.

Standard library only; runs on Python 3.9 and later. It is started by the Gantry node
runtime inside the deployment's virtual environment:

    python3 -u gantry_model_server.py serve --package DIR [--host 127.0.0.1] [--port 0]
                                            [--kind published|development] [--max-connections N]
    python3 -u gantry_model_server.py check --package DIR

DIR holds the user's model package plus ``gantry-config.json``, written by the builder.

``serve`` binds its socket first, then imports and loads the model in a background thread
while ``GET /health`` answers 503 ``loading``; once loaded it answers ``POST /predict``
(a predict that returns a generator or async generator is streamed, one chunk per yielded
item; the model's optional ``preprocess``/``postprocess`` run around predict, as in Truss).
Limits: a bounded pool serves at most ``--max-connections`` connections (beyond it ``/health``
is still answered, predictions get 503); a predict takes its ``predict_concurrency`` slot before
its body is read; one running past ``runtime.predict_timeout_seconds`` is answered 504 while it
runs on in its slot; a result JSON cannot represent is a 500 naming its type.
Development replicas (``--kind development``) also answer ``POST /reload``, which imports
and loads a new package directory in this process and swaps it in (see the README).
With ``--secrets-stdin`` the server first reads ``{"secrets": {name: value}}`` from standard
input (the node writes it once and closes the pipe) and gives the model ``secrets`` with those
values; a ``/reload`` body may carry ``"secrets"`` for the new model. Values are never logged.
If the environment variable ``GANTRY_EVENTS_FD`` names an inherited file descriptor, the
server writes one JSON object per line to it:

    {"event": "listening", "port": N, "pid": P}      socket bound (before the model import)
    {"event": "listen_failed", "error": "..."}       could not bind; exit code 1
    {"event": "ready", "load_seconds": x}            model imported, built and loaded
    {"event": "import_failed", "error": "..."}       package/module problem; exit code 4
    {"event": "load_failed", "error": "Exc: msg"}    __init__ or load() raised; exit code 3
    {"event": "draining"}                            shutdown started (SIGTERM/SIGINT/parent gone)
    {"event": "reloaded", "load_seconds": x}         POST /reload swapped in new code (development)
    {"event": "reload_failed", "error": "..."}       POST /reload failed; the old code keeps serving

Exit codes: 0 after a clean drain, 1 cannot listen, 2 bad command line, 3 load failed,
4 import failed (also used by ``check`` for every failure).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import importlib
import importlib.util
import inspect
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

MAX_BODY_BYTES = 64 * 1024 * 1024
EXIT_OK = 0
EXIT_LISTEN_FAILED = 1
EXIT_LOAD_FAILED = 3
EXIT_IMPORT_FAILED = 4
CONFIG_FILE = "gantry-config.json"
IDLE_CONNECTION_TIMEOUT = 75.0  # seconds an idle keep-alive connection is kept open
DEFAULT_PREDICT_TIMEOUT_SECONDS = 600  # as src/shared/schemas.ts, for packages built before the key existed
MIN_MAX_CONNECTIONS = 256  # the node's keep-alive agent opens at most 256 sockets to a replica
OVERFLOW_WORKERS = 2  # threads answering connections beyond --max-connections (health, or 503)
OVERFLOW_WAITING = 32  # such connections queued for them; beyond, a connection is closed at once
OVERFLOW_READ_TIMEOUT = 5.0  # seconds an overflow connection gets to send its request
MAX_ERROR_CHARS = 2000  # keeps event lines under PIPE_BUF so each write is atomic
REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@+=-")  # as the gateway accepts


# --------------------------------------------------------------------------- logging


def log(message: str) -> None:
    """A human-readable line on stderr (stdout is left to the user's model)."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapses a message onto one line and bounds its length."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def describe_exception(exc: BaseException) -> str:
    """``ExcType: message`` on one line (just ``ExcType`` when the message is empty)."""
    message = str(exc)
    name = type(exc).__name__
    return one_line(name + ": " + message) if message else name


class Events:
    """The JSON-lines event channel to the parent (GANTRY_EVENTS_FD), if any."""

    def __init__(self) -> None:
        self._fd: Optional[int] = None
        self._lock = threading.Lock()
        raw = os.environ.pop("GANTRY_EVENTS_FD", None)
        if raw is None or raw.strip() == "":
            return
        try:
            fd = int(raw)
            os.fstat(fd)
        except (ValueError, OSError) as exc:
            log("ignoring GANTRY_EVENTS_FD=%r: %s" % (raw, exc))
            return
        try:
            # The user's subprocesses must not keep the parent's pipe open after we die.
            os.set_inheritable(fd, False)
        except OSError:
            pass
        self._fd = fd

    def emit(self, event: str, **fields: Any) -> None:
        if self._fd is None:
            return
        record = {"event": event}
        record.update(fields)
        data = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        with self._lock:
            try:
                while data:
                    written = os.write(self._fd, data)
                    data = data[written:]
            except OSError:
                # The parent closed its end: nobody is listening any more.
                self._fd = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None


# --------------------------------------------------------------------------- the package


class PackageError(Exception):
    """The package cannot be imported or does not have what it must; ``cause`` is one line."""

    def __init__(self, cause: str, show_traceback: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.show_traceback = show_traceback


def read_package_config(package_dir: str) -> Dict[str, Any]:
    if not os.path.isdir(package_dir):
        raise PackageError("package directory %s not found" % package_dir)
    path = os.path.join(package_dir, CONFIG_FILE)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        raise PackageError("%s not found in %s" % (CONFIG_FILE, package_dir))
    except (OSError, ValueError) as exc:
        raise PackageError("cannot read %s: %s" % (CONFIG_FILE, describe_exception(exc)))
    if not isinstance(config, dict):
        raise PackageError("%s is not a JSON object" % CONFIG_FILE)
    return config


def predict_concurrency(config: Dict[str, Any]) -> int:
    runtime = config.get("runtime")
    value = runtime.get("predict_concurrency", 1) if isinstance(runtime, dict) else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 1
    return value


def predict_timeout_seconds(config: Dict[str, Any]) -> float:
    """``runtime.predict_timeout_seconds`` (600 when the package predates the key)."""
    runtime = config.get("runtime")
    value = runtime.get("predict_timeout_seconds") if isinstance(runtime, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return float(DEFAULT_PREDICT_TIMEOUT_SECONDS)
    return float(value)


def default_max_connections(concurrency: int) -> int:
    """Connections served at once when the node passes no ``--max-connections``."""
    return max(MIN_MAX_CONNECTIONS, 4 * concurrency)


def _relative(package_dir: str, path: Optional[str]) -> str:
    if not path:
        return "<unknown file>"
    try:
        rel = os.path.relpath(os.path.abspath(path), package_dir)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def _import_cause(package_dir: str, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = _relative(package_dir, exc.filename)
        line = " line %d" % exc.lineno if exc.lineno else ""
        return one_line("%s in %s%s: %s" % (type(exc).__name__, where, line, exc.msg or "invalid syntax"))
    return describe_exception(exc)


class LoadedModule:
    """What ``import_model`` found: the user's class or bare functions."""

    def __init__(self, layout: str, module: Any, rel_path: str, target: Any, load_fn: Any = None) -> None:
        self.layout = layout
        self.module = module
        self.rel_path = rel_path
        self.target = target  # the class (layout "class") or the predict function ("bare")
        self.load_fn = load_fn  # the bare layout's optional load()

    def summary(self) -> str:
        if self.layout == "class":
            return "class %s in %s" % (self.target.__name__, self.rel_path)
        extra = " and load()" if self.load_fn is not None else ""
        return "function predict%s in %s" % (extra, self.rel_path)


def _exec_module(package_dir: str, file_path: str, rel_path: str, module_name: str, search_dirs: Tuple[str, ...]) -> Any:
    if not os.path.isfile(file_path):
        raise PackageError("model file %s not found" % rel_path)
    for directory in reversed(search_dirs):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(module_name, file_path)
    if spec is None or spec.loader is None:
        raise PackageError("cannot import %s" % rel_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses, pickle and typing look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import time is a package error too
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PackageError(_import_cause(package_dir, exc), show_traceback=True) from exc
    return module


def import_model(package_dir: str, config: Dict[str, Any], name_suffix: str = "") -> LoadedModule:
    """Imports the user's module and checks its shape; never instantiates or loads.
    ``name_suffix`` makes the module name unique (each reload imports under a fresh name)."""
    layout = config.get("layout", "class")
    if layout == "bare":
        rel_path = "predict.py"
        module = _exec_module(
            package_dir, os.path.join(package_dir, rel_path), rel_path, "gantry_user_predict" + name_suffix, (package_dir,)
        )
        predict_fn = getattr(module, "predict", None)
        if predict_fn is None:
            raise PackageError("%s has no function named predict" % rel_path)
        if not callable(predict_fn):
            raise PackageError("%s: predict is not callable (it is a %s)" % (rel_path, type(predict_fn).__name__))
        load_fn = getattr(module, "load", None)
        if load_fn is not None and not callable(load_fn):
            raise PackageError("%s: load is not callable (it is a %s)" % (rel_path, type(load_fn).__name__))
        return LoadedModule("bare", module, rel_path, predict_fn, load_fn)
    if layout != "class":
        raise PackageError("%s: unknown layout %r (expected \"class\" or \"bare\")" % (CONFIG_FILE, layout))

    module_dir = str(config.get("model_module_dir") or "model")
    filename = str(config.get("model_class_filename") or "model.py")
    class_name = str(config.get("model_class_name") or "Model")
    rel_path = (module_dir.rstrip("/") + "/" + filename).replace(os.sep, "/")
    abs_module_dir = os.path.join(package_dir, module_dir)
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in os.path.splitext(filename)[0])
    module = _exec_module(
        package_dir,
        os.path.join(abs_module_dir, filename),
        rel_path,
        "gantry_user_model_" + stem + name_suffix,
        (abs_module_dir, package_dir),
    )
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PackageError("%s has no class named %s" % (rel_path, class_name))
    if not callable(cls):
        raise PackageError("%s: %s is not a class (it is a %s)" % (rel_path, class_name, type(cls).__name__))
    predict_attr = getattr(cls, "predict", None)
    if predict_attr is None or not callable(predict_attr):
        raise PackageError("%s: class %s has no predict method" % (rel_path, class_name))
    return LoadedModule("class", module, rel_path, cls)


def _accepted_kwargs(fn: Any, available: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``available`` that ``fn``'s signature accepts by keyword."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    params = sig.parameters.values()
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(available)
    names = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {k: v for k, v in available.items() if k in names}


def _named_kwargs(fn: Any, available: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``available`` that ``fn`` names as parameters (``**kwargs`` does not count)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    names = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {k: v for k, v in available.items() if k in names}


class SecretsError(Exception):
    """Secrets handed over by the node that cannot be used (the message never holds a value)."""


def parse_secrets(value: Any) -> Dict[str, str]:
    """A ``{name: value}`` object of strings, checked; the error names no value."""
    if not isinstance(value, dict):
        raise SecretsError('"secrets" must be an object of strings')
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise SecretsError("secret %r must be a string" % (key,))
    return dict(value)


def read_secrets(stream: Any) -> Dict[str, str]:
    """Reads ``{"secrets": {name: value}}`` from ``stream`` (the node writes it once and closes it)."""
    raw = stream.read()
    if not raw or not raw.strip():
        return {}
    try:
        message = json.loads(raw)
    except ValueError:
        raise SecretsError("the secrets on standard input are not valid JSON") from None
    if not isinstance(message, dict):
        raise SecretsError('the secrets on standard input must be {"secrets": {...}}')
    return parse_secrets(message.get("secrets", {}))


# --------------------------------------------------------------------------- running user code


class AsyncRunner:
    """One asyncio event loop in a daemon thread; coroutines from predict/load run there."""

    def __init__(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=run, name="gantry-asyncio", daemon=True).start()
                started.wait()
                self._loop = loop
            return self._loop

    def resolve(self, value: Any) -> Any:
        """Awaits ``value`` on the loop if it is awaitable, else returns it as is."""
        if not inspect.isawaitable(value):
            return value
        loop = self._ensure()

        async def wait_for_it() -> Any:
            return await value

        return asyncio.run_coroutine_threadsafe(wait_for_it(), loop).result()

    def next_item(self, agen: Any) -> Tuple[bool, Any]:
        """``(False, item)`` for the async generator's next item, ``(True, None)`` at its end;
        the step runs on the loop, so other requests' coroutines keep running meanwhile."""
        loop = self._ensure()

        async def step() -> Tuple[bool, Any]:
            try:
                return False, await agen.__anext__()
            except StopAsyncIteration:
                return True, None

        return asyncio.run_coroutine_threadsafe(step(), loop).result()

    def close_generator(self, agen: Any) -> None:
        """Runs the async generator's ``aclose()`` on the loop (its ``finally`` blocks run)."""
        loop = self._ensure()
        asyncio.run_coroutine_threadsafe(agen.aclose(), loop).result(timeout=30)


def is_stream(value: Any) -> bool:
    """Whether predict's result is streamed: a generator or an async generator."""
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


class ModelStream:
    """The generator (or async generator) predict returned, read one item at a time."""

    def __init__(self, source: Any, runner: AsyncRunner) -> None:
        self.source = source
        self.runner = runner
        self.is_async = inspect.isasyncgen(source)

    def next_item(self) -> Tuple[bool, Any]:
        """``(False, item)`` or ``(True, None)`` once exhausted; raises what the model raised."""
        if self.is_async:
            return self.runner.next_item(self.source)
        try:
            return False, next(self.source)
        except StopIteration:
            return True, None

    def close(self) -> None:
        """Closes the generator (GeneratorExit at its ``yield``); a failure to close is logged."""
        try:
            if self.is_async:
                self.runner.close_generator(self.source)
            else:
                self.source.close()
        except BaseException as exc:  # noqa: BLE001 - a generator that refuses to close
            log("closing the stream's generator failed: %s" % describe_exception(exc))


def _hook(instance: Any, name: str) -> Optional[Callable[[Any], Any]]:
    """The model's optional ``preprocess``/``postprocess`` method, if it defines one."""
    method = getattr(instance, name, None)
    return method if callable(method) else None


class ModelRunner:
    """The instantiated model and how to call its predict."""

    def __init__(self, loaded: LoadedModule, package_dir: str, config: Dict[str, Any], runner: AsyncRunner,
                 secrets: Optional[Dict[str, str]] = None) -> None:
        self.loaded = loaded
        self.package_dir = package_dir
        self.config = config
        self.async_runner = runner
        # The values of the secrets config.yaml declares (from the node, through a pipe): never logged.
        self.secrets: Dict[str, str] = dict(secrets or {})
        # How long a predict may run before its request is answered 504 (the predict runs on).
        self.timeout_seconds = predict_timeout_seconds(config)
        self._predict: Optional[Callable[[Any], Any]] = None
        self._preprocess: Optional[Callable[[Any], Any]] = None
        self._postprocess: Optional[Callable[[Any], Any]] = None

    def load(self) -> None:
        data_dir = os.path.abspath(os.path.join(self.package_dir, str(self.config.get("data_dir") or "data")))
        available = {"config": self.config, "data_dir": data_dir, "secrets": dict(self.secrets)}
        if self.loaded.layout == "class":
            cls = self.loaded.target
            instance = cls(**_accepted_kwargs(cls, available))
            load_fn = getattr(instance, "load", None)
            if callable(load_fn):
                # load() gets the secrets too when it names a ``secrets`` parameter (Truss's takes none).
                self.async_runner.resolve(load_fn(**_named_kwargs(load_fn, {"secrets": available["secrets"]})))
            self._predict = instance.predict
            self._preprocess = _hook(instance, "preprocess")
            self._postprocess = _hook(instance, "postprocess")
        else:
            if self.loaded.load_fn is not None:
                load_fn = self.loaded.load_fn
                self.async_runner.resolve(load_fn(**_accepted_kwargs(load_fn, available)))
            self._predict = self.loaded.target

    def predict(self, model_input: Any) -> Any:
        """predict's result: a value, or a generator / async generator to stream."""
        assert self._predict is not None
        return self.async_runner.resolve(self._predict(model_input))

    def preprocess(self, model_input: Any) -> Any:
        """The model's ``preprocess(model_input)`` (Truss's hook), or the input as is."""
        if self._preprocess is None:
            return model_input
        return self.async_runner.resolve(self._preprocess(model_input))

    @property
    def has_postprocess(self) -> bool:
        return self._postprocess is not None

    def postprocess(self, output: Any) -> Any:
        """The model's ``postprocess(output)`` (Truss's hook), or the output as is."""
        if self._postprocess is None:
            return output
        return self.async_runner.resolve(self._postprocess(output))


class UnserializableResult(Exception):
    """A result (or a yielded item) holding a value JSON cannot represent; the message names its type."""


def _a(type_name: str) -> str:
    return ("an " if type_name[:1].lower() in "aeiou" else "a ") + type_name


def _json_default(obj: Any) -> Any:
    """numpy arrays and scalars (``.tolist()`` / ``.item()``); anything else is refused."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError("not JSON-serializable: %s" % type(obj).__name__)


def _where(path: list) -> str:
    return "".join("[%s]" % json.dumps(step) if isinstance(step, str) else "[%d]" % step for step in path)


def _sanitize(obj: Any, what: str, path: list) -> Any:
    """``obj`` as strict JSON values (non-finite floats become null, numpy values plain ones);
    raises UnserializableResult naming the first value that has no JSON form and where it is."""
    if len(path) > 200:
        raise UnserializableResult("%s a value nested more than 200 levels deep" % what)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, bool, int, float)) and key is not None:
                try:
                    key = _json_default(key)
                except TypeError:
                    raise UnserializableResult("%s a dict with a key of type %s%s, which is not JSON-serializable"
                                               % (what, type(key).__name__, " at " + _where(path) if path else ""))
            if not isinstance(key, str):
                key = json.dumps(key)
            out[key] = _sanitize(value, what, path + [key])
        return out
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v, what, path + [i]) for i, v in enumerate(obj)]
    try:
        converted = _json_default(obj)
    except TypeError:
        name = type(obj).__name__
        if not path:
            raise UnserializableResult("%s %s, which is not JSON-serializable" % (what, _a(name)))
        raise UnserializableResult("%s a value holding %s at %s, which is not JSON-serializable" % (what, _a(name), _where(path)))
    return _sanitize(converted, what, path)


def encode_result(result: Any, what: str = "predict returned") -> bytes:
    """``result`` as strict JSON; raises UnserializableResult (``what`` starts its message)
    when it holds something JSON cannot represent (a set, an object...)."""
    try:
        text = json.dumps(result, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(_sanitize(result, what, []), allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


STREAM_CONTENT_TYPE = "application/octet-stream"  # what Truss sends for a streamed predict


def encode_chunk(item: Any) -> bytes:
    """One yielded item as it goes on the wire: ``bytes`` as is, ``str`` as UTF-8, anything
    else (a dict, a list, a number) as one JSON line."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return encode_result(item, "predict yielded") + b"\n"


class ModelDefinitionError(Exception):
    """The model's methods do not fit together (a streaming predict with a postprocess)."""


def user_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` from the first frame of the user's code on
    (this file's, asyncio's and concurrent.futures' frames in front are left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        name = tb.tb_frame.f_code.co_filename
        ours = name == __file__ or os.sep + "asyncio" + os.sep in name or os.sep + "concurrent" + os.sep in name
        if not ours:
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


# --------------------------------------------------------------------------- HTTP


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Gate:
    """At most ``limit`` predictions at once on one model. A reload retires the old model's
    gate: the requests still waiting on it go to the new model (and its new gate) instead,
    while the predictions already running on the old model finish there."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._active = 0
        self._retired = False

    def acquire(self) -> bool:
        """Waits for a slot; False if the gate was retired (take the current one and retry)."""
        with self._cond:
            while not self._retired and self._active >= self.limit:
                self._cond.wait()
            if self._retired:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify()

    def retire(self) -> None:
        with self._cond:
            self._retired = True
            self._cond.notify_all()


class Watchdog:
    """One thread that calls each armed callback once its deadline passes, unless it was
    disarmed first (a request that answered in time). Arming costs no thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list = []  # [deadline, sequence, callback or None once disarmed]
        self._sequence = 0
        self._disarmed = 0
        self._thread: Optional[threading.Thread] = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> list:
        """Calls ``callback`` in ``seconds`` unless ``disarm`` gets the returned entry first."""
        with self._cond:
            self._sequence += 1
            entry = [time.monotonic() + seconds, self._sequence, callback]
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gantry-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                # Only a new earliest deadline wakes the thread: with one timeout per model that is
                # rare (disarmed entries stay ahead until purged), so a request costs no thread switch.
                self._cond.notify()
            return entry

    def disarm(self, entry: list) -> None:
        with self._cond:
            if entry[2] is None:
                return
            entry[2] = None
            self._disarmed += 1
            # Disarmed entries are dropped in bulk, so that the heap stays as small as what is armed.
            if self._disarmed > 64 and self._disarmed * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._disarmed = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                        self._disarmed -= 1
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        entry = heapq.heappop(self._heap)
                        callback = entry[2]
                        entry[2] = None
                        break
                    self._cond.wait(delay)
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - a failed callback must not stop the others
                log("a predict timeout could not be answered: %s" % describe_exception(exc))


class Exchange:
    """One predict request's answer: given once, by the handler or by its timeout."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase = "running"  # running -> answered | timed_out
        self.entry: list = [0.0, 0, None]


class State:
    """What the handlers share: readiness, in-flight accounting, the model and its gate."""

    def __init__(self, concurrency: int, kind: str) -> None:
        self.kind = kind
        self.watchdog = Watchdog()
        self.status = "loading"  # loading -> ready; draining at shutdown
        self.model: Optional[ModelRunner] = None
        self.gate = Gate(concurrency)
        self.cond = threading.Condition()
        self.inflight = 0
        self.draining = False
        self.connections: set = set()

    def enter(self) -> bool:
        """Counts a request in unless draining started; a False answer means refuse it."""
        with self.cond:
            if self.draining:
                return False
            self.inflight += 1
            return True

    def leave(self) -> None:
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def current(self) -> Tuple[Optional[ModelRunner], Gate]:
        """The active model and its gate, read together (a reload swaps both at once)."""
        with self.cond:
            return self.model, self.gate

    def swap(self, model: ModelRunner, concurrency: int) -> None:
        """Makes ``model`` the active one; requests not yet admitted by the old gate move over."""
        with self.cond:
            old_gate = self.gate
            self.model = model
            self.gate = Gate(concurrency)
        old_gate.retire()

    def start_draining(self) -> None:
        with self.cond:
            self.draining = True
            self.status = "draining"

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.inflight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.5))
            return True


# --------------------------------------------------------------------------- live reload


class _Tree:
    """Answers "does this path lie inside ``root``?", comparing absolute and real paths (the
    real path of a file's directory is cached: a scan of sys.modules asks thousands of times)."""

    def __init__(self, root: str) -> None:
        self._prefixes = []
        for base in {os.path.abspath(root), os.path.realpath(root)}:
            self._prefixes.append((base, base.rstrip(os.sep) + os.sep))
        self._real_dirs: Dict[str, str] = {}

    def _under(self, path: str) -> bool:
        return any(path == base or path.startswith(prefix) for base, prefix in self._prefixes)

    def contains(self, path: Any) -> bool:
        if not isinstance(path, str) or not path:
            return False
        try:
            path = os.path.abspath(path)
            if self._under(path):
                return True
            directory, name = os.path.split(path)
            real = self._real_dirs.get(directory)
            if real is None:
                real = self._real_dirs[directory] = os.path.realpath(directory)
            return self._under(os.path.join(real, name) if name else real)
        except (OSError, ValueError):
            return False

    def contains_module(self, module: Any) -> bool:
        """Whether a module was loaded from the tree: its ``__file__``, or for a (namespace)
        package any of its ``__path__`` entries."""
        try:
            if self.contains(getattr(module, "__file__", None)):
                return True
            search = getattr(module, "__path__", None)
            return search is not None and any(self.contains(entry) for entry in list(search))
        except Exception:  # noqa: BLE001 - odd objects in sys.modules (lazy proxies...)
            return False

    def modules(self) -> Dict[str, Any]:
        """The entries of sys.modules loaded from the tree."""
        return {name: module for name, module in list(sys.modules.items()) if self.contains_module(module)}

    def forget_path_entries(self) -> None:
        """Removes the tree's directories from sys.path and sys.path_importer_cache."""
        sys.path[:] = [entry for entry in sys.path if not self.contains(entry)]
        for entry in list(sys.path_importer_cache):
            if self.contains(entry):
                sys.path_importer_cache.pop(entry, None)


def _config_environment(config: Dict[str, Any]) -> Dict[str, str]:
    env = config.get("environment_variables")
    if not isinstance(env, dict):
        return {}
    return {str(k): str(v) for k, v in env.items() if v is not None}


def _getcwd() -> Optional[str]:
    try:
        return os.getcwd()
    except OSError:  # the working directory was deleted
        return None


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without this file's and importlib's frames in front."""
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__ or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class ReloadRequestError(Exception):
    """A /reload body that is unusable (answered 400)."""


def parse_reload_request(request: Any) -> Tuple[str, Optional[Dict[str, str]]]:
    """``(package_dir, environment_variables or None)`` from a /reload body."""
    if not isinstance(request, dict):
        raise ReloadRequestError('request body must be a JSON object like {"package": "/absolute/path"}')
    package = request.get("package")
    if not isinstance(package, str) or not package:
        raise ReloadRequestError('request body has no "package" (the absolute path of the new package directory)')
    if "\0" in package or not os.path.isabs(package):
        raise ReloadRequestError("package must be an absolute path: %r" % package)
    package = os.path.normpath(package)
    if not os.path.isdir(package):
        raise ReloadRequestError("package directory %s not found" % package)
    env = request.get("environment_variables")
    if env is None:
        return package, None
    if not isinstance(env, dict):
        raise ReloadRequestError('"environment_variables" must be an object of strings')
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise ReloadRequestError("invalid environment variable name %r" % key)
        if not isinstance(value, str) or "\0" in value:
            raise ReloadRequestError("environment variable %s must be a string" % key)
    return package, dict(env)


class Reloader:
    """``POST /reload`` on development replicas: imports and loads a new package directory in
    this process while the old model keeps serving, then swaps the two. One at a time."""

    def __init__(self, state: State, events: Events, async_runner: AsyncRunner, environment: Dict[str, str]) -> None:
        self.state = state
        self.events = events
        self.async_runner = async_runner
        self.environment = dict(environment)  # the model's environment_variables now applied
        self._lock = threading.Lock()
        self._generation = 0

    def reload(self, package_dir: str, environment: Optional[Dict[str, str]],
               secrets: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, Any]]:
        """(HTTP status, answer): 200 swapped, 422 the new package failed (old one kept),
        503 draining or still loading. ``secrets`` (None: the current model's) go to the new model."""
        with self._lock:
            if self.state.draining:
                return 503, {"error": "replica is draining"}
            old, _ = self.state.current()
            if old is None:
                return 503, {"error": "model is loading"}
            return self._reload(old, package_dir, environment, old.secrets if secrets is None else secrets)

    def _reload(self, old: ModelRunner, package_dir: str, environment: Optional[Dict[str, str]],
                secrets: Dict[str, str]) -> Tuple[int, Dict[str, Any]]:
        started = time.monotonic()
        self._generation += 1
        old_tree = _Tree(old.package_dir)
        log("reloading from %s…" % package_dir)
        # Everything a failed reload must put back for the old model to keep working.
        saved_modules = old_tree.modules()
        saved_path = list(sys.path)
        saved_cwd = _getcwd()
        saved_env: Dict[str, Optional[str]] = {}
        try:
            config = read_package_config(package_dir)
            new_env = environment if environment is not None else _config_environment(config)
            touched = set(self.environment) | set(new_env)
            saved_env = {key: os.environ.get(key) for key in touched}
            self._apply_environment(new_env)
            for name, module in saved_modules.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
            old_tree.forget_path_entries()
            if saved_cwd is not None and os.path.realpath(saved_cwd) == os.path.realpath(old.package_dir):
                os.chdir(package_dir)  # the runtime starts replicas in their package directory
            importlib.invalidate_caches()
            loaded = import_model(package_dir, config, name_suffix="_r%d" % self._generation)
            runner = ModelRunner(loaded, package_dir, config, self.async_runner, secrets)
            runner.load()
        except BaseException as exc:  # noqa: BLE001 - SystemExit in the new code is a failed reload too
            self._roll_back(package_dir, saved_modules, saved_path, saved_cwd, saved_env)
            if isinstance(exc, PackageError):
                cause = exc.cause
                original = exc.__cause__ if exc.show_traceback else None
                formatted = _user_traceback(original) if original is not None else ""
            else:
                cause = describe_exception(exc)
                formatted = _user_traceback(exc)
            log("reload from %s failed, the previous model keeps serving: %s%s"
                % (package_dir, cause, ("\n" + formatted.rstrip()) if formatted else ""))
            self.events.emit("reload_failed", error=cause)
            return 422, {"reloaded": False, "error": cause, "traceback": formatted}
        elapsed = time.monotonic() - started
        concurrency = predict_concurrency(config)
        self.state.swap(runner, concurrency)
        self.environment = new_env
        log("reloaded in %.2fs (%s from %s, predict_concurrency %d)"
            % (elapsed, loaded.summary(), package_dir, concurrency))
        self.events.emit("reloaded", load_seconds=round(elapsed, 3))
        return 200, {"reloaded": True, "load_seconds": round(elapsed, 3)}

    def _apply_environment(self, new_env: Dict[str, str]) -> None:
        """Sets the new model's variables and removes the previous model's that are gone."""
        for key in self.environment:
            if key not in new_env:
                os.environ.pop(key, None)
        for key, value in new_env.items():
            os.environ[key] = value

    def _roll_back(self, package_dir: str, saved_modules: Dict[str, Any], saved_path: list,
                   saved_cwd: Optional[str], saved_env: Dict[str, Optional[str]]) -> None:
        new_tree = _Tree(package_dir)
        for name in new_tree.modules():
            if name not in saved_modules:
                sys.modules.pop(name, None)
        sys.modules.update(saved_modules)
        new_tree.forget_path_entries()
        sys.path[:] = saved_path
        if saved_cwd is not None and _getcwd() != saved_cwd:
            try:
                os.chdir(saved_cwd)
            except OSError:
                pass
        for key, value in saved_env.items():
            try:
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            except ValueError:  # a name os.environ refuses never got set in the first place
                pass
        importlib.invalidate_caches()


def make_handler(state: State, reloader: Optional[Reloader] = None) -> type:
    """The request handler; ``reloader`` (development replicas only) enables ``POST /reload``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body until the client's delayed ACK, adding ~40 ms to every answer.
        disable_nagle_algorithm = True
        server_version = "gantry-model-server/1"
        timeout = IDLE_CONNECTION_TIMEOUT

        # --- plumbing

        def version_string(self) -> str:
            return self.server_version

        def setup(self) -> None:
            super().setup()
            with state.cond:
                state.connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with state.cond:
                    state.connections.discard(self.connection)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass  # no access log; predict failures are logged on their own

        def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
            # Malformed requests (bad request line, header too long...): JSON, then close.
            self.close_connection = True
            if code == 501:  # a method http.server has no do_X for: same as any unknown route
                code, message = 404, "not found"
            try:
                self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]}, close=True)
            except OSError:
                pass

        def _may_answer(self) -> bool:
            """False when this request's predict timed out and was answered 504 already."""
            exchange: Optional[Exchange] = getattr(self, "_exchange", None)
            if exchange is None:
                return True
            self._exchange = None
            with exchange.lock:
                if exchange.phase == "timed_out":
                    self.close_connection = True
                    return False
                exchange.phase = "answered"
            state.watchdog.disarm(exchange.entry)
            return True

        def _send_json(self, status: int, payload: Any = None, body: Optional[bytes] = None, close: bool = False) -> None:
            if not self._may_answer():
                return
            if body is None:
                body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            if state.draining:
                close = True
            if close:
                self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
            try:
                if self.command == "HEAD":
                    self.end_headers()
                else:
                    # Head and body in one write: one segment, one read for the client (a proxy
                    # in front answers with one write too, instead of one per segment).
                    self._headers_buffer.append(b"\r\n" + body)
                    self.flush_headers()
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The client hung up (a health probe that timed out): nothing to answer.
                self.close_connection = True

        def _has_body(self) -> bool:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return True
            try:
                return int(self.headers.get("Content-Length") or 0) > 0
            except ValueError:
                return True

        def _declared_length(self) -> Optional[int]:
            """Content-Length, or None for chunked; raises BodyError when it is unusable."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return None
            raw = self.headers.get("Content-Length")
            if raw is None:
                return 0
            try:
                length = int(raw.strip())
            except ValueError:
                raise BodyError(400, "invalid Content-Length header: %r" % raw)
            if length < 0:
                raise BodyError(400, "invalid Content-Length header: %r" % raw)
            if length > MAX_BODY_BYTES:
                raise BodyError(413, "request body is %d bytes; the limit is %d bytes (64 MiB)" % (length, MAX_BODY_BYTES))
            return length

        def _read_body(self) -> bytes:
            length = self._declared_length()
            if length is not None:
                data = self.rfile.read(length) if length else b""
                if len(data) != length:
                    raise BodyError(400, "request body ended after %d of %d bytes" % (len(data), length))
                return data
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BodyError(400, "chunked request body ended early")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "malformed chunked request body")
                if size == 0:
                    while True:  # trailers, up to the blank line
                        trailer = self.rfile.readline(8192)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise BodyError(413, "request body is over the limit of %d bytes (64 MiB)" % MAX_BODY_BYTES)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise BodyError(400, "chunked request body ended early")
                chunks.append(chunk)
                self.rfile.readline(16)  # the CRLF after each chunk

        def _discard_rest(self) -> None:
            """After refusing a body we did not read: swallow what the client still sends
            (briefly) so that closing the socket does not reset it before it reads our answer."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                return
            deadline = time.monotonic() + 2.0
            swallowed = 0
            try:
                while swallowed < 2 * MAX_BODY_BYTES and time.monotonic() < deadline:
                    self.connection.settimeout(max(0.05, deadline - time.monotonic()))
                    data = self.connection.recv(1 << 16)
                    if not data:
                        break
                    swallowed += len(data)
            except OSError:
                pass

        def _route(self) -> str:
            """The route of this request: "predict", "reload", "health" or "" (not found)."""
            path = self.path.split("?", 1)[0]
            if self.command == "POST" and path == "/predict":
                return "predict"
            if self.command == "POST" and path == "/reload" and reloader is not None:
                return "reload"
            if self.command in ("GET", "HEAD") and path == "/health":
                return "health"
            return ""

        def handle_expect_100(self) -> bool:
            if self._route() in ("predict", "reload"):
                try:
                    self._declared_length()
                except BodyError as exc:
                    self._send_json(exc.status, {"error": exc.message}, close=True)
                    return False
            return super().handle_expect_100()

        def _not_found(self) -> None:
            self._send_json(404, {"error": "not found"}, close=self._has_body())

        # --- routes

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/health":
                status = state.status
                self._send_json(200 if status == "ready" else 503, {"status": status})
            else:
                self._not_found()

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:
            route = self._route()
            if not route:
                self._not_found()
                return
            if not state.enter():
                self._send_json(503, {"error": "replica is draining"}, close=True)
                return
            try:
                if route == "reload":
                    self._reload()
                else:
                    self._predict()
            finally:
                state.leave()

        def _body(self) -> Optional[bytes]:
            """The request body, or None once an error has been answered."""
            try:
                return self._read_body()
            except BodyError as exc:
                self._send_json(exc.status, {"error": exc.message}, close=True)
                if exc.status == 413:
                    self._discard_rest()
                return None
            except OSError:  # the client went away (or stalled past the timeout) mid-body
                self.close_connection = True
                return None

        def _refuse_unread(self, status: int, message: str) -> None:
            """Answers ``status`` without reading the body, then closes the connection."""
            self._send_json(status, {"error": message}, close=True)
            if self._has_body():
                self._discard_rest()

        def _take_slot(self) -> Tuple[ModelRunner, Gate]:
            """Waits for a predict slot on the active model (a reload while waiting moves the
            request to the new model and its gate)."""
            while True:
                model, gate = state.current()
                assert model is not None
                if gate.acquire():
                    return model, gate

        def _predict(self) -> None:
            if state.status == "loading" or state.model is None:
                self._refuse_unread(503, "model is loading")
                return
            # The slot is taken before the body is read: at most predict_concurrency bodies
            # are in memory at once, however many connections send one.
            model, gate = self._take_slot()
            held = [True]

            def release() -> None:
                if held[0]:
                    held[0] = False
                    gate.release()

            try:
                raw = self._body()
                if raw is None:
                    return
                try:
                    model_input = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    self._send_json(400, {"error": "request body is not valid JSON: %s" % one_line(str(exc))})
                    return
                del raw
                seconds = model.timeout_seconds
                exchange = Exchange()
                exchange.entry = state.watchdog.arm(seconds, lambda: self._time_out(exchange, seconds))
                self._exchange = exchange
                started = time.monotonic()
                try:
                    self._run_predict(model, model_input, release)
                finally:
                    self._exchange = None
                    state.watchdog.disarm(exchange.entry)
                    if exchange.phase == "timed_out":
                        self.close_connection = True
                        log("the predict that timed out ended after %.1fs; its answer was dropped and its slot is free%s"
                            % (time.monotonic() - started, self._request_tag()))
            finally:
                release()  # only now, when predict has really returned (or the stream ended)

        def _time_out(self, exchange: Exchange, seconds: float) -> None:
            """Answers 504 on the watchdog's thread while predict keeps running on this one."""
            with exchange.lock:
                if exchange.phase != "running":
                    return
                exchange.phase = "timed_out"
            message = "predict did not finish within predict_timeout_seconds (%g s)" % seconds
            log("%s%s: answered 504; it keeps running (a thread cannot be stopped) and holds its slot until it ends"
                % (message, self._request_tag()))
            body = json.dumps({"error": message}, separators=(",", ":")).encode("utf-8")
            head = ("HTTP/1.1 504 Gateway Timeout\r\nServer: %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\nConnection: close\r\n\r\n"
                    % (self.server_version, self.date_time_string(), len(body))).encode("ascii")
            try:
                self.connection.sendall(head + body)
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the client left already

        def _run_predict(self, model: ModelRunner, model_input: Any, release: Callable[[], None]) -> None:
            try:
                prepared = model.preprocess(model_input)
            except BaseException as exc:  # noqa: BLE001
                self._predict_failed(exc, "preprocess")
                return
            try:
                result = model.predict(prepared)
            except BaseException as exc:  # noqa: BLE001 - even SystemExit becomes a 500
                release()
                self._predict_failed(exc)
                return
            if is_stream(result):
                # The slot stays taken until the stream ends (or its client goes away).
                stream = ModelStream(result, model.async_runner)
                if model.has_postprocess:
                    stream.close()
                    self._predict_failed(ModelDefinitionError(
                        "predict returned a generator (streaming) and the model defines postprocess: "
                        "Truss does not allow both; do all processing in predict"))
                    return
                self._send_stream(stream)
                return
            release()
            try:
                result = model.postprocess(result)
            except BaseException as exc:  # noqa: BLE001
                self._predict_failed(exc, "postprocess")
                return
            try:
                body = encode_result(result, "postprocess returned" if model.has_postprocess else "predict returned")
            except UnserializableResult as exc:
                log("%s%s" % (exc, self._request_tag()))
                self._send_json(500, {"error": str(exc)})
                return
            self._send_json(200, body=body)

        def _write_piece(self, data: bytes, chunked: bool) -> None:
            """Sends one piece of a stream at once (a chunk, or raw bytes on HTTP/1.0)."""
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()

        def _send_stream(self, stream: ModelStream) -> None:
            """Answers 200 with each item the model yields sent as it comes (chunked transfer).
            A model that raises mid-stream gets its error as the last line, then the stream ends
            properly; a client that goes away closes the generator."""
            if not self._may_answer():
                stream.close()
                return
            chunked = self.request_version != "HTTP/1.0"
            self.send_response(200)
            self.send_header("Content-Type", STREAM_CONTENT_TYPE)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if state.draining or not chunked:
                self.close_connection = True
                self.send_header("Connection", "close")
            sent = 0
            last = b"\n"
            # A slow reader (the gateway holds back while its client drains) is not a gone client:
            # no write timeout while streaming; a client that leaves closes the connection.
            self.connection.settimeout(None)
            try:
                self.end_headers()
                self.wfile.flush()
                while True:
                    try:
                        done, item = stream.next_item()
                        if done:
                            break
                        data = encode_chunk(item)
                    except BaseException as exc:  # noqa: BLE001 - the model raised mid-stream
                        formatted = user_traceback(exc)
                        cause = str(exc) if isinstance(exc, UnserializableResult) else describe_exception(exc)
                        log("predict raised %s mid-stream after %d chunk(s); the error is the stream's last line%s\n%s"
                            % (cause, sent, self._request_tag(), formatted.rstrip()))
                        payload: Dict[str, Any] = {"error": cause}
                        if state.kind == "development":
                            payload["traceback"] = formatted
                        line = json.dumps(payload, separators=(",", ":")).encode("utf-8") + b"\n"
                        self._write_piece(line if last.endswith(b"\n") else b"\n" + line, chunked)
                        stream.close()
                        break
                    if not data:
                        continue  # an empty chunk would end the stream
                    self._write_piece(data, chunked)
                    sent += 1
                    last = data
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
            except OSError as exc:  # the client went away: stop the model's generator
                self.close_connection = True
                log("the client went away after %d chunk(s) of a stream (%s); closing the generator%s"
                    % (sent, describe_exception(exc), self._request_tag()))
                stream.close()
            finally:
                if not self.close_connection:
                    self.connection.settimeout(self.timeout)

        def _reload(self) -> None:
            assert reloader is not None
            raw = self._body()
            if raw is None:
                return
            if state.status == "loading" or state.model is None:
                self._send_json(503, {"error": "model is loading"})
                return
            try:
                request = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self._send_json(400, {"reloaded": False, "error": "request body is not valid JSON: %s" % one_line(str(exc))})
                return
            try:
                package_dir, environment = parse_reload_request(request)
                secrets = parse_secrets(request["secrets"]) if "secrets" in request else None
            except (ReloadRequestError, SecretsError) as exc:
                self._send_json(400, {"reloaded": False, "error": one_line(str(exc))})
                return
            status, payload = reloader.reload(package_dir, environment, secrets)
            self._send_json(status, payload)

        def _request_tag(self) -> str:
            """` (request <id>)` for a log line about this request, from the X-Request-Id the
            gateway sets (bounded and checked there; checked again here), else nothing."""
            request_id = self.headers.get("X-Request-Id", "")
            if request_id and len(request_id) <= 128 and REQUEST_ID_CHARS.issuperset(request_id):
                return " (request %s)" % request_id
            return ""

        def _predict_failed(self, exc: BaseException, where: str = "predict") -> None:
            formatted = user_traceback(exc)
            log("%s raised %s%s\n%s" % (where, describe_exception(exc), self._request_tag(), formatted.rstrip()))
            payload: Dict[str, Any] = {"error": describe_exception(exc)}
            if state.kind == "development":
                payload["traceback"] = formatted
            self._send_json(500, payload)

        def _other(self) -> None:
            self._not_found()

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    return Handler


def make_overflow_handler(handler: type, max_connections: int) -> type:
    """The handler for connections beyond ``max_connections``: health is answered, anything
    else gets 503; one request each, then the connection is closed."""

    class OverflowHandler(handler):  # type: ignore[valid-type, misc]
        timeout = OVERFLOW_READ_TIMEOUT

        def _send_json(self, status: int, payload: Any = None, body: Optional[bytes] = None, close: bool = False) -> None:
            super()._send_json(status, payload, body, close=True)

        def do_POST(self) -> None:
            self._refuse_unread(503, "replica is serving its limit of %d connections; try again" % max_connections)

    return OverflowHandler


class ModelHTTPServer(HTTPServer):
    """An HTTP server with a bounded pool: at most ``max_connections`` connections are served
    at once, each by a pooled thread; the next ones go to a small overflow pool that answers
    ``/health`` (so the node's probe is never starved) and 503 to anything else."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], handler: type, max_connections: int) -> None:
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._free = threading.BoundedSemaphore(max_connections)
        self._pool = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="gantry-conn")
        self._overflow_handler = make_overflow_handler(handler, max_connections)
        self._overflow_free = threading.BoundedSemaphore(OVERFLOW_WAITING)
        self._overflow_pool = ThreadPoolExecutor(max_workers=OVERFLOW_WORKERS, thread_name_prefix="gantry-overflow")

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._free.acquire(blocking=False):
            self._pool.submit(self._serve, request, client_address, self.RequestHandlerClass, self._free)
        elif self._overflow_free.acquire(blocking=False):
            self._overflow_pool.submit(self._serve, request, client_address, self._overflow_handler, self._overflow_free)
        else:
            self.shutdown_request(request)  # a flood beyond both pools: closed at once

    def _serve(self, request: Any, client_address: Any, handler: type, slots: threading.BoundedSemaphore) -> None:
        try:
            handler(request, client_address, self)
        except Exception:  # noqa: BLE001 - as socketserver does: log it, keep serving
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            slots.release()


def _make_server(host: str, port: int, handler: type, max_connections: int) -> ModelHTTPServer:
    if ":" in host:
        class V6Server(ModelHTTPServer):
            address_family = socket.AF_INET6

        return V6Server((host, port), handler, max_connections)
    return ModelHTTPServer((host, port), handler, max_connections)


# --------------------------------------------------------------------------- lifecycle


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _close_outputs(events: Events) -> None:
    """Closes the event stream and flushes stdout and stderr, before the process ends at once."""
    events.close()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


def _exit_now(code: int, events: Events) -> None:
    _close_outputs(events)
    os._exit(code)


def _parent_pid() -> int:
    """The process this server belongs to: GANTRY_NODE_PID (the node that started it) when set,
    so that a parent that died before the server started watching is noticed too."""
    try:
        return int(os.environ.get("GANTRY_NODE_PID", "")) or os.getppid()
    except ValueError:
        return os.getppid()


def serve(args: argparse.Namespace) -> None:
    # First of all: die with the node. A node killed while this interpreter started is gone
    # before the death signal is set, and the parent-pid check below catches that.
    _set_parent_death_signal()
    parent_pid = _parent_pid()
    if os.getppid() != parent_pid:
        log("the node (pid %d) is gone before this replica started; exiting" % parent_pid)
        sys.stdout.flush()
        os._exit(EXIT_OK)
    events = Events()
    package_dir = os.path.abspath(args.package)
    try:
        config = read_package_config(package_dir)
    except PackageError as exc:
        log(exc.cause)
        events.emit("import_failed", error=exc.cause)
        _exit_now(EXIT_IMPORT_FAILED, events)
        return

    secrets: Dict[str, str] = {}
    if args.secrets_stdin:
        try:
            secrets = read_secrets(sys.stdin.buffer)
        except (SecretsError, OSError) as exc:
            cause = "could not read the secrets: %s" % one_line(str(exc))
            log(cause)
            events.emit("load_failed", error=cause)
            _exit_now(EXIT_LOAD_FAILED, events)
            return
        # Nothing else comes on standard input: the model reading it sees end of file at once.
        try:
            sys.stdin.close()
            sys.stdin = open(os.devnull, "r")
        except OSError:
            pass

    state = State(predict_concurrency(config), args.kind)
    async_runner = AsyncRunner()
    reloader = None
    if args.kind == "development":
        reloader = Reloader(state, events, async_runner, _config_environment(config))
    try:
        max_connections = args.max_connections or default_max_connections(predict_concurrency(config))
        server = _make_server(args.host, args.port, make_handler(state, reloader), max_connections)
    except OSError as exc:
        cause = "cannot listen on %s:%s: %s" % (args.host, args.port, one_line(str(exc)))
        log(cause)
        events.emit("listen_failed", error=cause)
        _exit_now(EXIT_LISTEN_FAILED, events)
        return
    port = server.server_address[1]
    events.emit("listening", port=port, pid=os.getpid())
    log("listening on http://%s:%d (pid %d, %s deployment, predict_concurrency %d, predict_timeout_seconds %g, "
        "max_connections %d)" % (args.host, port, os.getpid(), args.kind, predict_concurrency(config),
                                 predict_timeout_seconds(config), max_connections))

    shutdown_requested = threading.Event()
    outcome: Dict[str, Any] = {}
    signals_seen = [0]

    def on_signal(signum: int, _frame: Any) -> None:
        signals_seen[0] += 1
        if signals_seen[0] == 1:
            outcome.setdefault("reason", "received %s" % signal.Signals(signum).name)
        else:
            outcome["hurry"] = True  # a second signal cuts the drain short
        shutdown_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_parent() -> None:
        while not shutdown_requested.wait(1.0):
            if os.getppid() != parent_pid:
                outcome.setdefault("reason", "parent process %d is gone" % parent_pid)
                shutdown_requested.set()
                return

    threading.Thread(target=watch_parent, name="gantry-parent-watch", daemon=True).start()
    server_thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gantry-http", daemon=True
    )
    server_thread.start()

    def load_model() -> None:
        started = time.monotonic()
        log("loading model…")
        try:
            loaded = import_model(package_dir, config)
        except PackageError as exc:
            log(exc.cause)
            if exc.show_traceback and exc.__cause__ is not None:
                traceback.print_exception(type(exc.__cause__), exc.__cause__, exc.__cause__.__traceback__)
            events.emit("import_failed", error=exc.cause)
            outcome["exit"] = EXIT_IMPORT_FAILED
            shutdown_requested.set()
            return
        runner = ModelRunner(loaded, package_dir, config, async_runner, secrets)
        try:
            runner.load()
        except BaseException as exc:  # noqa: BLE001 - SystemExit in load() is a load failure too
            cause = describe_exception(exc)
            log("model failed to load: " + cause)
            traceback.print_exc()
            events.emit("load_failed", error=cause)
            outcome["exit"] = EXIT_LOAD_FAILED
            shutdown_requested.set()
            return
        elapsed = time.monotonic() - started
        with state.cond:
            if state.draining:
                return
            state.model = runner
            state.status = "ready"
        log("model loaded in %.2fs (%s)" % (elapsed, loaded.summary()))
        events.emit("ready", load_seconds=round(elapsed, 3))

    threading.Thread(target=load_model, name="gantry-load", daemon=True).start()

    while not shutdown_requested.wait(0.5):
        pass

    if "exit" in outcome:
        # Import or load failed: nothing was ever served, stop at once.
        server.shutdown()
        _end_group_if_orphaned(parent_pid, events)
        _exit_now(outcome["exit"], events)
        return

    state.start_draining()  # /health answers 503 draining, new predicts are refused
    server.shutdown()  # stop the accept loop (within its 0.1 s poll interval)
    try:
        server.socket.close()  # refuse new connections
    except OSError:
        pass
    events.emit("draining")
    drain_seconds = _drain_seconds()
    log("draining (%s): waiting up to %gs for %d in-flight request(s)"
        % (outcome.get("reason", "shutdown"), drain_seconds, state.inflight))
    deadline = time.monotonic() + drain_seconds
    drained = False
    while not outcome.get("hurry"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if state.wait_idle(min(remaining, 0.2)):
            drained = True
            break
    if drained:
        log("drained, exiting")
    else:
        log("drain cut short with %d request(s) still in flight, exiting" % state.inflight)
    # Idle keep-alive connections: wake their threads so nothing lingers.
    with state.cond:
        connections = list(state.connections)
    for conn in connections:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    _end_group_if_orphaned(parent_pid, events)
    _exit_now(EXIT_OK, events)


def _end_group_if_orphaned(parent_pid: int, events: Events) -> None:
    """When the node is gone (nobody left to clean up after this replica), kills the replica's
    process group, this server last, so that no process the model started outlives it. Only a
    server that leads its own group (as the node starts it) does this."""
    if os.getppid() == parent_pid or os.getpgrp() != os.getpid():
        return
    log("the node is gone: ending every process of this replica")
    _close_outputs(events)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _drain_seconds() -> float:
    raw = os.environ.get("GANTRY_DRAIN_SECONDS", "").strip()
    if not raw:
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        log("ignoring GANTRY_DRAIN_SECONDS=%r: not a number" % raw)
        return 30.0
    return max(0.0, value) if math.isfinite(value) else 30.0


def check(args: argparse.Namespace) -> int:
    package_dir = os.path.abspath(args.package)
    try:
        config = read_package_config(package_dir)
        loaded = import_model(package_dir, config)
    except PackageError as exc:
        sys.stderr.write(exc.cause + "\n")
        if exc.show_traceback and exc.__cause__ is not None:
            traceback.print_exception(type(exc.__cause__), exc.__cause__, exc.__cause__.__traceback__)
        sys.stderr.flush()
        return EXIT_IMPORT_FAILED
    sys.stdout.write("ok: %s\n" % loaded.summary())
    sys.stdout.flush()
    return EXIT_OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="gantry_model_server.py", description="Gantry model server")
    sub = parser.add_subparsers(dest="command")
    serve_p = sub.add_parser("serve", help="serve the model over HTTP")
    serve_p.add_argument("--package", required=True, help="the model package directory")
    serve_p.add_argument("--host", default="127.0.0.1")
    serve_p.add_argument("--port", type=int, default=0, help="0 lets the OS pick a free port")
    serve_p.add_argument("--kind", choices=("published", "development"), default="published")
    serve_p.add_argument("--secrets-stdin", action="store_true",
                         help='read {"secrets": {name: value}} from standard input (the node writes it once, then closes it)')
    serve_p.add_argument("--max-connections", type=_positive_int, default=0,
                         help="connections served at once (default: the larger of 256 and 4 x predict_concurrency); "
                              "beyond it /health is still answered and predictions get 503")
    check_p = sub.add_parser("check", help="import the model module and check its shape")
    check_p.add_argument("--package", required=True, help="the model package directory")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)
        return EXIT_OK
    if args.command == "check":
        return check(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

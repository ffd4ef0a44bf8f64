"""Tests of gantry_model_server.py, run from the repository root with

    python3 -m unittest discover -s model-server/tests -t model-server

Every test starts the real server as a subprocess on port 0 with an events pipe
(GANTRY_EVENTS_FD) and talks HTTP to it. Standard library only.
"""

import http.client
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import unittest.mock
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(os.path.dirname(HERE), "gantry_model_server.py")
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "test", "fixtures", "models")
EXAMPLES = os.path.join(REPO, "examples")


NO_BODY = object()


def base_config(**overrides):
    config = {
        "layout": "class",
        "model_module_dir": "model",
        "model_class_filename": "model.py",
        "model_class_name": "Model",
        "data_dir": "data",
        "environment_variables": {},
        "runtime": {"predict_concurrency": 1},
    }
    config.update(overrides)
    return config


def make_package(testcase, files=None, copy_from=None, **config_overrides):
    """A throwaway package directory: files ({relative path: source}) or a copy of a folder,
    plus the gantry-config.json the TypeScript builder would write."""
    root = tempfile.mkdtemp(prefix="gantry-ms-test-")
    testcase.addCleanup(shutil.rmtree, root, True)
    pkg = os.path.join(root, "pkg")
    if copy_from:
        shutil.copytree(copy_from, pkg)
    else:
        os.makedirs(pkg)
    for rel, source in (files or {}).items():
        path = os.path.join(pkg, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(source))
    with open(os.path.join(pkg, "gantry-config.json"), "w") as handle:
        json.dump(base_config(**config_overrides), handle)
    return pkg


def model_py(body):
    """A model/model.py whose source is ``body`` (dedented)."""
    return {"model/model.py": body}


class Server:
    """The server as a subprocess, with its events read into a queue."""

    def __init__(self, testcase, package, extra_env=None, kind=None, secrets_stdin=None, extra_args=()):
        self.testcase = testcase
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env["GANTRY_EVENTS_FD"] = str(write_fd)
        env.update(extra_env or {})
        self.log = tempfile.TemporaryFile()
        testcase.addCleanup(self.log.close)
        args = [sys.executable, "-u", SERVER, "serve", "--package", package, "--port", "0"]
        if kind:
            args += ["--kind", kind]
        if secrets_stdin is not None:
            args += ["--secrets-stdin"]
        args += list(extra_args)
        self.proc = subprocess.Popen(
            args, env=env, pass_fds=(write_fd,), stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if secrets_stdin is None else subprocess.PIPE,
        )
        if secrets_stdin is not None:
            self.proc.stdin.write(secrets_stdin)
            self.proc.stdin.close()
        os.close(write_fd)
        testcase.addCleanup(self._kill)
        self.events = queue.Queue()
        self.all_events = []
        self._reader = threading.Thread(target=self._read_events, args=(read_fd,), daemon=True)
        self._reader.start()
        self.port = None

    def _read_events(self, fd):
        with os.fdopen(fd, "r") as stream:
            for line in stream:
                event = json.loads(line)
                self.all_events.append(event)
                self.events.put(event)
        self.events.put(None)  # EOF: the server is gone

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def next_event(self, timeout=10):
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            self.testcase.fail("no event within %ss; output:\n%s" % (timeout, self.output()))
        if event is None:
            self.testcase.fail("events pipe closed; output:\n%s" % self.output())
        return event

    def expect_event(self, name, timeout=10):
        event = self.next_event(timeout)
        self.testcase.assertEqual(event["event"], name, "events so far: %r\n%s" % (self.all_events, self.output()))
        return event

    def start(self, ready=True):
        listening = self.expect_event("listening")
        self.testcase.assertEqual(listening["pid"], self.proc.pid)
        self.port = listening["port"]
        self.testcase.assertGreater(self.port, 0)
        if ready:
            self.expect_event("ready")
        return self

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.testcase.fail("server did not exit within %ss; output:\n%s" % (timeout, self.output()))

    def request(self, method, path, body=NO_BODY, timeout=10, headers=None):
        """(status, parsed JSON body, headers) for one request on a fresh connection;
        ``body`` is raw bytes or any value to send as JSON."""
        if body is NO_BODY:
            data = None
        else:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read()), resp.headers
        except urllib.error.HTTPError as err:
            raw = err.read()
            self.testcase.assertEqual(err.headers.get("Content-Type"), "application/json")
            return err.code, json.loads(raw), err.headers

    def predict(self, model_input, **kwargs):
        return self.request("POST", "/predict", model_input, **kwargs)


ECHO_MODEL = """
    import math, os

    class FakeArray:
        def tolist(self):
            return [1, 2, 3]

    class FakeScalar:
        def item(self):
            return 7

    class Model:
        def __init__(self, config, data_dir, secrets):
            self.config, self.data_dir, self.secrets = config, data_dir, secrets

        def load(self):
            self.loaded = True

        def predict(self, model_input):
            if model_input == "boom":
                raise ValueError("boom happened")
            if model_input == "odd-values":
                return {"array": FakeArray(), "scalar": FakeScalar(), "nan": math.nan, "pair": (1, 2), 3: "int key"}
            return {
                "echo": model_input,
                "loaded": self.loaded,
                "config_name": self.config.get("model_name"),
                "data_dir": self.data_dir,
                "secrets": self.secrets,
                "env": os.environ.get("FIXTURE_GREETING"),
            }
"""


class ServeTests(unittest.TestCase):
    def test_predict_health_errors_and_keep_alive(self):
        pkg = make_package(self, model_py(ECHO_MODEL), model_name="echo-test")
        server = Server(self, pkg, extra_env={"FIXTURE_GREETING": "hi"}).start()

        status, body, headers = server.request("GET", "/health")
        self.assertEqual((status, body), (200, {"status": "ready"}))
        self.assertEqual(headers["Content-Type"], "application/json")

        status, body, _ = server.predict({"x": [1, 2.5, None, "s"]})
        self.assertEqual(status, 200)
        self.assertEqual(body["echo"], {"x": [1, 2.5, None, "s"]})
        self.assertTrue(body["loaded"])
        self.assertEqual(body["config_name"], "echo-test")
        self.assertEqual(body["data_dir"], os.path.join(pkg, "data"))  # absolute even though missing
        self.assertEqual(body["secrets"], {})
        self.assertEqual(body["env"], "hi")

        # Any JSON value is a valid input.
        self.assertEqual(server.predict(42)[1]["echo"], 42)
        self.assertEqual(server.predict(None)[1]["echo"], None)

        # numpy-like values, NaN and unknown objects still give valid JSON.
        status, body, _ = server.predict("odd-values")
        self.assertEqual(status, 200)
        self.assertEqual(body["array"], [1, 2, 3])
        self.assertEqual(body["scalar"], 7)
        self.assertIsNone(body["nan"])
        self.assertEqual(body["pair"], [1, 2])
        self.assertEqual(body["3"], "int key")

        status, body, _ = server.request("POST", "/predict", b"{not json")
        self.assertEqual(status, 400)
        self.assertTrue(body["error"].startswith("request body is not valid JSON: "), body)

        for method, path in (("GET", "/nope"), ("POST", "/nope"), ("GET", "/predict"), ("DELETE", "/health")):
            status, body, _ = server.request(method, path, b"{}" if method == "POST" else NO_BODY)
            self.assertEqual((status, body), (404, {"error": "not found"}), (method, path))

        # A predict that raises is a 500 and the replica keeps serving.
        status, body, _ = server.predict("boom")
        self.assertEqual((status, body), (500, {"error": "ValueError: boom happened"}))
        self.assertEqual(server.predict("after")[0], 200)
        self.assertIn("ValueError: boom happened", server.output())  # traceback logged
        self.assertIn("Traceback", server.output())

        # HTTP/1.1 keep-alive: several requests on one connection, chunked bodies too.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for i in range(3):
                conn.request("POST", "/predict", body=json.dumps({"i": i}), headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertIsNotNone(resp.getheader("Content-Length"))
                self.assertEqual(json.loads(resp.read())["echo"], {"i": i})
            conn.request("POST", "/predict", body=iter([b'{"chunked":', b" true}"]), encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(json.loads(resp.read())["echo"], {"chunked": True})
            conn.request("GET", "/health")
            resp = conn.getresponse()
            self.assertEqual(json.loads(resp.read()), {"status": "ready"})
        finally:
            conn.close()

        # Over 64 MiB: refused from the declared length, without reading the body.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.putrequest("POST", "/predict")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(64 * 1024 * 1024 + 1))
            conn.endheaders()
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertIn("64 MiB", json.loads(resp.read())["error"])
        finally:
            conn.close()
        self.assertEqual(server.request("GET", "/health")[0], 200)

        # No access log lines.
        self.assertNotIn('"POST /predict', server.output())
        self.assertNotIn('"GET /health', server.output())

    def test_health_loading_then_ready_with_slow_load_fixture(self):
        pkg = make_package(self, copy_from=os.path.join(FIXTURES, "slow-load"))
        server = Server(self, pkg).start(ready=False)
        self.assertEqual(server.request("GET", "/health"), (503, {"status": "loading"}, unittest.mock.ANY))
        status, body, _ = server.predict({"a": 1})
        self.assertEqual((status, body), (503, {"error": "model is loading"}))
        ready = server.expect_event("ready", timeout=15)
        self.assertGreaterEqual(ready["load_seconds"], 2.9)
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
        self.assertEqual(server.predict({"a": 1})[:2], (200, {"ok": True}))
        self.assertIn("loading model", server.output())
        self.assertIn("model loaded in", server.output())

    def test_predict_concurrency_is_limited(self):
        source = """
            import time
            class Model:
                def predict(self, model_input):
                    time.sleep(model_input["sleep"])
                    return {"done": True}
        """

        def two_parallel(server):
            results = []
            threads = [
                threading.Thread(target=lambda: results.append(server.predict({"sleep": 0.4})[0])) for _ in range(2)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            self.assertEqual(results, [200, 200])
            return time.monotonic() - started

        one = Server(self, make_package(self, model_py(source), runtime={"predict_concurrency": 1})).start()
        self.assertGreaterEqual(two_parallel(one), 0.8)
        two = Server(self, make_package(self, model_py(source), runtime={"predict_concurrency": 2})).start()
        self.assertLess(two_parallel(two), 0.75)

    def test_async_load_and_predict(self):
        source = """
            import asyncio, threading

            class Model:
                def __init__(self):  # takes nothing: gets nothing
                    self.loop = None

                async def load(self):
                    await asyncio.sleep(0.05)
                    self.loop = asyncio.get_running_loop()

                async def predict(self, model_input):
                    await asyncio.sleep(0.01)
                    same_loop = asyncio.get_running_loop() is self.loop
                    if model_input == "fail":
                        raise KeyError("missing")
                    return {"doubled": model_input * 2, "same_loop": same_loop}
        """
        server = Server(self, make_package(self, model_py(source))).start()
        self.assertEqual(server.predict(21)[:2], (200, {"doubled": 42, "same_loop": True}))
        self.assertEqual(server.predict("fail")[:2], (500, {"error": "KeyError: 'missing'"}))

    def test_sibling_imports_and_custom_class_location(self):
        files = {
            "src/helpers.py": "FACTOR = 3\n",
            "src/predictor.py": """
                from helpers import FACTOR

                class Scaler:
                    def __init__(self, **kwargs):
                        self.kwargs = sorted(kwargs)

                    def predict(self, model_input):
                        return {"scaled": model_input * FACTOR, "kwargs": self.kwargs}
            """,
        }
        pkg = make_package(
            self, files, model_module_dir="src", model_class_filename="predictor.py", model_class_name="Scaler"
        )
        server = Server(self, pkg).start()
        self.assertEqual(server.predict(2)[1], {"scaled": 6, "kwargs": ["config", "data_dir", "secrets"]})

    def test_development_kind_returns_traceback(self):
        source = """
            class Model:
                def predict(self, model_input):
                    raise RuntimeError("dev failure")
        """
        server = Server(self, make_package(self, model_py(source)), kind="development").start()
        status, body, _ = server.predict({})
        self.assertEqual(status, 500)
        self.assertEqual(body["error"], "RuntimeError: dev failure")
        self.assertIn("Traceback", body["traceback"])


class OneWriteTests(unittest.TestCase):
    def test_a_json_answer_goes_out_in_one_write(self):
        # Head and body in one segment: the first read of a waiting client gets the whole answer
        # (written as two, the head would wake the client alone, nearly every time).
        pkg = make_package(self, model_py(ECHO_MODEL), model_name="one-write")
        server = Server(self, pkg).start()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.addCleanup(sock.close)
        body = b'{"x": 1}'
        for _ in range(20):
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            first = sock.recv(65536)
            head, _, answer = first.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            self.assertEqual(len(answer), length, first)


class RawStream:
    """A POST /predict read straight off the socket: the status, the headers and each chunk of a
    chunked answer with the time it arrived (so a test sees whether chunks came one by one)."""

    def __init__(self, testcase, port, model_input, timeout=10):
        self.testcase = testcase
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        testcase.addCleanup(self.sock.close)
        self.reader = self.sock.makefile("rb")
        self.send(model_input)

    def send(self, model_input):
        """Sends a request (again, on the same connection) and reads its status and headers."""
        body = json.dumps(model_input).encode()
        self.sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.started = time.monotonic()
        status_line = self.reader.readline().decode()
        self.status = int(status_line.split()[1])
        self.headers = {}
        while True:
            line = self.reader.readline().decode().strip()
            if not line:
                break
            name, value = line.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()
        self.chunks = []  # (seconds since the request, bytes)

    def next_chunk(self):
        """The next chunk's data, or None at the terminating zero-length chunk."""
        size = int(self.reader.readline().split(b";")[0].strip(), 16)
        if size == 0:
            self.testcase.assertEqual(self.reader.readline(), b"\r\n")
            return None
        data = self.reader.read(size)
        self.testcase.assertEqual(self.reader.readline(), b"\r\n")
        self.chunks.append((time.monotonic() - self.started, data))
        return data

    def read_all(self):
        """Every chunk's data, up to the end of the stream."""
        while self.next_chunk() is not None:
            pass
        return [data for _, data in self.chunks]

    def close(self):
        self.reader.close()
        self.sock.close()


class StreamingTests(unittest.TestCase):
    def stream(self, server, model_input):
        answer = RawStream(self, server.port, model_input)
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.headers.get("transfer-encoding"), "chunked")
        self.assertEqual(answer.headers.get("content-type"), "application/octet-stream")
        self.assertNotIn("content-length", answer.headers)
        return answer

    def test_sync_generator_streams_each_item_as_it_is_yielded(self):
        source = """
            import time
            class Model:
                def predict(self, model_input):
                    for item in ["text ", b"bytes ", {"n": 1, "word": "caf\u00e9"}, [1, 2], 3, "", "end"]:
                        yield item
                        time.sleep(model_input["gap"])
        """
        server = Server(self, make_package(self, model_py(source))).start()
        answer = self.stream(server, {"gap": 0.3})
        chunks = answer.read_all()
        # The empty string is not sent (an empty chunk would end the stream).
        self.assertEqual(chunks, [b"text ", b"bytes ", b'{"n":1,"word":"caf\\u00e9"}\n', b"[1,2]\n", b"3\n", b"end"])
        times = [at for at, _ in answer.chunks]
        self.assertGreaterEqual(times[-1] - times[0], 5 * 0.3 - 0.1, times)  # each came when it was yielded
        self.assertLess(times[0], 0.3, times)
        # The connection stays usable after a complete stream (keep-alive, as the gateway's agent uses it).
        answer.send({"gap": 0})
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.read_all(), chunks)

    def test_async_generator_runs_on_the_loop_without_blocking_other_requests(self):
        source = """
            import asyncio
            class Model:
                async def predict(self, model_input):
                    if model_input.get("quick"):
                        yield "quick"
                        return
                    for i in range(4):
                        await asyncio.sleep(0.3)
                        yield {"i": i}
        """
        server = Server(self, make_package(self, model_py(source), runtime={"predict_concurrency": 2})).start()
        slow = self.stream(server, {})
        self.assertEqual(slow.next_chunk(), b'{"i":0}\n')
        # While the first stream sleeps on the loop, another request streams to its end.
        started = time.monotonic()
        quick = self.stream(server, {"quick": True})
        self.assertEqual(quick.read_all(), [b"quick"])
        self.assertLess(time.monotonic() - started, 0.25)
        self.assertEqual(slow.read_all(), [b'{"i":0}\n', b'{"i":1}\n', b'{"i":2}\n', b'{"i":3}\n'])

    def test_async_predict_returning_a_generator_streams(self):
        source = """
            class Model:
                async def predict(self, model_input):
                    return (str(i) for i in range(model_input))
        """
        server = Server(self, make_package(self, model_py(source))).start()
        self.assertEqual(self.stream(server, 3).read_all(), [b"0", b"1", b"2"])

    def test_error_mid_stream_is_the_last_chunk_and_is_logged(self):
        source = """
            class Model:
                def predict(self, model_input):
                    yield "one\\n"
                    yield "two"
                    raise ValueError("the tokenizer broke")
        """
        server = Server(self, make_package(self, model_py(source))).start()
        answer = self.stream(server, {})
        chunks = answer.read_all()  # ends with the terminating chunk: the stream ended properly
        self.assertEqual(chunks[:2], [b"one\n", b"two"])
        self.assertEqual(chunks[2], b'\n{"error":"ValueError: the tokenizer broke"}\n')  # on its own line
        self.assertEqual(len(chunks), 3)
        output = server.output()
        self.assertIn("predict raised ValueError: the tokenizer broke mid-stream after 2 chunk(s)", output)
        self.assertIn('raise ValueError("the tokenizer broke")', output)  # the traceback, at the user's line
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
        self.assertEqual(self.stream(server, {}).read_all()[0], b"one\n")  # the slot was released

    def test_error_mid_stream_development_carries_the_traceback(self):
        source = """
            class Model:
                async def predict(self, model_input):
                    yield {"a": 1}
                    raise KeyError("gone")
        """
        server = Server(self, make_package(self, model_py(source)), kind="development").start()
        chunks = self.stream(server, {}).read_all()
        self.assertEqual(chunks[0], b'{"a":1}\n')
        last = json.loads(chunks[1])
        self.assertEqual(last["error"], "KeyError: 'gone'")
        self.assertIn("Traceback", last["traceback"])
        self.assertNotIn("asyncio", last["traceback"])

    def test_preprocess_and_postprocess_run_around_predict(self):
        source = """
            import asyncio
            class Model:
                def preprocess(self, model_input):
                    return {"words": model_input["text"].split()}

                async def predict(self, model_input):
                    await asyncio.sleep(0)
                    return {"count": len(model_input["words"])}

                async def postprocess(self, output):
                    return {"result": output, "postprocessed": True}
        """
        server = Server(self, make_package(self, model_py(source))).start()
        self.assertEqual(server.predict({"text": "a b c"})[:2], (200, {"result": {"count": 3}, "postprocessed": True}))
        status, body, _ = server.predict({"no_text": 1})
        self.assertEqual((status, body), (500, {"error": "KeyError: 'text'"}))
        self.assertIn("preprocess raised KeyError: 'text'", server.output())

    def test_a_failure_log_line_names_the_request_id_the_gateway_sent(self):
        source = """
            class Model:
                def predict(self, model_input):
                    raise RuntimeError("broken for " + model_input["who"])
        """
        server = Server(self, make_package(self, model_py(source))).start()
        status, _, _ = server.predict({"who": "a"}, headers={"Content-Type": "application/json", "X-Request-Id": "abc-123"})
        self.assertEqual(status, 500)
        status, _, _ = server.predict({"who": "b"}, headers={"Content-Type": "application/json", "X-Request-Id": "bad id\twith spaces"})
        self.assertEqual(status, 500)
        output = server.output()
        self.assertIn("predict raised RuntimeError: broken for a (request abc-123)", output)
        self.assertIn("predict raised RuntimeError: broken for b\n", output)
        self.assertNotIn("bad id", output)

    def test_preprocess_feeds_a_streaming_predict(self):
        source = """
            class Model:
                async def preprocess(self, model_input):
                    return model_input["text"].upper()

                def predict(self, text):
                    for word in text.split():
                        yield word + "\\n"
        """
        server = Server(self, make_package(self, model_py(source))).start()
        self.assertEqual(self.stream(server, {"text": "hello streaming world"}).read_all(), [b"HELLO\n", b"STREAMING\n", b"WORLD\n"])

    def test_streaming_predict_with_postprocess_is_refused_as_truss_does(self):
        source = """
            import os
            class Model:
                def predict(self, model_input):
                    try:
                        yield "never sent"
                    finally:
                        open(os.path.join(os.environ["MARK_DIR"], "closed"), "w").close()

                def postprocess(self, output):
                    return output
        """
        marks = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, marks, True)
        server = Server(self, make_package(self, model_py(source)), extra_env={"MARK_DIR": marks}).start()
        status, body, _ = server.predict({})
        self.assertEqual(status, 500)
        self.assertIn("ModelDefinitionError", body["error"])
        self.assertIn("postprocess", body["error"])
        self.assertIn("predict raised ModelDefinitionError", server.output())
        self.assertEqual(server.predict({})[0], 500)  # the slot was released

    def check_disconnect_closes_generator(self, source):
        marks = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, marks, True)
        server = Server(self, make_package(self, model_py(source), runtime={"predict_concurrency": 1}),
                        extra_env={"MARK_DIR": marks}).start()
        answer = self.stream(server, {"forever": True})
        self.assertEqual(answer.next_chunk(), b"tick")
        answer.close()  # the client goes away mid-stream
        closed = os.path.join(marks, "closed")
        deadline = time.monotonic() + 10
        while not os.path.exists(closed) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(closed), "the generator was not closed:\n" + server.output())
        # The single slot is free again: the next stream runs at once.
        self.assertEqual(self.stream(server, {"forever": False}).read_all(), [b"tick"])
        self.assertIn("the client went away after", server.output())
        self.assertIn("closing the generator", server.output())

    def test_client_disconnect_closes_a_sync_generator_and_frees_the_slot(self):
        self.check_disconnect_closes_generator("""
            import os, time
            class Model:
                def predict(self, model_input):
                    try:
                        yield "tick"
                        while model_input["forever"]:
                            time.sleep(0.05)
                            yield "tick"
                    finally:
                        open(os.path.join(os.environ["MARK_DIR"], "closed"), "w").close()
        """)

    def test_client_disconnect_closes_an_async_generator_and_frees_the_slot(self):
        self.check_disconnect_closes_generator("""
            import asyncio, os
            class Model:
                async def predict(self, model_input):
                    try:
                        yield "tick"
                        while model_input["forever"]:
                            await asyncio.sleep(0.05)
                            yield "tick"
                    finally:
                        open(os.path.join(os.environ["MARK_DIR"], "closed"), "w").close()
        """)

    def test_slot_is_held_until_the_stream_ends(self):
        source = """
            import time
            class Model:
                def predict(self, model_input):
                    if model_input == "plain":
                        return {"plain": True}
                    def generate():
                        for i in range(3):
                            time.sleep(0.3)
                            yield str(i)
                    return generate()
        """
        server = Server(self, make_package(self, model_py(source), runtime={"predict_concurrency": 1})).start()
        answer = self.stream(server, "stream")
        self.assertEqual(answer.next_chunk(), b"0")
        started = time.monotonic()
        self.assertEqual(server.predict("plain")[:2], (200, {"plain": True}))
        waited = time.monotonic() - started
        self.assertEqual(answer.read_all(), [b"0", b"1", b"2"])
        self.assertGreaterEqual(waited, 0.45)  # it waited for the two chunks still to come


class ExampleTests(unittest.TestCase):
    def test_echo_example(self):
        pkg = make_package(
            self, copy_from=os.path.join(EXAMPLES, "echo"), model_name="echo", environment_variables={"GREETING": "hello"}
        )
        server = Server(self, pkg, extra_env={"GREETING": "hello"}).start()
        self.assertEqual(server.predict({"a": 1})[:2], (200, {"echo": {"a": 1}, "greeting": "hello"}))

    def test_word_count_example_bare_layout(self):
        pkg = make_package(self, copy_from=os.path.join(EXAMPLES, "word-count"), layout="bare")
        server = Server(self, pkg).start()
        status, body, _ = server.predict({"text": "The cat saw the other cat"})
        self.assertEqual(status, 200)
        self.assertEqual(body["words"], 6)
        self.assertEqual(body["counts"]["the"], 2)
        self.assertEqual(body["counts"]["cat"], 2)
        status, body, _ = server.predict({"nope": 1})
        self.assertEqual(status, 500)
        self.assertTrue(body["error"].startswith("ValueError: "), body)

    def test_bare_layout_async_predict_without_load(self):
        files = {"predict.py": "async def predict(model_input):\n    return {'got': model_input}\n"}
        server = Server(self, make_package(self, files, layout="bare")).start()
        self.assertEqual(server.predict([1, 2])[:2], (200, {"got": [1, 2]}))


class FailureTests(unittest.TestCase):
    def test_load_failure_exits_3_with_event(self):
        server = Server(self, make_package(self, copy_from=os.path.join(FIXTURES, "load-raises"))).start(ready=False)
        event = server.expect_event("load_failed")
        self.assertEqual(event["error"], "RuntimeError: weights file is corrupt")
        self.assertEqual(server.wait_exit(), 3)
        self.assertIn("Traceback", server.output())

    def test_import_error_exits_4_with_event(self):
        server = Server(self, make_package(self, copy_from=os.path.join(FIXTURES, "import-error"))).start(ready=False)
        event = server.expect_event("import_failed")
        self.assertEqual(event["error"], "ModuleNotFoundError: No module named 'gantry_no_such_module_zz9'")
        self.assertEqual(server.wait_exit(), 4)

    def test_syntax_error_exits_4_with_event(self):
        server = Server(self, make_package(self, copy_from=os.path.join(FIXTURES, "syntax-error"))).start(ready=False)
        event = server.expect_event("import_failed")
        self.assertTrue(event["error"].startswith("SyntaxError in model/model.py line 2: "), event)
        self.assertEqual(server.wait_exit(), 4)

    def test_never_healthy_stays_loading_and_sigterm_exits_0(self):
        pkg = make_package(self, copy_from=os.path.join(FIXTURES, "never-healthy"))
        server = Server(self, pkg).start(ready=False)
        time.sleep(0.3)
        self.assertEqual(server.request("GET", "/health")[:2], (503, {"status": "loading"}))
        server.proc.send_signal(signal.SIGTERM)
        server.expect_event("draining")
        self.assertEqual(server.wait_exit(5), 0)


class ShutdownTests(unittest.TestCase):
    SLOW = """
        import os, time

        class Model:
            def __init__(self, data_dir):
                self.marker = os.path.join(os.path.dirname(data_dir), "started")

            def predict(self, model_input):
                open(self.marker, "w").close()
                time.sleep(model_input["sleep"])
                return {"slept": model_input["sleep"]}
    """

    def _start_slow_request(self, server, pkg, sleep):
        outcome = {}

        def call():
            try:
                outcome["result"] = server.predict({"sleep": sleep}, timeout=15)[:2]
            except Exception as exc:  # noqa: BLE001
                outcome["error"] = exc

        thread = threading.Thread(target=call)
        thread.start()
        marker = os.path.join(pkg, "started")
        deadline = time.monotonic() + 5
        while not os.path.exists(marker):
            self.assertLess(time.monotonic(), deadline, "predict never started")
            time.sleep(0.02)
        return thread, outcome

    def test_sigterm_drains_in_flight_request(self):
        pkg = make_package(self, model_py(self.SLOW))
        server = Server(self, pkg).start()
        thread, outcome = self._start_slow_request(server, pkg, 1.0)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.expect_event("draining")
        # No new connections once draining.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        self.assertIsNone(server.proc.poll())  # still finishing the request
        thread.join(10)
        self.assertEqual(outcome.get("result"), (200, {"slept": 1.0}), outcome)
        self.assertEqual(server.wait_exit(5), 0)
        self.assertGreaterEqual(time.monotonic() - started, 0.8)

    def test_drain_gives_up_after_gantry_drain_seconds(self):
        pkg = make_package(self, model_py(self.SLOW))
        server = Server(self, pkg, extra_env={"GANTRY_DRAIN_SECONDS": "0.5"}).start()
        thread, outcome = self._start_slow_request(server, pkg, 10)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait_exit(5), 0)
        self.assertLess(time.monotonic() - started, 3)
        thread.join(10)
        self.assertIn("error", outcome)  # the connection was cut

    def test_parent_death_shuts_the_server_down(self):
        pkg = make_package(self, model_py("class Model:\n    def predict(self, x):\n        return x\n"))
        read_fd, write_fd = os.pipe()
        # An intermediate parent starts the server, then exits; the server must follow.
        launcher = textwrap.dedent(
            """
            import os, subprocess, sys, time
            fd = int(os.environ["GANTRY_EVENTS_FD"])
            subprocess.Popen([sys.executable, "-u", sys.argv[1], "serve", "--package", sys.argv[2]],
                             pass_fds=(fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            """
        )
        env = dict(os.environ, GANTRY_EVENTS_FD=str(write_fd))
        parent = subprocess.Popen([sys.executable, "-c", launcher, SERVER, pkg], env=env, pass_fds=(write_fd,))
        os.close(write_fd)
        events = []
        started = time.monotonic()
        with os.fdopen(read_fd) as stream:  # EOF once the server (last writer) is gone
            for line in stream:
                events.append(json.loads(line)["event"])
                self.assertLess(time.monotonic() - started, 10, events)
        self.assertEqual(parent.wait(10), 0)
        self.assertEqual(events, ["listening", "ready", "draining"])
        self.assertLess(time.monotonic() - started, 8)


    def test_a_node_gone_before_the_server_started_watching_still_ends_it(self):
        pkg = make_package(self, model_py("class Model:\n    def predict(self, x):\n        return x\n"))
        read_fd, write_fd = os.pipe()
        # The parent starts the server and exits at once: it is gone before the server can set
        # its death signal. GANTRY_NODE_PID names it, so the server notices and exits.
        launcher = textwrap.dedent(
            """
            import os, subprocess, sys
            fd = int(os.environ["GANTRY_EVENTS_FD"])
            env = dict(os.environ, GANTRY_NODE_PID=str(os.getpid()))
            subprocess.Popen([sys.executable, "-u", sys.argv[1], "serve", "--package", sys.argv[2]],
                             pass_fds=(fd,), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            """
        )
        env = dict(os.environ, GANTRY_EVENTS_FD=str(write_fd))
        parent = subprocess.Popen([sys.executable, "-c", launcher, SERVER, pkg], env=env, pass_fds=(write_fd,))
        os.close(write_fd)
        self.assertEqual(parent.wait(10), 0)
        ended = threading.Event()

        def drain():
            with os.fdopen(read_fd) as stream:  # EOF once the server (last writer) is gone
                for _ in stream:
                    pass
            ended.set()

        threading.Thread(target=drain, daemon=True).start()
        self.assertTrue(ended.wait(10), "the orphaned server is still running")

    def test_a_node_that_dies_takes_the_processes_the_model_started_with_the_replica(self):
        # load() starts a helper process and writes its pid beside the package.
        pkg = make_package(self, model_py("""
            import os, subprocess, sys

            class Model:
                def __init__(self, data_dir):
                    self.pid_file = os.path.join(os.path.dirname(data_dir), "child.pid")

                def load(self):
                    self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
                    with open(self.pid_file, "w") as handle:
                        handle.write(str(self.child.pid))

                def predict(self, x):
                    return x
        """))
        # The node starts the server leading a process group of its own, as the TypeScript
        # runtime does (detached), then waits to be killed.
        launcher = textwrap.dedent(
            """
            import os, subprocess, sys, time
            env = dict(os.environ, GANTRY_NODE_PID=str(os.getpid()))
            subprocess.Popen([sys.executable, "-u", sys.argv[1], "serve", "--package", sys.argv[2]],
                             env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3600)
            """
        )
        node = subprocess.Popen([sys.executable, "-c", launcher, SERVER, pkg])
        self.addCleanup(node.kill)
        pid_file = os.path.join(pkg, "child.pid")
        deadline = time.monotonic() + 15
        while not os.path.exists(pid_file) or not open(pid_file).read():
            self.assertLess(time.monotonic(), deadline, "load() never started its child")
            time.sleep(0.05)
        child = int(open(pid_file).read())
        self.assertTrue(_running(child))
        node.kill()
        node.wait(10)
        deadline = time.monotonic() + 15
        while _running(child):
            self.assertLess(time.monotonic(), deadline, "the model's child outlived its replica and the node")
            time.sleep(0.1)


def _running(pid):
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except OSError:
        return False
    return not stat[stat.rindex(")") + 2:].startswith("Z")


class SecretsTests(unittest.TestCase):
    """--secrets-stdin: the values reach Model(secrets=...) and load(secrets=...), never the log."""

    MODEL = """
        import hashlib, sys

        class Model:
            def __init__(self, secrets):
                self._secrets = secrets

            def load(self):
                self.token = self._secrets["hf_access_token"]  # raises without it
                self.stdin = sys.stdin.read()

            def predict(self, model_input):
                return {"sha256": hashlib.sha256(self.token.encode()).hexdigest(), "keys": sorted(self._secrets),
                        "stdin": self.stdin, "version": VERSION}
    """

    def package(self, version=1):
        return make_package(self, {"model/model.py": "VERSION = %d\n" % version + textwrap.dedent(self.MODEL)})

    def test_secrets_from_stdin_reach_the_model_and_no_log(self):
        value = "s3cr3t-" + "x" * 40
        server = Server(self, self.package(), secrets_stdin=json.dumps({"secrets": {"hf_access_token": value}}).encode(),
                        kind="development").start()
        status, body, _ = server.predict(1)
        self.assertEqual(status, 200)
        self.assertEqual(body["sha256"], hashlib.sha256(value.encode()).hexdigest())
        self.assertEqual(body["keys"], ["hf_access_token"])
        self.assertEqual(body["stdin"], "")  # the pipe is spent: the model reads end of file

        # A reload carries the new revision's secrets; one without keeps the current ones.
        rotated = "r0tated-" + "y" * 40
        status, answer, _ = server.request("POST", "/reload", {"package": self.package(2), "secrets": {"hf_access_token": rotated}}, timeout=20)
        self.assertEqual(status, 200, answer)
        self.assertEqual(server.predict(1)[1]["sha256"], hashlib.sha256(rotated.encode()).hexdigest())
        status, answer, _ = server.request("POST", "/reload", {"package": self.package(3)}, timeout=20)
        self.assertEqual(status, 200, answer)
        self.assertEqual(server.predict(1)[1], {"sha256": hashlib.sha256(rotated.encode()).hexdigest(), "keys": ["hf_access_token"], "stdin": "", "version": 3})
        # Bad secrets in a reload: 400, naming no value, and the model keeps serving.
        status, answer, _ = server.request("POST", "/reload", {"package": self.package(4), "secrets": {"hf_access_token": 5}}, timeout=20)
        self.assertEqual(status, 400)
        self.assertIn("hf_access_token", answer["error"])
        self.assertEqual(server.predict(1)[1]["version"], 3)
        self.assertNotIn(value, server.output())
        self.assertNotIn(rotated, server.output())

    def test_without_the_secret_load_fails_naming_only_the_key(self):
        server = Server(self, self.package(), secrets_stdin=b'{"secrets": {}}')
        server.expect_event("listening")
        event = server.expect_event("load_failed")
        self.assertEqual(event["error"], "KeyError: 'hf_access_token'")
        self.assertEqual(server.wait_exit(), 3)

    def test_load_gets_secrets_when_it_names_them(self):
        pkg = make_package(self, model_py("""
            class Model:
                def load(self, secrets):
                    self.names = sorted(secrets)

                def predict(self, model_input):
                    return self.names
        """))
        server = Server(self, pkg, secrets_stdin=b'{"secrets": {"a": "1", "b": "2"}}').start()
        self.assertEqual(server.predict(0)[:2], (200, ["a", "b"]))

    def test_unreadable_secrets_fail_the_load_without_echoing_them(self):
        server = Server(self, self.package(), secrets_stdin=b'{"secrets": not-json-hunter2')
        event = server.expect_event("load_failed")
        self.assertIn("not valid JSON", event["error"])
        self.assertEqual(server.wait_exit(), 3)
        self.assertNotIn("hunter2", server.output())


class ReloadTests(unittest.TestCase):
    """POST /reload on development replicas (a new package directory each time)."""

    SIBLINGS = """
        import os
        from helpers import FACTOR

        class Model:
            def __init__(self, data_dir):
                self.data_dir = data_dir

            def predict(self, model_input):
                import lazy  # a sibling imported only when predict first runs
                return {"version": VERSION, "value": model_input * FACTOR, "lazy": lazy.VALUE,
                        "pid": os.getpid(), "data_dir": self.data_dir, "module": __name__}
    """

    def siblings_package(self, version, factor, lazy, **config):
        files = {
            "model/model.py": "VERSION = %d\n" % version + textwrap.dedent(self.SIBLINGS),
            "model/helpers.py": "FACTOR = %d\n" % factor,
            "model/lazy.py": "VALUE = %r\n" % lazy,
        }
        return make_package(self, files, **config)

    def reload(self, server, package, **extra):
        body = dict(extra)
        body["package"] = package
        return server.request("POST", "/reload", body, timeout=20)[:2]

    def test_a_stream_under_way_finishes_on_the_old_model_and_hooks_follow_a_reload(self):
        source = """
            import time
            class Model:
                def preprocess(self, model_input):
                    return {"n": model_input, "tag": TAG}

                def predict(self, request):
                    for i in range(request["n"]):
                        time.sleep(0.2)
                        yield "%s%d " % (request["tag"], i)
        """
        old = make_package(self, model_py('TAG = "old"\n' + textwrap.dedent(source)))
        new = make_package(self, model_py('TAG = "new"\n' + textwrap.dedent(source)))
        server = Server(self, old, kind="development").start()
        answer = RawStream(self, server.port, 4)
        self.assertEqual(answer.next_chunk(), b"old0 ")
        self.assertEqual(self.reload(server, new), (200, {"reloaded": True, "load_seconds": unittest.mock.ANY}))
        self.assertEqual(answer.read_all(), [b"old0 ", b"old1 ", b"old2 ", b"old3 "])
        self.assertEqual(RawStream(self, server.port, 2).read_all(), [b"new0 ", b"new1 "])

    def test_reload_picks_up_new_predict_and_siblings_in_the_same_process(self):
        v1 = self.siblings_package(1, 2, "lazy-1")
        server = Server(self, v1, kind="development").start()
        status, body, _ = server.predict(5)
        self.assertEqual(status, 200)
        self.assertEqual((body["version"], body["value"], body["lazy"]), (1, 10, "lazy-1"))
        self.assertEqual(body["pid"], server.proc.pid)

        # Only the siblings change: helpers.py (imported by model.py) and lazy.py (by predict).
        v2 = self.siblings_package(1, 3, "lazy-2")
        status, body = self.reload(server, v2)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["reloaded"], True)
        self.assertGreaterEqual(body["load_seconds"], 0)
        event = server.expect_event("reloaded")
        self.assertEqual(event, {"event": "reloaded", "load_seconds": body["load_seconds"]})
        shutil.rmtree(os.path.dirname(v1))  # the caller may delete the previous package
        status, body, _ = server.predict(5)
        self.assertEqual(status, 200)
        self.assertEqual((body["version"], body["value"], body["lazy"]), (1, 15, "lazy-2"))
        self.assertEqual(body["pid"], server.proc.pid)  # no restart
        self.assertEqual(body["data_dir"], os.path.join(v2, "data"))  # --package now means v2
        self.assertIn("reloaded in ", server.output())

        # A changed predict, under a fresh module name.
        v3 = self.siblings_package(3, 3, "lazy-3")
        first_module = body["module"]
        self.assertEqual(self.reload(server, v3)[0], 200)
        server.expect_event("reloaded")
        shutil.rmtree(os.path.dirname(v2))
        status, body, _ = server.predict(5)
        self.assertEqual((status, body["version"], body["value"], body["lazy"]), (200, 3, 15, "lazy-3"))
        self.assertNotEqual(body["module"], first_module)
        self.assertEqual(body["pid"], server.proc.pid)
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
        self.assertIsNone(server.proc.poll())

    OLD = """
        from helpers import WORD

        class Model:
            def predict(self, model_input):
                if model_input == "late":
                    import late  # first imported only after the failed reloads
                    return {"late": late.VALUE}
                import helpers
                return {"word": WORD, "again": helpers.WORD}
    """

    def test_failed_reloads_answer_422_and_the_old_code_keeps_serving(self):
        siblings = {"model/helpers.py": "WORD = 'old'\n", "model/late.py": "VALUE = 'old-late'\n"}
        old = make_package(self, dict(siblings, **{"model/model.py": self.OLD}))
        server = Server(self, old, kind="development").start()
        old_answer = {"word": "old", "again": "old"}
        self.assertEqual(server.predict(1)[:2], (200, old_answer))

        new_siblings = {"model/helpers.py": "WORD = 'new'\n", "model/late.py": "VALUE = 'new-late'\n"}
        top = "import helpers, late\n"  # the failing packages import their own siblings first
        cases = [
            ({"model/model.py": top + "class Model:\n    def predict(self, x)\n        return x\n"},
             "SyntaxError in model/model.py line 3: ", "SyntaxError"),
            ({"model/model.py": "from helpers import WORD\nclass Model:\n    def predict(self, x):\n        return x\n",
              "model/helpers.py": "WORD = = 'new'\n"},
             "SyntaxError in model/helpers.py line 1: ", "SyntaxError"),
            ({"model/model.py": top + "import gantry_no_such_module_zz9\n"},
             "ModuleNotFoundError: No module named 'gantry_no_such_module_zz9'", "Traceback"),
            ({"model/model.py": top + "class Other:\n    pass\n"}, "model/model.py has no class named Model", ""),
            ({"model/model.py": top + textwrap.dedent("""
                class Model:
                    def __init__(self, config):
                        raise ValueError("bad config")

                    def predict(self, x):
                        return x
             """)}, "ValueError: bad config", "Traceback"),
            ({"model/model.py": top + textwrap.dedent("""
                class Model:
                    def load(self):
                        raise RuntimeError("new weights are corrupt")

                    def predict(self, x):
                        return x
             """)}, "RuntimeError: new weights are corrupt", "Traceback"),
        ]
        for files, cause, in_traceback in cases:
            pkg = make_package(self, dict(new_siblings, **files))
            status, body = self.reload(server, pkg)
            self.assertEqual(status, 422, body)
            self.assertEqual(body["reloaded"], False)
            self.assertTrue(body["error"].startswith(cause), (cause, body))
            self.assertIn(in_traceback, body["traceback"])
            self.assertNotIn("gantry_model_server.py", body["traceback"])  # starts at the user's code
            event = server.expect_event("reload_failed")
            self.assertEqual(event, {"event": "reload_failed", "error": body["error"]})
            self.assertEqual(server.predict(1)[:2], (200, old_answer), cause)
        self.assertIn('raise RuntimeError("new weights are corrupt")', body["traceback"])
        self.assertIn("RuntimeError: new weights are corrupt", server.output())  # logged with its traceback

        # A directory without gantry-config.json is a package problem too.
        bare_dir = tempfile.mkdtemp(prefix="gantry-ms-test-")
        self.addCleanup(shutil.rmtree, bare_dir, True)
        status, body = self.reload(server, bare_dir)
        self.assertEqual((status, body["error"]), (422, "gantry-config.json not found in %s" % bare_dir))
        server.expect_event("reload_failed")

        # Unusable requests: 400, no event.
        for raw, fragment in (
            (b"{nope", "request body is not valid JSON"),
            (b"[]", "JSON object"),
            (b"{}", '"package"'),
            (json.dumps({"package": "relative/dir"}).encode(), "absolute"),
            (json.dumps({"package": os.path.join(bare_dir, "missing")}).encode(), "not found"),
            (json.dumps({"package": old, "environment_variables": {"A": 1}}).encode(), "must be a string"),
        ):
            status, body, _ = server.request("POST", "/reload", raw)
            self.assertEqual((status, body["reloaded"]), (400, False), raw)
            self.assertIn(fragment, body["error"], raw)
        self.assertEqual(server.request("GET", "/reload")[:2], (404, {"error": "not found"}))

        # The old module's siblings still import lazily from the old package.
        self.assertEqual(server.predict("late")[:2], (200, {"late": "old-late"}))
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))

        # And a good package still reloads afterwards.
        good = make_package(self, dict(new_siblings, **{"model/model.py": self.OLD}))
        self.assertEqual(self.reload(server, good)[0], 200)
        server.expect_event("reloaded")  # the 400s emitted nothing
        self.assertEqual(server.predict(1)[:2], (200, {"word": "new", "again": "new"}))
        self.assertEqual(server.predict("late")[:2], (200, {"late": "new-late"}))

    LOGGING = """
        import time

        class Model:
            def __init__(self, config):
                self.config = config

            def _log(self, what):
                with open(self.config["log_path"], "a") as handle:
                    handle.write("%s %s\\n" % (what, self.config["tag"]))

            def load(self):
                self._log("start")
                time.sleep(self.config["sleep"])
                self._log("end")

            def predict(self, model_input):
                return {"tag": self.config["tag"]}
    """

    def test_old_code_serves_during_a_slow_reload_and_reloads_are_serialized(self):
        log_path = os.path.join(tempfile.mkdtemp(prefix="gantry-ms-test-"), "load.log")
        self.addCleanup(shutil.rmtree, os.path.dirname(log_path), True)

        def package(tag, sleep):
            return make_package(self, model_py(self.LOGGING), log_path=log_path, tag=tag, sleep=sleep)

        def read_log():
            with open(log_path) as handle:
                return handle.read().split("\n")[:-1]

        server = Server(self, package("old", 0), kind="development").start()
        results = {}

        def reload_in_thread(name, pkg):
            def run():
                results[name] = self.reload(server, pkg)
            thread = threading.Thread(target=run)
            thread.start()
            return thread

        first = reload_in_thread("first", package("first", 1.0))
        deadline = time.monotonic() + 5
        while "start first" not in read_log():
            self.assertLess(time.monotonic() - deadline, 0, "the first reload never started")
            time.sleep(0.01)
        second = reload_in_thread("second", package("second", 0.1))  # waits for the first
        answers = []
        while first.is_alive():
            status, body, _ = server.predict({})
            answers.append((status, body))
            self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
            time.sleep(0.02)
        first.join(10)
        second.join(10)
        self.assertTrue(all(status == 200 for status, _ in answers), answers)
        tags = [body["tag"] for _, body in answers]
        self.assertGreaterEqual(tags.count("old"), 5, tags)
        self.assertEqual(tags, sorted(tags, key=["old", "first", "second"].index), tags)  # never back
        self.assertEqual(results["first"][0], 200, results)
        self.assertEqual(results["second"][0], 200, results)
        self.assertGreaterEqual(results["first"][1]["load_seconds"], 0.9)
        self.assertEqual(read_log(), ["start old", "end old", "start first", "end first", "start second", "end second"])
        self.assertEqual(server.predict({})[:2], (200, {"tag": "second"}))
        self.assertEqual([server.expect_event("reloaded")["event"] for _ in range(2)], ["reloaded", "reloaded"])

    ENV = """
        import os, time

        AT_IMPORT = os.environ.get("KEEP")

        class Model:
            def load(self):
                if os.environ.get("FAIL_LOAD"):
                    raise RuntimeError("asked to fail")

            def predict(self, model_input):
                time.sleep(model_input.get("sleep", 0))
                answer = {name: os.environ.get(name) for name in ("KEEP", "GONE", "ADDED")}
                answer["at_import"] = AT_IMPORT
                return answer
    """

    def test_environment_variables_and_predict_concurrency_follow_the_new_package(self):
        def package(concurrency, env):
            return make_package(
                self, model_py(self.ENV), environment_variables=env, runtime={"predict_concurrency": concurrency}
            )

        def two_parallel(server):
            statuses = []
            threads = [
                threading.Thread(target=lambda: statuses.append(server.predict({"sleep": 0.4})[0])) for _ in range(2)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            self.assertEqual(statuses, [200, 200])
            return time.monotonic() - started

        # The runtime starts the replica with the package's environment_variables set.
        first_env = {"KEEP": "k1", "GONE": "g"}
        server = Server(self, package(1, first_env), extra_env=first_env, kind="development").start()
        self.assertEqual(server.predict({})[1], {"KEEP": "k1", "GONE": "g", "ADDED": None, "at_import": "k1"})
        self.assertGreaterEqual(two_parallel(server), 0.8)

        # The body's environment_variables win over the new gantry-config.json's, and apply
        # before the new code is imported; GONE (in the previous set only) is removed.
        status, body = self.reload(
            server, package(2, {"KEEP": "ignored"}), environment_variables={"KEEP": "k2", "ADDED": "a"}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(server.predict({})[1], {"KEEP": "k2", "GONE": None, "ADDED": "a", "at_import": "k2"})
        self.assertLess(two_parallel(server), 0.75)  # predict_concurrency 2 now

        # Without environment_variables in the body, the new gantry-config.json's apply.
        self.assertEqual(self.reload(server, package(1, {"KEEP": "k3"}))[0], 200)
        self.assertEqual(server.predict({})[1], {"KEEP": "k3", "GONE": None, "ADDED": None, "at_import": "k3"})
        self.assertGreaterEqual(two_parallel(server), 0.8)

        # A failed reload puts the environment back as it was.
        status, body = self.reload(
            server, package(2, {}), environment_variables={"KEEP": "bad", "ADDED": "x", "FAIL_LOAD": "1"}
        )
        self.assertEqual((status, body["error"]), (422, "RuntimeError: asked to fail"))
        self.assertEqual(server.predict({})[1], {"KEEP": "k3", "GONE": None, "ADDED": None, "at_import": "k3"})
        self.assertGreaterEqual(two_parallel(server), 0.8)  # and the old concurrency

    def test_published_replicas_answer_404_and_draining_replicas_503(self):
        published = Server(self, make_package(self, model_py(ECHO_MODEL))).start()
        other = make_package(self, model_py(ECHO_MODEL))
        self.assertEqual(self.reload(published, other), (404, {"error": "not found"}))
        self.assertEqual(published.predict(1)[0], 200)

        pkg = make_package(self, model_py(ShutdownTests.SLOW))
        server = Server(self, pkg, kind="development").start()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/health")  # a kept-alive connection, opened before draining
        self.assertEqual(conn.getresponse().read(), b'{"status":"ready"}')
        thread, outcome = ShutdownTests._start_slow_request(self, server, pkg, 0.6)
        server.proc.send_signal(signal.SIGTERM)
        server.expect_event("draining")
        conn.request("POST", "/reload", body=json.dumps({"package": other}))
        resp = conn.getresponse()
        self.assertEqual((resp.status, json.loads(resp.read())), (503, {"error": "replica is draining"}))
        thread.join(10)
        self.assertEqual(outcome.get("result"), (200, {"slept": 0.6}), outcome)
        self.assertEqual(server.wait_exit(5), 0)


class CheckTests(unittest.TestCase):
    def check(self, pkg):
        proc = subprocess.run(
            [sys.executable, SERVER, "check", "--package", pkg], capture_output=True, text=True, timeout=30
        )
        return proc.returncode, proc.stdout, proc.stderr

    def assert_fails(self, pkg, first_line):
        code, out, err = self.check(pkg)
        self.assertEqual(code, 4, err)
        self.assertEqual(err.splitlines()[0], first_line, err)
        return err

    def test_ok_class_does_not_instantiate(self):
        source = """
            class Model:
                def __init__(self):
                    raise RuntimeError("must not be instantiated by check")

                def predict(self, model_input):
                    return model_input
        """
        code, out, err = self.check(make_package(self, model_py(source)))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "ok: class Model in model/model.py")

    def test_ok_bare(self):
        files = {"predict.py": "def load():\n    raise RuntimeError('not called')\n\ndef predict(x):\n    return x\n"}
        code, out, err = self.check(make_package(self, files, layout="bare"))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "ok: function predict and load() in predict.py")

    def test_syntax_error(self):
        err = self.assert_fails(
            make_package(self, model_py("class Model:\n    pass\ndef (:\n")),
            "SyntaxError in model/model.py line 3: invalid syntax",
        )
        self.assertIn("Traceback", err)

    def test_syntax_error_fixture(self):
        code, _, err = self.check(make_package(self, copy_from=os.path.join(FIXTURES, "syntax-error")))
        self.assertEqual(code, 4)
        self.assertTrue(err.startswith("SyntaxError in model/model.py line 2: "), err)

    def test_module_not_found(self):
        err = self.assert_fails(
            make_package(self, model_py("import foo_gantry_missing\nclass Model:\n    pass\n")),
            "ModuleNotFoundError: No module named 'foo_gantry_missing'",
        )
        self.assertIn("Traceback", err)

    def test_other_exception_at_import(self):
        self.assert_fails(make_package(self, model_py("x = 1 / 0\n")), "ZeroDivisionError: division by zero")

    def test_no_class(self):
        self.assert_fails(make_package(self, model_py("class Other:\n    pass\n")), "model/model.py has no class named Model")

    def test_class_without_predict(self):
        self.assert_fails(
            make_package(self, model_py("class Model:\n    pass\n")), "model/model.py: class Model has no predict method"
        )

    def test_missing_model_file(self):
        self.assert_fails(
            make_package(self, copy_from=os.path.join(FIXTURES, "missing-model-file")),
            "model file model/model.py not found",
        )

    def test_bare_without_predict(self):
        self.assert_fails(make_package(self, {"predict.py": "def load():\n    pass\n"}, layout="bare"),
                          "predict.py has no function named predict")
        self.assert_fails(make_package(self, {}, layout="bare"), "model file predict.py not found")

    def test_fixtures_that_import_fine(self):
        for name in ("load-raises", "never-healthy", "slow-load", "bad-requirement", "bad-config"):
            code, out, err = self.check(make_package(self, copy_from=os.path.join(FIXTURES, name)))
            self.assertEqual((code, out.strip()), (0, "ok: class Model in model/model.py"), (name, err))



LIMITS_MODEL = """
    import os

    class Model:
        finished = 0

        def predict(self, model_input):
            if isinstance(model_input, str):
                return {"length": len(model_input)}
            if "sleep" in model_input:
                import time
                time.sleep(model_input["sleep"])
                Model.finished += 1
                return {"slept": model_input["sleep"], "finished_before": Model.finished - 1}
            if "until" in model_input:
                open(model_input["started"], "w").close()
                while not os.path.exists(model_input["until"]):
                    for _ in range(20000):  # pure Python: holds the GIL between switch points
                        pass
                return {"released": True}
            if "result" in model_input:
                return {"a set": {1, 2}, "nested": {"tags": [1, {3}]}, "object": object(), "bytes": b"x"}[model_input["result"]]
            if "stream" in model_input:
                def chunks():
                    yield {"n": 1}
                    yield {"bad": {1}}
                return chunks()
            return {"ok": True}
"""


class LimitsTests(unittest.TestCase):
    """The runtime limits: predict timeout, connection pool, gate before the body, strict JSON."""

    def start(self, runtime, extra_args=()):
        pkg = make_package(self, model_py(LIMITS_MODEL), runtime=runtime)
        return Server(self, pkg, extra_args=extra_args).start()

    def flags(self):
        root = tempfile.mkdtemp(prefix="gantry-ms-flags-")
        self.addCleanup(shutil.rmtree, root, True)
        return os.path.join(root, "started"), os.path.join(root, "release")

    def wait_for_file(self, path):
        for _ in range(500):
            if os.path.exists(path):
                return
            time.sleep(0.02)
        self.fail("%s never appeared" % path)

    def test_a_predict_past_its_timeout_answers_504_and_the_replica_keeps_serving(self):
        server = self.start({"predict_concurrency": 1, "predict_timeout_seconds": 1})
        status, body, headers = server.predict({"sleep": 4}, timeout=10)
        self.assertEqual((status, body), (504, {"error": "predict did not finish within predict_timeout_seconds (1 s)"}))
        self.assertEqual(headers["Connection"], "close")
        # Answered while the predict still runs (a thread cannot be stopped): it has not ended yet.
        self.assertNotIn("the predict that timed out ended", server.output())
        self.assertIn("predict did not finish within predict_timeout_seconds (1 s): answered 504", server.output())
        # Health is answered meanwhile, by the same process.
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
        # The slot stays taken until the predict really ends: the next predict runs after it.
        status, body, _ = server.predict({"sleep": 0}, timeout=10)
        self.assertEqual((status, body), (200, {"slept": 0, "finished_before": 1}))
        self.assertIn("the predict that timed out ended after", server.output())
        self.assertIsNone(server.proc.poll())
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))

    def test_other_slots_keep_serving_while_a_timed_out_predict_runs_on(self):
        server = self.start({"predict_concurrency": 2, "predict_timeout_seconds": 1})
        slow = {}
        thread = threading.Thread(target=lambda: slow.update(answer=server.predict({"sleep": 4}, timeout=10)))
        thread.start()
        self.addCleanup(thread.join)
        for _ in range(500):
            if "answered 504" in server.output():
                break
            time.sleep(0.02)
        status, body, _ = server.predict({"sleep": 0})
        self.assertEqual((status, body), (200, {"slept": 0, "finished_before": 0}))  # the slow one still runs
        thread.join()
        self.assertEqual(slow["answer"][0], 504)
        # Answers that come in time are not touched by the timeout.
        for _ in range(3):
            self.assertEqual(server.predict({"sleep": 0})[0], 200)

    def test_health_is_answered_when_predicts_hold_every_connection_and_the_gil(self):
        server = self.start({"predict_concurrency": 2}, extra_args=["--max-connections", "2"])
        started, release = self.flags()
        busy = []
        for _ in range(2):  # both connections run a predict that spins in Python until released
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.connect()
            busy.append(conn)
        self.addCleanup(lambda: [c.close() for c in busy])
        for index, conn in enumerate(busy):
            payload = json.dumps({"until": release, "started": "%s-%d" % (started, index)})
            conn.request("POST", "/predict", body=payload, headers={"Content-Type": "application/json"})
        # Both predicts running proves both connections were accepted into the pool. Seeing only
        # one is not enough: the kernel may hand the server a later connection (the health probe
        # below) before the second one, which would then take the pool's last place.
        for index in range(2):
            self.wait_for_file("%s-%d" % (started, index))

        # A third connection is beyond the pool: health is still answered, a predict gets 503.
        self.assertEqual(server.request("GET", "/health")[:2], (200, {"status": "ready"}))
        status, body, headers = server.predict({"sleep": 0})
        self.assertEqual((status, body), (503, {"error": "replica is serving its limit of 2 connections; try again"}))
        self.assertEqual(headers["Connection"], "close")

        open(release, "w").close()
        for conn in busy:
            response = conn.getresponse()
            self.assertEqual((response.status, json.loads(response.read())), (200, {"released": True}))
        for conn in busy:
            conn.close()
        # Once the server has seen those connections close, their pool threads serve again.
        for _ in range(200):
            answer = server.predict({"sleep": 0})[:2]
            if answer[0] != 503:
                break
            time.sleep(0.02)
        self.assertEqual(answer, (200, {"slept": 0, "finished_before": 0}))

    def test_the_gate_is_taken_before_the_body_is_read(self):
        server = self.start({"predict_concurrency": 1})
        started, release = self.flags()
        holder = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.addCleanup(holder.close)
        holder.request("POST", "/predict", body=json.dumps({"until": release, "started": started}))
        self.wait_for_file(started)

        size = 64 * 1024 * 1024
        body = b'"' + b"a" * (size - 2) + b'"'
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        sock.settimeout(1.0)
        sent = 0
        try:
            while sent < size:
                sent += sock.send(body[sent:sent + (1 << 20)])
        except socket.timeout:
            pass
        # Nobody reads the body while the slot is taken: only the kernel's buffers filled.
        self.assertLess(sent, size)

        open(release, "w").close()
        response = holder.getresponse()
        self.assertEqual(response.status, 200)
        response.read()
        sock.settimeout(30)
        sock.sendall(body[sent:])
        reply = b""
        while b"}" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:200])
        self.assertIn(b'{"length":%d}' % (size - 2), reply)

    def test_a_result_that_is_not_json_serializable_is_a_500_naming_its_type(self):
        server = self.start({"predict_concurrency": 1})
        expected = {
            "a set": "predict returned a set, which is not JSON-serializable",
            "nested": 'predict returned a value holding a set at ["tags"][1], which is not JSON-serializable',
            "object": "predict returned an object, which is not JSON-serializable",
            "bytes": "predict returned a bytes, which is not JSON-serializable",
        }
        for key, message in expected.items():
            self.assertEqual(server.predict({"result": key})[:2], (500, {"error": message}), key)
            self.assertIn(message, server.output())
        self.assertEqual(server.predict({})[:2], (200, {"ok": True}))

        # A stream still streams: the item that cannot be encoded ends it with the error line.
        request = urllib.request.Request("http://127.0.0.1:%d/predict" % server.port, data=b'{"stream": true}', method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)
            lines = response.read().decode().splitlines()
        self.assertEqual([json.loads(line) for line in lines],
                         [{"n": 1}, {"error": "predict yielded a value holding a set at [\"bad\"], which is not JSON-serializable"}])


if __name__ == "__main__":
    unittest.main()

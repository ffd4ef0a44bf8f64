"""Random requests to the gateway's inference paths, driven by Hypothesis (installed with
Schemathesis from requirements/schemathesis.txt). Run by test/fuzz/fuzz.test.ts against a live
stack:

    python test/fuzz/gateway_fuzz.py --url URL --key KEY --model ID --deployment ID [--examples N] [--seed N]

Each request has a random method, path (Baseten's inference paths with real and made-up parts,
or anything at all), headers (Host routing, content types, keys good, bad and missing) and body
(none, JSON, text, bytes). The gateway may answer anything but a 5xx other than its documented
502, 503 and 504, and its own error answers are JSON `{"error": {"code", "message"}}`. Prints one
JSON line: requests sent, answers by status, failures.
"""

import argparse
import http.client
import json
import sys
import urllib.parse
from collections import Counter

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

DOCUMENTED_5XX = {502, 503, 504}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ACTIONS = ["predict", "wake", "async_predict", "async_queue_status", "run_remote", "predict_stream", ""]
TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=1, max_size=12)
# What a path segment may be: printable text (percent-encoded when sent), malformed escapes, dots.
SEGMENT = st.one_of(
    TOKEN,
    st.sampled_from(["%zz", "%", "%2F", "%00", "..", ".", "%E0%A4%A", "%C0%AF", "~"]),
    st.text(min_size=0, max_size=20).map(lambda text: urllib.parse.quote(text, safe="")),
)


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args()


ARGS = arguments()
TARGET = urllib.parse.urlsplit(ARGS.url)
STATUSES = Counter()
FAILURES = []
SERVER_ERRORS = []


def paths():
    model = st.one_of(st.just(ARGS.model), st.just(ARGS.model.upper()), SEGMENT)
    target = st.one_of(
        st.sampled_from(["production", "development"]),
        st.tuples(st.just("environments"), st.one_of(st.just("production"), SEGMENT)).map("/".join),
        st.tuples(st.just("deployment"), st.one_of(st.just(ARGS.deployment), SEGMENT)).map("/".join),
        SEGMENT,
    )
    action = st.one_of(st.sampled_from(ACTIONS), SEGMENT)
    inference = st.builds(lambda m, t, a, slash: f"/models/{m}/{t}/{a}{slash}", model, target, action, st.sampled_from(["", "/", "//"]))
    by_host = st.builds(lambda t, a: f"/{t}/{a}", target, action)
    async_request = st.builds(lambda m, r: f"/models/{m}/async_request/{r}", model, SEGMENT)
    anything = st.lists(SEGMENT, max_size=6).map(lambda segments: "/" + "/".join(segments))
    query = st.one_of(st.just(""), st.builds(lambda k, v: f"?{k}={v}", TOKEN, SEGMENT))
    return st.builds(lambda path, q: path + q, st.one_of(inference, by_host, async_request, anything), query)


def headers():
    authorization = st.one_of(
        st.just(f"Api-Key {ARGS.key}"),
        st.just(f"Api-Key {ARGS.key}"),
        st.just(f"Api-Key {ARGS.key}"),
        st.just(f"Api-Key {ARGS.key}x"),
        st.just(f"Bearer {ARGS.key}"),
        st.just("Api-Key "),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        st.none(),
    )
    host = st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.just(f"model-{ARGS.model}.localhost"),
        st.just(f"model-{ARGS.model}.localhost:{TARGET.port}"),
        st.builds(lambda name: f"model-{name}.localhost", TOKEN),
        TOKEN,
    )
    content_type = st.one_of(
        st.none(),
        st.sampled_from(["application/json", "text/plain", "application/octet-stream", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]),
        TOKEN,
    )
    extra = st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=16).filter(lambda name: name.strip("-") and name not in ("host", "content-length", "transfer-encoding", "authorization", "content-type", "connection", "expect")),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
        max_size=4,
    )
    return st.builds(
        lambda a, h, c, e: {**e, **({"Authorization": a} if a is not None else {}), **({"Host": h} if h is not None else {}), **({"Content-Type": c} if c is not None else {})},
        authorization,
        host,
        content_type,
        extra,
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
BODIES = st.one_of(
    st.none(),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=200).map(str.encode),
    st.binary(max_size=512),
)


def send(method, path, request_headers, body):
    connection = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host="Host" in request_headers, skip_accept_encoding=True)
        for name, value in request_headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body or b"")
        response = connection.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        connection.close()


def check(method, path, request_headers, body):
    status, content_type, answer = send(method, path, request_headers, body)
    STATUSES[status] += 1
    if status >= 500 and len(SERVER_ERRORS) < 20:
        SERVER_ERRORS.append({"method": method, "path": path, "status": status, "answer": answer[:200].decode("utf-8", "replace")})
    problem = None
    if status >= 500 and status not in DOCUMENTED_5XX:
        problem = f"undocumented server error {status}"
    elif status >= 400 and method != "HEAD":
        # Requests Node's parser refuses (a method HTTP does not know, say) get the gateway's JSON error too.
        # The replica's own 4xx (a body that is not JSON) passes through as it is; the gateway's errors are its JSON shape.
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = None
        from_replica = isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
        if not from_replica and not (isinstance(parsed, dict) and isinstance(parsed.get("error"), dict) and isinstance(parsed["error"].get("code"), str)):
            problem = f"{status} whose body is not an error answer ({content_type}): {answer[:200]!r}"
    if problem:
        FAILURES.append({"method": method, "path": path, "headers": {k: ("[key]" if k == "Authorization" else v) for k, v in request_headers.items()}, "problem": problem})
    assert problem is None, problem


def served_requests():
    """Predictions the model serves: a real address, the key, a JSON body, and random extra headers."""
    address = st.one_of(
        st.tuples(st.just(f"/models/{ARGS.model}/production/predict"), st.just(None)),
        st.tuples(st.just(f"/models/{ARGS.model}/environments/production/predict/"), st.just(None)),
        st.tuples(st.just(f"/models/{ARGS.model}/deployment/{ARGS.deployment}/predict"), st.just(None)),
        st.tuples(st.just("/production/predict"), st.just(f"model-{ARGS.model}.localhost")),
    )
    return st.builds(
        lambda where, extra, value: (
            "POST",
            where[0],
            {**extra, "Authorization": f"Api-Key {ARGS.key}", "Content-Type": "application/json", **({"Host": where[1]} if where[1] else {})},
            json.dumps(value).encode(),
        ),
        address,
        headers(),
        st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4),
    )


def random_requests():
    method = st.one_of(st.just("POST"), st.sampled_from(METHODS), TOKEN.map(str.upper))
    return st.tuples(method, paths(), headers(), BODIES)


@settings(max_examples=ARGS.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
@given(request=st.one_of(served_requests(), random_requests()))
def fuzz_gateway(request):
    check(*request)


if __name__ == "__main__":
    if ARGS.seed is not None:
        fuzz_gateway = seed(ARGS.seed)(fuzz_gateway)
    error = None
    try:
        fuzz_gateway()
    except Exception as exc:  # Hypothesis raises the (shrunk) failure; the summary says what it was
        error = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"requests": sum(STATUSES.values()), "statuses": {str(k): v for k, v in sorted(STATUSES.items())}, "failures": FAILURES[:20], "failure_count": len(FAILURES), "documented_5xx": SERVER_ERRORS, "error": error}))
    sys.exit(1 if error or FAILURES else 0)

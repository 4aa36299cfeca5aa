#!/usr/bin/env python3
"""Bad input to the OpenAI-compatible HTTP API of a live bptserve: every refusal is an OpenAI error
object ({"error": {"message", "type", "param", "code"}}) with the status the SDK maps to its
exception and the field named in `param`; truncated JSON, invalid UTF-8, bodies that are no
object, a 300 MB body (announced or chunked) refused with 413 without being read, and slowloris
clients holding partial heads open while others are served, until the server times them out.

Waits are for events (a reply, a closed connection) with only a hang's bound; nothing is timed.

usage: openai_api_bad_input_test.py BIN_DIR PYTHON_CLIENT_DIR
"""
import http.client
import json
import select
import socket
import sys
import tempfile
import threading
import time
import traceback

BIN_DIR, PY_DIR = sys.argv[1], sys.argv[2]
sys.path.insert(0, PY_DIR)

import openai  # noqa: E402

import test_support  # noqa: E402
from test_support import http_request, read_response  # noqa: E402

check = test_support.Checks()
HANG = 120  # bounds every wait for an event; reached only when something hangs
MODEL = "chat-demo"
PROMPT = "The server reads the document once"
MESSAGES = [{"role": "user", "content": "Hello"}]
HUGE = 300 << 20  # over the 256 MiB body limit
# As api.openai.com answers: an unknown model is a 404 of type invalid_request_error, code model_not_found.
TYPES = {400: "invalid_request_error", 404: "invalid_request_error"}


def section(name, fn, *args):
    """Runs one group of checks; an exception fails that group, with its traceback, and the rest run."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 -- reported as a failed check
        check(False, f"{name} raised:\n{traceback.format_exc()}")
        return None


def error_shape_problem(raw):
    """Why `raw` is not an OpenAI error object ("" if it is one)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return f"not JSON: {raw[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"not {{'error': {{...}}}}: {body}"
    if set(error) != {"message", "type", "param", "code"}:
        return f"error keys {sorted(error)}"
    if not isinstance(error["message"], str) or not error["message"] or not isinstance(error["type"], str):
        return f"message or type: {error}"
    if not all(error[k] is None or isinstance(error[k], str) for k in ("param", "code")):
        return f"param and code are strings or null: {error}"
    return ""


def sdk_error_checks(port):
    """Each case through the SDK: the exception class, the status, the error's type and param."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=HANG)
    long_prompt = "Too long. " + "Long documents are the reason bptserve exists. " * 250  # ~3250 tokens
    completions = lambda model=MODEL, **body: client.completions.create(  # noqa: E731
        model=model, prompt=PROMPT, max_tokens=4, extra_body=body)
    chat = lambda model=MODEL, **body: client.chat.completions.create(  # noqa: E731
        model=model, messages=MESSAGES, max_tokens=4, extra_body=body)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    cases = [
        ("unknown model", lambda: completions(model="no-such-model"), openai.NotFoundError, 404, "model"),
        ("chat: unknown model", lambda: chat(model="no-such-model"), openai.NotFoundError, 404, "model"),
        ("temperature 'hot'", lambda: completions(temperature="hot"), openai.BadRequestError, 400, "temperature"),
        ("temperature 5", lambda: completions(temperature=5), openai.BadRequestError, 400, "temperature"),
        ("chat: temperature 5", lambda: chat(temperature=5), openai.BadRequestError, 400, "temperature"),
        ("top_p 0", lambda: completions(top_p=0), openai.BadRequestError, 400, "top_p"),
        ("n 2", lambda: completions(n=2), openai.BadRequestError, 400, "n"),
        ("chat: n 2", lambda: chat(n=2), openai.BadRequestError, 400, "n"),
        ("best_of 2", lambda: completions(best_of=2), openai.BadRequestError, 400, "best_of"),
        ("echo", lambda: completions(echo=True), openai.BadRequestError, 400, "echo"),
        ("suffix", lambda: completions(suffix="end"), openai.BadRequestError, 400, "suffix"),
        ("logit_bias", lambda: completions(logit_bias={"1": 5}), openai.BadRequestError, 400, "logit_bias"),
        ("chat: logit_bias", lambda: chat(logit_bias={"1": 5}), openai.BadRequestError, 400, "logit_bias"),
        ("unknown key", lambda: completions(frobnicate=1), openai.BadRequestError, 400, "frobnicate"),
        ("chat: unknown key", lambda: chat(frobnicate=1), openai.BadRequestError, 400, "frobnicate"),
        ("max_tokens 0", lambda: completions(max_tokens=0), openai.BadRequestError, 400, "max_tokens"),
        ("chat: max_tokens 0", lambda: chat(max_tokens=0), openai.BadRequestError, 400, "max_tokens"),
        ("max_tokens '10'", lambda: completions(max_tokens="10"), openai.BadRequestError, 400, "max_tokens"),
        ("prompt 42", lambda: completions(prompt=42), openai.BadRequestError, 400, "prompt"),
        ("stop 5", lambda: completions(stop=5), openai.BadRequestError, 400, "stop"),
        ("stream 'yes'", lambda: completions(stream="yes"), openai.BadRequestError, 400, "stream"),
        ("seed 'x'", lambda: completions(seed="x"), openai.BadRequestError, 400, "seed"),
        ("logprobs 21", lambda: completions(logprobs=21), openai.BadRequestError, 400, "logprobs"),
        ("chat: top_logprobs 21", lambda: chat(logprobs=True, top_logprobs=21), openai.BadRequestError, 400,
         "top_logprobs"),
        ("chat: tools", lambda: chat(tools=[tool]), openai.BadRequestError, 400, "tools"),
        ("chat: response_format", lambda: chat(response_format={"type": "json_object"}), openai.BadRequestError,
         400, "response_format"),
        ("chat: image_url part", lambda: chat(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]),
         openai.BadRequestError, 400, "messages[0].content[0].type"),
        ("chat: messages 'hi'", lambda: chat(messages="hi"), openai.BadRequestError, 400, "messages"),
        ("chat: no messages", lambda: chat(messages=[]), openai.BadRequestError, 400, "messages"),
        ("chat: role 5", lambda: chat(messages=[{"role": 5, "content": "x"}]), openai.BadRequestError, 400,
         "messages[0].role"),
        ("prompt of two prompts", lambda: completions(prompt=["a", "b"]), openai.BadRequestError, 400, "prompt"),
        ("token id out of the vocabulary", lambda: completions(prompt=[5, 999999]), openai.BadRequestError, 400,
         "prompt[1]"),
        ("empty prompt", lambda: completions(prompt=""), openai.BadRequestError, 400, "prompt"),
        ("17 stop strings", lambda: completions(stop=["a"] * 17), openai.BadRequestError, 400, "stop"),
        ("stream_options without stream", lambda: completions(stream_options={"include_usage": True}),
         openai.BadRequestError, 400, "stream_options"),
        ("chat: top_logprobs without logprobs", lambda: chat(top_logprobs=2), openai.BadRequestError, 400,
         "top_logprobs"),
        ("chat: no role", lambda: chat(messages=[{"content": "x"}]), openai.BadRequestError, 400, "messages[0].role"),
        ("prompt over the limit", lambda: completions(prompt=long_prompt), openai.BadRequestError, 400, "prompt"),
        ("chat: messages over the limit", lambda: chat(messages=[{"role": "user", "content": long_prompt}]),
         openai.BadRequestError, 400, "messages"),
    ]
    for what, call, kind, status, param in cases:
        try:
            call()
            check(False, f"{what}: accepted")
            continue
        except openai.APIStatusError as e:
            error = e
        except Exception as e:  # noqa: BLE001 -- no response at all (e.g. the connection dropped)
            check(False, f"{what}: {type(e).__name__}: {e}")
            continue
        check(isinstance(error, kind) and error.status_code == status,
              f"{what}: {type(error).__name__} {error.status_code}, expected {kind.__name__} {status}: {error.body}")
        check(error.param == param, f"{what}: param {error.param!r}, expected {param!r}: {error.body}")
        check(error.type == TYPES[status], f"{what}: type {error.type!r}: {error.body}")
        if status == 404:
            check(error.code == "model_not_found", f"{what}: code {error.code!r}: {error.body}")
        problem = error_shape_problem(error.response.content)
        check(not problem, f"{what}: {problem}")
    # Prompt and max_tokens beyond the KV cache (4096 tokens) can never fit: 400, not 429.
    try:
        completions(prompt="Hello", max_tokens=5000)
        check(False, "a request that can never fit: accepted")
    except openai.APIStatusError as e:
        check(e.status_code == 400 and not error_shape_problem(e.response.content),
              f"a request that can never fit: {e.status_code} {e.body}")


def raw_body_checks(port):
    """Bodies the SDK cannot send: each a 400 with the error object (a valid one, 200, first)."""
    for path in ("/v1/completions", "/v1/chat/completions"):
        def valid(text):
            if path == "/v1/completions":
                return b'{"model": "chat-demo", "prompt": "' + text + b'", "max_tokens": 2}'
            return (b'{"model": "chat-demo", "messages": [{"role": "user", "content": "' + text
                    + b'"}], "max_tokens": 2}')
        good = valid(b"Hello")
        status, _, raw = http_request(port, "POST", path, good, {"Content-Type": "application/json"})
        check(status == 200, f"{path} the valid body: {status} {raw[:200]!r}")
        cases = [
            ("truncated JSON", good[:-12]),
            ("half the JSON", good[:len(good) // 2]),
            ("invalid UTF-8 in a string", valid(b"Hello \xff\xfe there")),
            ("an overlong UTF-8 encoding", valid(b"Hello \xc0\xaf")),
            ("invalid UTF-8 in a key", good.replace(b'"model"', b'"mo\xc3del"')),
            ("a lone surrogate escape", valid(b"Hello \\ud800")),
            ("trailing garbage", good + b" x"),
            ("an array", b"[" + good + b"]"),
            ("a string", b'"Hello"'),
            ("a number", b"42"),
            ("null", b"null"),
            ("an empty body", b""),
        ]
        for what, body in cases:
            try:
                status, headers, raw = http_request(port, "POST", path, body, {"Content-Type": "application/json"})
            except (OSError, http.client.HTTPException) as e:
                check(False, f"{path} {what}: no response: {e!r}")
                continue
            problem = error_shape_problem(raw)
            check(status == 400 and not problem, f"{path} {what}: {status} {problem} {raw[:200]!r}")
            if status == 400 and not problem:
                check(json.loads(raw)["error"]["type"] == "invalid_request_error", f"{path} {what}: type")
    status, _, raw = http_request(port, "POST", "/v1/embeddings", {"model": MODEL, "input": "x"})
    check(status == 404 and not error_shape_problem(raw), f"an unknown route: {status} {raw[:200]!r}")
    status, _, raw = http_request(port, "GET", "/v1/completions")
    check(status in (404, 405) and not error_shape_problem(raw), f"GET /v1/completions: {status} {raw[:200]!r}")


def malformed_http_checks(port):
    """The transport's own refusals have the API's error shape, and close the connection."""
    cases = [
        ("a malformed request line", b"GARBAGE\r\n\r\n", 400),
        ("a head over 16 KiB", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        ("a bad Content-Length", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        ("a bad chunk", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"zz\r\nabc\r\n0\r\n\r\n", 400),
        ("Content-Length and chunked", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ]
    for what, data, expected in cases:
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
            s.sendall(data)
            status, _, raw, closed = read_response(s, HANG)
        check(status == expected and not error_shape_problem(raw) and closed,
              f"{what}: {status} (expected {expected}) {error_shape_problem(raw)} {raw[:200]!r}, closed: {closed}")
    # Expect: 100-continue (curl sends it for bodies over 1 MiB): the interim reply, then the answer.
    body = json.dumps({"model": MODEL, "prompt": PROMPT, "max_tokens": 2}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        f = s.makefile("rb")
        interim = [f.readline(), f.readline()]
        s.sendall(body)
        final = f.readline()
    check(interim == [b"HTTP/1.1 100 Continue\r\n", b"\r\n"] and final.startswith(b"HTTP/1.1 200"),
          f"Expect: 100-continue: {interim} then {final!r}")


def huge_body_checks(port):
    """300 MB, announced in Content-Length or sent chunked: 413 with the error object, and the
    connection closed; the server never reads the announced body."""
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % HUGE)

        def send_some():  # a few MiB of the body; the server may close while they go
            try:
                for _ in range(4):
                    s.sendall(b'{"prompt": "' + b"x" * (1 << 20))
            except OSError:
                pass
        sender = threading.Thread(target=send_some)
        sender.start()
        status, _, raw, closed = read_response(s, HANG)
        sender.join(HANG)
    check(status == 413 and not error_shape_problem(raw) and closed,
          f"Content-Length {HUGE}: {status} {error_shape_problem(raw)} {raw[:200]!r}, closed after: {closed}")

    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b'{"prompt": "' + b"x" * ((1 << 20) - 12)
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        sent = 0
        try:
            # Until the server answers (readable) or closes (an error), at most 300 MiB.
            while sent < HUGE and not select.select([s], [], [], 0)[0]:
                s.sendall(chunk)
                sent += len(piece)
        except OSError:
            pass
        status, _, raw, closed = read_response(s, HANG)
    check(status == 413 and not error_shape_problem(raw) and closed,
          f"a chunked body of {sent >> 20} MiB sent: {status} {error_shape_problem(raw)} {raw[:200]!r}, "
          f"closed: {closed}")
    check(sent < HUGE, "the server refused the chunked body before 300 MiB")
    # The server still serves.
    status, _, _ = http_request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": PROMPT, "max_tokens": 2})
    check(status == 200, f"a request after the huge ones: {status}")


def slowloris_open(port, n):
    """n connections that send the start of a head and nothing more."""
    sockets = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    return sockets


def slowloris_checks(port, sockets):
    """While the partial heads are open others were served (everything above ran); the server
    ends each with 408 (its head timeout) and closes it: the wait is bounded by that timeout."""
    status, _, raw = http_request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": PROMPT, "max_tokens": 2})
    check(status == 200, f"served while {len(sockets)} partial heads are open: {status} {raw[:200]!r}")
    replies = []
    deadline = time.monotonic() + HANG  # one hang's bound for them all
    for s in sockets:
        status, _, raw, closed = read_response(s, max(1.0, deadline - time.monotonic()))
        replies.append((status, closed, error_shape_problem(raw) if status else raw))
        s.close()
    check(all(r[0] == 408 and r[1] and not r[2] for r in replies), f"the partial heads' ends: {replies}")


with tempfile.TemporaryDirectory() as work:
    model = test_support.chat_model(BIN_DIR, work, MODEL)
    server, _, _ = test_support.start_server(BIN_DIR, "--model", model, "--kv-capacity", "4096",
                                             "--max-prompt-tokens", "2000")
    try:
        port = server.http_port
        slow = slowloris_open(port, 16)
        section("SDK errors", sdk_error_checks, port)
        section("raw bodies", raw_body_checks, port)
        section("malformed HTTP", malformed_http_checks, port)
        section("huge bodies", huge_body_checks, port)
        section("slowloris", slowloris_checks, port, slow)
    finally:
        server.terminate()
        check(server.wait(timeout=HANG) == 0, "bptserve exit code after SIGTERM")

sys.exit(check.finish())

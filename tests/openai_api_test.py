#!/usr/bin/env python3
"""The OpenAI-compatible HTTP API of a live bptserve, through the official `openai` SDK, curl and
plain HTTP: models, completions and chat (streaming or not), usage, stop strings, seeds, logprobs,
the SSE framing, the same answers as the gRPC API, prefill progress comments, clients that
disconnect (mid-stream, mid-prefill, while queued, before a whole response), 32 HTTP and 32 gRPC
clients at once, the HTTP metrics, readiness while loading, API keys, TLS and mTLS, a full queue
(429), a drain (503; streams in flight finish, or end with an error event when its time is up).
Bad input is openai_api_bad_input_test.py's.

Waits are for events (a metric, a line, a status) with only a hang's bound; nothing is timed.

usage: openai_api_test.py BIN_DIR PYTHON_CLIENT_DIR
"""
import errno
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import traceback

BIN_DIR, PY_DIR = sys.argv[1], sys.argv[2]
sys.path.insert(0, PY_DIR)

import grpc  # noqa: E402
import openai  # noqa: E402

from bptserve_client import Client, pb  # noqa: E402
from bptserve_client.bptserve.v1 import bptserve_pb2_grpc as pb_grpc  # noqa: E402

import test_support  # noqa: E402
from test_support import http_request, metric, scrape, sse_events, wait_for  # noqa: E402

check = test_support.Checks()
HANG = 120  # bounds every wait for an event; reached only when something hangs
PROMPT = "The server reads the document once"
DOCUMENT = "Long documents are the reason bptserve exists. "  # 13 tokens; * 100 is 1302 with BOS
FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


def sdk(port, api_key="unused"):
    # No retries: a 429 or 503 must reach the test as it came.
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key, max_retries=0, timeout=HANG)


def grpc_generate(target, text=None, token_ids=None, chat=None, **options):
    """(text, finish reason, usage) of a gRPC Generate through the Python client."""
    with Client(target) as client:
        events = list(client.chat(chat, **options) if chat is not None else
                      client.generate(text=text, token_ids=token_ids, **options))
    finished = [e for e in events if e.kind == "finished"]
    return "".join(e.text for e in events if e.kind == "tokens"), finished[-1].finish_reason, finished[-1].usage


def grpc_logprobs(target, text, max_new_tokens, top_logprobs):
    """[(chosen logprob, [top logprobs])] of a greedy gRPC Generate, from the raw stub."""
    request = pb.GenerateRequest(text=text)
    request.sampling.temperature = 0
    request.stopping.max_new_tokens = max_new_tokens
    request.options.top_logprobs = top_logprobs
    with grpc.insecure_channel(target) as channel:
        out = []
        for response in pb_grpc.InferenceStub(channel).Generate(request, timeout=HANG):
            if response.WhichOneof("event") == "tokens":
                out += [(lp.logprob, [t.logprob for t in lp.top]) for lp in response.tokens.logprobs]
        return out


def section(name, fn, *args):
    """Runs one group of checks; an exception fails that group, with its traceback, and the rest run."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 -- reported as a failed check
        check(False, f"{name} raised:\n{traceback.format_exc()}")
        return None


def pick_stop(text):
    """Two printable characters of `text`, first found at 3 or later: text[:that] is what a stop
    string makes of it."""
    return next((text[i:i + 2] for i in range(3, len(text) - 1)
                 if text[i:i + 2].isascii() and text[i:i + 2].isprintable() and text[i:i + 2].strip() == text[i:i + 2]
                 and text.find(text[i:i + 2]) == i), None)


def status_of(port, method, path):
    """The status of one request, or -1 when the connection is refused or reset."""
    try:
        return http_request(port, method, path)[0]
    except OSError:
        return -1


def status_error(call):
    """The openai.APIStatusError a call raises (None if it succeeds)."""
    try:
        call()
    except openai.APIStatusError as e:
        return e
    return None


def open_stream(port, path, body):
    """Sends a request on a connection of its own; returns (connection, socket) before reading the
    response, so the caller decides when (and whether) to read it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    conn.connect()
    conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return conn, conn.sock


def disconnect(sock):
    """Closes the connection now, whatever else holds the socket."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def read_stream(conn):
    """(status, events) of a streaming response read to its end."""
    response = conn.getresponse()
    events = list(sse_events(response)) if response.status == 200 else [("body", response.read())]
    conn.close()
    return response.status, events


def framing_problems(events):
    """What is wrong with a finished SSE stream's framing: every line is `data: ` or a comment,
    exactly one `data: [DONE]`, and it is the last event; every other data line is JSON."""
    problems = [f"not an SSE line: {v!r}" for k, v in events if k == "other"]
    data = [v for k, v in events if k == "data"]
    if data.count("[DONE]") != 1 or not events or events[-1] != ("data", "[DONE]"):
        problems.append(f"[DONE] {data.count('[DONE]')} times, last event {events[-1] if events else None}")
    for v in data:
        if v != "[DONE]":
            try:
                json.loads(v)
            except ValueError:
                problems.append(f"data is not JSON: {v!r}")
    return problems


def chunks_of(events):
    return [json.loads(v) for k, v in events if k == "data" and v != "[DONE]"]


def gauges_idle(metrics_port):
    s = scrape(metrics_port)
    return (metric(s, "bptserve_num_requests_running") == 0 and metric(s, "bptserve_num_requests_waiting") == 0
            and metric(s, "bptserve_kv_cache_usage_perc") == 0)


def wait_cancelled(metrics_port, expected, what):
    """Waits until the server counted `expected` CANCELLED requests and holds no request and no KV."""
    def done():
        s = scrape(metrics_port)
        return (metric(s, "bptserve_request_errors_total", code="CANCELLED") >= expected
                and gauges_idle(metrics_port)) and s
    try:
        s = wait_for(done, HANG, what)
        check(metric(s, "bptserve_request_errors_total", code="CANCELLED") == expected,
              f"{what}: CANCELLED {metric(s, 'bptserve_request_errors_total', code='CANCELLED')}, expected {expected}")
    except RuntimeError as e:
        s = scrape(metrics_port)
        check(False, f"{e}: CANCELLED {metric(s, 'bptserve_request_errors_total', code='CANCELLED')} "
                     f"(expected {expected}), running {metric(s, 'bptserve_num_requests_running')}, "
                     f"KV usage {metric(s, 'bptserve_kv_cache_usage_perc')}")


def models_checks(port, target):
    client = sdk(port)
    status, _, _ = http_request(port, "GET", "/health")
    check(status == 200, f"/health: {status}")
    status, _, _ = http_request(port, "GET", "/ready")
    check(status == 200, f"/ready once loaded: {status}")

    with Client(target) as g:
        info = g.model_info()
    models = client.models.list()
    check([m.id for m in models.data] == ["demo-model"], f"models: {[m.id for m in models.data]}")
    status, headers, body = http_request(port, "GET", "/v1/models")
    listed = json.loads(body)
    entry = listed["data"][0] if listed.get("data") else {}
    check(status == 200 and headers.get("content-type", "").startswith("application/json"),
          f"/v1/models: {status} {headers}")
    check(listed.get("object") == "list" and len(listed["data"]) == 1 and entry.get("object") == "model"
          and entry.get("owned_by") == "bptserve" and isinstance(entry.get("created"), int)
          and entry.get("max_model_len") == info.context_limit_tokens, f"/v1/models body {listed}")


def greedy(client, **body):
    return client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=16, temperature=0, **body)


def greedy_checks(port, target):
    """Greedy: deterministic, and what gRPC gives for the same request; returns the text."""
    client = sdk(port)
    c = greedy(client)
    text = c.choices[0].text
    check(c.object == "text_completion" and c.id.startswith("cmpl-") and c.model == "demo-model"
          and len(c.choices) == 1 and c.choices[0].index == 0 and isinstance(c.created, int), f"completion {c}")
    check(c.choices[0].finish_reason == "length" and c.usage.completion_tokens == 16 and text != "",
          f"completion finish {c.choices[0].finish_reason}, usage {c.usage}")
    check(c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
          and c.usage.prompt_tokens_details is not None
          and isinstance(c.usage.prompt_tokens_details.cached_tokens, int), f"completion usage {c.usage}")
    again = greedy(client)
    check(again.choices[0].text == text and again.id != c.id, "greedy: the same text twice, two ids")
    g_text, g_finish, g_usage = grpc_generate(target, text=PROMPT, max_new_tokens=16, temperature=0)
    check(g_text == text, f"greedy completion as gRPC: {text!r} vs {g_text!r}")
    check((c.usage.prompt_tokens, c.usage.completion_tokens) == (g_usage.prompt_tokens, g_usage.completion_tokens)
          and c.choices[0].finish_reason == FINISH.get(g_finish), f"usage as gRPC: {c.usage} vs {g_usage} {g_finish}")
    with Client(target) as g:
        ids = g.tokenize(PROMPT, add_bos=True)
    by_ids = client.completions.create(model="demo-model", prompt=ids, max_tokens=16, temperature=0)
    check(by_ids.choices[0].text == text and by_ids.usage.prompt_tokens == len(ids),
          f"a prompt of token ids ({len(ids)}): {by_ids.choices[0].text!r} {by_ids.usage}")
    return text


def seed_checks(port, target):
    """The same seed the same text, over HTTP and gRPC; another seed another text."""
    client = sdk(port)
    seeded = [client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=16, temperature=1,
                                        seed=seed).choices[0].text for seed in (7, 7, 8)]
    check(seeded[0] == seeded[1] and seeded[0] != seeded[2], f"seeds 7, 7, 8: {seeded}")
    g_seeded, _, _ = grpc_generate(target, text=PROMPT, max_new_tokens=16, temperature=1, seed=7)
    check(g_seeded == seeded[0], f"seed 7 over gRPC: {g_seeded!r} vs {seeded[0]!r}")


def stream_checks(port, text):
    """The deltas make the whole response's text; one finish_reason; usage last, when asked."""
    client = sdk(port)
    c = greedy(client)
    chunks = list(client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=16, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    with_choices = [ch for ch in chunks if ch.choices]
    check("".join(ch.choices[0].text for ch in with_choices) == text, "streamed text is the whole response's")
    finishes = [ch.choices[0].finish_reason for ch in with_choices if ch.choices[0].finish_reason]
    check(finishes == ["length"] and with_choices[-1].choices[0].finish_reason == "length",
          f"stream finish reasons {finishes}")
    check(chunks[-1].choices == [] and chunks[-1].usage is not None
          and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens)
          == (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens)
          and sum(ch.usage is not None for ch in chunks) == 1, f"stream usage chunk {chunks[-1]}")
    check(len({ch.id for ch in chunks}) == 1 and all(ch.object == "text_completion" for ch in chunks),
          "one id and object text_completion in every chunk")
    plain = list(client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=4, temperature=0,
                                           stream=True))
    check(all(ch.usage is None for ch in plain) and plain and plain[-1].choices, "no usage chunk unless asked")


def stop_checks(port, target, text):
    """Stop strings: the text before the first one, finish_reason stop, as gRPC stops."""
    client = sdk(port)
    stop = pick_stop(text)
    check(stop is not None, f"a stop string from {text!r}")
    if stop is not None:
        expected = text[:text.find(stop)]
        s = client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=16, temperature=0,
                                      stop=[stop, "no such text"])
        check(s.choices[0].text == expected and s.choices[0].finish_reason == "stop"
              and s.usage.completion_tokens < 16, f"stop {stop!r}: {s.choices[0].text!r} {s.choices[0].finish_reason}")
        streamed = list(client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=16,
                                                  temperature=0, stop=stop, stream=True))
        check("".join(ch.choices[0].text for ch in streamed if ch.choices) == expected
              and streamed[-1].choices[0].finish_reason == "stop", f"streamed stop {stop!r}")
        g_text, g_finish, _ = grpc_generate(target, text=PROMPT, max_new_tokens=16, temperature=0, stop=[stop])
        check(g_text == expected and g_finish == "stop", f"gRPC stop {stop!r}: {g_text!r} {g_finish}")


def logprob_checks(port, target):
    """One per token, the chosen one's equal to gRPC's and (greedy) the top one's."""
    client = sdk(port)
    lp = client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=8, temperature=0,
                                   logprobs=3).choices[0].logprobs
    reference = grpc_logprobs(target, PROMPT, 8, 3)
    check(lp is not None and len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 8
          and all(isinstance(t, str) for t in lp.tokens), f"completion logprobs {lp}")
    if lp is not None and len(lp.token_logprobs) == len(reference):
        check(all(abs(a - b[0]) < 1e-4 for a, b in zip(lp.token_logprobs, reference)),
              f"logprobs as gRPC: {lp.token_logprobs} vs {[r[0] for r in reference]}")
        check(all(1 <= len(top) <= 3 and abs(max(top.values()) - chosen) < 1e-4
                  and all(any(abs(v - r) < 1e-4 for r in ref[1]) for v in top.values())
                  for top, chosen, ref in zip(lp.top_logprobs, lp.token_logprobs, reference)),
              f"top logprobs {lp.top_logprobs} vs gRPC {reference}")
    streamed_lp = [ch.choices[0].logprobs for ch in client.completions.create(
        model="demo-model", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2, stream=True) if ch.choices]
    check(sum(len(x.tokens) for x in streamed_lp if x is not None) == 8, "streamed logprobs: one per token")


def prefix_cache_checks(port):
    """The same long prompt again reuses its blocks, and usage says so."""
    client = sdk(port)
    long_prompt = "Cached. " + DOCUMENT * 40
    first = client.completions.create(model="demo-model", prompt=long_prompt, max_tokens=2, temperature=0)
    second = client.completions.create(model="demo-model", prompt=long_prompt, max_tokens=2, temperature=0)
    check(first.usage.prompt_tokens_details.cached_tokens == 0
          and 0 < second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens,
          f"cached_tokens {first.usage.prompt_tokens_details} then {second.usage.prompt_tokens_details}")


def no_template_checks(port):
    """The demo model has no chat template: chat is refused, clearly."""
    client = sdk(port)
    e = status_error(lambda: client.chat.completions.create(
        model="demo-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=2))
    check(e is not None and e.status_code == 400 and "template" in str(e.message),
          f"chat without a template: {e and (e.status_code, e.body)}")


def keepalive_checks(port, text):
    """Two requests on one keep-alive connection, and a chunked request body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    body = json.dumps({"model": "demo-model", "prompt": PROMPT, "max_tokens": 16, "temperature": 0}).encode()
    texts = []
    for _ in range(2):
        conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        texts.append(json.loads(r.read())["choices"][0]["text"] if r.status == 200 else r.status)
    conn.request("POST", "/v1/completions", body=iter([body[:10], body[10:]]), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    texts.append(json.loads(r.read())["choices"][0]["text"] if r.status == 200 else r.status)
    conn.close()
    check(texts == [text] * 3, f"keep-alive and chunked requests: {texts}")
    # Pipelined: two requests in one write, two responses in order.
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        s.sendall(request + request)
        f = s.makefile("rb")
        pipelined = []
        for _ in range(2):
            status = f.readline().split(b" ")[1]
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            pipelined.append(json.loads(f.read(length))["choices"][0]["text"] if status == b"200" else status)
    check(pipelined == [text] * 2, f"pipelined requests: {pipelined}")


def accepted_fields_checks(port, target):
    """null is unset; user is accepted; a prompt of any script, escaped or not, is what gRPC reads."""
    client = sdk(port)
    c = client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=4, user="someone",
                                  extra_body={"temperature": None, "top_p": None, "stop": None, "seed": None})
    check(c.usage.completion_tokens >= 1, "null fields and user")
    unicode_prompt = "Ünïcödé: 日本語のテキスト, العربية, emoji 👩‍👩‍👧‍👦 and \t tabs \"quoted\""
    g_text, _, g_usage = grpc_generate(target, text=unicode_prompt, max_new_tokens=8, temperature=0)
    escaped = client.completions.create(model="demo-model", prompt=unicode_prompt, max_tokens=8, temperature=0)
    body = json.dumps({"model": "demo-model", "prompt": unicode_prompt, "max_tokens": 8, "temperature": 0},
                      ensure_ascii=False).encode()
    status, _, raw = http_request(port, "POST", "/v1/completions", body, {"Content-Type": "application/json"})
    try:
        plain = json.loads(raw.decode("utf-8"))
    except ValueError:
        plain = {}
    check(escaped.choices[0].text == g_text and escaped.usage.prompt_tokens == g_usage.prompt_tokens,
          f"a \\u-escaped prompt: {escaped.choices[0].text!r} {escaped.usage} vs gRPC {g_text!r} {g_usage}")
    check(status == 200 and plain.get("choices", [{}])[0].get("text") == g_text
          and plain.get("usage", {}).get("prompt_tokens") == g_usage.prompt_tokens,
          f"a UTF-8 prompt: {status} {raw[:300]!r} vs gRPC {g_text!r}")


def sse_framing_checks(port, path, body, what):
    """curl -N: the raw bytes of a stream."""
    with tempfile.NamedTemporaryFile() as head:
        out = subprocess.run(["curl", "-N", "-s", "-D", head.name, "-H", "Content-Type: application/json",
                              "-d", json.dumps(body), f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, timeout=HANG)
        headers = open(head.name, "rb").read().decode("latin-1")
    try:
        raw = out.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, f"{what}: the stream is not UTF-8: {e}")
        raw = out.stdout.decode("utf-8", "replace")
    check(out.returncode == 0 and headers.startswith("HTTP/1.1 200"), f"{what}: curl {out.returncode} {headers!r}")
    check(re.search(r"(?im)^content-type: text/event-stream", headers) is not None, f"{what}: headers {headers!r}")
    check(raw.endswith("\n\ndata: [DONE]\n\n") and "\r" not in raw, f"{what}: ends {raw[-80:]!r}")
    blocks = raw.split("\n\n")
    check(blocks[-1] == "" and all(b and "\n" not in b and (b.startswith("data: ") or b.startswith(":"))
                                   for b in blocks[:-1]),
          f"{what}: every event one `data: ` or `:` line, blank lines between: {blocks[:4]!r}...")
    data = [b[len("data: "):] for b in blocks[:-1] if b.startswith("data: ")]
    check(data.count("[DONE]") == 1 and data[-1] == "[DONE]", f"{what}: [DONE] once, last")
    parsed = []
    for d in data[:-1]:
        try:
            parsed.append(json.loads(d))
        except ValueError:
            check(False, f"{what}: data is not JSON: {d!r}")
    check(parsed and parsed[-1].get("choices") == [] and "usage" in parsed[-1], f"{what}: the usage chunk last")
    return parsed


def prefill_progress_checks(port):
    """A long prompt streams `: prefill P/T` comments while it is prefilled (--prefill-block 64)."""
    conn, _ = open_stream(port, "/v1/completions", {
        "model": "demo-model", "prompt": "Progress. " + DOCUMENT * 100, "max_tokens": 2, "stream": True,
        "stream_options": {"include_usage": True}})
    status, events = read_stream(conn)
    check(status == 200 and not framing_problems(events), f"prefill stream: {status} {framing_problems(events)}")
    comments = [v for k, v in events if k == "comment"]
    progress = [tuple(map(int, m.groups())) for m in (re.fullmatch(r"prefill (\d+)/(\d+)", c) for c in comments) if m]
    usage = chunks_of(events)[-1].get("usage") or {}
    check(len(progress) >= 1, f"prefill comments: {comments}")
    check(all(t == usage.get("prompt_tokens") and 0 < p <= t for p, t in progress)
          and [p for p, _ in progress] == sorted(set(p for p, _ in progress)),
          f"prefill progress {progress}, prompt tokens {usage.get('prompt_tokens')}")
    first_data = next(i for i, (k, _) in enumerate(events) if k == "data")
    check(all(i < first_data for i, (k, v) in enumerate(events) if k == "comment" and v.startswith("prefill")),
          "prefill comments come before the first token")


def disconnect_checks(port, metrics_port):
    before = metric(scrape(metrics_port), "bptserve_request_errors_total", code="CANCELLED")
    # Mid-stream: one chunk read of a generation that would run for minutes, then the client goes.
    conn, sock = open_stream(port, "/v1/completions", {"model": "demo-model", "prompt": "Hello", "max_tokens": 20000,
                                                       "temperature": 0, "stream": True})
    response = conn.getresponse()
    first = next((v for k, v in sse_events(response) if k == "data"), None)
    check(response.status == 200 and first is not None and first != "[DONE]", f"long stream: {response.status} {first}")
    disconnect(sock)
    wait_cancelled(metrics_port, before + 1, "a client gone mid-stream")
    # Mid-prefill: the first progress comment of a long prompt, then the client goes.
    conn, sock = open_stream(port, "/v1/completions", {"model": "demo-model", "prompt": "Gone. " + DOCUMENT * 600,
                                                       "max_tokens": 4, "stream": True})
    response = conn.getresponse()
    first = next(((k, v) for k, v in sse_events(response) if k != "comment" or v.startswith("prefill")), None)
    check(response.status == 200 and first is not None and first[0] == "comment",
          f"long prefill: a progress comment before any data: {response.status} {first}")
    disconnect(sock)
    wait_cancelled(metrics_port, before + 2, "a client gone mid-prefill")
    # Not streaming: nothing was sent when the client goes; the server sees it anyway.
    _, sock = open_stream(port, "/v1/completions", {"model": "demo-model", "prompt": "Hello", "max_tokens": 20000,
                                                    "temperature": 0})
    wait_for(lambda: metric(scrape(metrics_port), "bptserve_num_requests_running") == 1, HANG,
             "the request to run")
    disconnect(sock)
    wait_cancelled(metrics_port, before + 3, "a client gone while its whole response is generated")


def http_metrics_checks(port, metrics_port):
    client = sdk(port)
    before = scrape(metrics_port)
    client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=3)
    list(client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=3, stream=True))
    status_error(lambda: client.completions.create(model="demo-model", prompt=PROMPT, temperature=5))

    def counted():
        s = scrape(metrics_port)
        delta = lambda name, **labels: metric(s, name, **labels) - metric(before, name, **labels)  # noqa: E731
        got = (delta("bptserve_http_requests_total", route="/v1/completions", code="200"),
               delta("bptserve_http_requests_total", route="/v1/completions", code="400"),
               delta("bptserve_request_success_total"))
        return got if got[0] >= 2 and got[1] >= 1 and got[2] >= 2 else None
    try:
        got = wait_for(counted, HANG, "the HTTP requests in the metrics")
        check(got == (2, 1, 2), f"http_requests_total 200 +{got[0]}, 400 +{got[1]}; request_success_total +{got[2]}")
    except RuntimeError as e:
        s = scrape(metrics_port)
        counters = ("bptserve_http_requests_total", "bptserve_request_success_total")
        check(False, f"{e}: {[(k, v) for k, v in s.items() if k[0] in counters]}")


def concurrency_checks(port, metrics_port, target):
    """32 HTTP clients (SDK; half of them stream) and 32 gRPC clients at once: each request ends
    exactly once, every one succeeds, and the server is idle afterwards."""
    n = 32
    outcomes = [[] for _ in range(2 * n)]
    start = threading.Barrier(2 * n)
    before = metric(scrape(metrics_port), "bptserve_request_success_total")

    def http_client(i):
        client = sdk(port)
        start.wait()
        try:
            if i % 2:
                with client.completions.with_streaming_response.create(
                        model="demo-model", prompt=f"{PROMPT} {i}", max_tokens=8, seed=i, stream=True) as r:
                    lines = [line for line in r.iter_lines() if line]
                data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
                finishes = [c["choices"][0]["finish_reason"] for c in map(json.loads, data[:-1] if data else [])
                            if c["choices"] and c["choices"][0]["finish_reason"]]
                ok = r.status_code == 200 and data.count("[DONE]") == 1 and data[-1] == "[DONE]" and len(finishes) == 1
                outcomes[i].append("ok" if ok else f"stream {r.status_code} {finishes} {data[-2:]}")
            else:
                c = client.completions.create(model="demo-model", prompt=f"{PROMPT} {i}", max_tokens=8, seed=i)
                outcomes[i].append("ok" if c.choices[0].finish_reason in ("stop", "length") else f"{c}")
        except Exception as e:  # noqa: BLE001 -- recorded as this request's one outcome
            outcomes[i].append(f"{type(e).__name__}: {e}")

    def grpc_client(i):
        start.wait()
        try:
            with Client(target) as client:
                events = list(client.generate(text=f"{PROMPT} {i}", max_new_tokens=8, seed=i, timeout=HANG))
            finished = [e for e in events if e.kind == "finished"]
            outcomes[n + i].append("ok" if len(finished) == 1 else f"{len(finished)} finished events")
        except grpc.RpcError as e:
            outcomes[n + i].append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=http_client, args=(i,)) for i in range(n)]
    threads += [threading.Thread(target=grpc_client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    check(not any(t.is_alive() for t in threads), "every concurrent client returned")
    check(all(len(o) == 1 for o in outcomes), f"each request ended exactly once: {[len(o) for o in outcomes]}")
    failed = [(i, o) for i, o in enumerate(outcomes) if o != ["ok"]]
    check(not failed, f"concurrent requests that failed: {failed}")
    try:
        wait_for(lambda: gauges_idle(metrics_port)
                 and metric(scrape(metrics_port), "bptserve_request_success_total") >= before + 2 * n,
                 HANG, "the concurrent requests to be counted")
        check(metric(scrape(metrics_port), "bptserve_request_success_total") == before + 2 * n,
              "request_success_total counts the 64 concurrent requests")
    except RuntimeError as e:
        check(False, str(e))


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]


def chat_greedy(client, **body):
    return client.chat.completions.create(model="chat-model", messages=CHAT, max_tokens=12, temperature=0, **body)


def chat_greedy_checks(port, target):
    """A chat completion, greedy, and the same through gRPC; returns the content."""
    client = sdk(port)
    check([m.id for m in client.models.list().data] == ["chat-model"], "--served-model-name names the model")
    with Client(target) as g:
        ids, _ = g.tokenize_chat(CHAT)
    c = chat_greedy(client)
    content = c.choices[0].message.content
    check(c.object == "chat.completion" and c.id.startswith("chatcmpl-") and c.model == "chat-model"
          and len(c.choices) == 1 and c.choices[0].message.role == "assistant" and isinstance(content, str),
          f"chat completion {c}")
    check(c.usage.prompt_tokens == len(ids) and c.usage.completion_tokens <= 12
          and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
          and c.choices[0].finish_reason == ("length" if c.usage.completion_tokens == 12 else "stop")
          and c.usage.prompt_tokens_details is not None, f"chat usage {c.usage} {c.choices[0].finish_reason}")
    g_text, g_finish, g_usage = grpc_generate(target, chat=CHAT, max_new_tokens=12, temperature=0)
    check(g_text == content and FINISH.get(g_finish) == c.choices[0].finish_reason
          and (g_usage.prompt_tokens, g_usage.completion_tokens) == (c.usage.prompt_tokens, c.usage.completion_tokens),
          f"chat as gRPC: {content!r} {c.usage} vs {g_text!r} {g_usage}")
    e = status_error(lambda: client.chat.completions.create(model="demo-model", messages=CHAT))
    check(e is not None and e.status_code == 404 and e.param == "model", "the default name is not served here")
    return content


def chat_request_checks(port, target, content):
    """Seeds, content parts, max_completion_tokens and stop strings in chat."""
    client = sdk(port)
    seeded = [client.chat.completions.create(model="chat-model", messages=CHAT, max_tokens=12, seed=3,
                                             temperature=1).choices[0].message.content for _ in range(2)]
    g_seeded, _, _ = grpc_generate(target, chat=CHAT, max_new_tokens=12, seed=3, temperature=1)
    check(seeded[0] == seeded[1] == g_seeded, f"chat seed 3: {seeded} gRPC {g_seeded!r}")
    parts = client.chat.completions.create(
        model="chat-model", max_tokens=12, temperature=0,
        messages=[CHAT[0], {"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    check(parts.choices[0].message.content == content, "a content of one text part is that text")
    newer = client.chat.completions.create(model="chat-model", messages=CHAT, max_completion_tokens=12, temperature=0)
    check(newer.choices[0].message.content == content, "max_completion_tokens as max_tokens")
    stop = pick_stop(content)
    check(stop is not None, f"a stop string from {content!r}")
    if stop is not None:
        s = chat_greedy(client, stop=stop)
        check(s.choices[0].message.content == content[:content.find(stop)] and s.choices[0].finish_reason == "stop",
              f"chat stop {stop!r}: {s.choices[0].message.content!r}")


def chat_stream_checks(port, content):
    """The role first, the deltas make the content, one finish_reason, usage last."""
    client = sdk(port)
    c = chat_greedy(client)
    chunks = list(chat_greedy(client, stream=True, stream_options={"include_usage": True}))
    with_choices = [ch for ch in chunks if ch.choices]
    check(with_choices and with_choices[0].choices[0].delta.role == "assistant", "the first chunk's role")
    check("".join(ch.choices[0].delta.content or "" for ch in with_choices) == content,
          "streamed chat content is the whole response's")
    finishes = [ch.choices[0].finish_reason for ch in with_choices if ch.choices[0].finish_reason]
    check(finishes == [c.choices[0].finish_reason] and with_choices[-1].choices[0].finish_reason,
          f"chat stream finish reasons {finishes}")
    check(chunks[-1].choices == [] and chunks[-1].usage is not None
          and chunks[-1].usage.completion_tokens == c.usage.completion_tokens
          and chunks[-1].usage.prompt_tokens == c.usage.prompt_tokens, f"chat usage chunk {chunks[-1]}")
    check(all(ch.object == "chat.completion.chunk" for ch in chunks) and len({ch.id for ch in chunks}) == 1,
          "chat chunks: one id, object chat.completion.chunk")
    parsed = sse_framing_checks(port, "/v1/chat/completions", {
        "model": "chat-model", "messages": CHAT, "max_tokens": 12, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}}, "chat SSE")
    check(parsed and parsed[0]["choices"][0]["delta"].get("role") == "assistant"
          and "".join(p["choices"][0]["delta"].get("content") or "" for p in parsed if p["choices"]) == content,
          "chat SSE: role first, the same content")


def chat_logprob_checks(port):
    """One entry per token; (greedy) the chosen one is the top one."""
    client = sdk(port)
    lp = client.chat.completions.create(model="chat-model", messages=CHAT, max_tokens=6, temperature=0,
                                        logprobs=True, top_logprobs=2)
    entries = (lp.choices[0].logprobs.content or []) if lp.choices[0].logprobs else []
    check(len(entries) == lp.usage.completion_tokens and all(
        isinstance(e.token, str) and e.logprob <= 0 and isinstance(e.bytes, list) and len(e.top_logprobs) == 2
        and abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4 for e in entries), f"chat logprobs {entries}")
    streamed = [ch.choices[0].logprobs for ch in client.chat.completions.create(
        model="chat-model", messages=CHAT, max_tokens=6, temperature=0, logprobs=True, stream=True)
        if ch.choices and ch.choices[0].logprobs]
    check(sum(len(x.content or []) for x in streamed) == lp.usage.completion_tokens, "streamed chat logprobs")


def chat_checks(bin_dir, work):
    model = test_support.chat_model(bin_dir, work, "chat-dir")
    server, grpc_port, _ = test_support.start_server(
        bin_dir, "--model", model, "--served-model-name", "chat-model", "--kv-capacity", "8192")
    try:
        port, target = server.http_port, f"127.0.0.1:{grpc_port}"
        content = section("chat", chat_greedy_checks, port, target)
        if content is not None:
            section("chat requests", chat_request_checks, port, target, content)
            section("chat streams", chat_stream_checks, port, content)
        section("chat logprobs", chat_logprob_checks, port)
    finally:
        server.terminate()
        check(server.wait(timeout=HANG) == 0, "chat server exit code after SIGTERM")


def api_key_checks(bin_dir, work):
    keys = os.path.join(work, "keys")
    with open(keys, "w") as f:
        f.write("first-key\nsecond-key\n")
    server, _, _ = test_support.start_server(bin_dir, "--api-key-file", keys, "--kv-capacity", "4096")
    try:
        port = server.http_port
        body = {"model": "demo-model", "prompt": PROMPT, "max_tokens": 2}
        for key in ("first-key", "second-key"):
            c = sdk(port, key).completions.create(**body)
            check(c.usage.completion_tokens >= 1, f"the key {key} is accepted")
        check([m.id for m in sdk(port, "first-key").models.list().data] == ["demo-model"], "models with a key")
        e = status_error(lambda: sdk(port, "wrong-key").completions.create(**body))
        # As api.openai.com answers a bad key: type invalid_request_error, code invalid_api_key.
        check(isinstance(e, openai.AuthenticationError) and e.status_code == 401 and e.type == "invalid_request_error"
              and e.code == "invalid_api_key" and e.response.headers.get("www-authenticate") == "Bearer",
              f"a wrong key: {e and (e.status_code, e.body, e.response.headers)}")
        e = status_error(lambda: sdk(port, "wrong-key").models.list())
        check(e is not None and e.status_code == 401, "/v1/models needs the key")
        status, _, raw = http_request(port, "POST", "/v1/completions", body)
        error = json.loads(raw).get("error", {}) if raw.startswith(b"{") else {}
        check(status == 401 and error.get("code") == "invalid_api_key" and error.get("message"),
              f"no key: {status} {raw[:200]}")
        for path in ("/health", "/ready"):
            status, _, _ = http_request(port, "GET", path)
            check(status == 200, f"{path} without a key: {status}")
        # Refused from the head alone: a huge body announced, none sent, and the 401 arrives.
        for what, key_header in (("a wrong key", b"Authorization: Bearer wrong-key\r\n"), ("no key", b"")):
            with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                          key_header + b"Content-Length: 314572800\r\n\r\n")
                status, _, raw, closed = test_support.read_response(s)
            check(status == 401 and b'"invalid_api_key"' in raw and closed,
                  f"{what} with a body announced: {status} {raw[:200]!r}, closed after: {closed}")
    finally:
        server.terminate()
        check(server.wait(timeout=HANG) == 0, "keyed server exit code after SIGTERM")


def loading_checks(bin_dir, work):
    """While the model loads: /health 200, /ready and the API 503. The model's generation_config.json
    is a FIFO, so the loader waits in its open() until this test writes it: the model is loading for
    exactly as long as the test needs."""
    model = os.path.join(work, "loading-model")
    shutil.copytree(os.path.join(bin_dir, "..", "demo-model"), model)
    fifo = os.path.join(model, "generation_config.json")
    os.mkfifo(fifo)
    server, _, _ = test_support.launch_server(bin_dir, "--model", model, "--kv-capacity", "4096")
    try:
        port = server.http_port
        check(status_of(port, "GET", "/health") == 200, "/health while loading")
        status, _, raw = http_request(port, "GET", "/ready")
        check(status == 503 and b'"error"' in raw, f"/ready while loading: {status} {raw[:200]!r}")
        e = status_error(lambda: sdk(port).completions.create(model="loading-model", prompt=PROMPT, max_tokens=2))
        check(e is not None and e.status_code == 503 and e.type == "server_error",
              f"a request while loading: {e and (e.status_code, e.body)}")
        e = status_error(lambda: sdk(port).models.list())
        check(e is not None and e.status_code == 503, f"/v1/models while loading: {e and (e.status_code, e.body)}")

        def writer():  # ENXIO until the loader opens the FIFO for reading
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno == errno.ENXIO:
                    return None
                raise
        fd = wait_for(writer, HANG, "the loader to open generation_config.json")
        os.write(fd, b"{}")
        os.close(fd)
        loaded = threading.Thread(target=test_support.wait_until_loaded, args=(server,), daemon=True)
        loaded.start()
        loaded.join(HANG)
        check(not loaded.is_alive(), "the model loads once its generation config is written")
        check(status_of(port, "GET", "/ready") == 200, "/ready once loaded")
        c = sdk(port).completions.create(model="loading-model", prompt=PROMPT, max_tokens=2)
        check(c.usage.completion_tokens >= 1, "served once loaded")
    finally:
        server.terminate()
        check(server.wait(timeout=HANG) == 0, "loading server exit code after SIGTERM")


def tls_checks(bin_dir, work):
    """--tls-cert/--tls-key serve the HTTP API over TLS too; with --tls-client-ca only clients with
    a certificate from that CA (here the same self-signed one) are served."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    body = {"model": "demo-model", "prompt": PROMPT, "max_tokens": 16, "temperature": 0}
    for mutual in (False, True):
        flags = ["--tls-cert", cert, "--tls-key", key] + (["--tls-client-ca", cert] if mutual else [])
        server, _, _ = test_support.start_server(bin_dir, "--kv-capacity", "4096", *flags)
        try:
            port = server.http_port
            context = ssl.create_default_context(cafile=cert)
            if mutual:
                context.load_cert_chain(cert, key)
            client = openai.OpenAI(base_url=f"https://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                                   timeout=HANG, http_client=openai.DefaultHttpxClient(verify=context))
            text = client.completions.create(**body).choices[0].text
            streamed = "".join(ch.choices[0].text for ch in client.completions.create(**body, stream=True)
                               if ch.choices)
            check(text == streamed != "", f"TLS (mutual: {mutual}): {text!r} streamed {streamed!r}")
            client_cert = ["--cert", cert, "--key", key] if mutual else []
            out = subprocess.run(["curl", "-N", "-s", "--cacert", cert, *client_cert,
                                  "-H", "Content-Type: application/json", "-d", json.dumps({**body, "stream": True}),
                                  f"https://127.0.0.1:{port}/v1/completions"], capture_output=True, timeout=HANG)
            check(out.returncode == 0 and out.stdout.endswith(b"data: [DONE]\n\n"),
                  f"curl over TLS (mutual: {mutual}): {out.returncode} {out.stdout[-80:]!r}")
            check(status_of(port, "GET", "/health") != 200, "plain HTTP to the TLS port is not served")
            if mutual:
                anonymous = openai.OpenAI(base_url=f"https://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                                          timeout=HANG, http_client=openai.DefaultHttpxClient(
                                              verify=ssl.create_default_context(cafile=cert)))
                try:
                    anonymous.completions.create(**body)
                    check(False, "mTLS: a client without a certificate was served")
                except openai.APIConnectionError:
                    pass
        finally:
            server.terminate()
            check(server.wait(timeout=HANG) == 0, f"TLS server (mutual: {mutual}) exit code after SIGTERM")


def queue_and_drain_checks(bin_dir):
    """--max-running 1 --max-queue 1: one request runs, one waits, the next is refused (429); then
    SIGTERM: /ready and new requests 503, /health 200, and the waiting stream still completes."""
    server, grpc_port, metrics_port = test_support.start_server(
        bin_dir, "--max-running", "1", "--max-queue", "1", "--kv-capacity", "32768", "--drain-seconds", "300")
    try:
        port = server.http_port
        client = sdk(port)
        running, running_sock = open_stream(port, "/v1/completions", {
            "model": "demo-model", "prompt": "Hello", "max_tokens": 20000, "temperature": 0, "stream": True})
        response = running.getresponse()
        first = next((v for k, v in sse_events(response) if k == "data"), None)
        check(response.status == 200 and first not in (None, "[DONE]"), "the running request streams")
        # A client gone while its request waits: cancelled, and the queue empties.
        waiting_metric = lambda: metric(scrape(metrics_port), "bptserve_num_requests_waiting")  # noqa: E731
        _, gone_sock = open_stream(port, "/v1/completions", {"model": "demo-model", "prompt": PROMPT,
                                                             "max_tokens": 8, "stream": True})
        wait_for(lambda: waiting_metric() == 1, HANG, "a request to wait")
        disconnect(gone_sock)
        try:
            wait_for(lambda: waiting_metric() == 0 and metric(
                scrape(metrics_port), "bptserve_request_errors_total", code="CANCELLED") == 1, HANG,
                "the waiting request's client gone")
        except RuntimeError as e:
            check(False, f"{e}: waiting {waiting_metric()}")
        waiting, _ = open_stream(port, "/v1/completions", {
            "model": "demo-model", "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}})
        wait_for(lambda: waiting_metric() == 1, HANG, "the second request to wait")
        for stream in (False, True):
            e = status_error(lambda: client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=2,
                                                               stream=stream))
            check(isinstance(e, openai.RateLimitError) and e.status_code == 429 and e.type == "rate_limit_error"
                  and e.response.headers.get("retry-after") is not None,
                  f"a full queue (stream={stream}): {e and (e.status_code, e.body, e.response.headers)}")
        try:
            with Client(f"127.0.0.1:{grpc_port}") as g:
                list(g.generate(text=PROMPT, max_new_tokens=2, timeout=HANG))
            check(False, "gRPC with a full queue must fail")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"gRPC with a full queue: {e.code()}")

        server.send_signal(signal.SIGTERM)
        def not_ready():
            status = status_of(port, "GET", "/ready")
            return status if status != 200 else None
        ready = wait_for(not_ready, HANG, "/ready to change after SIGTERM")
        check(ready == 503, f"/ready while draining: {ready}")
        status, _, _ = http_request(port, "GET", "/health")
        check(status == 200, f"/health while draining: {status}")
        e = status_error(lambda: client.completions.create(model="demo-model", prompt=PROMPT, max_tokens=2))
        check(e is not None and e.status_code == 503 and isinstance(e.body, dict) and e.body.get("message")
              and e.response.headers.get("retry-after") is not None,
              f"a new request while draining: {e and (e.status_code, e.body, e.response.headers)}")
        disconnect(running_sock)
        status, events = read_stream(waiting)
        usage = (chunks_of(events) or [{}])[-1].get("usage") or {}
        check(status == 200 and not framing_problems(events) and usage.get("completion_tokens") == 8,
              f"the waiting stream completes during the drain: {status} {framing_problems(events)} {usage}")
        code = server.wait(timeout=HANG)
        check(code == 0, f"exit code after the drain: {code}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def completions_sse_checks(port, greedy_text):
    parsed = sse_framing_checks(port, "/v1/completions", {
        "model": "demo-model", "prompt": PROMPT, "max_tokens": 16, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}}, "completions SSE")
    check("".join(p["choices"][0]["text"] for p in parsed if p["choices"]) == greedy_text, "SSE text as the SDK's")


# --max-queue 128: the 64 concurrent requests never meet the queue's limit.
def drain_deadline_checks(bin_dir):
    """A stream still running when the drain's time is up (--drain-seconds 1, against a generation
    of minutes) ends with an error event and [DONE], and the server exits 0."""
    server, _, _ = test_support.start_server(bin_dir, "--kv-capacity", "32768", "--drain-seconds", "1")
    try:
        conn, _ = open_stream(server.http_port, "/v1/completions", {
            "model": "demo-model", "prompt": "Hello", "max_tokens": 20000, "temperature": 0, "stream": True})
        response = conn.getresponse()
        events = sse_events(response)
        first = next((e for e in events if e[0] == "data"), None)
        check(response.status == 200 and first is not None, f"the long stream: {response.status} {first}")
        server.send_signal(signal.SIGTERM)
        rest = [first] + list(events)
        error = json.loads(rest[-2][1]).get("error", {}) if len(rest) >= 2 and rest[-2][0] == "data" else {}
        check(not framing_problems(rest) and error.get("type") == "server_error" and error.get("message"),
              f"a stream cut by the drain's end: {framing_problems(rest)} {rest[-2:]}")
        code = server.wait(timeout=HANG)
        check(code == 0, f"exit code after the drain's time: {code}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


server, grpc_port, metrics_port = test_support.start_server(BIN_DIR, "--kv-capacity", "32768",
                                                            "--prefill-block", "64", "--max-queue", "128")
try:
    port, target = server.http_port, f"127.0.0.1:{grpc_port}"
    section("health and models", models_checks, port, target)
    greedy_text = section("greedy completions", greedy_checks, port, target)
    section("seeds", seed_checks, port, target)
    section("streamed completions", stream_checks, port, greedy_text)
    section("stop strings", stop_checks, port, target, greedy_text)
    section("logprobs", logprob_checks, port, target)
    section("prefix cache", prefix_cache_checks, port)
    section("chat without a template", no_template_checks, port)
    section("keep-alive, chunked and pipelined requests", keepalive_checks, port, greedy_text)
    section("accepted fields", accepted_fields_checks, port, target)
    section("completions SSE", completions_sse_checks, port, greedy_text)
    section("prefill progress", prefill_progress_checks, port)
    section("disconnects", disconnect_checks, port, metrics_port)
    section("HTTP metrics", http_metrics_checks, port, metrics_port)
    section("concurrency", concurrency_checks, port, metrics_port, target)
finally:
    server.terminate()
    check(server.wait(timeout=HANG) == 0, "bptserve exit code after SIGTERM")

with tempfile.TemporaryDirectory() as work:
    section("chat server", chat_checks, BIN_DIR, work)
    section("loading", loading_checks, BIN_DIR, work)
    section("API keys", api_key_checks, BIN_DIR, work)
    section("TLS", tls_checks, BIN_DIR, work)
section("queue and drain", queue_and_drain_checks, BIN_DIR)
section("drain deadline", drain_deadline_checks, BIN_DIR)

sys.exit(check.finish())

"""Shared by the Python tests: the bptserve binary on loopback ports, counted checks, waits for
events, a Prometheus scrape read as numbers, and plain HTTP to the OpenAI API (for what the SDK
hides: status lines, headers, the SSE framing)."""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request


class Checks:
    """Records every check; the summary line is read by CI ("N passed, N failed")."""

    def __init__(self):
        self.total = 0
        self.failures = []
        self._lock = threading.Lock()

    def __call__(self, condition, message):
        with self._lock:
            self.total += 1
            if not condition:
                self.failures.append(message)
                print("FAIL:", message, flush=True)
        return bool(condition)

    def finish(self):
        print(f"{self.total - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def launch_server(bin_dir, *extra_args):
    """Returns (process, grpc_port, metrics_port) as soon as the server listens; the model may still
    be loading (wait_until_loaded waits for it). The HTTP API listens on any free port (unless
    extra_args give --http-port): process.http_port. process.output holds the lines it printed."""
    args = list(extra_args)
    if not any(a == "--http-port" or a.startswith("--http-port=") for a in args):
        args = ["--http-port", "0", *args]
    server = subprocess.Popen(
        [os.path.join(bin_dir, "bptserve"), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", *args],
        stdout=subprocess.PIPE, text=True)
    server.output = []
    while True:
        line = server.stdout.readline()
        if not line:
            server.wait()
            raise RuntimeError("bptserve exited before listening")
        server.output.append(line)
        ports = re.match(r"listening on port (\d+), metrics on port (-?\d+)(?:, http on port (-?\d+))?", line)
        if ports:
            server.http_port = int(ports.group(3)) if ports.group(3) else None
            return server, int(ports.group(1)), int(ports.group(2))


def wait_until_loaded(server):
    """Returns once the server says it loaded the model and serves: readiness (bptserve.v1.Inference,
    and GET /ready) is SERVING from then on, and not before. Its later output is read on a thread,
    so that a full pipe never blocks it."""
    while True:
        line = server.stdout.readline()
        if not line:
            server.wait()
            raise RuntimeError("bptserve exited before loading the model")
        server.output.append(line)
        if line.startswith("model loaded"):
            threading.Thread(target=lambda: server.output.extend(server.stdout), daemon=True).start()
            return


def start_server(bin_dir, *extra_args):
    """Returns (process, grpc_port, metrics_port) once the server listens and has loaded the model
    (launch_server, then wait_until_loaded)."""
    server, grpc_port, metrics_port = launch_server(bin_dir, *extra_args)
    wait_until_loaded(server)
    return server, grpc_port, metrics_port


def wait_for(predicate, seconds, what):
    """Polls predicate until it returns a true value, and returns that; `seconds` only bounds a
    failure (a hang), for what reports no event of its own."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def scrape(metrics_port):
    """The server's /metrics as {(name, ((label, value), ...)): number}, labels sorted."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60).read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        if m:
            labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def metric(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def chat_model(bin_dir, parent, name):
    """A copy of the demo model with a small chat template, as parent/name (the name it is served
    under by default)."""
    model = os.path.join(parent, name)
    shutil.copytree(os.path.join(bin_dir, "..", "demo-model"), model)
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f)
    return model


def http_request(port, method, path, body=None, headers=(), timeout=120):
    """(status, {lower-cased header: value}, body bytes) of one request on its own connection; a
    dict or list body is sent as JSON."""
    headers = dict(headers)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def sse_events(response):
    """The events of a text/event-stream response as they arrive, one per line: ("data", payload),
    ("comment", text) or ("other", line) for a line that is neither (a framing error). Lines end
    with \n alone; blank lines separate events."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8")
        if line == "\n":
            continue
        line = line[:-1] if line.endswith("\n") else line
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("data: "):
            yield "data", line[len("data: "):]
        else:
            yield "other", line


def read_response(sock, hang_seconds=120):
    """(status, {lower-cased header: value}, body, closed) of one HTTP/1.1 response read from a raw
    socket; status None (and the error as body) when the connection failed before a response;
    closed: the server closed the connection after the response (a hang's bound waits for it)."""
    sock.settimeout(hang_seconds)
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        body = response.read()
    except (OSError, http.client.HTTPException) as e:
        return None, {}, repr(e).encode(), True
    headers = {k.lower(): v for k, v in response.getheaders()}
    try:
        closed = response.fp.read(1) == b"" if response.fp else sock.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    return response.status, headers, body, closed

#!/usr/bin/env python3
"""bptserve as a process, seen from outside: server reflection (as grpcurl uses it, with API keys
off and on), the Python client, chat through the Python client and the CLI, a document kept on
the disk KV tier with Prefill (the Python client and the CLI), `promtool check metrics` on a
scrape (with and without KV tiers), and a real Prometheus server that scrapes the server and answers a query
with the number of requests this test made.

usage: server_integration_test.py BIN_DIR PYTHON_CLIENT_DIR
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import json
import shutil

BIN_DIR, PY_DIR = sys.argv[1], sys.argv[2]
sys.path.insert(0, PY_DIR)

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase  # noqa: E402

from bptserve_client import Client  # noqa: E402

import test_support  # noqa: E402

REQUESTS = 5
check = test_support.Checks()
successful_requests = 0  # every Generate this test completes with OK, whichever client made it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds, what):
    """Polls predicate until it holds; `seconds` only bounds a failure, for what reports no event."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class WithApiKey(grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer KEY` to each stream-stream call (reflection is one)."""

    def __init__(self, key):
        self.key = key

    def intercept_stream_stream(self, continuation, details, requests):
        metadata = list(details.metadata or []) + [("authorization", f"Bearer {self.key}")]
        return continuation(details._replace(metadata=metadata), requests)


def reflected_services(channel):
    """The services reflection lists, or the status code that refused it."""
    try:
        return ProtoReflectionDescriptorDatabase(channel).get_services()
    except grpc.RpcError as e:
        return e.code()


# With API keys on, reflection describes the API only to a caller with a key, unless the
# operator exposes it with --reflection-without-key.
with tempfile.TemporaryDirectory() as keys_dir:
    keys = os.path.join(keys_dir, "keys")
    with open(keys, "w") as f:
        f.write("reflection-key\n")
    for flags, without_key in (((), grpc.StatusCode.UNAUTHENTICATED), (("--reflection-without-key",), None)):
        keyed, keyed_port, _ = test_support.start_server(BIN_DIR, "--api-key-file", keys, *flags)
        try:
            plain = grpc.insecure_channel(f"127.0.0.1:{keyed_port}")
            with_key = grpc.intercept_channel(plain, WithApiKey("reflection-key"))
            listed = reflected_services(with_key)
            check(isinstance(listed, list) and "bptserve.v1.Inference" in listed,
                  f"keys on {flags}: reflection with a key lists {listed}")
            listed = reflected_services(plain)
            if without_key is None:
                check(isinstance(listed, list) and "bptserve.v1.Inference" in listed,
                      f"keys on {flags}: reflection without a key lists {listed}")
            else:
                check(listed == without_key, f"keys on {flags}: reflection without a key: {listed}")
        finally:
            keyed.terminate()
            keyed.wait(timeout=60)

# Chat: the demo model with a small template, through the Python client and the CLI.
with tempfile.TemporaryDirectory() as work:
    chat_model = os.path.join(work, "model")
    shutil.copytree(os.path.join(BIN_DIR, "..", "demo-model"), chat_model)
    with open(os.path.join(chat_model, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
                                    "{% if add_generation_prompt %}<|assistant|>{% endif %}"}, f)
    chat_server, chat_port, _ = test_support.start_server(BIN_DIR, "--model", chat_model, "--kv-capacity", "8192")
    try:
        chat_target = f"127.0.0.1:{chat_port}"
        with Client(chat_target) as client:
            check(client.model_info().has_chat_template, "model info: has_chat_template")
            messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
            ids, prompt_text = client.tokenize_chat(messages)
            check(prompt_text == "<|system|>Be brief.<|user|>Hello<|assistant|>", f"chat prompt text {prompt_text!r}")
            events = list(client.chat(messages, max_new_tokens=6, seed=2, ignore_eos=True))
            check([e.kind for e in events].count("finished") == 1, f"chat: one finished event {events}")
            check(events[-1].usage.prompt_tokens == len(ids) and events[-1].usage.completion_tokens == 6,
                  f"chat usage {events[-1].usage}")
            same = list(client.generate(token_ids=ids, max_new_tokens=6, seed=2, ignore_eos=True))
            check([t for e in events for t in e.token_ids] == [t for e in same for t in e.token_ids],
                  "chat generates what its rendered prompt's ids generate")
            try:
                list(client.chat([]))
                check(False, "an empty chat must fail")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "chat.messages" in e.details(),
                      f"empty chat: {e.code()} {e.details()}")
        cli = os.path.join(BIN_DIR, "bptserve-cli")
        document = os.path.join(work, "notes.txt")
        with open(document, "w") as f:
            f.write("The notes.")
        out = subprocess.run([cli, "chat", "--server", chat_target, "--message", "Hi", "--system", "Be brief.",
                              "--document", document, "--max-new-tokens", "4", "--ignore-eos"],
                             capture_output=True, text=True)
        check(out.returncode == 0 and out.stdout.strip() != "", f"cli chat --message: {out.returncode} {out.stderr}")
        # The interactive session on a pipe: two turns, a reset, an attached file, a bad one, EOF.
        out = subprocess.run([cli, "chat", "--server", chat_target, "--max-new-tokens", "3", "--ignore-eos",
                              "--temperature", "0"],
                             input=f"Hello\nAgain\n/reset\n/file {document}\n/file /nonexistent\nThird\n",
                             capture_output=True, text=True)
        check(out.returncode == 0 and len(out.stdout.splitlines()) == 3, f"cli chat session: {out.stdout!r} {out.stderr}")
        check("conversation cleared" in out.stderr and "cannot read '/nonexistent'" in out.stderr,
              f"cli chat session messages: {out.stderr}")
    finally:
        chat_server.terminate()
        chat_server.wait(timeout=60)

# The disk KV tier: Prefill through the Python client and the CLI, a question that finds the
# document, and the tier's metrics past promtool's lint.
with tempfile.TemporaryDirectory() as work:
    tier_server, tier_port, tier_metrics_port = test_support.start_server(
        BIN_DIR, "--kv-capacity", "8192", "--kv-disk-dir", os.path.join(work, "kv"), "--kv-disk-gib", "1")
    try:
        tier_target = f"127.0.0.1:{tier_port}"
        document = "Every clause of the contract is read once and kept. " * 60
        with Client(tier_target) as client:
            info = client.model_info()
            check(info.kv_tiers == "disk" and info.kv_tier_chunk_tokens == 256, f"model info: tiers {info}")
            events = list(client.prefill(text=document))
            kinds = [e.kind for e in events]
            check(kinds[-1] == "finished" and kinds.count("finished") == 1 and "progress" in kinds,
                  f"prefill: progress, then one finished: {kinds}")
            done = events[-1]
            check(done.cached_tokens == (done.prefill.prompt_tokens - 1) // 256 * 256 > 0,
                  f"prefill keeps the document's whole chunks: {done.prefill}")
            ids = client.tokenize(document, add_bos=True)
            answer = list(client.generate(token_ids=ids + [17, 42], max_new_tokens=3, ignore_eos=True))
            usage = answer[-1].usage
            check(usage.cached_prompt_tokens >= done.cached_tokens
                  and usage.cached_from.pool + usage.cached_from.disk + usage.cached_from.remote
                  == usage.cached_prompt_tokens, f"a question about it finds it cached: {usage}")
            try:
                list(client.prefill(text=document, retain_s=-5))
                check(False, "a negative retain_s must fail")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "retain_s" in e.details(),
                      f"negative retain_s: {e.code()} {e.details()}")
        cli = os.path.join(BIN_DIR, "bptserve-cli")
        doc_file = os.path.join(work, "contract.txt")
        with open(doc_file, "w") as f:
            f.write("A second contract, clause after clause. " * 60)
        out = subprocess.run([cli, "prefill", "--server", tier_target, "--prompt-file", doc_file, "--retain-s", "60",
                              "--output", "json"], capture_output=True, text=True)
        check(out.returncode == 0, f"cli prefill: {out.returncode} {out.stderr}")
        result = json.loads(out.stdout or "{}")
        check(result.get("cached_tokens", 0) > 0 and set(result) == {
            "prompt_tokens", "cached_tokens", "cached_prompt_tokens", "cached_from", "timings"}, f"cli prefill json {result}")
        out = subprocess.run([cli, "prefill", "--server", tier_target, "--prompt", "x", "--retain-s", "-1"],
                             capture_output=True, text=True)
        check(out.returncode == 3 and "retain_s" in out.stderr, f"cli prefill error exit {out.returncode}: {out.stderr}")
        out = subprocess.run([cli, "info", "--server", tier_target], capture_output=True, text=True)
        check(out.returncode == 0 and json.loads(out.stdout).get("kv_tiers") == "disk", f"cli info: {out.stdout}")
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{tier_metrics_port}/metrics", timeout=60).read()
        lint = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True)
        check(lint.returncode == 0, f"promtool check metrics, KV tiers: {lint.stdout.decode()} {lint.stderr.decode()}")
        check(b'bptserve_kv_tier_store_seconds_bucket{tier="disk",le="10"}' in scrape, "KV chunk buckets reach 10 s")
    finally:
        tier_server.terminate()
        check(tier_server.wait(timeout=60) == 0, "the tiered server drains and exits 0")

server, grpc_port, metrics_port = test_support.start_server(BIN_DIR, "--kv-capacity", "32768")
prometheus = None
try:
    target = f"127.0.0.1:{grpc_port}"
    channel = grpc.insecure_channel(target)
    health = health_pb2_grpc.HealthStub(channel)
    # start_server returned once the server said it serves: readiness is up, no waiting.
    r = health.Check(health_pb2.HealthCheckRequest(service="bptserve.v1.Inference"))
    check(r.status == health_pb2.HealthCheckResponse.SERVING, f"readiness once loaded: {r.status}")

    # Reflection: what grpcurl needs to call the server without the .proto.
    db = ProtoReflectionDescriptorDatabase(channel)
    services = db.get_services()
    check("bptserve.v1.Inference" in services, f"reflection lists {services}")
    check("grpc.health.v1.Health" in services, f"reflection lists {services}")
    from google.protobuf.descriptor_pool import DescriptorPool
    pool = DescriptorPool(db)
    generate = pool.FindServiceByName("bptserve.v1.Inference").FindMethodByName("Generate")
    check(generate.server_streaming and generate.output_type.full_name == "bptserve.v1.GenerateResponse",
          "reflection describes Generate as a server stream of GenerateResponse")

    # The Python client.
    with Client(target) as client:
        info = client.model_info()
        check(info.architecture == "LlamaForCausalLM", f"model info {info}")
        check(not info.has_chat_template, "the demo model has no chat template")
        check((info.weight_dtype, info.kv_dtype) == ("fp32", "fp32") and info.attention_kernels.startswith("cpu-"),
              f"model info: the CPU's storage and kernels {info}")
        ids = client.tokenize("Hello world", add_bos=True)
        check(client.detokenize(ids[1:]) == "Hello world", "tokenize/detokenize round trip")
        document = "Long documents are the reason bptserve exists. " * 40
        for i in range(REQUESTS):
            events = list(client.generate(text=document, max_new_tokens=8, seed=i, prefill_progress=True,
                                          ignore_eos=True))
            kinds = [e.kind for e in events]
            check(kinds[-1] == "finished" and kinds.count("finished") == 1, f"one finished event: {kinds}")
            check("progress" in kinds and "tokens" in kinds, f"progress and tokens: {kinds}")
            check(events[-1].usage.completion_tokens == 8, "8 tokens generated")
            successful_requests += 1
        try:
            list(client.generate(text="x", temperature=-1.0))
            check(False, "a negative temperature must fail")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "temperature" in e.details(),
                  f"negative temperature: {e.code()} {e.details()}")

    # The CLI: JSON output, and an error's code as its exit status.
    cli = os.path.join(BIN_DIR, "bptserve-cli")
    out = subprocess.run([cli, "--server", target, "generate", "--prompt", "cli test", "--max-new-tokens", "5",
                          "--ignore-eos", "--seed", "3", "--output", "json"], capture_output=True, text=True)
    check(out.returncode == 0, f"cli generate: {out.returncode} {out.stderr}")
    result = json.loads(out.stdout)
    check(len(result["token_ids"]) == 5 and result["finish_reason"] == "length", f"cli json {result}")
    check(set(result) == {"token_ids", "text", "finish_reason", "usage", "timings"}, f"cli json keys {set(result)}")
    successful_requests += out.returncode == 0
    out = subprocess.run([cli, "--server", target, "generate", "--prompt", "x", "--top-p", "0"],
                         capture_output=True, text=True)
    check(out.returncode == 3 and "INVALID_ARGUMENT" in out.stderr and "top_p" in out.stderr,
          f"cli error exit {out.returncode}: {out.stderr}")
    out = subprocess.run([cli, "--server", target, "generate", "--prompt", "stdin is not read"],
                         capture_output=True, text=True)
    check(out.returncode == 0, "cli generate with --prompt")
    successful_requests += out.returncode == 0
    # The connection options after the subcommand, as a new user types them.
    out = subprocess.run([cli, "generate", "--server", target, "--max-new-tokens", "3"], input="from stdin",
                         capture_output=True, text=True)
    check(out.returncode == 0 and out.stdout.strip() != "", f"cli generate from stdin: {out.stderr}")
    successful_requests += out.returncode == 0
    out = subprocess.run([cli, "health", "--server", target], capture_output=True, text=True)
    check(out.returncode == 0 and out.stdout.strip() == "SERVING", f"cli health {out.stdout}")

    # promtool on a scrape.
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60).read()
    lint = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True)
    check(lint.returncode == 0, f"promtool check metrics: {lint.stdout.decode()} {lint.stderr.decode()}")
    check(b"bptserve_time_to_first_token_seconds_bucket{le=\"2560\"}" in scrape, "TTFT buckets reach 2560 s")

    # A real Prometheus server scrapes it; a query returns the requests made above.
    with tempfile.TemporaryDirectory() as work:
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                    f"  - job_name: bptserve\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
        web_port = free_port()
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        query = urllib.parse.quote('sum(bptserve_request_success_total{job="bptserve"})')

        def scraped_count():
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/v1/query?query={query}",
                                              timeout=5).read()
                result = json.loads(body)["data"]["result"]
                return result and float(result[0]["value"][1])
            except OSError:
                return None

        count = wait_for(scraped_count, 60, "Prometheus to scrape bptserve")
        check(count == successful_requests,
              f"Prometheus counts {count} successful requests, expected {successful_requests}")
finally:
    if prometheus is not None:
        prometheus.terminate()
        prometheus.wait(timeout=30)
    server.terminate()
    code = server.wait(timeout=60)
    check(code == 0, f"bptserve exit code {code} after SIGTERM")

sys.exit(check.finish())

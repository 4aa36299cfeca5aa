#!/usr/bin/env python3
"""HTTP against gRPC on one server: bptserve-loadgen in both protocols at each client count, the
same requests, interleaved and repeated. One JSON line per loadgen run on stdout, then one summary
line: per client count the medians over the rounds, their spread, and the HTTP/gRPC ratios of
TTFT p50/p90, ITL p50/p90 and throughput. A benchmark, not a test: the exit code says only
whether every run passed loadgen's own checks.

    # a server already running
    clients/loadgen/compare_protocols.py --grpc localhost:50051 --http localhost:8000
    # or start bptserve (any free ports) from a bin dir, on the demo model unless --server-args says
    clients/loadgen/compare_protocols.py --bin-dir build/bin --clients 1,8,32 --rounds 3
"""
import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

PORTS_LINE = re.compile(r"listening on port (\d+), metrics on port (-?\d+), http on port (-?\d+)")
RATIO_METRICS = ["ttft_p50_s", "ttft_p90_s", "itl_p50_s", "itl_p90_s", "generated_tokens_per_s"]
# Issue 15's budget: the HTTP path adds less than this to any latency or takes it off throughput.
BUDGET = 0.05


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--grpc", metavar="HOST:PORT", help="a running server's gRPC port (with --http)")
    target.add_argument("--bin-dir", help="start DIR/bptserve on free ports and stop it at the end")
    p.add_argument("--http", metavar="HOST:PORT", help="a running server's HTTP port (with --grpc)")
    p.add_argument("--server-args", default="", help="more bptserve flags with --bin-dir, e.g. '--model DIR'")
    p.add_argument("--loadgen", help="the bptserve-loadgen binary (default: beside bptserve, or build/bin)")
    p.add_argument("--clients", default="1,8,32", help="client counts, comma-separated")
    p.add_argument("--rounds", type=int, default=3, help="repetitions; the medians are reported")
    p.add_argument("--total-requests", type=int, default=96,
                   help="requests per run, split across its clients (each client sends at least 2)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--prompt-repeats", type=int, default=8)
    p.add_argument("--model", help="HTTP model name (default: loadgen asks GET /v1/models)")
    p.add_argument("--api-key", help="sent by both protocols")
    args = p.parse_args()
    if args.grpc and not args.http:
        p.error("--grpc needs --http")
    return args


class StartedServer:
    """bptserve on any free ports; its ports once the model has loaded."""

    def __init__(self, bin_dir, server_args):
        self.log = tempfile.NamedTemporaryFile(prefix="bptserve-", suffix=".log", delete=False)
        command = [os.path.join(bin_dir, "bptserve"), "--port", "0", "--metrics-port", "0", "--http-port", "0"]
        self.process = subprocess.Popen(command + shlex.split(server_args), stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.grpc_port, self.http_port = self._wait_until_loaded(timeout_s=300)

    def _wait_until_loaded(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log.name, errors="replace") as f:
                text = f.read()
            ports = PORTS_LINE.search(text)
            if ports and "model loaded" in text[ports.end():]:
                return int(ports.group(1)), int(ports.group(3))
            if self.process.poll() is not None:
                sys.exit(f"bptserve exited ({self.process.returncode}) before serving:\n{text}")
            time.sleep(0.2)
        self.stop()
        sys.exit(f"bptserve did not load its model in {timeout_s} s; its log: {self.log.name}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.unlink(self.log.name)


def run_loadgen(args, protocol, address, clients, requests_per_client):
    command = [args.loadgen, "--protocol", protocol, "--server", address, "--clients", str(clients),
               "--requests", str(requests_per_client), "--max-new-tokens", str(args.max_new_tokens),
               "--prompt-repeats", str(args.prompt_repeats)]
    if args.api_key:
        command += ["--api-key", args.api_key]
    if args.model and protocol == "http":
        command += ["--model", args.model]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(done.stderr)
    lines = done.stdout.strip().splitlines()
    if not lines:
        sys.exit(f"{' '.join(command)} printed no result (exit {done.returncode})")
    result = json.loads(lines[-1])
    result["exit_code"] = done.returncode
    return result


def summarize(runs, client_counts):
    levels = []
    for clients in client_counts:
        medians, spreads = {}, {}
        for protocol in ("grpc", "http"):
            mine = [r for r in runs if r["protocol"] == protocol and r["clients"] == clients]
            medians[protocol] = {m: statistics.median(r[m] for r in mine) for m in RATIO_METRICS}
            # (max - min) / median over the rounds: a ratio closer to 1 than this is noise.
            spreads[protocol] = {m: round((max(r[m] for r in mine) - min(r[m] for r in mine)) / medians[protocol][m], 4)
                                 if medians[protocol][m] else math.nan for m in RATIO_METRICS}
        ratios = {m: medians["http"][m] / medians["grpc"][m] if medians["grpc"][m] else math.nan
                  for m in RATIO_METRICS}
        # Latency ratios must stay under 1 + BUDGET, the throughput ratio over 1 - BUDGET.
        within = all(ratios[m] <= 1 + BUDGET for m in RATIO_METRICS if m != "generated_tokens_per_s") and \
            ratios["generated_tokens_per_s"] >= 1 - BUDGET
        levels.append({"clients": clients, "grpc": medians["grpc"], "http": medians["http"],
                       "http_over_grpc": {m: round(v, 4) for m, v in ratios.items()},
                       "spread": spreads,
                       "within_budget": within})
    return {"summary": levels, "rounds": len({r["round"] for r in runs}), "budget": BUDGET}


def main():
    args = parse_args()
    server = StartedServer(args.bin_dir, args.server_args) if args.bin_dir else None
    if server:
        addresses = {"grpc": f"localhost:{server.grpc_port}", "http": f"localhost:{server.http_port}"}
    else:
        addresses = {"grpc": args.grpc, "http": args.http}
    if not args.loadgen:
        here = os.path.dirname(os.path.abspath(__file__))
        args.loadgen = os.path.join(args.bin_dir or os.path.join(here, "..", "..", "build", "bin"),
                                    "bptserve-loadgen")
    client_counts = [int(c) for c in args.clients.split(",")]
    try:
        # One short run per protocol first: the first connections and the first requests' memory
        # are not what is being compared.
        for protocol in ("grpc", "http"):
            run_loadgen(args, protocol, addresses[protocol], 1, 2)
        runs = []
        for round_index in range(args.rounds):
            for clients in client_counts:
                # Which protocol goes first alternates by round, so a drift in the machine's speed
                # (other load, thermal) lands on both alike.
                order = ("grpc", "http") if round_index % 2 == 0 else ("http", "grpc")
                for protocol in order:
                    requests_per_client = max(2, math.ceil(args.total_requests / clients))
                    result = run_loadgen(args, protocol, addresses[protocol], clients, requests_per_client)
                    result["round"] = round_index
                    print(json.dumps(result), flush=True)
                    runs.append(result)
    finally:
        if server:
            server.stop()
    print(json.dumps(summarize(runs, client_counts)), flush=True)
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

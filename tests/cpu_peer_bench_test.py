#!/usr/bin/env python3
"""engine/tools/cpu_peer_bench.py's ratio lines, from made-up measurements (no peer runs): each goal
compares the right pair, in the right direction, and a goal whose measurements are missing is left
out rather than reported against nothing.

usage: cpu_peer_bench_test.py REPO_DIR
"""
import importlib.util
import os
import sys

import test_support

spec = importlib.util.spec_from_file_location(
    "cpu_peer_bench", os.path.join(sys.argv[1], "engine", "tools", "cpu_peer_bench.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
check = test_support.Checks()


def prefill(peer, mode, n, seconds, rss, **extra):
    return dict(peer=peer, mode=mode, bench="prefill", prompt_tokens=n, seconds=seconds, peak_rss_bytes=rss, **extra)


def decode(peer, mode, tokens_per_s):
    return dict(peer=peer, mode=mode, bench="decode", context_tokens=1024, tokens_per_s=tokens_per_s)


results = [
    prefill("hf-transformers", "fp32", 4096, 8.0, 300), prefill("llama.cpp", "F32", 4096, 10.0, 100),
    prefill("llama.cpp", "F16", 4096, 9.0, 80),
    prefill("bptserve", "fp32", 4096, 4.0, 120, gflop_per_s=95.0), prefill("bptserve", "kv-bf16", 4096, 8.0, 90),
    prefill("bptserve", "bf16", 4096, 3.0, 88),
    decode("llama.cpp", "F32", 60.0), decode("llama.cpp", "F16", 100.0),
    decode("bptserve", "fp32", 90.0),  # no bf16 decode: its goal is left out
]
lines = bench.ratios(results, 1024)
by_goal = {(r["ratio"], r["mode"]): r for r in lines}

fp32 = by_goal[("prefill_speedup_vs_fastest_fp32_peer", "fp32")]
check(fp32["versus"] == "hf-transformers fp32" and fp32["value"] == 2.0 and fp32["meets_goal"],
      f"prefill against the faster fp32 peer (HF here): {fp32}")
kv = by_goal[("prefill_speedup_vs_fastest_fp32_peer", "kv-bf16")]
check(kv["value"] == 1.0 and kv["goal"] == 1.3 and not kv["meets_goal"], f"bf16 KV needs 1.3x: {kv}")
floor = by_goal[("prefill_fraction_of_fp32_floor", "fp32")]
check(floor["value"] == 0.5, f"95 GFLOP/s is half the floor: {floor}")
dec = by_goal[("decode_speedup_vs_llama.cpp", "fp32")]
check(dec["versus"] == "llama.cpp F32" and dec["value"] == 1.5 and dec["meets_goal"], f"decode vs F32: {dec}")
check(("decode_speedup_vs_llama.cpp", "bf16") not in by_goal, "a goal without its measurement is left out")
rss = by_goal[("peak_rss_vs_llama.cpp", "kv-bf16")]
check(rss["versus"] == "llama.cpp F32" and rss["value"] == 0.9 and rss["meets_goal"],
      f"RSS with bf16 KV against llama.cpp F32 (its f16 KV), lower is better: {rss}")
rss16 = by_goal[("peak_rss_vs_llama.cpp", "bf16")]
check(rss16["versus"] == "llama.cpp F16" and rss16["value"] == 1.1 and not rss16["meets_goal"],
      f"RSS with bf16 weights against llama.cpp F16: {rss16}")
check(("peak_rss_vs_llama.cpp", "fp32") not in by_goal, "fp32 has no llama.cpp run with the same storage")

sys.exit(check.finish())

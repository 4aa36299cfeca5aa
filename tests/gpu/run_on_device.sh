#!/usr/bin/env bash
# One batched GPU session: every gpu-labelled test and the GPU benchmarks, results as JSON under
# $OUT. Builds nothing: run it on the GPU host from the repository root, with build/bin and the
# libraries from `../shared/tools/collect-libs gpu-libs` (README, GPU) carried along:
#   OUT=/tmp/out LD_LIBRARY_PATH=$PWD/gpu-libs tests/gpu/run_on_device.sh [quick]
# "quick" runs the tests and the 8K/32K benchmarks only.
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
BIN=${BIN:-build/bin}
mode=${1:-full}
mkdir -p "$OUT"
# gpu_tests links the CUDA plugin, whose build path on this host may differ from the builder's.
export LD_LIBRARY_PATH="$PWD/$BIN:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
status=0

"$BIN/gpu_tests" --gtest_output=json:"$OUT/gpu_tests.json" > "$OUT/gpu_tests.log" 2>&1 || status=1
"$BIN/gpu_memory_test" --gtest_output=json:"$OUT/gpu_memory_test.json" > "$OUT/gpu_memory_test.log" 2>&1 || status=1

prompts=8192,32768,131072
[ "$mode" = quick ] && prompts=8192,32768
"$BIN/bench" --preset tinyllama --device cuda --prompts "$prompts" --prefill-blocks 2048 --repeats 3 \
  --decode-contexts 1024,32768 --decode-tokens 128 > "$OUT/bench.jsonl" 2> "$OUT/bench.log" || status=1
"$BIN/bench" --preset tinyllama --device cuda --admission >> "$OUT/bench.jsonl" 2>> "$OUT/bench.log" || status=1
"$BIN/bench" --preset tinyllama --device cuda --streams 1,8,32,64 >> "$OUT/bench.jsonl" 2>> "$OUT/bench.log" || status=1
python3 engine/tools/peer_bench.py --prompts "$prompts" --decode-contexts 1024,32768 \
  > "$OUT/peer.jsonl" 2> "$OUT/peer.log" || status=1

# The short table the reply carries: test counts, then each figure beside the peer's.
grep -h '"tests"\|"failures"' "$OUT"/gpu_tests.json "$OUT"/gpu_memory_test.json | head -4
tail -n 3 "$OUT/gpu_tests.log"
python3 - "$OUT/bench.jsonl" "$OUT/peer.jsonl" <<'PY' | tee "$OUT/summary.txt"
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
peer = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
for o in ours:
    if o["bench"] == "prefill":
        p = next((x for x in peer if x["bench"] == "peer_prefill" and x["prompt_tokens"] == o["prompt_tokens"]), None)
        ratio = f'{p["seconds"] / o["seconds"]:.2f}x the peer\'s speed' if p else "no peer figure"
        print(f'prefill {o["prompt_tokens"]:>7}: {o["seconds"]:.3f} s ({ratio})')
    elif o["bench"] == "decode":
        p = next((x for x in peer if x["bench"] == "peer_decode" and x["context_tokens"] == o["context_tokens"]), None)
        ratio = f'{o["tokens_per_s"] / p["tokens_per_s"]:.1f}x the peer\'s speed' if p else "no peer figure"
        print(f'decode at {o["context_tokens"]:>6}: {o["tokens_per_s"]:.0f} tok/s ({ratio})')
    elif o["bench"] == "admission":
        print(f'longest prompt admitted: {o["longest_admitted_prompt"]} tokens')
    elif o["bench"] == "streams":
        print(f'{o["streams"]:>3} streams: {o["generated_tokens_per_s"]:.0f} generated tok/s')
PY
exit $status

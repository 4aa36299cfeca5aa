#!/usr/bin/env python3
"""bptserve's tokenizer beside HF `tokenizers` on the same text and tokenizer.json, single
thread each, in one run: encodes the whole text as one string with both (tokenizer-bench, and
Tokenizer.from_file(...).encode), checks that the ids are identical, and prints one JSON line with
both speeds and their ratio. HF's encode_batch over the text's lines (one thread) is timed too.

    python3 engine/tools/tokenizer_peer_bench.py --bench build/bin/tokenizer-bench
    python3 engine/tools/tokenizer_peer_bench.py --bench build/bin/tokenizer-bench --model DIR --text FILE

Without --model the Llama 3-pattern fixture of tests/tokenizers/make_tokenizer_fixtures.py is
built; without --text a text of --mb megabytes is made from engine/tools/demo_corpus.txt and the
multilingual entries of tests/tokenizers/corpus.py, repeated. Exits 1 when the ids differ.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Before tokenizers starts its thread pool: one thread, as tokenizer-bench has.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "tokenizers")
# Corpus entries too long or too repetitive to stand for running text.
NOT_RUNNING_TEXT = ("long_word", "spaces_1000", "newlines_300", "empty")


def make_text(path, megabytes):
    sys.path.insert(0, FIXTURES)
    from corpus import corpus
    with open(os.path.join(ROOT, "engine", "tools", "demo_corpus.txt"), encoding="utf-8") as f:
        parts = [f.read()]
    parts += [text for name, text in corpus() if not name.startswith(NOT_RUNNING_TEXT)]
    block = "\n".join(parts) + "\n"
    target = int(megabytes * 1e6)
    data = (block * (target // len(block.encode("utf-8")) + 1)).encode("utf-8")[:target]
    with open(path, "wb") as f:
        f.write(data.decode("utf-8", errors="ignore").encode("utf-8"))  # not cut inside a character


def best_seconds(fn, repeat):
    best, result = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default=os.path.join(ROOT, "build", "bin", "tokenizer-bench"))
    parser.add_argument("--model", help="a directory with tokenizer.json")
    parser.add_argument("--text", help="UTF-8 text file")
    parser.add_argument("--mb", type=float, default=10.0, help="size of the made text")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tokenizer-peer-bench-") as tmp:
        model = args.model
        if model is None:
            subprocess.run([sys.executable, os.path.join(FIXTURES, "make_tokenizer_fixtures.py"), tmp,
                            "--only", "llama3-bpe"], check=True)
            model = os.path.join(tmp, "llama3-bpe")
        text_path = args.text
        if text_path is None:
            text_path = os.path.join(tmp, "text.txt")
            make_text(text_path, args.mb)
        with open(text_path, encoding="utf-8", newline="") as f:  # "\r\n" kept, as tokenizer-bench reads it
            text = f.read()
        size = len(text.encode("utf-8"))

        ids_path = os.path.join(tmp, "ids.bin")
        run = subprocess.run([args.bench, "--model", model, "--text", text_path, "--repeat", str(args.repeat),
                              "--ids-out", ids_path], check=True, capture_output=True, text=True)
        ours = json.loads(run.stdout.strip().splitlines()[-1])
        our_ids = np.fromfile(ids_path, dtype=np.int32)

        hf = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
        hf_seconds, encoding = best_seconds(lambda: hf.encode(text, add_special_tokens=False), args.repeat)
        hf_ids = np.asarray(encoding.ids, dtype=np.int32)
        lines = text.splitlines(keepends=True)
        batch_seconds, _ = best_seconds(lambda: hf.encode_batch(lines, add_special_tokens=False), args.repeat)

        identical = bool(our_ids.shape == hf_ids.shape and np.array_equal(our_ids, hf_ids))
        first_difference = None
        if not identical:
            n = min(len(our_ids), len(hf_ids))
            differing = np.nonzero(our_ids[:n] != hf_ids[:n])[0]
            first_difference = int(differing[0]) if len(differing) else n
        print(json.dumps({
            "bench": "tokenizer_peer", "model": os.path.basename(os.path.normpath(model)), "bytes": size,
            "tokens": int(len(hf_ids)), "ids_identical": identical, "first_difference": first_difference,
            "bptserve": {"seconds": ours["seconds"], "mb_per_s": ours["mb_per_s"]},
            "hf_tokenizers": {"seconds": hf_seconds, "mb_per_s": size / 1e6 / hf_seconds},
            "hf_tokenizers_lines_batch": {"lines": len(lines), "seconds": batch_seconds,
                                          "mb_per_s": size / 1e6 / batch_seconds},
            "ratio_bptserve_over_hf": ours["mb_per_s"] / (size / 1e6 / hf_seconds),
        }), flush=True)
        return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bptserve's CPU engine beside the CPU peers, in one run on one machine, with the same shapes and
threads: HF transformers + PyTorch (fp32, SDPA) and llama.cpp (llama-cpp-python: F32 weights with
an f16 KV cache and flash attention, and F16 weights), then bptserve's `bench` in three storage
modes (fp32; --kv-dtype bf16; --weight-dtype bf16 --kv-dtype bf16). The model is a random-weight
directory of SmolLM2-135M's shape (bptserve-make-model --preset smollm2-135m --dtype f32 with the
Llama 2 tokenizer.model, made here when absent), converted to GGUF by llama.cpp's own
convert_hf_to_gguf.py.

Each measurement runs in a process of its own, so peak_rss_bytes is that process's ru_maxrss: one
peer at one prompt length (the run at --decode-after also decodes). One JSON line per measurement
on stdout, then one per goal of issue 16 ("ratio" lines: the value, the goal, whether it is met).

    python3 engine/tools/cpu_peer_bench.py --bench build/bin/bench --threads 2
    python3 engine/tools/cpu_peer_bench.py --bench build/bin/bench --quick      # 1K only: a check

The peers live in a venv of their own (--venv, default ~/.cache/bptserve/cpu-peer-venv), not in
.ci/run's: torch, transformers, safetensors, sentencepiece, numpy, gguf and llama-cpp-python, each
installed with that venv's pip when missing. The converter comes from the sdist of the installed
llama-cpp-python (pip download; it vendors llama.cpp) and is kept in the venv.

Run it on a quiet machine: with other work on the cores, the peers' thread pools wait at every
operator's barrier for a thread that is not running (decode measured 10-20x slower that way).
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

PACKAGES = {"torch": "torch", "transformers": "transformers", "safetensors": "safetensors",
            "sentencepiece": "sentencepiece", "numpy": "numpy", "gguf": "gguf", "llama_cpp": "llama-cpp-python"}
DEFAULT_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "../../../shared/models/llama2-tokenizer/tokenizer.model")
# bptserve's storage modes: name, bench flags.
BPTSERVE_MODES = [("fp32", []), ("kv-bf16", ["--kv-dtype", "bf16"]),
                  ("bf16", ["--weight-dtype", "bf16", "--kv-dtype", "bf16"])]
# The fp32 compute floor of two such cores (issue 16), for the achieved fraction: 2 cores x 2 AVX-512
# FMA ports x 16 lanes x 2 flops x ~1.5 GHz sustained.
FP32_FLOOR_GFLOP_PER_S = 190
# llama.cpp's runs: name, GGUF weight type. Both with an f16 KV cache (its default) and flash attention.
LLAMA_WEIGHTS = ["F32", "F16"]


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- the parent: the venv, the model files, one child per measurement, the ratios ----

def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def ensure_venv(venv):
    """The venv with every peer package, created and filled with its own pip where needed."""
    if not os.path.exists(venv_python(venv)):
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=sys.stderr)
    missing = [pip_name for module, pip_name in PACKAGES.items()
               if subprocess.run([venv_python(venv), "-c", f"import {module}"], capture_output=True).returncode]
    if missing:
        log(f"installing {' '.join(missing)} into {venv} (llama-cpp-python compiles llama.cpp: minutes)")
        subprocess.run([venv_python(venv), "-m", "pip", "install", *missing], check=True, stdout=sys.stderr)


def ensure_converter(venv):
    """llama.cpp's convert_hf_to_gguf.py (with its conversion/ and gguf-py/), of the llama.cpp the
    venv's llama-cpp-python was built from: extracted once from that version's sdist."""
    version = subprocess.run([venv_python(venv), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    root = os.path.join(venv, f"llama.cpp-{version}")
    script = os.path.join(root, "convert_hf_to_gguf.py")
    if os.path.exists(script):
        return script
    with tempfile.TemporaryDirectory() as download:
        log(f"downloading the llama-cpp-python {version} sdist for llama.cpp's converter")
        subprocess.run([venv_python(venv), "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                        f"llama-cpp-python=={version}", "-d", download], check=True, stdout=sys.stderr)
        sdist = next(os.path.join(download, f) for f in os.listdir(download) if f.endswith(".tar.gz"))
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
        with tarfile.open(sdist) as tar:
            members = []
            for member in tar.getmembers():
                if member.name.startswith(prefix) and member.name[len(prefix):].startswith(wanted):
                    member.name = member.name[len(prefix):]
                    members.append(member)
            os.makedirs(root + ".partial", exist_ok=True)
            tar.extractall(root + ".partial", members=members, filter="data")
    os.replace(root + ".partial", root)
    return script


def ensure_model(args):
    if not os.path.exists(os.path.join(args.model, "model.safetensors")):
        make_model = os.path.join(os.path.dirname(args.bench), "bptserve-make-model")
        log(f"writing {args.model}")
        subprocess.run([make_model, "--preset", "smollm2-135m", "--dtype", "f32", "--tokenizer", args.tokenizer,
                        "--out", args.model], check=True, stdout=subprocess.DEVNULL)


def ensure_gguf(args, converter, weights):
    path = os.path.join(args.model, "gguf", f"model-{weights.lower()}.gguf")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        log(f"converting {args.model} to {path}")
        subprocess.run([venv_python(args.venv), converter, args.model, "--outtype", weights.lower(),
                        "--outfile", path + ".partial"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.replace(path + ".partial", path)
    return path


def measure(command, fields, env=None):
    """Runs one child and prints its JSON lines, each with `fields` and the child's peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        # Reaped here rather than by Popen.wait, which would drop the child's rusage (ru_maxrss, KiB).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = []
    if child.returncode != 0:
        lines.append(dict(fields, error=stderr.strip()[-2000:] or f"exit status {child.returncode}"))
    else:
        for text in stdout.splitlines():
            if text.startswith("{"):
                lines.append(dict(json.loads(text), **fields, peak_rss_bytes=usage.ru_maxrss * 1024))
    for line in lines:
        print(json.dumps(line, sort_keys=True), flush=True)
    return lines


def peer_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)  # PyTorch's intra-op pool, before torch.set_num_threads
    return env


def run_all(args):
    ensure_venv(args.venv)
    ensure_model(args)
    converter = ensure_converter(args.venv)
    ggufs = {weights: ensure_gguf(args, converter, weights) for weights in LLAMA_WEIGHTS}
    prompts = [1024] if args.quick else [int(n) for n in args.prompts.split(",") if n]
    this_script = os.path.abspath(__file__)
    results = []
    for n in prompts:  # every peer at one length before the next, so that the machine's drift hits all alike
        decode = args.decode_tokens if n == args.decode_after else 0
        common = ["--model", args.model, "--prompt", str(n), "--decode-tokens", str(decode),
                  "--threads", str(args.threads), "--repeats", str(args.repeats)]
        results += measure([venv_python(args.venv), this_script, "--worker", "hf", *common],
                           {"peer": "hf-transformers", "mode": "fp32"}, peer_env(args.threads))
        for weights, path in ggufs.items():
            results += measure([venv_python(args.venv), this_script, "--worker", "llama.cpp", "--gguf", path,
                                *common], {"peer": "llama.cpp", "mode": weights}, peer_env(args.threads))
        for mode, flags in BPTSERVE_MODES:
            results += measure([args.bench, "--model", args.model, "--prompts", str(n), "--decode-tokens",
                                str(decode), "--threads", str(args.threads), "--repeats", str(args.repeats), *flags],
                               {"peer": "bptserve", "mode": mode})
    for line in ratios(results, args.decode_after):
        print(json.dumps(line, sort_keys=True), flush=True)


def ratios(results, decode_after):
    """Issue 16's goals as ratios; a goal whose measurements are missing is left out."""
    def find(peer, mode, bench, n=None):
        for r in results:
            if (r.get("peer"), r.get("mode"), r.get("bench")) == (peer, mode, bench) and \
                    (n is None or r.get("prompt_tokens", r.get("context_tokens")) == n):
                return r
        return None

    def line(goal, value, target, higher_is_better, **fields):
        met = value >= target if higher_is_better else value <= target
        return dict(ratio=goal, value=round(value, 3), goal=target, meets_goal=met, **fields)

    out = []
    lengths = sorted({r["prompt_tokens"] for r in results if r.get("bench") == "prefill"})
    for n in lengths:
        peers = [p for p in (find("hf-transformers", "fp32", "prefill", n), find("llama.cpp", "F32", "prefill", n)) if p]
        if not peers:
            continue
        fastest = min(peers, key=lambda p: p["seconds"])
        for mode, target in (("fp32", 1.0), ("kv-bf16", 1.3)):
            mine = find("bptserve", mode, "prefill", n)
            if mine:
                # The goals are at 4K and 16K; shorter prompts are reported all the same.
                out.append(line("prefill_speedup_vs_fastest_fp32_peer", fastest["seconds"] / mine["seconds"], target,
                                True, prompt_tokens=n, mode=mode,
                                versus=f"{fastest['peer']} {fastest['mode']}"))
        gflops = find("bptserve", "fp32", "prefill", n)
        if gflops and "gflop_per_s" in gflops:
            out.append(dict(ratio="prefill_fraction_of_fp32_floor",
                            value=round(gflops["gflop_per_s"] / FP32_FLOOR_GFLOP_PER_S, 3), prompt_tokens=n,
                            mode="fp32", gflop_per_s=gflops["gflop_per_s"], floor_gflop_per_s=FP32_FLOOR_GFLOP_PER_S))
    for mode, versus in (("fp32", "F32"), ("bf16", "F16")):
        mine, theirs = find("bptserve", mode, "decode", decode_after), find("llama.cpp", versus, "decode", decode_after)
        if mine and theirs:
            out.append(line("decode_speedup_vs_llama.cpp", mine["tokens_per_s"] / theirs["tokens_per_s"], 1.0, True,
                            context_tokens=decode_after, mode=mode, versus=f"llama.cpp {versus}"))
    # Peak RSS against llama.cpp with the same storage: its F32 run keeps an f16 KV cache, so
    # bptserve's kv-bf16 mode is its match, and bptserve's bf16 mode matches its F16 run.
    for n in lengths:
        for mode, versus in (("kv-bf16", "F32"), ("bf16", "F16")):
            mine, theirs = find("bptserve", mode, "prefill", n), find("llama.cpp", versus, "prefill", n)
            if mine and theirs:
                out.append(line("peak_rss_vs_llama.cpp", mine["peak_rss_bytes"] / theirs["peak_rss_bytes"], 1.0, False,
                                prompt_tokens=n, mode=mode, versus=f"llama.cpp {versus}"))
    return out


# ---- the children: one peer, one prompt length, in the venv ----

def random_prompt(n, vocab):
    import numpy as np
    return np.random.default_rng(7).integers(3, vocab, size=n).tolist()


def worker_hf(args):
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    # The class itself rather than AutoModel: bptserve-make-model's config.json has no model_type.
    model = transformers.LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                          attn_implementation="sdpa").eval()
    ids = torch.tensor([random_prompt(args.prompt, model.config.vocab_size)])
    fields = {"threads": args.threads, "versions": f"transformers {transformers.__version__}, torch {torch.__version__}"}
    with torch.inference_mode():
        model(ids[:, :8], logits_to_keep=1)  # warm-up: the first call's one-off set-up is not prefill
        seconds = float("inf")
        for _ in range(args.repeats):  # the best run, as bench reports its best
            start = time.perf_counter()
            out = model(ids, logits_to_keep=1, use_cache=True)
            seconds = min(seconds, time.perf_counter() - start)
        emit("prefill", prompt_tokens=args.prompt, seconds=seconds, tokens_per_s=args.prompt / seconds, **fields)
        if args.decode_tokens > 0:
            # transformers 5.2x renamed past_key_values to cache (the old name goes in 5.40).
            name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
            past, token = getattr(out, name), out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(args.decode_tokens):
                out = model(token, use_cache=True, **{name: past})
                past, token = getattr(out, name), out.logits[:, -1:].argmax(-1)
            seconds = time.perf_counter() - start
            emit("decode", context_tokens=args.prompt, new_tokens=args.decode_tokens, decode_seconds=seconds,
                 tokens_per_s=args.decode_tokens / seconds, **fields)


def worker_llama(args):
    import llama_cpp
    import numpy as np
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=args.prompt + args.decode_tokens + 16, n_threads=args.threads,
                          n_threads_batch=args.threads, flash_attn=True, logits_all=False, verbose=False)
    n_vocab = llm.n_vocab()
    ids = random_prompt(args.prompt, n_vocab)
    fields = {"threads": args.threads, "versions": f"llama-cpp-python {llama_cpp.__version__}", "kv_dtype": "f16",
              "flash_attention": True}

    def last_token_argmax():
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))

    llm.eval(ids[:8])  # warm-up, as for HF
    seconds = float("inf")
    for _ in range(args.repeats):  # the best run, as bench reports its best
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        seconds = min(seconds, time.perf_counter() - start)
    emit("prefill", prompt_tokens=args.prompt, seconds=seconds, tokens_per_s=args.prompt / seconds, **fields)
    if args.decode_tokens > 0:
        token = last_token_argmax()
        start = time.perf_counter()
        for _ in range(args.decode_tokens):
            llm.eval([token])
            token = last_token_argmax()
        seconds = time.perf_counter() - start
        emit("decode", context_tokens=args.prompt, new_tokens=args.decode_tokens, decode_seconds=seconds,
             tokens_per_s=args.decode_tokens / seconds, **fields)


def emit(bench, **fields):
    print(json.dumps(dict(bench=bench, **fields)), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default="build/bin/bench", help="bptserve's bench binary")
    parser.add_argument("--model", default=os.path.expanduser("~/.cache/bptserve/smollm2-135m-f32"),
                        help="a bptserve-make-model directory of f32 safetensors and tokenizer.model (made if absent)")
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="the tokenizer.model a new --model gets")
    parser.add_argument("--venv", default=os.path.expanduser("~/.cache/bptserve/cpu-peer-venv"))
    parser.add_argument("--prompts", default="1024,4096,16384", help="prompt lengths to prefill")
    parser.add_argument("--decode-after", type=int, default=1024,
                        help="the prompt length after which to decode (no decode when it is not one of --prompts)")
    parser.add_argument("--decode-tokens", type=int, default=64, help="tokens to decode")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1,
                        help="prefill runs per peer and length, the best reported (the machine's noise is 10-15 %%)")
    parser.add_argument("--quick", action="store_true", help="the 1K prompt only: checks that every peer runs")
    parser.add_argument("--worker", choices=["hf", "llama.cpp"], help=argparse.SUPPRESS)  # a child's peer
    parser.add_argument("--prompt", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gguf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "hf":
        worker_hf(args)
    elif args.worker == "llama.cpp":
        worker_llama(args)
    else:
        if args.quick:
            args.decode_after = 1024
        run_all(args)


if __name__ == "__main__":
    main()

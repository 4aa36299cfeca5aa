#!/usr/bin/env python3
"""The peers bptserve's GPU figures are compared with, on the same card and shapes as `bench` and
`cuda-attention-bench`: HF transformers (LlamaForCausalLM, attn_implementation="sdpa",
logits_to_keep=1) prefill and generate, and PyTorch SDPA attention alone. Random bf16 weights
with the TinyLlama-1.1B shape. One JSON line per measurement on stdout, keyed as bench's own
lines are (prompt_tokens, context_tokens, context), so tests/gpu/run_on_device.sh pairs them;
times are medians of CUDA events after a warm-up.

    python3 engine/tools/peer_bench.py --prompts 8192,32768,131072 --decode-contexts 1024,32768 \\
        --decode-tokens 64 --decode-attention-context 1048576
"""
import argparse
import json
import statistics

# TinyLlama-1.1B's attention: 32 query heads over 4 KV heads of 64.
HEADS, KV_HEADS, HEAD_DIM = 32, 4, 64


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", default="8192,32768,131072", help="prefill lengths, as bench --prompts")
    parser.add_argument("--decode-contexts", default="1024,32768", help="cached tokens before decoding")
    parser.add_argument("--decode-tokens", type=int, default=64, help="tokens generated per decode measurement")
    parser.add_argument("--decode-attention-context", type=int, default=1048576,
                        help="keys of the SDPA-alone decode measurement (cuda-attention-bench --context); 0: none")
    parser.add_argument("--decode-attention-calls", type=int, default=20,
                        help="back-to-back SDPA decode calls per timing, as cuda-attention-bench --decode-calls")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up")
    args = parser.parse_args(argv)
    args.prompts = [int(x) for x in args.prompts.split(",") if x]
    args.decode_contexts = [int(x) for x in args.decode_contexts.split(",") if x]
    if not args.prompts or args.repeats < 1 or args.decode_tokens < 2 or args.decode_attention_calls < 1:
        parser.error("needs a prompt, --repeats >= 1, --decode-tokens >= 2 and --decode-attention-calls >= 1")
    return args


def emit(line):
    print(json.dumps(line), flush=True)


def tinyllama_config(max_positions):
    import torch
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, rms_norm_eps=1e-5,
                       rope_theta=10000.0, max_position_embeddings=max_positions, tie_word_embeddings=False,
                       attn_implementation="sdpa", dtype=torch.bfloat16)


def timed(fn, repeats, calls=1):
    """Median seconds of one fn() over `repeats` timings of `calls` back-to-back calls, after a
    warm-up call; back-to-back calls hide each launch's overhead behind the previous call, as
    cuda-attention-bench times its decode calls."""
    import torch
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000.0 / calls)
    return statistics.median(times)


def hf_prefill(model, args, generator, weights):
    """Prefill figures, and the peak memory of each for the admission estimate."""
    import torch
    peaks = []
    for n in args.prompts:
        ids = torch.randint(0, 32000, (1, n), device="cuda", generator=generator)
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            seconds = timed(lambda: model(ids, logits_to_keep=1, use_cache=True), args.repeats)
        peak = torch.cuda.max_memory_allocated() - weights
        peaks.append((n, peak))
        emit({"bench": "peer_prefill", "peer": "hf_transformers_sdpa", "prompt_tokens": n, "seconds": seconds,
              "tokens_per_s": n / seconds, "peak_bytes_beyond_weights": peak})
    return peaks


def admission_estimate(peaks, free_beyond_weights):
    """HF has no admission control: the longest prompt it can prefill is the one whose peak
    memory fills the card, and finding it by trial would take minutes of quadratic attention at
    each attempt. So it is extrapolated from the two longest prompts' peaks: linear in the prompt
    (KV cache, full-length MLP activations, SDPA without a materialised mask). A superlinear term
    would make the line through the two longest points too shallow, so the estimate errs towards
    HF's favour."""
    if len(peaks) < 2:
        return
    (n1, p1), (n2, p2) = sorted(peaks)[-2:]
    per_token = (p2 - p1) / (n2 - n1)
    if per_token <= 0:
        return
    emit({"bench": "peer_admission_estimate", "peer": "hf_transformers_sdpa",
          "longest_prompt_estimate": int(n2 + (free_beyond_weights - p2) / per_token),
          "free_bytes_beyond_weights": free_beyond_weights, "bytes_per_token": per_token, "from_prompts": [n1, n2],
          "method": "linear extrapolation of the peak memory of the two longest prefills; not run"})


def hf_decode(model, args, generator):
    import torch
    for n in args.decode_contexts:
        ids = torch.randint(0, 32000, (1, n), device="cuda", generator=generator)
        with torch.inference_mode():
            def generate():
                model.generate(ids, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens,
                               do_sample=False, pad_token_id=0)
            total = timed(generate, 1)
            prefill = timed(lambda: model(ids, logits_to_keep=1, use_cache=True), 1)
        # The first new token comes from the prefill, as in bench's decode figure.
        emit({"bench": "peer_decode", "peer": "hf_transformers_generate", "context_tokens": n,
              "new_tokens": args.decode_tokens,
              "tokens_per_s": (args.decode_tokens - 1) / max(total - prefill, 1e-9)})


def sdpa_prefill(args, generator):
    """Causal SDPA over each whole prompt."""
    import torch
    for n in args.prompts:
        q = torch.randn(1, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
        k = torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
        v = torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
        seconds = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                               enable_gqa=True), args.repeats)
        flops = 4 * n * n * HEAD_DIM * HEADS / 2
        emit({"bench": "peer_attention", "peer": "torch_sdpa", "tokens": n, "seconds": seconds,
              "tflops": flops / seconds / 1e12})
        del q, k, v


def sdpa_decode(args, generator):
    """One decode query over a long context, in TB/s of K and V read, as cuda-attention-bench's
    decode line counts them. The query heads that share a KV head become that head's query rows
    (one query sees every key, so no mask is needed), so SDPA reads each K/V row once, as a decode
    kernel must, rather than expanding K and V for each of the group's heads."""
    import torch
    n = args.decode_attention_context
    group = HEADS // KV_HEADS
    q = torch.randn(1, KV_HEADS, group, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
    k = torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
    v = torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
    seconds = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), args.repeats,
                    args.decode_attention_calls)
    kv_bytes = 2 * n * KV_HEADS * HEAD_DIM * 2
    emit({"bench": "peer_attention_decode", "peer": "torch_sdpa", "context": n, "batch": 1, "heads": HEADS,
          "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "seconds_per_call": seconds,
          "tb_per_s": kv_bytes / seconds / 1e12})


def main():
    args = parse_args()
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    emit({"bench": "peer_env", "torch": torch.__version__, "transformers": transformers.__version__,
          "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name()})
    torch.manual_seed(0)
    config = tinyllama_config(max(args.prompts + args.decode_contexts) + args.decode_tokens + 16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    weights = torch.cuda.memory_allocated()
    torch.cuda.empty_cache()
    free_beyond_weights = torch.cuda.mem_get_info()[0]
    generator = torch.Generator(device="cuda").manual_seed(1)

    # The figures with targets first, so a timeout loses the least.
    admission_estimate(hf_prefill(model, args, generator, weights), free_beyond_weights)
    hf_decode(model, args, generator)
    del model
    torch.cuda.empty_cache()
    if args.decode_attention_context > 0:
        sdpa_decode(args, generator)
    sdpa_prefill(args, generator)


if __name__ == "__main__":
    main()

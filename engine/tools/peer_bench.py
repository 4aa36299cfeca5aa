#!/usr/bin/env python3
"""The peers bptserve's GPU figures are compared with, on the same card and shapes as `bench`:
HF transformers (LlamaForCausalLM, attn_implementation="sdpa", logits_to_keep=1) prefill and
generate, and PyTorch SDPA attention alone. Random bf16 weights with the TinyLlama-1.1B shape.
One JSON line per measurement on stdout; times are medians of CUDA events after a warm-up.

    python3 engine/tools/peer_bench.py --prompts 8192,32768,131072 --decode-contexts 1024,32768
"""
import argparse
import json
import statistics

import torch


def tinyllama_config(max_positions):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0,
                       max_position_embeddings=max_positions, tie_word_embeddings=False,
                       attn_implementation="sdpa", torch_dtype=torch.bfloat16)


def timed(fn, repeats):
    """Median seconds of fn() over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", default="8192,32768,131072")
    parser.add_argument("--decode-contexts", default="1024,32768")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompts = [int(x) for x in args.prompts.split(",") if x]
    contexts = [int(x) for x in args.decode_contexts.split(",") if x]

    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    config = tinyllama_config(max(prompts + contexts) + args.decode_tokens + 16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    weights = torch.cuda.memory_allocated()
    generator = torch.Generator(device="cuda").manual_seed(1)

    for n in prompts:
        ids = torch.randint(0, 32000, (1, n), device="cuda", generator=generator)
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            seconds = timed(lambda: model(ids, logits_to_keep=1, use_cache=True), args.repeats)
        print(json.dumps({"bench": "peer_prefill", "peer": "hf_transformers_sdpa", "prompt_tokens": n,
                          "seconds": seconds, "tokens_per_s": n / seconds,
                          "peak_bytes_beyond_weights": torch.cuda.max_memory_allocated() - weights}), flush=True)

    for n in contexts:
        ids = torch.randint(0, 32000, (1, n), device="cuda", generator=generator)
        with torch.inference_mode():
            def generate():
                model.generate(ids, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens,
                               do_sample=False, pad_token_id=0)
            total = timed(generate, 1)
            prefill = timed(lambda: model(ids, logits_to_keep=1, use_cache=True), 1)
        print(json.dumps({"bench": "peer_decode", "peer": "hf_transformers_generate", "context_tokens": n,
                          "new_tokens": args.decode_tokens,
                          "tokens_per_s": (args.decode_tokens - 1) / max(total - prefill, 1e-9)}), flush=True)

    # Attention alone: causal SDPA over the whole prompt, TinyLlama's heads (32 q / 4 kv, dim 64).
    for n in prompts:
        q = torch.randn(1, 32, n, 64, device="cuda", dtype=torch.bfloat16, generator=generator)
        k = torch.randn(1, 4, n, 64, device="cuda", dtype=torch.bfloat16, generator=generator)
        v = torch.randn(1, 4, n, 64, device="cuda", dtype=torch.bfloat16, generator=generator)
        seconds = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                               enable_gqa=True), args.repeats)
        flops = 4 * n * n * 64 * 32 / 2
        print(json.dumps({"bench": "peer_attention", "peer": "torch_sdpa", "tokens": n, "seconds": seconds,
                          "tflops": flops / seconds / 1e12}), flush=True)


if __name__ == "__main__":
    main()

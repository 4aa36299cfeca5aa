#!/usr/bin/env python3
"""Independent float64 reference for Llama-family models, written from the Hugging Face
modeling equations (modeling_llama.py, modeling_mistral.py, modeling_qwen2.py and
modeling_rope_utils.py) with numpy only. It shares no code with the engine.

usage: llama_reference.py [--position-gap START LENGTH] MODEL_DIR TOKENS_JSON OUT_JSON
Writes the logits of the last position, [vocab], as a JSON list. With --position-gap the tokens
from index START on sit LENGTH positions further, as if LENGTH absent tokens came before them:
RoPE rotates at those positions and attention sees only the tokens given (the engine's
rope_position_gap).
usage: llama_reference.py --rope MODEL_DIR OUT_JSON
Writes {"inv_freq": [head_dim / 2], "attention_factor": x} of the model's RoPE.

One convention differs from HF on purpose: for rope_scaling "dynamic" HF grows the base with
the length of the current forward call, so cached keys depend on how a prompt was split.
Like vLLM (and bptserve), the base is fixed at max_position_embeddings * factor.
"""
import json
import math
import os
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(info["dtype"])
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(load_safetensors(os.path.join(model_dir, name)))
    return weights


def inv_freq_and_attention_factor(cfg, head_dim):
    # transformers 5 writes rope_parameters (theta and scaling in one dict); 4.x the two top-level keys.
    rp = cfg.get("rope_parameters")
    if rp is not None:
        base = float(rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))
        rs = rp
    else:
        base = float(cfg.get("rope_theta", 10000.0))
        rs = cfg.get("rope_scaling") or {}
    dim = head_dim
    kind = rs.get("rope_type", rs.get("type", "default"))
    max_pos = float(cfg.get("max_position_embeddings", 2048))
    factor = float(rs.get("factor", 1.0))
    if kind == "dynamic":
        seq_len = max_pos * factor
        base = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    attention_factor = 1.0
    if kind == "linear":
        inv_freq = inv_freq / factor
    elif kind == "llama3":
        old = float(rs["original_max_position_embeddings"])
        low, high = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv_freq = np.where(medium, smoothed, scaled)
    elif kind == "yarn":
        original = float(rs.get("original_max_position_embeddings") or max_pos)

        def get_mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        attention_factor = rs.get("attention_factor")
        if attention_factor is None:
            if rs.get("mscale") and rs.get("mscale_all_dim"):
                attention_factor = get_mscale(factor, rs["mscale"]) / get_mscale(factor, rs["mscale_all_dim"])
            else:
                attention_factor = get_mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def correction_dim(rot):
            return (dim * math.log(original / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = correction_dim(beta_fast), correction_dim(beta_slow)
        if rs.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extrapolation_factor = 1 - ramp
        inv_freq = (inv_freq / factor) * (1 - extrapolation_factor) + inv_freq * extrapolation_factor
    return inv_freq, attention_factor


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(model_dir, tokens, gap_start=0, gap_length=0):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = load_weights(model_dir)
    arch = cfg["architectures"][0]
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_heads)
    hidden = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or hidden // n_heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    window = cfg.get("sliding_window") if arch == "MistralForCausalLM" else None
    qkv_bias = arch == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
    o_bias = arch != "Qwen2ForCausalLM" and cfg.get("attention_bias", False)

    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    pos[gap_start:] += gap_length
    inv_freq, attn_factor = inv_freq_and_attention_factor(cfg, head_dim)
    angles = np.outer(pos, inv_freq)
    emb = np.concatenate([angles, angles], axis=-1)
    cos, sin = np.cos(emb) * attn_factor, np.sin(emb) * attn_factor

    mask = np.tril(np.ones((T, T), dtype=bool))
    if window:
        mask &= np.triu(np.ones((T, T), dtype=bool), -window + 1)

    x = w["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if qkv_bias:
            q += w[p + "self_attn.q_proj.bias"]
            k += w[p + "self_attn.k_proj.bias"]
            v += w[p + "self_attn.v_proj.bias"]
        q = q.reshape(T, n_heads, head_dim).transpose(1, 0, 2)
        k = k.reshape(T, n_kv, head_dim).transpose(1, 0, 2)
        v = v.reshape(T, n_kv, head_dim).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        group = n_heads // n_kv
        k = np.repeat(k, group, axis=0)
        v = np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        scores = np.where(mask, scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(T, n_heads * head_dim)
        out = attn @ w[p + "self_attn.o_proj.weight"].T
        if o_bias:
            out += w[p + "self_attn.o_proj.bias"]
        x = x + out
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        act = gate / (1 + np.exp(-gate)) * up
        x = x + act @ w[p + "mlp.down_proj.weight"].T
    last = rms_norm(x[-1], w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return head @ last


def main():
    if sys.argv[1] == "--rope":
        model_dir, out_path = sys.argv[2:4]
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        inv_freq, attention_factor = inv_freq_and_attention_factor(cfg, head_dim)
        with open(out_path, "w") as f:
            json.dump({"inv_freq": [float(v) for v in inv_freq], "attention_factor": float(attention_factor)}, f)
        return
    args = sys.argv[1:]
    gap_start, gap_length = 0, 0
    if args[0] == "--position-gap":
        gap_start, gap_length = int(args[1]), int(args[2])
        args = args[3:]
    model_dir, tokens_path, out_path = args
    with open(tokens_path) as f:
        tokens = json.load(f)
    logits = forward(model_dir, tokens, gap_start, gap_length)
    with open(out_path, "w") as f:
        json.dump([float(v) for v in logits], f)


if __name__ == "__main__":
    main()

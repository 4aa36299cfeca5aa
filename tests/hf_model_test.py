#!/usr/bin/env python3
"""A Hugging Face model directory as people download one, served end to end: tokenizer.json
(byte-level BPE trained with the Llama 3 and Qwen2 split patterns, by tests/tokenizers/), the
real Llama 3.1 and Qwen2.5 chat templates as chat_template.jinja, generation_config.json, and a
transformers-5 config.json (rope_parameters), with random weights. What the server tokenizes,
renders and streams must be what transformers' AutoTokenizer gives for the same directory.

usage: hf_model_test.py BIN_DIR PYTHON_CLIENT_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BIN_DIR, PY_DIR = sys.argv[1], sys.argv[2]
sys.path.insert(0, PY_DIR)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer  # noqa: E402

from bptserve_client import Client  # noqa: E402

import test_support  # noqa: E402

check = test_support.Checks()
TESTS = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(TESTS, "tokenizers", "make_tokenizer_fixtures.py")
TEMPLATES = os.path.join(TESTS, "data", "chat_templates")

TEXTS = [
    "Hello world",
    "  leading spaces, trailing spaces  ",
    "Ünïcödé: 日本語のテキスト, العربية, emoji 👩‍👩‍👧‍👦 and 1234567 digits",
    "code:\n\tdef f(x):\n\t\treturn x ** 2\n",
    "special tokens inside text: <|eot_id|> and <|im_end|> and <|begin_of_text|>",
]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."},
     {"role": "user", "content": "Capital of Japan?"},
     {"role": "assistant", "content": "Tokyo"},
     {"role": "user", "content": "And of Ünïcödé-land, 日本?"}],
]


def model_dir(work, fixture, template, eos_token):
    """The tokenizer fixture with a template, a generation config and random weights."""
    subprocess.run([sys.executable, FIXTURES, os.path.join(work, "fixtures"), "--only", fixture], check=True,
                   stderr=subprocess.DEVNULL)
    tokenizer_dir = os.path.join(work, "fixtures", fixture)
    os.remove(os.path.join(tokenizer_dir, "expected.json"))
    shutil.copy(os.path.join(TEMPLATES, template), os.path.join(tokenizer_dir, "chat_template.jinja"))
    with open(os.path.join(tokenizer_dir, "tokenizer.json"), encoding="utf-8") as f:
        added = {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}
    with open(os.path.join(tokenizer_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [added[eos_token]], "temperature": 0.0}, f)
    # transformers 5's config.json: RoPE in rope_parameters, no top-level rope_theta.
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
        "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        "dtype": "bfloat16", "vocab_size": 1,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    }
    config_path = os.path.join(work, fixture + "-config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    out = os.path.join(work, fixture + "-model")
    subprocess.run([os.path.join(BIN_DIR, "bptserve-make-model"), "--out", out, "--config", config_path,
                    "--tokenizer", tokenizer_dir], check=True)
    return out


def streamed(events):
    ids = [t for e in events if e.kind == "tokens" for t in e.token_ids]
    text = "".join(e.text for e in events if e.kind == "tokens")
    finished = [e for e in events if e.kind == "finished"]
    return ids, text, finished


def serve_and_compare(model, name):
    hf = AutoTokenizer.from_pretrained(model)
    server, port, _ = test_support.start_server(BIN_DIR, "--model", model, "--kv-capacity", "8192")
    try:
        with Client(f"127.0.0.1:{port}") as client:
            info = client.model_info()
            check(not info.token_ids_mode and info.has_chat_template, f"{name}: model info {info}")
            for text in TEXTS:
                expected = hf(text, add_special_tokens=True).input_ids
                got = client.tokenize(text, add_bos=True)
                check(got == expected, f"{name}: tokenize({text!r}): {got} != HF {expected}")
                got = client.tokenize(text, add_bos=False)
                expected = hf(text, add_special_tokens=False).input_ids
                check(got == expected, f"{name}: tokenize without specials ({text!r}): {got} != HF {expected}")
                for skip in (False, True):
                    decoded = client.detokenize(expected, skip_special_tokens=skip)
                    want = hf.decode(expected, skip_special_tokens=skip)
                    check(decoded == want, f"{name}: detokenize skip={skip}: {decoded!r} != HF {want!r}")
            for messages in CONVERSATIONS:
                for continue_final in (False, True):
                    conversation = messages + [{"role": "assistant", "content": "Well,"}] if continue_final else messages
                    kwargs = {"continue_final_message": True} if continue_final else {"add_generation_prompt": True}
                    want_text = hf.apply_chat_template(conversation, tokenize=False, **kwargs)
                    ids, prompt_text = client.tokenize_chat(conversation, continue_final_message=continue_final)
                    if prompt_text != want_text:
                        # The Llama 3.1 template writes today's date: the day may have turned.
                        want_text = hf.apply_chat_template(conversation, tokenize=False, **kwargs)
                    want_ids = hf(want_text, add_special_tokens=False).input_ids
                    check(prompt_text == want_text, f"{name}: rendered chat {prompt_text!r} != HF {want_text!r}")
                    check(ids == want_ids, f"{name}: chat ids {ids} != HF {want_ids}")
                    events = list(client.chat(conversation, continue_final_message=continue_final, max_new_tokens=12,
                                              ignore_eos=True))
                    out_ids, out_text, finished = streamed(events)
                    check(len(finished) == 1 and finished[0].usage.prompt_tokens == len(want_ids),
                          f"{name}: chat usage {finished}")
                    # Greedy (generation_config.json's temperature 0): the same tokens as the
                    # rendered prompt's ids sent as ids; the streamed text is HF's decode of them.
                    same_ids, _, _ = streamed(list(client.generate(token_ids=want_ids, max_new_tokens=12,
                                                                   ignore_eos=True)))
                    check(out_ids == same_ids, f"{name}: chat tokens {out_ids} != tokens of its ids {same_ids}")
                    want = hf.decode(out_ids, skip_special_tokens=True)
                    check(out_text == want, f"{name}: streamed text {out_text!r} != HF decode {want!r}")
                    _, raw_text, _ = streamed(list(client.chat(conversation, continue_final_message=continue_final,
                                                               max_new_tokens=12, ignore_eos=True,
                                                               skip_special_tokens=False)))
                    want = hf.decode(out_ids, skip_special_tokens=False)
                    check(raw_text == want, f"{name}: streamed text with specials {raw_text!r} != HF {want!r}")
    finally:
        server.terminate()
        server.wait()


with tempfile.TemporaryDirectory() as work:
    serve_and_compare(model_dir(work, "llama3-bpe", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|eot_id|>"), "llama3")
    serve_and_compare(model_dir(work, "qwen2-bpe", "Qwen-Qwen2.5-7B-Instruct.jinja", "<|im_end|>"), "qwen2")
sys.exit(check.finish())

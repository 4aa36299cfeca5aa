"""HF's ids and texts for whole tokenizer.json tokenizers, computed at test time.

Reads a JSON request from argv[1]:
  {"tokenizers": [case, ...], "texts": [...], "id_lists": [[...], ...]}
where a case is {"json": <tokenizer.json text>} or {"train": <tokenizer.json text with an empty
model>, "corpus": [...], "vocab_size": n, "special_tokens": [...], "byte_level_alphabet": bool},
or {"sentencepiece_dir": <a directory with only tokenizer.model>} (transformers converts it),
optionally with "config": <tokenizer_config.json object> (then AutoTokenizer.from_pretrained on a
directory holding both files is the reference, as transformers serves it). Writes to argv[2], per
case: {"json": the tokenizer.json text used, "ids": [per text, add_special_tokens=False],
"prompt_ids": [per text, add_special_tokens=True], "decoded": [decode(ids)],
"decoded_skip": [decode(prompt_ids, skip_special_tokens=True)], "decoded_lists": [decode(ids) per id list]}.
"""
import json
import os
import sys
import tempfile

from tokenizers import Tokenizer, pre_tokenizers, trainers


def build(case):
    if "json" in case:
        return case["json"]
    tokenizer = Tokenizer.from_str(case["train"])
    alphabet = pre_tokenizers.ByteLevel.alphabet() if case.get("byte_level_alphabet") else []
    trainer = trainers.BpeTrainer(vocab_size=case["vocab_size"], special_tokens=case.get("special_tokens", []),
                                  initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(case["corpus"], trainer=trainer)
    return tokenizer.to_str()


def run(case, texts, id_lists):
    if "sentencepiece_dir" in case:
        from transformers import AutoTokenizer

        t = AutoTokenizer.from_pretrained(case["sentencepiece_dir"])
        text = t.backend_tokenizer.to_str()
        encode = lambda s, special: t(s, add_special_tokens=special)["input_ids"]
        decode = lambda ids, skip: t.decode(ids, skip_special_tokens=skip)
    elif "config" in case:
        text = build(case)
        from transformers import AutoTokenizer

        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
                f.write(text)
            with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(case["config"], f)
            t = AutoTokenizer.from_pretrained(d)
        encode = lambda s, special: t(s, add_special_tokens=special)["input_ids"]
        decode = lambda ids, skip: t.decode(ids, skip_special_tokens=skip)
    else:
        text = build(case)
        t = Tokenizer.from_str(text)
        encode = lambda s, special: t.encode(s, add_special_tokens=special).ids
        decode = lambda ids, skip: t.decode(ids, skip_special_tokens=skip)
    ids = [encode(s, False) for s in texts]
    prompt_ids = [encode(s, True) for s in texts]
    return {"json": text, "ids": ids, "prompt_ids": prompt_ids,
            "decoded": [decode(i, False) for i in ids],
            "decoded_skip": [decode(i, True) for i in prompt_ids],
            "decoded_lists": [decode(i, False) for i in id_lists]}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    results = [run(case, request["texts"], request.get("id_lists", [])) for case in request["tokenizers"]]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()

"""HF tokenizers' own output for tokenizer.json normalizers and pre-tokenizers.

Reads a JSON list of cases from the file argv[1], each {"kind": "normalizer" | "pre_tokenizer",
"spec": <the component's tokenizer.json object>, "texts": [...], "at_text_start": bool}, and writes
to argv[2] one result per case: {"error": message} when HF refuses the spec, else
{"outputs": [...]} with, per text, the normalized string or the list of piece strings.

at_text_start false runs the pre-tokenizer on a split that does not begin the input: the text is
given one character behind a leading 'X' that is cut off before the pre-tokenizer runs, as the
segment after an added token is.
"""
import json
import sys

from tokenizers import PreTokenizedString, Tokenizer


def component(kind, spec):
    tokenizer = {
        "version": "1.0",
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
        kind: spec,
    }
    t = Tokenizer.from_str(json.dumps(tokenizer))
    return t.normalizer if kind == "normalizer" else t.pre_tokenizer


def pre_tokenize(pre_tokenizer, text, at_text_start):
    if at_text_start:
        return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(text)]
    if not text:
        return []  # an empty split is dropped before any pre-tokenizer sees it
    pretokenized = PreTokenizedString("X" + text)
    pretokenized.split(lambda _, normalized: [normalized[1:]])
    pre_tokenizer.pre_tokenize(pretokenized)
    return [piece for piece, _, _ in pretokenized.get_splits()]


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        try:
            c = component(case["kind"], case["spec"])
        except Exception as e:  # HF refuses the spec: the C++ side must refuse it too
            results.append({"error": str(e)})
            continue
        if case["kind"] == "normalizer":
            outputs = [c.normalize_str(text) for text in case["texts"]]
        else:
            outputs = [pre_tokenize(c, text, case["at_text_start"]) for text in case["texts"]]
        results.append({"outputs": outputs})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds Hugging Face tokenizer directories and what transformers does with them, for
tests/hf_tokenizer_agreement_test.cpp.

    make_tokenizer_fixtures.py OUT_DIR [--llama2-model PATH] [--only NAME]

OUT_DIR/<fixture>/ holds tokenizer.json and tokenizer_config.json as transformers'
save_pretrained writes them, and expected.json: for every corpus entry (corpus.py) the ids of
AutoTokenizer.from_pretrained(dir)(text, add_special_tokens=True/False), and decode() of those ids
and of generated id sequences with skip_special_tokens False/True. OUT_DIR/index.json lists the
fixtures and the ones skipped, with the reason. --only builds one fixture (the test runs one per
process) and still lists every name.

The byte-level BPE fixtures are trained here with `tokenizers` on training.txt and the demo corpus,
so nothing is downloaded; the real ones are a Llama 2 tokenizer.model converted as transformers
converts it, and tokenizer.json files that PyPI packages ship (README.md in this folder).
"""
import argparse
import importlib.util
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, LlamaTokenizer, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import SentencePieceExtractor, bytes_to_unicode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from corpus import corpus  # noqa: E402

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

VOCAB_SIZE = 4000


def training_texts():
    paths = [os.path.join(HERE, "training.txt"), os.path.join(HERE, "..", "..", "engine", "tools", "demo_corpus.txt")]
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts.extend(f.read().splitlines(keepends=True))
    return texts


def train(tokenizer, trainer, max_code_point=0x10FFFF):
    """Characters above max_code_point are left out of the training text, so that they reach the
    model as unknown (byte_fallback, <unk>). BpeTrainer's own limit_alphabet would do it too, but
    it breaks ties between equally rare characters differently from run to run."""
    texts = ["".join(c for c in text if ord(c) <= max_code_point) for text in training_texts()]
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def byte_level_bpe(split_pattern, normalizer=None, ignore_merges=False):
    """A byte-level BPE whose pre-tokenizer is Split(pattern) + ByteLevel without its own regex,
    the layout of Llama 3's and Qwen2's tokenizer.json."""
    tokenizer = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return train(tokenizer, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))


def gpt2():
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    train(tokenizer, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                                  AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    tokenizer.add_tokens([AddedToken("[WORD]", single_word=True, normalized=False),
                          AddedToken("<NL>", rstrip=True, normalized=False),
                          AddedToken("hello world", normalized=True)])
    return tokenizer, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}


def gpt2_prefix_space():
    """GPT-2's split with ByteLevel's add_prefix_space, individual digits, and Lowercase + Strip:
    the normalizers and pre-tokenizer options that the real fixtures leave out."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([normalizers.Strip(left=True, right=False), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    train(tokenizer, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tokenizer.add_tokens([AddedToken("Hello World", normalized=True, single_word=True)])
    return tokenizer, {"eos_token": "<|endoftext|>"}


def llama3():
    tokenizer = byte_level_bpe(LLAMA3_PATTERN, ignore_merges=True)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
        "<|reserved_special_token_0|>")])
    tokenizer.add_special_tokens([AddedToken("<|im_end|>", special=True, lstrip=True, rstrip=True, normalized=False)])
    tokenizer.add_tokens([AddedToken("<|im_start|>", special=False, normalized=False)])
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tokenizer, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}


def qwen2():
    tokenizer = byte_level_bpe(QWEN2_PATTERN, normalizer=normalizers.NFC())
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    tokenizer.add_tokens([AddedToken("<tool_call>", special=False, normalized=False),
                          AddedToken("</tool_call>", special=False, normalized=False),
                          # normalized: also matches the NFD spelling, which NFC composes first.
                          AddedToken("caf\u00e9", special=False, normalized=True)])
    return tokenizer, {"eos_token": "<|im_end|>"}


def byte_tokens():
    return [f"<0x{b:02X}>" for b in range(256)]


def metaspace():
    """SentencePiece-style BPE: Metaspace pre-tokenizer and decoder, byte_fallback for the
    characters the small alphabet leaves out, NFKC as SentencePiece's nmt_nfkc does."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
                                           decoders.ByteFallback(), decoders.Fuse()])
    # Latin, Greek, Cyrillic, Hebrew and Arabic are learnt; CJK, Indic, Thai and emoji fall back to bytes.
    train(tokenizer, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                         special_tokens=["<unk>", "<s>", "</s>"]), max_code_point=0x7FF)
    # The byte pieces are ordinary vocabulary entries, as in SentencePiece models, not added tokens.
    state = json.loads(tokenizer.to_str())
    vocab = state["model"]["vocab"]
    ordered = sorted(vocab, key=vocab.get)
    ordered = ordered[:3] + byte_tokens() + [t for t in ordered[3:] if t not in set(byte_tokens())]
    state["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    for added in state["added_tokens"]:
        added["id"] = state["model"]["vocab"][added["content"]]
    tokenizer = Tokenizer.from_str(json.dumps(state))
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                             special_tokens=[("<s>", bos)])
    return tokenizer, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def subword_affixes():
    """Non-byte-level BPE with continuing_subword_prefix and end_of_word_suffix over a Whitespace +
    Punctuation split, unknown characters fused into one <unk>."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, continuing_subword_prefix="##",
                                     end_of_word_suffix="</w>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                       pre_tokenizers.Punctuation(behavior="isolated")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("##", ""), decoders.Replace("</w>", " ")])
    # With these affixes BpeTrainer breaks some ties in hash order: the merges vary between runs.
    train(tokenizer, trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                         special_tokens=["<unk>"], continuing_subword_prefix="##",
                                         end_of_word_suffix="</w>"), max_code_point=0x7FF)
    return tokenizer, {"unk_token": "<unk>"}


def save_trained(out_dir, tokenizer, special_tokens):
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special_tokens).save_pretrained(out_dir)


def llama2_legacy_tokenizer(model_path):
    """The tokenizer.json that transformers 4.x's LlamaConverter + LlamaTokenizerFast wrote for
    Llama 2 (and that its Hub directories ship): Prepend + Replace normalizer, no pre-tokenizer,
    BOS by TemplateProcessing. transformers 5's LlamaConverter cannot run outside LlamaTokenizer,
    so the same parts are put together here from its SentencePieceExtractor."""
    extracted = SentencePieceExtractor(model_path).extract(models.BPE)
    tokenizer = Tokenizer(models.BPE(extracted["vocab"], extracted["merges"], unk_token="<unk>", fuse_unk=True,
                                     byte_fallback=True))
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(content=" ", left=1, right=0)])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                             special_tokens=[("<s>", 1)])
    return tokenizer


def update_tokenizer_config(out_dir, updates):
    with open(os.path.join(out_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config.update(updates)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def metaspace_llama_class(out_dir):
    """The SentencePiece-style fixture under tokenizer_class LlamaTokenizer with legacy true: the
    pipeline transformers 5 rebuilds for that class (prepend_scheme "always"), not the file's."""
    save_trained(out_dir, *metaspace())
    update_tokenizer_config(out_dir, {"tokenizer_class": "LlamaTokenizer", "legacy": True})


def llama2_fixtures(model_path):
    """name -> function writing the directory; the Llama 2 ones need the SentencePiece model."""
    def transformers5(out_dir):
        # What transformers 5 itself makes of a tokenizer.model-only directory.
        source = out_dir + ".source"
        os.makedirs(source, exist_ok=True)
        os.symlink(os.path.abspath(model_path), os.path.join(source, "tokenizer.model"))
        LlamaTokenizer.from_pretrained(source).save_pretrained(out_dir)

    def legacy(out_dir):
        save_trained(out_dir, llama2_legacy_tokenizer(model_path),
                     {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})

    def hub_layout(out_dir):
        # The legacy tokenizer.json beside tokenizer_config.json as Llama 2's Hub directory has it.
        # transformers 5 builds LlamaTokenizer's own pipeline for this class and ignores the
        # file's normalizer: the ids are AutoTokenizer's, which may differ from the file's.
        legacy(out_dir)
        update_tokenizer_config(out_dir, {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True,
                                          "add_eos_token": False, "legacy": False,
                                          "clean_up_tokenization_spaces": False})

    return {"llama2-transformers5": transformers5, "llama2-legacy": legacy, "llama2-hub-layout": hub_layout}


def packaged_tokenizer_json(module, relative_path):
    """A tokenizer.json inside an installed package, found without importing it (its own
    dependencies need not be installed); None when the package or file is absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], relative_path)
    return path if os.path.isfile(path) else None


# (fixture name, module, file inside it, pip requirement): see README.md.
PACKAGED = [("anthropic-claude", "anthropic", "tokenizer.json", "anthropic==0.38.0")]


def split_multibyte_sequences(hf, byte_level, rng):
    """Id sequences that cut UTF-8 characters between tokens, from the byte tokens of a byte-level
    vocabulary (bytes_to_unicode) or of byte_fallback (<0xNN>): decode must give what HF gives
    (U+FFFD for the incomplete character)."""
    vocab = hf.get_vocab()
    byte_chars = bytes_to_unicode()

    def byte_id(b):
        return vocab.get(byte_chars[b] if byte_level else f"<0x{b:02X}>")

    word = hf("hello", add_special_tokens=False).input_ids
    sequences = []
    for name, text, cut in (("euro_first_two_bytes", "\u20ac", 2), ("euro_last_byte", "\u20ac", -1),
                            ("emoji_three_of_four", "\U0001f600", 3), ("cjk_middle_byte", "\u4e2d", -2)):
        data = text.encode("utf-8")
        part = data[:cut] if cut > 0 else data[cut:]
        ids = [byte_id(b) for b in part]
        if None in ids:
            continue
        sequences.append((name, ids + word))
        sequences.append((name + "_alone", ids))
    whole = hf("\U0001f600\u20ac", add_special_tokens=False).input_ids
    sequences.append(("whole_chars", whole))
    special = sorted(hf.all_special_ids)
    mixed = [rng.randrange(len(hf)) for _ in range(48)]
    for i in range(0, len(mixed), 7):
        if special:
            mixed[i] = rng.choice(special)
    sequences.append(("random_with_specials", mixed))
    sequences.append(("random", [rng.randrange(len(hf)) for _ in range(64)]))
    return sequences


def write_expected(out_dir, name, sentencepiece_model=None):
    hf = AutoTokenizer.from_pretrained(out_dir)
    raw = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    rng = random.Random(name)
    byte_level = _is_byte_level(raw)
    entries, decodes, raw_disagrees = [], [], []
    for entry_name, text in corpus():
        with_special = hf(text, add_special_tokens=True).input_ids
        without = hf(text, add_special_tokens=False).input_ids
        entries.append({"name": entry_name, "text": text, "ids_with_special": with_special, "ids": without})
        if raw.encode(text, add_special_tokens=True).ids != with_special:
            raw_disagrees.append(entry_name)
        for skip in (False, True):
            decodes.append({"name": entry_name, "ids": with_special, "skip_special_tokens": skip,
                            "text": hf.decode(with_special, skip_special_tokens=skip)})
    for seq_name, ids in split_multibyte_sequences(hf, byte_level, rng):
        for skip in (False, True):
            decodes.append({"name": seq_name, "ids": ids, "skip_special_tokens": skip,
                            "text": hf.decode(ids, skip_special_tokens=skip)})
    expected = {"fixture": name, "tokenizer_class": type(hf).__name__, "vocab_size": len(hf),
                "byte_level": byte_level, "entries": entries, "decodes": decodes,
                "raw_tokenizers_disagree": raw_disagrees}
    if sentencepiece_model is not None:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_model)
        expected["sentencepiece_differs"] = [e["name"] for e in entries if sp.encode(e["text"]) != e["ids"]]
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
    return expected


def _is_byte_level(tokenizer):
    """Whether the decoder is ByteLevel: the streaming check (pieces join to the whole decode)
    is exact only there."""
    return json.loads(tokenizer.to_str())["decoder"]["type"] == "ByteLevel"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--llama2-model", default=os.path.join(HERE, "..", "..", "..", "shared", "models",
                                                                "llama2-tokenizer", "tokenizer.model"))
    parser.add_argument("--only", help="build this fixture alone")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    fixtures, skipped = {}, {}
    for name, build in (("gpt2-bpe", gpt2), ("gpt2-prefix-space-bpe", gpt2_prefix_space), ("llama3-bpe", llama3),
                        ("qwen2-bpe", qwen2), ("metaspace-bpe", metaspace), ("subword-affix-bpe", subword_affixes)):
        fixtures[name] = lambda out_dir, build=build: save_trained(out_dir, *build())
    fixtures["metaspace-llama-class"] = metaspace_llama_class
    if os.path.isfile(args.llama2_model):
        fixtures.update(llama2_fixtures(args.llama2_model))
    else:
        for name in llama2_fixtures(args.llama2_model):
            skipped[name] = f"{os.path.abspath(args.llama2_model)} is absent"
    for name, module, relative, requirement in PACKAGED:
        path = packaged_tokenizer_json(module, relative)
        if path is None:
            skipped[name] = f"{module}/{relative} not installed (pip install --no-deps '{requirement}')"
        else:
            fixtures[name] = lambda out_dir, path=path: PreTrainedTokenizerFast(tokenizer_file=path).save_pretrained(
                out_dir)

    for name, write in fixtures.items():
        if args.only is not None and name != args.only:
            continue
        out_dir = os.path.join(args.out_dir, name)
        write(out_dir)
        spm = args.llama2_model if name.startswith("llama2") else None
        expected = write_expected(out_dir, name, spm)
        notes = []
        if expected["raw_tokenizers_disagree"]:
            notes.append(f"tokenizers' own Tokenizer.from_file differs from AutoTokenizer on "
                         f"{len(expected['raw_tokenizers_disagree'])} entries")
        if "sentencepiece_differs" in expected:
            notes.append(f"SentencePiece differs on {len(expected['sentencepiece_differs'])} entries")
        print(f"{name}: {expected['tokenizer_class']}, vocab {expected['vocab_size']}, "
              f"{len(expected['entries'])} texts, {len(expected['decodes'])} decodes"
              + "".join("; " + n for n in notes), file=sys.stderr)
    with open(os.path.join(args.out_dir, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"fixtures": list(fixtures), "skipped": skipped}, f, indent=2)


if __name__ == "__main__":
    main()

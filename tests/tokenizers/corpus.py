"""The texts every tokenizer fixture is checked on: (name, text) pairs. Each one targets a place
where a reimplementation of Hugging Face `tokenizers` tends to differ: regex classes outside ASCII,
normalization, whitespace runs, digit grouping, added tokens inside text, and very long words
(quadratic merge loops)."""
import random
import unicodedata

CAFE_NFC = "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m"


def corpus():
    rng = random.Random(12)
    entries = [
        ("empty", ""),
        ("one_space", " "),
        ("english", "Hello world, long documents."),
        ("leading_trailing_spaces", "   padded on both sides   "),
        ("leading_newline", "\nstarts with a newline"),
        ("punctuation", "Wait... what?! (yes) [no] {maybe}; x=1, y=2: done. \"quoted\" 'single' it's we're I'll"),
        ("contractions_upper", "IT'S WE'RE THEY'LL I'D YOU'VE SHE'S DON'T"),
        ("chinese", "长上下文模型可以一次阅读整本书。我们测试分词器是否与参考实现完全一致。"),
        ("japanese", "東京は日本の首都です。カタカナとひらがなが混ざった文章、そして漢字。"),
        ("korean", "한국어 문장은 띄어쓰기를 사용합니다. 안녕하세요!"),
        ("arabic", "مرحبا بالعالم. هذا نص عربي مع أرقام ١٢٣٤٥ وعلامات ترقيم؟"),
        ("hindi", "नमस्ते दुनिया। यह हिन्दी का एक वाक्य है, जिसमें मात्राएँ हैं।"),
        ("thai", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ"),
        ("cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю."),
        ("greek_final_sigma", "ΟΔΥΣΣΕΥΣ Ὀδυσσεύς ὁ πολύτροπος, λόγος λόγοι σοφός"),
        ("hebrew", "שלום עולם, זה טקסט בעברית."),
        ("emoji_zwj", "family 👨‍👩‍👧‍👦 and 👩🏽‍💻 coder, flags 🇫🇷🇯🇵, 🏳️‍🌈 rainbow"),
        ("emoji_skin_tones", "👍👍🏻👍🏼👍🏽👍🏾👍🏿 ✋🏿 🫶🏽"),
        ("emoji_only", "🤖🤖🤖😀😃😄"),
        ("nfc", CAFE_NFC),
        ("nfd", unicodedata.normalize("NFD", CAFE_NFC)),
        ("combining_stack", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319a\u0316\u0324l\u0354g\u0317o\u0489"),
        ("compatibility_forms", "ﬁnance ①②③ Ｆｕｌｌｗｉｄｔｈ ㎞ ½ ™ ｶﾀｶﾅ"),
        ("python_code", "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\nprint([fib(i) for i in range(10)])\n"),
        ("cpp_code_tabs", "#include <vector>\n\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (int x : v) {\n\t\tif (x % 2 == 0) continue;\n\t\t\treturn x;\n\t}\n}\n"),
        ("json_text", '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b\\n"}}'),
        ("spaces_runs", "a  b   c    d     e" + " " * 17 + "f"),
        ("tabs_runs", "x\t\ty\t\t\t\tz\t"),
        ("newline_runs", "para one\n\n\npara two\n\n\n\n\n"),
        ("crlf", "line one\r\nline two\r\n\r\n"),
        ("mixed_whitespace", " \t \n \u00a0\u3000 \u2003 end \n\t "),
        ("spaces_1000", " " * 1000),
        ("spaces_1000_then_word", " " * 1000 + "word"),
        ("newlines_300", "\n" * 300),
        ("digits", "1234567 12345678901234567890 3.14159 0x1F 1,000,000 2024-06-01 ١٢٣ ४५६"),
        ("number_word_mix", "abc123def 4th 21st v2.0.1 x86_64 GPT4o"),
        ("special_tokens_chat", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        ("special_tokens_llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"),
        ("special_partial", "<|im_sta and <|eot_i| and <|begin_of_text without a close"),
        ("special_spaced", "before <|endoftext|> after <mask> mid  <|im_end|>  end"),
        ("added_words", "[WORD] in [WORD]s and x[WORD]y then hello world, Hello World"),
        ("added_normalized", CAFE_NFC[:4] + " then " + unicodedata.normalize("NFD", CAFE_NFC[:4])),
        ("llama2_specials", "<s>x</s> <unk> <s> after"),
        ("byte_fallback_rare", "rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ 𓀀 \U0010fffd"),
        ("valid_odd_utf8", "\u0000nul \u0001 \u007f del \u0080 \u00ad soft \u200b zwsp \ufeff bom \ufffd repl \U0001f600 \u2028 ls"),
        ("noncharacters", "\ufdd0\ufffe\U0001fffe surrogate-free but unusual"),
        ("rtl_marks", "\u202eevil\u202c \u200fmark\u200e"),
        ("long_word_a", "a" * 100000),
        ("long_word_random", "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(100000))),
        ("long_word_cjk", "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(20000))),
    ]
    multilingual = " ".join(text for name, text in entries if name in (
        "english", "chinese", "arabic", "hindi", "thai", "cyrillic", "greek_final_sigma", "emoji_zwj"))
    entries.append(("multilingual_paragraph", (multilingual + "\n") * 8))
    return entries

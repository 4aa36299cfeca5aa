"""Renders chat templates with transformers' own machinery, as apply_chat_template(tokenize=False) does.

Usage: render_chat_template.py CASES.json OUT.json

CASES.json is a list of {"template": source, "bos_token", "eos_token", "messages", "add_generation_prompt",
"continue_final_message", "tools", "documents", "now": unix seconds}; OUT.json gets, for each case,
{"text": rendered} or {"error": message}. strftime_now sees datetime.fromtimestamp(now) (local time, as
transformers' datetime.now() is).
"""
import datetime as real_datetime
import json
import sys

from transformers.utils import chat_template_utils


class FixedDatetime(real_datetime.datetime):
    now_seconds = 0

    @classmethod
    def now(cls, tz=None):
        return real_datetime.datetime.fromtimestamp(cls.now_seconds, tz)


def render(case):
    FixedDatetime.now_seconds = case.get("now", 0)
    chat_template_utils.datetime = FixedDatetime
    add_generation_prompt = case.get("add_generation_prompt", False)
    continue_final_message = case.get("continue_final_message", False)
    messages = case["messages"]
    # The checks apply_chat_template makes before rendering.
    if not messages:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    if continue_final_message and add_generation_prompt:
        raise ValueError("continue_final_message and add_generation_prompt are not compatible.")
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[messages],
        tools=case.get("tools"),
        documents=case.get("documents"),
        chat_template=case["template"],
        continue_final_message=continue_final_message,
        add_generation_prompt=add_generation_prompt,
        bos_token=case["bos_token"],
        eos_token=case["eos_token"],
    )
    return rendered[0]


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        try:
            results.append({"text": render(case)})
        except Exception as e:  # every failure is a result to compare, not a crash of the reference
            results.append({"error": str(e)})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()

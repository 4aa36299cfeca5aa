#!/usr/bin/env python3
"""A conversation with a model through its chat template, replies streamed; a document can go
with the first question.

    python3 chat.py --server localhost:50051 --document book.txt "Who is the narrator?" "And the villain?"
"""
import argparse
import os
import sys

from bptserve_client import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--system", default="")
    parser.add_argument("--document")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    messages = [{"role": "system", "content": args.system}] if args.system else []
    prefix = ""
    if args.document:
        with open(args.document, encoding="utf-8") as f:
            name = os.path.basename(args.document)
            prefix = f"[file: {name}]\n{f.read()}\n[end of file: {name}]\n\n"
    with Client(args.server) as client:
        for question in args.questions:
            print(f"> {question}")
            messages.append({"role": "user", "content": prefix + question})
            prefix = ""
            reply = ""
            for event in client.chat(messages, max_new_tokens=args.max_new_tokens):
                if event.kind == "tokens":
                    reply += event.text
                    print(event.text, end="", flush=True)
            print()
            messages.append({"role": "assistant", "content": reply})
    return 0


if __name__ == "__main__":
    sys.exit(main())

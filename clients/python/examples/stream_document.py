#!/usr/bin/env python3
"""Streams a long document to bptserve and prints the answer as it arrives.

    python3 stream_document.py --server localhost:50051 book.txt --question "Who is the narrator?"
"""
import argparse
import sys

from bptserve_client import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("document")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--question", default="Summarize the document.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    with open(args.document, encoding="utf-8") as f:
        prompt = f.read() + "\n\n" + args.question + "\n"
    with Client(args.server) as client:
        for event in client.generate(text=prompt, max_new_tokens=args.max_new_tokens, prefill_progress=True):
            if event.kind == "progress":
                print(f"\rprefill {event.processed_tokens}/{event.total_tokens}", end="", file=sys.stderr)
                if event.processed_tokens == event.total_tokens:
                    print(file=sys.stderr)
            elif event.kind == "tokens":
                print(event.text, end="", flush=True)
            else:
                print(f"\n[{event.finish_reason}: {event.usage.prompt_tokens} prompt tokens, "
                      f"{event.usage.completion_tokens} generated, TTFT {event.timings.time_to_first_token_s:.3f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

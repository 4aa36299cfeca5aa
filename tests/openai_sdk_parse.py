"""Reads the response bytes openai_protocol_test wrote into a directory as the official openai SDK
reads them (its own SSE decoder, then its pydantic types, validated strictly) and fails on the
first that does not parse. Exit 77 (a skip) when the openai package is not installed.

    openai_sdk_parse.py DIR
      DIR/completion.json, chat_completion.json        whole bodies
      DIR/completion_stream.sse, chat_stream.sse       Server-Sent Events, up to data: [DONE]
      DIR/error_stream.sse                             a stream that fails
      DIR/models.json, error.json
"""

import json
import pathlib
import sys

try:
    import openai
    from openai._streaming import SSEDecoder
    from openai.types import Completion, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
except ImportError as e:
    print(f"skipped: the openai package is not importable ({e})")
    sys.exit(77)


def events(path):
    """Each event's JSON until [DONE], as openai._streaming.Stream reads them."""
    decoder = SSEDecoder()
    out = []
    done = False
    for sse in decoder.iter_bytes(iter([path.read_bytes()])):
        if sse.data.startswith("[DONE]"):
            done = True
            break
        data = sse.json()
        out.append(data)
    assert done, f"{path.name}: no data: [DONE]"
    return out


def check_stream(path, model, completion_chunks):
    chunks = events(path)
    assert chunks, f"{path.name}: no chunks"
    for chunk in chunks:
        assert "error" not in chunk, f"{path.name}: {chunk}"
        if completion_chunks:
            # The SDK reads completion chunks into Completion, whose finish_reason is not Optional;
            # OpenAI's own chunks carry null there until the last, and the SDK constructs them
            # without validation. Validate everything else strictly.
            probe = json.loads(json.dumps(chunk))
            for choice in probe["choices"]:
                if choice.get("finish_reason") is None:
                    choice["finish_reason"] = "stop"
            model.model_validate(probe, strict=False)
        else:
            model.model_validate(chunk)
    return chunks


def main():
    root = pathlib.Path(sys.argv[1])
    Completion.model_validate(json.loads((root / "completion.json").read_text("utf-8")))
    ChatCompletion.model_validate(json.loads((root / "chat_completion.json").read_text("utf-8")))
    chat = check_stream(root / "chat_stream.sse", ChatCompletionChunk, completion_chunks=False)
    assert chat[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chat[-1]["choices"] == [] and chat[-1]["usage"]["total_tokens"] > 0
    check_stream(root / "completion_stream.sse", Completion, completion_chunks=True)

    models = json.loads((root / "models.json").read_text("utf-8"))
    assert models["object"] == "list"
    for card in models["data"]:
        Model.model_validate(card)

    error = json.loads((root / "error.json").read_text("utf-8"))["error"]
    for key in ("message", "type"):
        assert isinstance(error[key], str), error
    for key in ("param", "code"):
        assert error[key] is None or isinstance(error[key], str), error

    # The SDK raises on an event whose data holds "error"; it must find one here.
    failed = [e for e in events(root / "error_stream.sse") if isinstance(e, dict) and e.get("error")]
    assert failed and isinstance(failed[0]["error"]["message"], str), failed
    print(f"openai {openai.__version__}: every response parses")


if __name__ == "__main__":
    main()

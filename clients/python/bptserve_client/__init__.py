"""Python client for bptserve, over stubs generated from proto/bptserve/v1/bptserve.proto.

    from bptserve_client import Client
    with Client("localhost:50051") as client:
        for event in client.generate(text=open("book.txt").read(), max_new_tokens=64):
            if event.kind == "tokens":
                print(event.text, end="", flush=True)
        for event in client.chat([{"role": "user", "content": "Hello"}], max_new_tokens=64):
            ...
        # A document kept in the server's KV tiers; later questions about it start at once.
        done = [e for e in client.prefill(text=open("book.txt").read()) if e.kind == "finished"][0]
        print(done.cached_tokens, "tokens cached")
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence, Tuple

import grpc

from bptserve_client.bptserve.v1 import bptserve_pb2 as pb
from bptserve_client.bptserve.v1 import bptserve_pb2_grpc as pb_grpc

__all__ = ["Client", "Event", "pb"]

_FINISH = {
    pb.FINISH_REASON_EOS: "eos",
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_CANCELLED: "cancelled",
}


def _chat_prompt(messages: Sequence[dict], continue_final_message: bool) -> pb.ChatPrompt:
    return pb.ChatPrompt(messages=[pb.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
                         continue_final_message=continue_final_message)


@dataclasses.dataclass
class Event:
    """One streamed event: kind is "progress", "tokens" or "finished".

    A Prefill's "finished" carries cached_tokens (what the tiers now hold) and prefill (the whole
    PrefillFinished: prompt_tokens, cached_from, timings); a Generate's carries usage."""

    kind: str
    processed_tokens: int = 0
    total_tokens: int = 0
    token_ids: Sequence[int] = ()
    text: str = ""
    finish_reason: str = ""
    usage: Optional[pb.Usage] = None
    timings: Optional[pb.Timings] = None
    cached_tokens: int = 0
    prefill: Optional[pb.PrefillFinished] = None


def _events(responses, finished) -> Iterator[Event]:
    """The events of a Generate or Prefill stream (the same oneof `event`); finished(message)
    makes the last one."""
    for response in responses:
        which = response.WhichOneof("event")
        if which == "prefill_progress":
            p = response.prefill_progress
            yield Event("progress", processed_tokens=p.processed_tokens, total_tokens=p.total_tokens)
        elif which == "tokens":
            yield Event("tokens", token_ids=list(response.tokens.token_ids), text=response.tokens.text)
        elif which == "finished":
            yield finished(response.finished)


class Client:
    def __init__(self, target: str, *, tls_ca: Optional[bytes] = None, api_key: Optional[str] = None):
        options = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
            # A long prefill sends nothing for minutes; keepalive pings keep the connection known alive.
            ("grpc.keepalive_time_ms", 30000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        if tls_ca is not None:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(tls_ca), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def generate(
        self,
        text: Optional[str] = None,
        token_ids: Optional[Sequence[int]] = None,
        **options,
    ) -> Iterator[Event]:
        """Streams events; raises grpc.RpcError with the server's code and message on error.

        options: max_new_tokens, temperature, top_k, top_p, min_p, seed, stop, stop_token_ids,
        ignore_eos, prefill_progress, top_logprobs, skip_special_tokens, timeout."""
        request = pb.GenerateRequest()
        if token_ids is not None:
            request.token_ids.ids.extend(token_ids)
        else:
            request.text = text or ""
        return self._stream(request, **options)

    def chat(self, messages: Sequence[dict], continue_final_message: bool = False, **options) -> Iterator[Event]:
        """Streams the reply to a conversation rendered by the model's chat template, as generate
        streams (the same options). messages: [{"role": "user", "content": "..."}, ...];
        continue_final_message: the last (assistant) message is continued instead of answered.
        A model without a template raises FAILED_PRECONDITION."""
        request = pb.GenerateRequest(chat=_chat_prompt(messages, continue_final_message))
        return self._stream(request, **options)

    def _stream(
        self,
        request: pb.GenerateRequest,
        *,
        max_new_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Sequence[str] = (),
        stop_token_ids: Sequence[int] = (),
        ignore_eos: bool = False,
        prefill_progress: bool = False,
        top_logprobs: int = 0,
        skip_special_tokens: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> Iterator[Event]:
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                            ("min_p", min_p), ("seed", seed)):
            if value is not None:
                setattr(request.sampling, name, value)
        if max_new_tokens is not None:
            request.stopping.max_new_tokens = max_new_tokens
        request.stopping.stop.extend(stop)
        request.stopping.stop_token_ids.extend(stop_token_ids)
        request.stopping.ignore_eos = ignore_eos
        request.options.prefill_progress = prefill_progress
        request.options.top_logprobs = top_logprobs
        if skip_special_tokens is not None:
            request.options.skip_special_tokens = skip_special_tokens
        yield from _events(self._stub.Generate(request, timeout=timeout, metadata=self._metadata),
                           lambda f: Event("finished", finish_reason=_FINISH.get(f.reason, "unspecified"),
                                           usage=f.usage, timings=f.timings))

    def prefill(
        self,
        text: Optional[str] = None,
        token_ids: Optional[Sequence[int]] = None,
        messages: Optional[Sequence[dict]] = None,
        *,
        continue_final_message: bool = False,
        retain_s: int = 0,
        priority: int = 0,
        timeout: Optional[float] = None,
    ) -> Iterator[Event]:
        """Prefills a document into the server's KV tiers (the Prefill RPC) without generating:
        "progress" events, then one "finished" with cached_tokens. The prompt is given as to
        generate (text or token_ids) or chat (messages). retain_s pins its chunks on the server's
        disk tier that long. Raises grpc.RpcError with the server's code and message on error."""
        request = pb.PrefillRequest(retain_s=retain_s, priority=priority)
        if messages is not None:
            request.chat.CopyFrom(_chat_prompt(messages, continue_final_message))
        elif token_ids is not None:
            request.token_ids.ids.extend(token_ids)
        else:
            request.text = text or ""
        yield from _events(self._stub.Prefill(request, timeout=timeout, metadata=self._metadata),
                           lambda f: Event("finished", cached_tokens=f.cached_tokens, prefill=f, timings=f.timings))

    def tokenize(self, text: str, add_bos: bool = False) -> list:
        return list(self._stub.Tokenize(pb.TokenizeRequest(text=text, add_bos=add_bos), metadata=self._metadata).token_ids)

    def tokenize_chat(self, messages: Sequence[dict], continue_final_message: bool = False) -> Tuple[list, str]:
        """(token ids, prompt text) of a conversation, rendered and tokenized as chat() does."""
        request = pb.TokenizeRequest(chat=_chat_prompt(messages, continue_final_message))
        response = self._stub.Tokenize(request, metadata=self._metadata)
        return list(response.token_ids), response.prompt_text

    def detokenize(self, token_ids: Sequence[int], skip_special_tokens: Optional[bool] = None) -> str:
        """skip_special_tokens: None takes the server's default (true, as for generated text)."""
        request = pb.DetokenizeRequest(token_ids=token_ids)
        if skip_special_tokens is not None:
            request.skip_special_tokens = skip_special_tokens
        return self._stub.Detokenize(request, metadata=self._metadata).text

    def model_info(self) -> pb.ModelInfo:
        """The loaded model: shape and limits, device, weight_dtype and kv_dtype (fp32 or bf16), the
        attention_kernels in use (e.g. cpu-avx512), the KV tiers below the pool (kv_tiers, e.g.
        "host,disk,remote", and kv_tier_chunk_tokens), default sampling."""
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=self._metadata)

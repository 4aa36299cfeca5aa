#include "inference_service.h"

#include "request_conversion.h"

namespace bpt::server {

void Tokenize(EngineWorker& worker, const bptserve::v1::TokenizeRequest& request,
              bptserve::v1::TokenizeResponse* response, std::function<void(const Status&)> done) {
  if (request.has_chat()) {
    bptserve::v1::ChatPrompt copy = request.chat();
    ChatPrompt chat;
    const Status converted = ToChatPrompt(copy, &chat);
    if (!converted.ok()) {
      done(converted);
      return;
    }
    worker.TokenizeChat(std::move(chat), [response, done](StatusOr<TokenizedPrompt> prompt) {
      if (prompt.ok()) {
        response->mutable_token_ids()->Assign(prompt->ids.begin(), prompt->ids.end());
        response->set_prompt_text(std::move(prompt->text));
      }
      done(prompt.ok() ? OkStatus() : prompt.status());
    });
    return;
  }
  worker.TokenizeText(request.text(), request.add_bos(), [&request, response, done](StatusOr<std::vector<int32_t>> ids) {
    if (ids.ok()) {
      response->mutable_token_ids()->Assign(ids->begin(), ids->end());
      response->set_prompt_text(request.text());
    }
    done(ids.ok() ? OkStatus() : ids.status());
  });
}

void Detokenize(EngineWorker& worker, const bptserve::v1::DetokenizeRequest& request,
                bptserve::v1::DetokenizeResponse* response, std::function<void(const Status&)> done) {
  const std::span<const int32_t> ids(request.token_ids().data(), static_cast<size_t>(request.token_ids_size()));
  worker.DetokenizeIds(ids, SkipSpecialTokens(request), [response, done](StatusOr<std::string> text) {
    if (text.ok()) response->set_text(std::move(text).value());
    done(text.ok() ? OkStatus() : text.status());
  });
}

void DescribeModel(const Engine& engine, const ServerOptions& options, bptserve::v1::ModelInfo* info) {
  const ModelInfo& model = engine.model_info();
  info->set_architecture(model.architecture);
  info->set_model_dir(options.engine.model_dir);
  info->set_context_limit_tokens(model.max_model_len);
  info->set_kv_capacity_tokens(engine.kv_capacity_tokens());
  info->set_dtype(model.dtype);
  info->set_device(model.device);
  info->set_vocab_size(model.vocab_size);
  info->set_token_ids_mode(model.token_ids_mode);
  info->set_has_chat_template(model.has_chat_template);
  info->set_weight_dtype(ElementTypeName(model.weight_dtype));
  info->set_kv_dtype(ElementTypeName(model.kv_dtype));
  info->set_attention_kernels(model.attention_kernels);
  info->set_prefill_block_tokens(options.engine.scheduler.prefill_block);
  info->set_kv_tiers(model.kv_tiers);
  info->set_kv_tier_chunk_tokens(model.kv_tiers.empty() ? 0 : engine.options().kv_tiers.chunk_tokens);
  const SamplingParams& d = model.default_sampling;
  auto* sampling = info->mutable_default_sampling();
  sampling->set_temperature(d.temperature);
  sampling->set_top_k(d.top_k);
  sampling->set_top_p(d.top_p);
  sampling->set_min_p(d.min_p);
  sampling->set_repetition_penalty(d.repetition_penalty);
  sampling->set_presence_penalty(d.presence_penalty);
  sampling->set_frequency_penalty(d.frequency_penalty);
}

}  // namespace bpt::server

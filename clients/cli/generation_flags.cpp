#include "generation_flags.h"

namespace bpt::cli {

GenerationFlags::GenerationFlags(CLI::App* command)
    : temperature_flag_(command->add_option("--temperature", temperature_)),
      top_k_flag_(command->add_option("--top-k", top_k_)),
      top_p_flag_(command->add_option("--top-p", top_p_)),
      min_p_flag_(command->add_option("--min-p", min_p_)),
      repetition_flag_(command->add_option("--repetition-penalty", repetition_)),
      presence_flag_(command->add_option("--presence-penalty", presence_)),
      frequency_flag_(command->add_option("--frequency-penalty", frequency_)),
      seed_flag_(command->add_option("--seed", seed_)),
      max_new_tokens_flag_(command->add_option("--max-new-tokens", max_new_tokens_)) {
  command->add_option("--stop", stop_, "Stop string (repeatable)");
  command->add_option("--stop-token-ids", stop_token_ids_)->delimiter(',');
  command->add_flag("--ignore-eos", ignore_eos_);
  command->add_option("--top-logprobs", top_logprobs_);
}

void GenerationFlags::ApplyTo(bptserve::v1::GenerateRequest* request) const {
  auto* sp = request->mutable_sampling();
  if (temperature_flag_->count()) sp->set_temperature(temperature_);
  if (top_k_flag_->count()) sp->set_top_k(top_k_);
  if (top_p_flag_->count()) sp->set_top_p(top_p_);
  if (min_p_flag_->count()) sp->set_min_p(min_p_);
  if (repetition_flag_->count()) sp->set_repetition_penalty(repetition_);
  if (presence_flag_->count()) sp->set_presence_penalty(presence_);
  if (frequency_flag_->count()) sp->set_frequency_penalty(frequency_);
  if (seed_flag_->count()) sp->set_seed(seed_);
  auto* st = request->mutable_stopping();
  if (max_new_tokens_flag_->count()) st->set_max_new_tokens(max_new_tokens_);
  for (const auto& s : stop_) st->add_stop(s);
  st->mutable_stop_token_ids()->Assign(stop_token_ids_.begin(), stop_token_ids_.end());
  st->set_ignore_eos(ignore_eos_);
  request->mutable_options()->set_top_logprobs(top_logprobs_);
}

}  // namespace bpt::cli

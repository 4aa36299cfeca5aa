// bptserve-cli chat: a conversation with the model's chat template, in the terminal (history
// kept, replies streamed, /file, /reset, /exit; Ctrl-C stops the reply in flight, not the
// session) or one-shot with --message.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli_connection.h"
#include "generation_flags.h"

namespace bpt::cli {

class ChatCommand {
 public:
  explicit ChatCommand(CLI::App* app);  // adds the subcommand and its flags
  bool selected() const { return command_->parsed(); }
  // The exit status: 0, or the code of the status that ended the one-shot reply.
  int Run(const Connection& connection);

 private:
  int OneShot(const Connection& connection);
  int Interactive(const Connection& connection);
  // A request for the conversation so far, with the generation flags.
  bptserve::v1::GenerateRequest Request(const std::vector<bptserve::v1::ChatMessage>& messages) const;

  CLI::App* const command_;
  GenerationFlags generation_;
  std::string message_;
  std::string system_;
  std::vector<std::string> documents_;
};

}  // namespace bpt::cli

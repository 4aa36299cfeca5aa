#include "chat_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "reply_stream.h"

namespace bpt::cli {
namespace {

// A document as the model sees it: its file name, then its content, before the message text.
std::optional<std::string> ReadDocument(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "error: cannot read '" << path << "'\n";
    return std::nullopt;
  }
  const std::string name = path.substr(path.find_last_of('/') + 1);
  return "[file: " + name + "]\n" + ReadAll(in) + "\n[end of file: " + name + "]\n\n";
}

bptserve::v1::ChatMessage Message(const std::string& role, std::string content) {
  bptserve::v1::ChatMessage m;
  m.set_role(role);
  m.set_content(std::move(content));
  return m;
}

// SIGINT, handled on a thread of its own (a signal handler may not call into gRPC): during a
// reply it cancels that call; at the prompt the first one says how to quit, the second quits.
// Constructed before any other thread starts, so every thread (gRPC's too) leaves SIGINT to it.
class Interrupts {
 public:
  Interrupts() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([this, set] {
      for (;;) {
        int signal = 0;
        if (sigwait(&set, &signal) != 0) continue;
        std::lock_guard<std::mutex> lock(mu_);
        if (reply_ != nullptr) {
          reply_->TryCancel();
          cancelled_ = true;
        } else if (++at_prompt_ == 1) {
          std::cerr << "\n(Ctrl-C again, /exit or Ctrl-D quits)\n> " << std::flush;
        } else {
          std::cout << std::endl;
          std::_Exit(0);
        }
      }
    }).detach();
  }
  void BeginReply(grpc::ClientContext* context) {
    std::lock_guard<std::mutex> lock(mu_);
    reply_ = context;
    cancelled_ = false;
    at_prompt_ = 0;
  }
  // True when Ctrl-C cancelled the reply.
  bool EndReply() {
    std::lock_guard<std::mutex> lock(mu_);
    reply_ = nullptr;
    return cancelled_;
  }

 private:
  std::mutex mu_;
  grpc::ClientContext* reply_ = nullptr;
  bool cancelled_ = false;
  int at_prompt_ = 0;
};

}  // namespace

ChatCommand::ChatCommand(CLI::App* app)
    : command_(app->add_subcommand("chat", "Chat with the model's chat template (interactive unless --message)")),
      generation_(command_) {
  command_->add_option("--message", message_, "One message: print the reply and exit");
  command_->add_option("--system", system_, "A system message before the conversation");
  command_->add_option("--document", documents_, "A file whose content goes before the (first) message (repeatable)");
}

bptserve::v1::GenerateRequest ChatCommand::Request(const std::vector<bptserve::v1::ChatMessage>& messages) const {
  bptserve::v1::GenerateRequest request;
  request.mutable_chat()->mutable_messages()->Assign(messages.begin(), messages.end());
  generation_.ApplyTo(&request);
  request.mutable_options()->set_prefill_progress(isatty(STDERR_FILENO) != 0);
  return request;
}

int ChatCommand::Run(const Connection& connection) {
  return command_->count("--message") == 0 ? Interactive(connection) : OneShot(connection);
}

int ChatCommand::OneShot(const Connection& connection) {
  std::vector<bptserve::v1::ChatMessage> messages;
  if (!system_.empty()) messages.push_back(Message("system", system_));
  std::string content;
  for (const auto& path : documents_) {
    std::optional<std::string> document = ReadDocument(path);
    if (!document) return 2;
    content += *document;
  }
  messages.push_back(Message("user", content + message_));
  auto stub = bptserve::v1::Inference::NewStub(MakeChannel(connection));
  grpc::ClientContext context;
  Prepare(connection, &context);
  Reply reply;
  const grpc::Status status = StreamReply(*stub, &context, Request(messages), /*print_text=*/true, &reply);
  std::cout << "\n";
  return status.ok() ? 0 : Fail(status);
}

int ChatCommand::Interactive(const Connection& connection) {
  // Before the channel's threads, and never destroyed: its signal thread outlives every return.
  static Interrupts& interrupts = *new Interrupts;
  auto stub = bptserve::v1::Inference::NewStub(MakeChannel(connection));
  std::vector<bptserve::v1::ChatMessage> history;
  if (!system_.empty()) history.push_back(Message("system", system_));
  const size_t kept_on_reset = history.size();
  std::string attached;  // documents for the next message
  for (const auto& path : documents_) {
    std::optional<std::string> document = ReadDocument(path);
    if (!document) return 2;
    attached += *document;
  }
  const bool terminal = isatty(STDIN_FILENO) != 0;
  if (terminal)
    std::cerr << "/file PATH attaches a document to the next message, /reset starts over, /exit or Ctrl-D quits; "
                 "Ctrl-C stops a reply\n";
  std::string line;
  for (;;) {
    if (terminal) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) {
      if (terminal) std::cout << "\n";
      return 0;
    }
    if (line == "/exit") return 0;
    if (line == "/reset") {
      history.resize(kept_on_reset);
      attached.clear();
      std::cerr << "(conversation cleared)\n";
      continue;
    }
    if (line.rfind("/file ", 0) == 0) {
      const size_t start = line.find_first_not_of(' ', 5);
      const std::string path = start == std::string::npos ? "" : line.substr(start);
      if (std::optional<std::string> document = ReadDocument(path)) {
        attached += *document;
        std::cerr << "(" << path << " goes with the next message)\n";
      }
      continue;
    }
    if (line.empty()) continue;
    if (line[0] == '/') {
      std::cerr << "unknown command '" << line << "': /file PATH, /reset, /exit\n";
      continue;
    }
    history.push_back(Message("user", attached + line));
    grpc::ClientContext context;
    Prepare(connection, &context);
    interrupts.BeginReply(&context);
    Reply reply;
    const grpc::Status status = StreamReply(*stub, &context, Request(history), /*print_text=*/true, &reply);
    const bool interrupted = interrupts.EndReply();
    std::cout << "\n";
    if (status.ok()) {
      attached.clear();
      history.push_back(Message("assistant", reply.text));
      continue;
    }
    // The turn did not happen: its message leaves the history; its documents stay attached.
    history.pop_back();
    if (interrupted && status.error_code() == grpc::StatusCode::CANCELLED) {
      std::cerr << "(reply stopped)\n";
    } else {
      Fail(status);
    }
  }
}

}  // namespace bpt::cli

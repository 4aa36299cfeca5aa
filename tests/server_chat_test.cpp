// Chat prompts through the server: a chat is rendered by the model's template and tokenized with
// no special tokens added, so it generates exactly what its rendered prompt's ids generate; and
// every way a chat can be wrong (no template, one that does not parse or refuses, too many
// messages, bad roles, invalid UTF-8) gets its own clear status while the server keeps serving.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "server_test_util.h"
#include "test_models.h"

namespace bpt {
namespace {

using bptserve::v1::GenerateRequest;
using testing::Generate;
using testing::TestServer;

constexpr char kTemplate[] =
    "{% for m in messages %}{% if m.role not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' ~ m.role) }}{% endif %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}";

// The demo model with `chat_template` in its tokenizer_config.json (none: no such file).
class ChatModel {
 public:
  explicit ChatModel(const std::optional<std::string>& chat_template) {
    for (const auto& entry : std::filesystem::directory_iterator(testing::DemoModelDir()))
      std::filesystem::copy(entry.path(), dir_ / entry.path().filename().string());
    if (chat_template)
      std::ofstream(dir_ / "tokenizer_config.json") << nlohmann::json{{"chat_template", *chat_template}}.dump();
  }
  const std::string& path() const { return dir_.path(); }

 private:
  testing::TempDir dir_;
};

bptserve::v1::ChatPrompt Chat(const std::vector<std::pair<std::string, std::string>>& messages) {
  bptserve::v1::ChatPrompt chat;
  for (const auto& [role, content] : messages) {
    auto* m = chat.add_messages();
    m->set_role(role);
    m->set_content(content);
  }
  return chat;
}

GenerateRequest Sampled(int max_new_tokens) {
  GenerateRequest r;
  r.mutable_sampling()->set_temperature(0.7f);
  r.mutable_sampling()->set_seed(5);
  r.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

GenerateRequest ChatRequest(const bptserve::v1::ChatPrompt& chat) {
  GenerateRequest r = Sampled(4);
  *r.mutable_chat() = chat;
  return r;
}

bptserve::v1::TokenizeResponse Tokenize(TestServer& t, const bptserve::v1::TokenizeRequest& request,
                                        grpc::Status* status) {
  grpc::ClientContext context;
  bptserve::v1::TokenizeResponse response;
  *status = t.stub->Tokenize(&context, request, &response);
  return response;
}

void ExpectServing(TestServer& t) {
  GenerateRequest r = Sampled(2);
  r.set_text("still there?");
  const auto s = Generate(*t.stub, r);
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.token_ids.size(), 2u);
}

bool HasChatTemplate(TestServer& t) {
  grpc::ClientContext context;
  bptserve::v1::ModelInfo info;
  EXPECT_TRUE(t.stub->GetModelInfo(&context, {}, &info).ok());
  return info.has_chat_template();
}

// Generate and Tokenize both refuse the chat with `code` and a message holding `fragment`.
void ExpectRefused(TestServer& t, const bptserve::v1::ChatPrompt& chat, grpc::StatusCode code,
                   const std::string& fragment) {
  const auto s = Generate(*t.stub, ChatRequest(chat));
  EXPECT_EQ(s.status.error_code(), code) << s.status.error_message();
  EXPECT_NE(s.status.error_message().find(fragment), std::string::npos) << s.status.error_message();
  EXPECT_EQ(s.finished_messages, 0);
  bptserve::v1::TokenizeRequest tokenize;
  *tokenize.mutable_chat() = chat;
  grpc::Status status;
  Tokenize(t, tokenize, &status);
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_NE(status.error_message().find(fragment), std::string::npos) << status.error_message();
  ExpectServing(t);
}

TEST(ServerChat, AChatGeneratesWhatItsRenderedPromptsIdsGenerate) {
  ChatModel model(kTemplate);
  TestServer t(testing::LoopbackOptions(model.path()));
  EXPECT_TRUE(HasChatTemplate(t));
  const auto chat = Chat({{"system", "You answer briefly."}, {"user", "What does the server read?"}});

  bptserve::v1::TokenizeRequest tokenize_chat;
  *tokenize_chat.mutable_chat() = chat;
  grpc::Status status;
  const auto rendered = Tokenize(t, tokenize_chat, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(rendered.prompt_text(), "<|system|>You answer briefly.<|user|>What does the server read?<|assistant|>");
  // The template wrote the prompt's special tokens: the tokenizer adds none (no BOS here).
  bptserve::v1::TokenizeRequest tokenize_text;
  tokenize_text.set_text(rendered.prompt_text());
  const auto as_text = Tokenize(t, tokenize_text, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(as_text.prompt_text(), rendered.prompt_text());
  ASSERT_FALSE(rendered.token_ids().empty());
  EXPECT_EQ(std::vector<int32_t>(rendered.token_ids().begin(), rendered.token_ids().end()),
            std::vector<int32_t>(as_text.token_ids().begin(), as_text.token_ids().end()));

  const auto from_chat = Generate(*t.stub, ChatRequest(chat));
  ASSERT_TRUE(from_chat.status.ok()) << from_chat.status.error_message();
  GenerateRequest from_ids_request = Sampled(4);
  from_ids_request.mutable_token_ids()->mutable_ids()->CopyFrom(rendered.token_ids());
  const auto from_ids = Generate(*t.stub, from_ids_request);
  ASSERT_TRUE(from_ids.status.ok()) << from_ids.status.error_message();
  EXPECT_EQ(from_chat.token_ids, from_ids.token_ids);
  EXPECT_EQ(from_chat.text, from_ids.text);
  EXPECT_EQ(from_chat.finished.usage().prompt_tokens(), rendered.token_ids_size());
  EXPECT_EQ(from_chat.finished.usage().completion_tokens(), 4);
  EXPECT_EQ(from_chat.finished_messages, 1);

  // continue_final_message: the last message stays open, no generation prompt after it.
  auto open = Chat({{"user", "Name a colour."}, {"assistant", "The colour is"}});
  open.set_continue_final_message(true);
  *tokenize_chat.mutable_chat() = open;
  EXPECT_EQ(Tokenize(t, tokenize_chat, &status).prompt_text(), "<|user|>Name a colour.<|assistant|>The colour is");
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST(ServerChat, BadChatsNameTheFieldAndTheServerKeepsServing) {
  ChatModel model(kTemplate);
  TestServer t(testing::LoopbackOptions(model.path()));
  ExpectRefused(t, Chat({}), grpc::StatusCode::INVALID_ARGUMENT, "chat.messages: empty");
  ExpectRefused(t, Chat({{"user", "hi"}, {"", "no role"}}), grpc::StatusCode::INVALID_ARGUMENT,
                "chat.messages[1].role is empty");
  ExpectRefused(t, Chat({{std::string(65, 'r'), "hi"}}), grpc::StatusCode::INVALID_ARGUMENT,
                "chat.messages[0].role: 65 bytes, more than 64");
  // A role the template itself refuses, in its own words.
  ExpectRefused(t, Chat({{"user", "hi"}, {"tool", "42"}}), grpc::StatusCode::INVALID_ARGUMENT, "unknown role: tool");
  // 100K messages: refused by count, before the template runs over them.
  const std::vector<std::pair<std::string, std::string>> many(100000, {"user", "x"});
  ExpectRefused(t, Chat(many), grpc::StatusCode::INVALID_ARGUMENT, "chat.messages: 100000 messages, more than 8192");

  // Content that is not UTF-8, as a client that skips protobuf's check sends it.
  std::string bytes = ChatRequest(Chat({{"user", "fine"}, {"user", "BAD!"}})).SerializeAsString();
  bytes.replace(bytes.find("BAD!"), 4, "\xc3\x28\xa0\xa1");
  grpc::Slice slice(bytes);
  const grpc::Status s = testing::RawCall(t.channel, "/bptserve.v1.Inference/Generate", grpc::ByteBuffer(&slice, 1));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("chat.messages[1].content: not valid UTF-8"), std::string::npos) << s.error_message();
  ExpectServing(t);
}

// A model without a template, with one that refuses every conversation, with one that does not
// parse: each loads and serves text, and a chat gets the status that says which.
TEST(ServerChat, EachTemplateProblemHasItsStatusAndTextStaysServed) {
  struct Case {
    std::optional<std::string> chat_template;
    bool has_chat_template;
    grpc::StatusCode code;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {std::nullopt, false, grpc::StatusCode::FAILED_PRECONDITION,
       "no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja)"},
      {"{{ raise_exception('this template refuses every conversation') }}", true, grpc::StatusCode::INVALID_ARGUMENT,
       "this template refuses every conversation"},
      {"{% for m in messages %}<|{{ m.role }}|>", false, grpc::StatusCode::FAILED_PRECONDITION, "chat template: line 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.chat_template.value_or("no template"));
    ChatModel model(c.chat_template);
    TestServer t(testing::LoopbackOptions(model.path()));
    EXPECT_EQ(HasChatTemplate(t), c.has_chat_template);
    ExpectRefused(t, Chat({{"user", "hi"}}), c.code, c.fragment);
  }
}

}  // namespace
}  // namespace bpt

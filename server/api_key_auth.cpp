#include "api_key_auth.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

#include <openssl/evp.h>

#include "check.h"

namespace bpt::server {
namespace {

// Compares every byte whatever the first difference, so timing does not reveal a key's prefix.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

Status Unauthenticated(std::string message) { return {StatusCode::kUnauthenticated, std::move(message)}; }

// SHA-256 over a label and the key, in hex: what a key's cache keys are rooted in.
std::string SaltOf(const std::string& key) {
  static constexpr char kLabel[] = "bptserve kv cache salt v1\0";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, kLabel, sizeof(kLabel)) == 1 &&
                  EVP_DigestUpdate(ctx, key.data(), key.size()) == 1 && EVP_DigestFinal_ex(ctx, digest, &length) == 1;
  EVP_MD_CTX_free(ctx);
  BPT_CHECK(ok, "SHA-256 of an API key failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

}  // namespace

StatusOr<ApiKeyAuth> ApiKeyAuth::Load(const std::string& path) {
  ApiKeyAuth auth;
  if (path.empty()) return auth;
  std::ifstream in(path);
  if (!in) return NotFound("cannot read --api-key-file '" + path + "'");
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') auth.keys_.push_back(line);
  }
  if (auth.keys_.empty()) return InvalidArgument("--api-key-file '" + path + "' holds no key");
  for (const std::string& key : auth.keys_) auth.salts_.push_back(SaltOf(key));
  return auth;
}

std::vector<std::string_view> ApiKeyAuth::AuthorizationValues(const grpc::ServerContextBase& context) {
  std::vector<std::string_view> values;
  const auto [first, last] = context.client_metadata().equal_range("authorization");
  for (auto it = first; it != last; ++it) values.emplace_back(it->second.data(), it->second.size());
  return values;
}

Status ApiKeyAuth::Check(const grpc::ServerContextBase& context) const {
  if (keys_.empty()) return OkStatus();
  return CheckAuthorization(AuthorizationValues(context));
}

Status ApiKeyAuth::CheckAuthorization(const std::vector<std::string_view>& values) const {
  size_t key = 0;
  return keys_.empty() ? OkStatus() : Match(values, &key);
}

std::string ApiKeyAuth::CacheSalt(const grpc::ServerContextBase& context) const {
  return keys_.empty() ? std::string() : CacheSalt(AuthorizationValues(context));
}

std::string ApiKeyAuth::CacheSalt(const std::vector<std::string_view>& values) const {
  size_t key = 0;
  if (keys_.empty() || !Match(values, &key).ok()) return std::string();
  return salts_[key];
}

Status ApiKeyAuth::Match(const std::vector<std::string_view>& values, size_t* key) const {
  if (values.empty()) return Unauthenticated("missing 'authorization: Bearer <key>' (gRPC metadata or HTTP header)");
  // Two credentials: which one a proxy or a log reads is anyone's guess, so neither is taken.
  if (values.size() > 1) return Unauthenticated("more than one 'authorization' entry; send exactly one");
  const std::string value(values.front());
  // RFC 7235: the scheme is case-insensitive; one or more spaces separate it from the token.
  const size_t space = value.find(' ');
  const std::string scheme = value.substr(0, space);
  const size_t token = space == std::string::npos ? std::string::npos : value.find_first_not_of(' ', space);
  const bool bearer = scheme.size() == 6 && std::equal(scheme.begin(), scheme.end(), "bearer", [](char a, char b) {
                        return std::tolower(static_cast<unsigned char>(a)) == b;
                      });
  if (!bearer || token == std::string::npos)
    return Unauthenticated("'authorization' must be 'Bearer <key>'");
  const std::string token_text = value.substr(token);
  bool match = false;
  for (size_t i = 0; i < keys_.size(); ++i)  // every key compared, whichever matches
    if (ConstantTimeEquals(keys_[i], token_text)) {
      match = true;
      *key = i;
    }
  if (!match) return Unauthenticated("the API key is not valid");
  return OkStatus();
}

}  // namespace bpt::server

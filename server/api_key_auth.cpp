#include "api_key_auth.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

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
  return auth;
}

Status ApiKeyAuth::Check(const grpc::ServerContextBase& context) const {
  if (keys_.empty()) return OkStatus();
  std::vector<std::string_view> values;
  const auto [first, last] = context.client_metadata().equal_range("authorization");
  for (auto it = first; it != last; ++it) values.emplace_back(it->second.data(), it->second.size());
  return CheckAuthorization(values);
}

Status ApiKeyAuth::CheckAuthorization(const std::vector<std::string_view>& values) const {
  if (keys_.empty()) return OkStatus();
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
  const std::string key = value.substr(token);
  bool match = false;
  for (const auto& k : keys_) match |= ConstantTimeEquals(k, key);
  if (!match) return Unauthenticated("the API key is not valid");
  return OkStatus();
}

}  // namespace bpt::server

// A small blocking HTTP/1.1 client (Boost.Beast) for talking to `reel serve`: the `reel submit`,
// `status`, `wait`, `cancel`, `fetch` and `ls` commands and the tests use it. Plain http only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.hpp"

namespace reel::cluster {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

struct HttpCall {
  std::string method = "GET";
  std::string url;  // http://HOST:PORT/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;  // sent when the body is not empty; "" = application/json
  std::chrono::milliseconds timeout{30000};  // connect, send and the whole reply
};

// Where a URL points: "http://HOST:PORT/TARGET". invalid_argument for anything else (https,
// no host, a port outside 1..65535).
struct Url {
  std::string host;
  std::string port;
  std::string target;  // "/..." ("/" when the URL has no path)
};
[[nodiscard]] Expected<Url> parse_url(const std::string& url);

// One request and its whole reply. Errors: invalid_argument for a bad URL; io_error naming the
// server when it cannot be reached, closes early or takes longer than the timeout.
[[nodiscard]] Expected<HttpReply> http_call(const HttpCall& call);

// A request whose reply body is read as it arrives (server-sent events): `on_data` gets each
// piece of the body; returning false stops reading. The reply's status and headers are
// returned, with the body empty. The timeout bounds each read, not the whole stream.
[[nodiscard]] Expected<HttpReply> http_stream(const HttpCall& call,
                                              const std::function<bool(std::string_view)>& on_data);

}  // namespace reel::cluster

// A small HTTP/1.1 server on Boost.Beast for `reel serve`. One acceptor thread; each connection
// gets a thread of its own (up to a bound; beyond it the connection is answered 503 and closed),
// so a handler may block (on the coordinator, on a file) without holding up others. Keep-alive,
// a request body limit (413 beyond it, before the body is read), a read timeout for idle or slow
// clients, and streamed replies (server-sent events) whose writer tells the handler when the
// client has gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.hpp"

namespace reel::cluster {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // percent-decoded, without the query
  std::map<std::string, std::string> query;    // percent-decoded; a repeated name keeps the last
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string peer;  // the client's address
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Writes one piece of a streamed reply; false once the client has gone.
using StreamWriter = std::function<bool(std::string_view)>;

// What a handler answers: a whole response, or (when `stream` is set) the status line and headers
// of `response` followed by what `stream` writes until it returns; the connection then closes.
struct HttpAnswer {
  HttpResponse response;
  std::function<void(const StreamWriter&)> stream;
};

using HttpHandler = std::function<HttpAnswer(const HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                    // 0: any free port (HttpServer::port says which)
  uint64_t body_limit = 1 << 20;        // bytes; larger bodies are answered 413
  int max_connections = 64;             // open at once; more are answered 503
  std::chrono::milliseconds read_timeout{30000};  // for a request's bytes (and between requests)
};

class HttpServer {
 public:
  // Binds and starts accepting. io_error when the address cannot be bound (in use, not local),
  // invalid_argument for a host that is not an IP address.
  [[nodiscard]] static Expected<std::unique_ptr<HttpServer>> start(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  [[nodiscard]] uint16_t port() const;
  // Stops accepting, closes every connection and waits for their threads.
  void stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-decoding ('+' as a space when `plus_is_space`); invalid escapes are kept as they are.
[[nodiscard]] std::string percent_decode(std::string_view text, bool plus_is_space);

// "a=1&b=x+y" (a query string or a url-encoded form) as decoded names and values; a repeated name
// keeps the last.
[[nodiscard]] std::map<std::string, std::string> parse_query(std::string_view text);

// The reason phrase of a status code ("Not Found").
[[nodiscard]] std::string status_text(int status);

}  // namespace reel::cluster

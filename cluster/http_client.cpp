#include "cluster/http_client.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace reel::cluster {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Expected<Url> parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return make_error(Errc::invalid_argument, "server URL '" + url + "' must start with http://");
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url out;
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const size_t colon = authority.rfind(':');
  if (colon == std::string::npos) {
    out.host = authority;
    out.port = "80";
  } else {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  }
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') out.host = out.host.substr(1, out.host.size() - 2);
  if (out.host.empty()) return make_error(Errc::invalid_argument, "server URL '" + url + "' has no host");
  int port = 0;
  if (out.port.empty() || out.port.size() > 5 || !std::all_of(out.port.begin(), out.port.end(), ::isdigit) ||
      (port = std::stoi(out.port)) < 1 || port > 65535)
    return make_error(Errc::invalid_argument, "server URL '" + url + "': the port must be 1..65535");
  return out;
}

namespace {

// One connection; every operation is asynchronous under a deadline, run to completion here.
class Connection {
 public:
  explicit Connection(std::chrono::milliseconds timeout) : stream_(ioc_), timeout_(timeout) {}

  Status connect(const Url& url) {
    where_ = url.host + ":" + url.port;
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) return make_error(Errc::io_error, "cannot resolve " + where_ + ": " + ec.message());
    arm();
    stream_.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return failure("cannot connect to", ec);
    return {};
  }

  Status send(http::request<http::string_body>& request) {
    beast::error_code ec;
    arm();
    http::async_write(stream_, request, [&](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec) return failure("cannot send to", ec);
    return {};
  }

  // The reply's header only (for a body read as it comes), or the whole reply.
  template <class Parser>
  Status read_header(Parser& parser) {
    return reading("no reply from", [&](auto done) { http::async_read_header(stream_, buffer_, parser, done); });
  }
  template <class Parser>
  Status read(Parser& parser) {
    return reading("incomplete reply from", [&](auto done) { http::async_read(stream_, buffer_, parser, done); });
  }

  // Reads some of the body into `out`; false at its end.
  Expected<bool> read_some(http::response_parser<http::buffer_body>& parser, std::string& out) {
    char chunk[8192];
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    beast::error_code ec;
    arm();
    http::async_read_some(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec == http::error::need_buffer) ec = {};
    if (ec == http::error::end_of_stream || ec == asio::error::eof) return false;
    if (ec) return failure("stream from", ec);
    out.assign(chunk, sizeof chunk - parser.get().body().size);
    return !parser.is_done();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

 private:
  template <class Start>
  Status reading(const char* what, Start start) {
    beast::error_code ec;
    arm();
    start([&](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec) return failure(what, ec);
    return {};
  }
  void arm() {
    if (timeout_.count() > 0) stream_.expires_after(timeout_);
  }
  void run() {
    ioc_.restart();
    ioc_.run();
  }
  Error failure(const char* what, const beast::error_code& ec) {
    if (ec == beast::error::timeout)
      return make_error(Errc::io_error, std::string(what) + " " + where_ + ": timed out after " +
                                            std::to_string(timeout_.count()) + " ms");
    return make_error(Errc::io_error, std::string(what) + " " + where_ + ": " + ec.message());
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  std::string where_;
};

Expected<http::verb> verb_of(const std::string& method) {
  const auto verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return make_error(Errc::invalid_argument, "unknown HTTP method '" + method + "'");
  return verb;
}

Expected<http::request<http::string_body>> make_request(const HttpCall& call, const Url& url) {
  auto verb = verb_of(call.method);
  if (!verb) return verb.error();
  http::request<http::string_body> request{*verb, url.target, 11};
  request.set(http::field::host, url.host + ":" + url.port);
  request.set(http::field::user_agent, "reel");
  for (const auto& [name, value] : call.headers) request.set(name, value);
  if (!call.body.empty() || call.method == "POST" || call.method == "PUT") {
    request.set(http::field::content_type, call.content_type.empty() ? "application/json" : call.content_type);
    request.body() = call.body;
  }
  request.prepare_payload();
  return request;
}

template <class Fields>
std::map<std::string, std::string> headers_of(const Fields& fields) {
  std::map<std::string, std::string> out;
  for (const auto& field : fields) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out[name] = std::string(field.value());
  }
  return out;
}

// Parses the call's URL, connects and sends the request. The outer error: a bad call or no
// connection; the inner status: whether the whole request went out (a server may answer, and
// close, before it has read all of it).
Expected<Status> start(Connection& connection, const HttpCall& call) {
  auto url = parse_url(call.url);
  if (!url) return url.error();
  auto request = make_request(call, *url);
  if (!request) return request.error();
  REEL_RETURN_IF_ERROR(connection.connect(*url));
  return connection.send(*request);
}

template <class Message>
HttpReply head_of(const Message& message) {
  HttpReply reply;
  reply.status = static_cast<int>(message.result_int());
  reply.headers = headers_of(message);
  return reply;
}

}  // namespace

Expected<HttpReply> http_call(const HttpCall& call) {
  Connection connection(call.timeout);
  auto sent = start(connection, call);
  if (!sent) return sent.error();
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  // A server's early answer (413) is what matters, so it is read even when sending failed.
  if (auto read = connection.read(parser); !read) return *sent ? read.error() : sent->error();
  connection.close();
  HttpReply reply = head_of(parser.get());
  reply.body = std::move(parser.get().body());
  return reply;
}

Expected<HttpReply> http_stream(const HttpCall& call, const std::function<bool(std::string_view)>& on_data) {
  Connection connection(call.timeout);
  auto sent = start(connection, call);
  if (!sent) return sent.error();
  REEL_RETURN_IF_ERROR(*sent);
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  REEL_RETURN_IF_ERROR(connection.read_header(parser));
  HttpReply reply = head_of(parser.get());
  std::string piece;
  while (!parser.is_done()) {
    auto more = connection.read_some(parser, piece);
    if (!more) return more.error();
    if (!piece.empty() && !on_data(piece)) break;
    if (!*more) break;
  }
  connection.close();
  return reply;
}

}  // namespace reel::cluster

#include "cluster/http_server.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace reel::cluster {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    const size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    const size_t eq = pair.find('=');
    if (!pair.empty())
      out[percent_decode(pair.substr(0, eq), true)] =
          eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return out;
}

std::string status_text(int status) {
  return std::string(http::obsolete_reason(static_cast<http::status>(status)));
}

namespace {

void set_timeouts(tcp::socket& socket, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

HttpRequest to_request(const http::request<http::string_body>& r, const std::string& peer) {
  HttpRequest out;
  out.method = std::string(r.method_string());
  const std::string target(r.target());
  const size_t q = target.find('?');
  out.path = percent_decode(std::string_view(target).substr(0, q), false);
  if (q != std::string::npos) out.query = parse_query(std::string_view(target).substr(q + 1));
  for (const auto& field : r) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out.headers[name] = std::string(field.value());
  }
  out.body = r.body();
  out.peer = peer;
  return out;
}

HttpResponse error_response(int status, const std::string& message, const std::string& type) {
  HttpResponse r;
  r.status = status;
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) escaped.push_back(c);
  }
  r.body = "{\"error\":{\"message\":\"" + escaped + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":null}}";
  return r;
}

HttpResponse too_large(uint64_t limit) {
  return error_response(413, "the request body is more than the limit of " + std::to_string(limit) + " bytes",
                        "invalid_request_error");
}

bool write_response(tcp::socket& socket, const HttpResponse& r, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  res.set(http::field::server, "reel");
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  beast::error_code ec;
  http::write(socket, res, ec);
  return !ec;
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::thread accept_thread;
  std::mutex mutex;
  std::condition_variable idle;
  std::set<int> open;  // native handles of the connections being served
  bool stopping = false;

  void accept_loop() {
    for (;;) {
      tcp::socket socket(ioc);
      beast::error_code ec;
      acceptor.accept(socket, ec);
      {
        std::lock_guard lock(mutex);
        if (stopping) return;
      }
      if (ec) {
        // Out of descriptors and the like: wait a little instead of spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      set_timeouts(socket, options.read_timeout);
      bool full = false;
      {
        std::lock_guard lock(mutex);
        full = static_cast<int>(open.size()) >= options.max_connections;
        if (!full) open.insert(socket.native_handle());
      }
      if (full) {
        HttpResponse busy = error_response(503, "the server has too many open connections; retry later", "server_error");
        busy.headers.emplace_back("Retry-After", "1");
        write_response(socket, busy, false);
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        continue;
      }
      std::thread([this, s = std::make_shared<tcp::socket>(std::move(socket))] { serve(*s); }).detach();
    }
  }

  void serve(tcp::socket& socket) {
    const int handle = socket.native_handle();
    beast::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    const std::string peer = ec ? std::string("unknown") : remote.address().to_string();
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      parser.header_limit(64 * 1024);
      http::read_header(socket, buffer, parser, ec);
      if (ec) {
        if (ec == http::error::header_limit) {
          write_response(socket, error_response(431, "request headers are too large", "invalid_request_error"), false);
        } else if (ec == http::error::body_limit) {  // a Content-Length over the limit, seen in the header
          write_response(socket, too_large(options.body_limit), false);
          drain(socket);
        }
        else if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset &&
                 ec != asio::error::would_block && ec != asio::error::try_again && ec != asio::error::operation_aborted &&
                 ec != asio::error::bad_descriptor && ec != asio::error::not_connected)
          write_response(socket, error_response(400, "malformed HTTP request: " + ec.message(), "invalid_request_error"), false);
        break;
      }
      const auto& head = parser.get();
      if (auto expect = head.find(http::field::expect);
          expect != head.end() && beast::iequals(expect->value(), "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::write(socket, asio::buffer(kContinue.data(), kContinue.size()), ec);
        if (ec) break;
      }
      http::read(socket, buffer, parser, ec);
      if (ec == http::error::body_limit) {  // chunked: found while reading
        write_response(socket, too_large(options.body_limit), false);
        drain(socket);
        break;
      }
      if (ec) {
        if (ec != asio::error::would_block && ec != asio::error::try_again)
          write_response(socket, error_response(400, "malformed HTTP request: " + ec.message(), "invalid_request_error"), false);
        break;
      }
      const auto& request = parser.get();
      const bool keep_alive = request.keep_alive();
      HttpAnswer answer;
      try {
        answer = handler(to_request(request, peer));
      } catch (const std::exception& e) {
        answer = HttpAnswer{error_response(500, std::string("internal error: ") + e.what(), "server_error"), {}};
      }
      if (answer.stream) {
        stream(socket, answer);
        break;
      }
      if (!write_response(socket, answer.response, keep_alive) || !keep_alive) break;
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    std::lock_guard lock(mutex);
    open.erase(handle);
    idle.notify_all();
  }

  // After an early answer (413) to a client still sending its body: closing at once would reset
  // the connection and lose the answer on the client's side, so the rest of the body is read
  // and dropped first, for at most a few seconds.
  static void drain(tcp::socket& socket) {
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    set_timeouts(socket, std::chrono::milliseconds(1000));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    char sink[16384];
    while (std::chrono::steady_clock::now() < deadline) {
      socket.read_some(asio::buffer(sink), ec);
      if (ec) break;
    }
  }

  void stream(tcp::socket& socket, const HttpAnswer& answer) {
    const auto& r = answer.response;
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n";
    head += "Server: reel\r\nContent-Type: " + r.content_type + "\r\nCache-Control: no-cache\r\nConnection: close\r\n";
    for (const auto& [name, value] : r.headers) head += name + ": " + value + "\r\n";
    head += "\r\n";
    beast::error_code ec;
    asio::write(socket, asio::buffer(head), ec);
    if (ec) return;
    answer.stream([&socket](std::string_view piece) {
      beast::error_code e;
      asio::write(socket, asio::buffer(piece.data(), piece.size()), e);
      return !e;
    });
  }
};

Expected<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions options, HttpHandler handler) {
  auto impl = std::make_unique<Impl>();
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (ec) return make_error(Errc::invalid_argument, "listen address '" + options.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, options.port);
  const std::string where = options.host + ":" + std::to_string(options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(Errc::io_error, "cannot listen on " + where + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  impl->options = std::move(options);
  impl->handler = std::move(handler);
  Impl* raw = impl.get();
  impl->accept_thread = std::thread([raw] { raw->accept_loop(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) return;
    impl_->stopping = true;
    // Wakes the threads blocked in reads on them; each closes its socket and leaves.
    for (int handle : impl_->open) ::shutdown(handle, SHUT_RDWR);
  }
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  std::unique_lock lock(impl_->mutex);
  impl_->idle.wait(lock, [this] { return impl_->open.empty(); });
}

}  // namespace reel::cluster

#pragma once
// HTTP/1.1 server plumbing shared by the gateway, the query server and the processor's metrics
// endpoint (Boost.Beast; one thread per core by default, each running its own io_context: a
// connection stays on the thread that accepted it, so no strands and no cross-thread wake-ups on
// the hot path).
//
// Contract:
// - The handler is called once per request on an io_context thread and must not block; it answers
//   through the Responder exactly once, from any thread, possibly later (the webhook route answers
//   only after Kafka acknowledged the append).
// - The server enforces the transport limits itself, each with a JSON error body: header read
//   timeout (408), body read timeout (408), body size over the route's limit (413), malformed
//   HTTP (400), more connections than configured (503, connection closed).
// - stop() stops accepting, lets in-flight requests finish until a deadline, then closes.
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace revtrace::common::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Status = boost::beast::http::status;

class Session;

// Answers one request. Copyable; every copy answers the same request, and only the first answer
// counts (later ones, and answers after the connection closed, are dropped).
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::function<void(Response&&)> send) : send_(std::move(send)) {}
  void operator()(Response&& response) const;

 private:
  friend class Session;
  Responder(std::shared_ptr<Session> session, std::uint64_t request) noexcept
      : session_(std::move(session)), request_(request) {}
  std::shared_ptr<Session> session_;  // the connection the request came on
  std::uint64_t request_ = 0;         // which of its requests
  std::function<void(Response&&)> send_;
};

using Handler = std::function<void(Request&& request, Responder respond)>;
// The same with the client's address (of the TCP peer, cached at accept), for handlers that need
// it, e.g. the gateway's country lookup.
using PeerHandler = std::function<void(Request&& request, const boost::asio::ip::address& peer,
                                       Responder respond)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = pick a free port
  int threads = 0;         // 0 = hardware concurrency
  std::size_t max_connections = 10000;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  // Largest body accepted for a request target; larger ones get 413 before the body is read.
  std::function<std::size_t(std::string_view target)> body_limit = [](std::string_view) {
    return std::size_t{1024 * 1024};
  };
  std::string server_name = "revtrace";
};

// A JSON error answer: {"error": code, "message": message}.
[[nodiscard]] Response json_error(Status status, std::string_view code, std::string_view message,
                                  unsigned version = 11, bool keep_alive = true);
[[nodiscard]] Response json_response(Status status, std::string body, unsigned version = 11,
                                     bool keep_alive = true);
// Escapes a string for a JSON string literal (without the quotes).
void append_json_escaped(std::string& out, std::string_view text);

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  Server(ServerOptions options, PeerHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the io threads; throws std::runtime_error when the address cannot be bound.
  void start();
  [[nodiscard]] std::uint16_t port() const noexcept { return bound_port_; }
  // Stops accepting, waits until in-flight requests were answered or `drain` elapsed, then stops
  // every io thread. Idempotent.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(10000));
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.load(); }
  [[nodiscard]] std::size_t connections() const noexcept { return connections_.load(); }
  // The first io_context (the acceptor's); timers of handlers may use it.
  [[nodiscard]] boost::asio::io_context& context() noexcept { return ioc_; }

 private:
  friend class Session;
  void accept();

  ServerOptions options_;
  PeerHandler handler_;
  boost::asio::io_context& next_context() noexcept;

  boost::asio::io_context ioc_{1};  // concurrency hint: run by one thread
  std::vector<std::unique_ptr<boost::asio::io_context>> workers_;  // of the other threads
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::atomic<std::size_t> next_{0};
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::uint16_t bound_port_ = 0;
};

}  // namespace revtrace::common::http

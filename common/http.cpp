#include "common/http.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/version.hpp>
#include <optional>
#include <spdlog/spdlog.h>

namespace revtrace::common::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char ch : text) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          out += "\\u00";
          out += kHex[ch >> 4];
          out += kHex[ch & 0xf];
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
}

Response json_response(Status status, std::string body, unsigned version, bool keep_alive) {
  Response res{status, version};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response json_error(Status status, std::string_view code, std::string_view message,
                    unsigned version, bool keep_alive) {
  std::string body = "{\"error\":\"";
  append_json_escaped(body, code);
  body += "\",\"message\":\"";
  append_json_escaped(body, message);
  body += "\"}";
  return json_response(status, std::move(body), version, keep_alive);
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server& server) : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    const auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) peer_ = endpoint.address();
  }

  ~Session() { server_.connections_.fetch_sub(1); }

  [[nodiscard]] auto executor() { return stream_.get_executor(); }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

  // Answers a request that was refused before reaching the handler and closes the connection.
  void refuse(Response&& res) {
    res.keep_alive(false);
    res.set(bhttp::field::server, server_.options_.server_name);
    auto owned = std::make_shared<Response>(std::move(res));
    stream_.expires_after(server_.options_.header_timeout);
    bhttp::async_write(stream_, *owned,
                       [self = shared_from_this(), owned](beast::error_code ec, std::size_t) {
                         if (ec) return self->close();
                         self->linger();
                       });
  }

 private:
  // Lingering close: after a refusal the client may still be sending the body we refused. Closing
  // with unread data would reset the connection and the client would lose our answer, so we stop
  // sending and discard what arrives until the client closes, a byte budget or a short deadline.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    discard(std::size_t{4} * 1024 * 1024);
  }
  void discard(std::size_t budget) {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = shared_from_this(), budget](beast::error_code ec, std::size_t n) {
                              if (ec || n >= budget) return self->close();
                              self->discard(budget - n);
                            });
  }

  void read_header() {
    if (server_.stopping_.load()) return close();
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(boost::none);
    arm_read_deadline(server_.options_.header_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  // Read deadlines use a timer of their own that cancels the pending read: tcp_stream's own
  // expiry closes the socket, and then a slow client could not be told 408.
  void arm_read_deadline(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    stream_.expires_never();
    read_timer_.expires_after(timeout);
    read_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }
  beast::error_code read_outcome(beast::error_code ec) {
    read_timer_.cancel();
    if (timed_out_ && ec == net::error::operation_aborted) return beast::error::timeout;
    return ec;
  }

  void on_header(beast::error_code ec) {
    ec = read_outcome(ec);
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return close();
    }
    if (ec == beast::error::timeout) {
      if (buffer_.size() == 0 && !parser_->got_some()) return close();  // an idle keep-alive connection
      return refuse(json_error(Status::request_timeout, "request_timeout",
                               "request header not received in time", 11, false));
    }
    if (ec == bhttp::error::header_limit) {
      return refuse(json_error(Status::request_header_fields_too_large, "header_too_large",
                               "request header exceeds 16 KiB", 11, false));
    }
    if (ec) {
      return refuse(json_error(Status::bad_request, "bad_request",
                               "malformed HTTP request: " + ec.message(), 11, false));
    }
    const auto& header = parser_->get();
    const std::size_t limit = server_.options_.body_limit(header.target());
    if (parser_->content_length() && *parser_->content_length() > limit) {
      return refuse(json_error(Status::payload_too_large, "body_too_large",
                               "request body exceeds " + std::to_string(limit) + " bytes", 11,
                               false));
    }
    parser_->body_limit(limit);
    arm_read_deadline(server_.options_.body_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    ec = read_outcome(ec);
    if (ec == beast::error::timeout) {
      return refuse(json_error(Status::request_timeout, "request_timeout",
                               "request body not received in time", 11, false));
    }
    if (ec == bhttp::error::body_limit) {
      return refuse(json_error(Status::payload_too_large, "body_too_large",
                               "request body exceeds the limit of this route", 11, false));
    }
    if (ec == net::error::eof || ec == bhttp::error::end_of_stream ||
        ec == bhttp::error::partial_message || ec == net::error::connection_reset) {
      return close();
    }
    if (ec) {
      return refuse(json_error(Status::bad_request, "bad_request",
                               "malformed HTTP request: " + ec.message(), 11, false));
    }
    stream_.expires_never();
    Request req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    server_.in_flight_.fetch_add(1);
    auto self = shared_from_this();
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Responder respond([self, answered](Response&& res) {
      if (answered->exchange(true)) return;
      auto owned = std::make_shared<Response>(std::move(res));
      // Inline when answered on the connection's own thread (the usual case), queued otherwise.
      net::dispatch(self->stream_.get_executor(), [self, owned] { self->write(owned); });
    });
    try {
      server_.handler_(std::move(req), peer_, respond);
    } catch (const std::exception& e) {
      spdlog::error("http: handler threw: {}", e.what());
      respond(json_error(Status::internal_server_error, "internal_error", "internal error"));
    }
  }

  void write(const std::shared_ptr<Response>& res) {
    const bool keep = keep_alive_ && res->keep_alive() && !server_.stopping_.load();
    res->version(version_);
    res->keep_alive(keep);
    res->set(bhttp::field::server, server_.options_.server_name);
    stream_.expires_after(server_.options_.body_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, keep](beast::error_code ec, std::size_t) {
                         self->server_.in_flight_.fetch_sub(1);
                         if (ec || !keep) return self->close();
                         self->read_header();
                       });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  Server& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  net::ip::address peer_;
  net::steady_timer read_timer_{stream_.get_executor()};
  bool timed_out_ = false;
};

Server::Server(ServerOptions options, Handler handler)
    : Server(std::move(options),
             PeerHandler([h = std::move(handler)](Request&& req, const net::ip::address&,
                                                  Responder respond) { h(std::move(req), std::move(respond)); })) {}

Server::Server(ServerOptions options, PeerHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)), acceptor_(ioc_) {}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

void Server::start() {
  const auto address = net::ip::make_address(options_.host);
  tcp::endpoint endpoint{address, options_.port};
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  beast::error_code ec;
  acceptor_.bind(endpoint, ec);
  if (ec) {
    throw std::runtime_error("http: cannot bind " + options_.host + ":" +
                             std::to_string(options_.port) + ": " + ec.message());
  }
  acceptor_.listen(net::socket_base::max_listen_connections);
  bound_port_ = acceptor_.local_endpoint().port();
  int n = options_.threads > 0 ? options_.threads
                               : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  guards_.push_back(net::make_work_guard(ioc_));
  for (int i = 1; i < n; ++i) {
    workers_.push_back(std::make_unique<net::io_context>(1));
    guards_.push_back(net::make_work_guard(*workers_.back()));
  }
  accept();
  for (int i = 0; i < n; ++i) {
    net::io_context& ioc = i == 0 ? ioc_ : *workers_[static_cast<std::size_t>(i - 1)];
    threads_.emplace_back([&ioc] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread caught: {}", e.what());
        }
      }
    });
  }
}

net::io_context& Server::next_context() noexcept {
  const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed) % (workers_.size() + 1);
  return i == 0 ? ioc_ : *workers_[i - 1];
}

void Server::accept() {
  acceptor_.async_accept(next_context(), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || stopping_.load()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      const std::size_t now = connections_.fetch_add(1) + 1;
      auto session = std::make_shared<Session>(std::move(socket), *this);
      if (now > options_.max_connections) {
        net::dispatch(session->executor(), [session] {
          session->refuse(json_error(Status::service_unavailable, "too_many_connections",
                                     "the server has reached its connection limit", 11, false));
        });
      } else {
        session->start();
      }
    }
    accept();
  });
}

void Server::stop(std::chrono::milliseconds drain) {
  if (stopped_.exchange(true)) return;
  stopping_.store(true);
  net::post(ioc_, [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  const auto deadline = std::chrono::steady_clock::now() + drain;
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  guards_.clear();
  ioc_.stop();
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace revtrace::common::http

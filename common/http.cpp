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
  // Runs of characters that need no escape (nearly all of them) are appended in one piece.
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto ch = static_cast<unsigned char>(text[i]);
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[ch >> 4];
        out += kHex[ch & 0xf];
    }
  }
  out.append(text.data() + run, text.size() - run);
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

namespace {

constexpr std::size_t kReadSize = 8 * 1024;  // a typical request (header and body) in one read
constexpr std::size_t kHeaderLimit = 16 * 1024;

void append_status_line(std::string& out, unsigned version, const Response& res) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
  out += ' ';
  char code[4] = {static_cast<char>('0' + res.result_int() / 100 % 10),
                  static_cast<char>('0' + res.result_int() / 10 % 10),
                  static_cast<char>('0' + res.result_int() % 10), ' '};
  out.append(code, sizeof code);
  out += res.reason();
  out += "\r\n";
}

// The bytes of `res` as Beast's serializer writes them, with `server` as the Server field.
void serialize(const Response& res, unsigned version, std::string_view server, std::string& out) {
  out.clear();
  if (res.chunked()) {  // not used by revtrace's routes; Beast encodes the chunks
    Response copy = res;
    copy.set(bhttp::field::server, server);
    bhttp::serializer<false, bhttp::string_body> sr{copy};
    beast::error_code ec;
    while (!ec && !sr.is_done()) {
      sr.next(ec, [&](beast::error_code&, const auto& buffers) {
        for (const auto b : beast::buffers_range_ref(buffers)) {
          out.append(static_cast<const char*>(b.data()), b.size());
        }
        sr.consume(beast::buffer_bytes(buffers));
      });
    }
    return;
  }
  append_status_line(out, version, res);
  for (const auto& f : res) {
    if (f.name() == bhttp::field::server) continue;
    out += f.name_string();
    out += ": ";
    out += f.value();
    out += "\r\n";
  }
  out += "Server: ";
  out += server;
  out += "\r\n\r\n";
  out += res.body();
}

}  // namespace

// One client connection: reads a request (header and body from the same buffer, with Beast's
// parser fed directly), hands it to the handler, writes the answer (inline when the socket takes
// it at once, the usual case), and so on while the connection is kept alive.
//
// Deadlines cost no timer operation per request: a request only moves `deadline_`; the one timer
// of the connection wakes at the earliest deadline it was armed for and re-arms itself when the
// deadline has moved on since.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, net::io_context& ioc, Server& server)
      : socket_(std::move(socket)), ioc_(ioc), server_(server), timer_(ioc) {
    beast::error_code ec;
    const auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) peer_ = endpoint.address();
    socket_.non_blocking(true, ec);
  }

  ~Session() { server_.connections_.fetch_sub(1); }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] net::io_context& context() noexcept { return ioc_; }

  void start() {
    net::dispatch(ioc_, [self = shared_from_this()] { self->read_request(); });
  }

  // Answers a request that was refused before reaching the handler and closes the connection.
  void refuse(Response&& res) {
    res.keep_alive(false);
    serialize(res, 11, server_.options_.server_name, out_);
    set_deadline(Deadline::close, server_.options_.header_timeout);
    net::async_write(socket_, net::buffer(out_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->close();
                       self->linger();
                     });
  }

  // The handler's answer to request `request`, from any thread.
  void answer(std::uint64_t request, Response&& res) {
    if (ioc_.get_executor().running_in_this_thread()) return deliver(request, std::move(res));
    net::post(ioc_, [self = shared_from_this(), request, res = std::move(res)]() mutable {
      self->deliver(request, std::move(res));
    });
  }

 private:
  enum class Deadline : std::uint8_t { none, read, close };

  // Lingering close: after a refusal the client may still be sending the body we refused. Closing
  // with unread data would reset the connection and the client would lose our answer, so we stop
  // sending and discard what arrives until the client closes, a byte budget or a short deadline.
  void linger() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    set_deadline(Deadline::close, std::chrono::seconds(2));
    discard(std::size_t{4} * 1024 * 1024);
  }
  void discard(std::size_t budget) {
    buffer_.consume(buffer_.size());
    socket_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = shared_from_this(), budget](beast::error_code ec, std::size_t n) {
                              if (ec || n >= budget) return self->close();
                              self->discard(budget - n);
                            });
  }

  // Deadlines. A read deadline cancels the pending read (the handler then answers 408: closing
  // the socket would leave a slow client without an answer); a close deadline closes.
  void set_deadline(Deadline kind, std::chrono::milliseconds timeout) {
    deadline_kind_ = kind;
    deadline_ = std::chrono::steady_clock::now() + timeout;
    timed_out_ = false;
    if (!timer_pending_ || deadline_ < timer_at_) arm_timer(deadline_);
  }
  void clear_deadline() noexcept { deadline_kind_ = Deadline::none; }
  void arm_timer(std::chrono::steady_clock::time_point at) {
    timer_at_ = at;
    timer_pending_ = true;
    timer_.expires_at(at);  // a wait still pending completes with a stale generation
    timer_.async_wait([self = shared_from_this(), generation = ++timer_generation_](beast::error_code ec) {
      if (generation != self->timer_generation_) return;
      self->timer_pending_ = false;
      if (!ec && !self->closed_) self->on_timer();
    });
  }
  void on_timer() {
    if (deadline_kind_ == Deadline::none) return;
    if (std::chrono::steady_clock::now() < deadline_) return arm_timer(deadline_);
    if (deadline_kind_ == Deadline::close) return close();
    timed_out_ = true;
    beast::error_code ignored;
    socket_.cancel(ignored);
  }

  void read_request() {
    if (server_.stopping_.load()) return close();
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(boost::none);
    header_checked_ = false;
    set_deadline(Deadline::read, server_.options_.header_timeout);
    if (buffer_.size() > 0) return parse();  // the client sent the next request already
    read_more();
  }

  void read_more() {
    if (timed_out_) return on_read(beast::error::timeout);
    socket_.async_read_some(buffer_.prepare(kReadSize),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              self->on_read(ec);
                            });
  }

  void on_read(beast::error_code ec) {
    if (timed_out_ && (ec == net::error::operation_aborted || ec == beast::error::timeout)) {
      if (!header_checked_) {
        if (buffer_.size() == 0 && !parser_->got_some()) return close();  // an idle keep-alive connection
        return refuse(json_error(Status::request_timeout, "request_timeout",
                                 "request header not received in time", 11, false));
      }
      return refuse(json_error(Status::request_timeout, "request_timeout",
                               "request body not received in time", 11, false));
    }
    if (ec) return close();  // end of stream, reset or cancelled: nobody to answer
    parse();
  }

  // Feeds the buffered bytes to the parser; reads more, refuses, or dispatches the request.
  void parse() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) break;
      if (ec == bhttp::error::header_limit) {
        return refuse(json_error(Status::request_header_fields_too_large, "header_too_large",
                                 "request header exceeds 16 KiB", 11, false));
      }
      if (ec == bhttp::error::body_limit) {
        return refuse(json_error(Status::payload_too_large, "body_too_large",
                                 "request body exceeds the limit of this route", 11, false));
      }
      if (ec) {
        return refuse(json_error(Status::bad_request, "bad_request",
                                 "malformed HTTP request: " + ec.message(), 11, false));
      }
      if (!header_checked_ && parser_->is_header_done()) {
        header_checked_ = true;
        const std::size_t limit = server_.options_.body_limit(parser_->get().target());
        if (parser_->content_length() && *parser_->content_length() > limit) {
          return refuse(json_error(Status::payload_too_large, "body_too_large",
                                   "request body exceeds " + std::to_string(limit) + " bytes", 11,
                                   false));
        }
        parser_->body_limit(limit);
        if (!parser_->is_done()) set_deadline(Deadline::read, server_.options_.body_timeout);
      }
      if (parser_->is_done()) return dispatch();
      if (used == 0) break;
    }
    read_more();
  }

  void dispatch() {
    clear_deadline();
    Request req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    server_.in_flight_.fetch_add(1);
    answered_ = false;
    in_handler_ = true;
    next_after_handler_ = false;
    const Responder respond(shared_from_this(), ++request_);
    try {
      server_.handler_(std::move(req), peer_, respond);
    } catch (const std::exception& e) {
      spdlog::error("http: handler threw: {}", e.what());
      respond(json_error(Status::internal_server_error, "internal_error", "internal error"));
    }
    in_handler_ = false;
    if (next_after_handler_) read_request();
  }

  // On the connection's thread.
  void deliver(std::uint64_t request, Response&& res) {
    if (request != request_ || answered_) return;  // a second answer, or for an earlier request
    answered_ = true;
    keep_after_write_ = keep_alive_ && res.keep_alive() && !server_.stopping_.load();
    res.version(version_);
    res.keep_alive(keep_after_write_);
    serialize(res, version_, server_.options_.server_name, out_);
    if (closed_) return written(net::error::not_connected);
    // Try at once: a small answer normally fits in the socket's send buffer.
    beast::error_code ec;
    const std::size_t sent = socket_.write_some(net::buffer(out_), ec);
    if (!ec && sent == out_.size()) return written({});
    if (ec && ec != net::error::would_block && ec != net::error::try_again) return written(ec);
    set_deadline(Deadline::close, server_.options_.body_timeout);
    net::async_write(socket_, net::buffer(out_.data() + (ec ? 0 : sent), out_.size() - (ec ? 0 : sent)),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->clear_deadline();
                       self->written(ec);
                     });
  }

  void written(beast::error_code ec) {
    server_.in_flight_.fetch_sub(1);
    if (ec || !keep_after_write_) return close();
    if (in_handler_) {
      next_after_handler_ = true;  // dispatch() goes on once the handler returned
      return;
    }
    read_request();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    clear_deadline();
    beast::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  net::io_context& ioc_;
  Server& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool header_checked_ = false;
  std::string out_;  // the answer being written; its capacity is reused
  bool keep_alive_ = true;
  bool keep_after_write_ = true;
  unsigned version_ = 11;
  net::ip::address peer_;
  std::uint64_t request_ = 0;
  bool answered_ = false;
  bool in_handler_ = false;
  bool next_after_handler_ = false;
  bool closed_ = false;

  net::steady_timer timer_;
  std::chrono::steady_clock::time_point timer_at_{};
  std::uint64_t timer_generation_ = 0;
  bool timer_pending_ = false;
  Deadline deadline_kind_ = Deadline::none;
  std::chrono::steady_clock::time_point deadline_{};
  bool timed_out_ = false;
};

void Responder::operator()(Response&& response) const {
  if (session_) {
    session_->answer(request_, std::move(response));
  } else if (send_) {
    send_(std::move(response));
  }
}

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
  net::io_context& ioc = next_context();
  acceptor_.async_accept(ioc, [this, &ioc](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || stopping_.load()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      const std::size_t now = connections_.fetch_add(1) + 1;
      auto session = std::make_shared<Session>(std::move(socket), ioc, *this);
      if (now > options_.max_connections) {
        net::dispatch(session->context(), [session] {
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

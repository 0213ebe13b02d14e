#pragma once
// A loopback HTTP server for the Stripe client tests: answers each request with a handler (rate
// limits injected in front of stripe-mock, pages of fixture objects for pagination and for the
// end-to-end reconcile test). One connection at a time; 127.0.0.1 only.
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace revtrace::testing {

namespace fake_http = boost::beast::http;
using FakeRequest = fake_http::request<fake_http::string_body>;
using FakeResponse = fake_http::response<fake_http::string_body>;

inline FakeResponse fake_json(int status, std::string body) {
  FakeResponse res{static_cast<fake_http::status>(status), 11};
  res.set(fake_http::field::content_type, "application/json");
  res.set("Request-Id", "req_fake");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

class FakeStripe {
 public:
  explicit FakeStripe(std::function<FakeResponse(const FakeRequest&)> handler)
      : handler_(std::move(handler)),
        acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeStripe() {
    stop_ = true;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
  }
  FakeStripe(const FakeStripe&) = delete;
  FakeStripe& operator=(const FakeStripe&) = delete;

  [[nodiscard]] std::string base_url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  [[nodiscard]] std::vector<FakeRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      boost::asio::ip::tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) continue;
      boost::beast::flat_buffer buffer;
      FakeRequest req;
      fake_http::read(socket, buffer, req, ec);
      if (ec) continue;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req);
      }
      auto res = handler_(req);
      fake_http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  std::function<FakeResponse(const FakeRequest&)> handler_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<FakeRequest> requests_;
  std::thread thread_;
};

// Forwards a request to `base` (http://host:port) and returns its answer (for a proxy in front
// of stripe-mock).
inline FakeResponse forward(const FakeRequest& req, const std::string& base) {
  const auto hostport = base.substr(7);
  const auto colon = hostport.rfind(':');
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  boost::beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
  auto copy = req;
  copy.set(fake_http::field::host, hostport);
  fake_http::write(stream, copy);
  boost::beast::flat_buffer buffer;
  FakeResponse res;
  fake_http::read(stream, buffer, res);
  return res;
}

}  // namespace revtrace::testing

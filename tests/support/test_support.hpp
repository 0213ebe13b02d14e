#pragma once
// Shared helpers of revtrace's integration tests: the real Kafka broker started by the ctest
// fixture (deploy/kafka/start.sh), child processes of the `revtrace` binary, a small HTTP client,
// topic readers and deadline-bound waiting. Never bare sleeps: wait_until polls a condition.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace revtrace::testing {

// The bootstrap address of the test broker. Fails the test run loudly (throws) when the fixture
// did not start one: there is no silent fallback to anything else.
[[nodiscard]] std::string kafka_bootstrap();
// Path of the revtrace binary under test.
[[nodiscard]] std::string revtrace_binary();
// A fresh temporary directory (removed by the caller if wanted).
[[nodiscard]] std::string temp_dir(const std::string& prefix);
// Unique token for site ids, group ids, visitor ids of one test run.
[[nodiscard]] std::string unique(const std::string& prefix);
[[nodiscard]] std::uint16_t free_port();

bool wait_until(std::chrono::milliseconds timeout, const std::function<bool()>& condition,
                std::chrono::milliseconds interval = std::chrono::milliseconds(50));

class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               const std::string& log_file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  void signal(int sig);
  // Waits for exit; returns the exit status (or 128+signal), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  [[nodiscard]] bool running();
  [[nodiscard]] int pid() const noexcept { return pid_; }
  [[nodiscard]] std::string log() const;

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::string log_file_;
};

struct HttpResult {
  int status = 0;  // 0 = connection failed
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};
[[nodiscard]] HttpResult http_request(std::uint16_t port, const std::string& method,
                                      const std::string& target, const std::string& body = {},
                                      const std::map<std::string, std::string>& headers = {});
// One keep-alive HTTP/1.1 connection to 127.0.0.1:port for many requests in a row (load through
// the gateway without a TCP handshake per event). Reconnects when the server closed it; a request
// that fails on the wire answers status 0, like http_request. Not thread-safe: one per thread.
class HttpConnection {
 public:
  explicit HttpConnection(std::uint16_t port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  [[nodiscard]] HttpResult request(const std::string& method, const std::string& target,
                                   const std::string& body = {},
                                   const std::map<std::string, std::string>& headers = {});

 private:
  struct Impl;
  Impl* impl_;
};
// Sum of consumer lag and number of partitions that `revtrace processor`'s /metrics on `port`
// reports ({-1, 0} when it does not answer).
[[nodiscard]] std::pair<std::int64_t, int> processor_lag(std::uint16_t port);
// Waits until GET target answers 200.
bool wait_for_http(std::uint16_t port, const std::string& target, std::chrono::milliseconds timeout);

struct TopicRecord {
  std::string key;
  std::string value;
  int partition = 0;
  std::int64_t offset = 0;
};
// Reads every committed record of `topic` from the beginning (read_committed), until the end of
// every partition is reached.
[[nodiscard]] std::vector<TopicRecord> read_topic(const std::string& bootstrap,
                                                  const std::string& topic);
// The high watermark of each of `topic`'s first `partitions` partitions (-1 where unknown).
[[nodiscard]] std::vector<std::int64_t> end_offsets(const std::string& bootstrap,
                                                    const std::string& topic, int partitions);
// Produces records (key, value) and waits until the broker acknowledged them.
void produce(const std::string& bootstrap, const std::string& topic,
             const std::vector<std::pair<std::string, std::string>>& records);

// HMAC-SHA256 Stripe-Signature header "t=<t>,v1=<hex>" for a payload and secret.
[[nodiscard]] std::string stripe_signature(const std::string& payload, const std::string& secret,
                                           std::int64_t timestamp);

}  // namespace revtrace::testing

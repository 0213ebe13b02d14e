#include "tests/support/test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace revtrace::testing {

namespace fs = std::filesystem;

std::string kafka_bootstrap() {
  const char* file = std::getenv("REVTRACE_TEST_BOOTSTRAP_FILE");
  if (file == nullptr) {
    throw std::runtime_error(
        "REVTRACE_TEST_BOOTSTRAP_FILE is not set: Kafka tests must run under ctest, whose "
        "fixture starts a real broker with deploy/kafka/start.sh");
  }
  std::ifstream in(file);
  std::string bootstrap;
  if (!(in >> bootstrap) || bootstrap.empty()) {
    throw std::runtime_error(std::string("no Kafka broker: ") + file +
                             " is missing or empty (did deploy/kafka/start.sh fail?)");
  }
  return bootstrap;
}

std::string revtrace_binary() {
  const char* bin = std::getenv("REVTRACE_BINARY");
  if (bin == nullptr) throw std::runtime_error("REVTRACE_BINARY is not set");
  return bin;
}

std::string unique(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  std::ostringstream s;
  s << prefix << "-" << ::getpid() << "-" << std::hex << (rd() & 0xffffff) << "-" << counter++;
  return s.str();
}

std::string temp_dir(const std::string& prefix) {
  auto dir = fs::temp_directory_path() / unique(prefix);
  fs::create_directories(dir);
  return dir.string();
}

namespace {
// Whether a server could listen on 127.0.0.1:port now.
bool bindable(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}
}  // namespace

std::uint16_t free_port() {
  // Below the kernel's ephemeral range: a port handed out there (bind to port 0) can be taken by
  // any process's next outgoing connection (Kafka clients open many) before our server binds it.
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  const int low = 10000;
  const int high = std::max(low + 1000, ephemeral_low) - 1;
  static std::mt19937 rng(std::random_device{}());
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(std::uniform_int_distribution<int>(low, high)(rng));
    if (bindable(port)) return port;
  }
  throw std::runtime_error("free_port: no free port in " + std::to_string(low) + ".." + std::to_string(high));
}

bool wait_until(std::chrono::milliseconds timeout, const std::function<bool()>& condition,
                std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env,
                           const std::string& log_file)
    : log_file_(log_file) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (running()) {
    signal(SIGKILL);
    (void)wait(std::chrono::seconds(10));
  }
}

void ChildProcess::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

bool ChildProcess::running() {
  if (status_) return false;
  int st = 0;
  const int r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  wait_until(timeout, [&] { return !running(); }, std::chrono::milliseconds(10));
  return status_;
}

std::string ChildProcess::log() const {
  std::ifstream in(log_file_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

HttpResult http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body, const std::map<std::string, std::string>& headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  HttpResult result;
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      result.headers[name] = std::string(field.value());
    }
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception&) {
    result.status = 0;
  }
  return result;
}

struct HttpConnection::Impl {
  explicit Impl(std::uint16_t p) : port(p) {}
  std::uint16_t port;
  boost::asio::io_context ioc;
  std::optional<boost::beast::tcp_stream> stream;
  boost::beast::flat_buffer buffer;

  HttpResult once(const std::string& method, const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    if (!stream) {
      stream.emplace(ioc);
      stream->expires_after(std::chrono::seconds(30));
      stream->connect(
          boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
      buffer.clear();
    }
    stream->expires_after(std::chrono::seconds(30));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body() = body;
      req.prepare_payload();
    }
    http::write(*stream, req);
    http::response<http::string_body> res;
    http::read(*stream, buffer, res);
    HttpResult result;
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      result.headers[name] = std::string(field.value());
    }
    if (!res.keep_alive()) close();
    return result;
  }
  void close() {
    if (!stream) return;
    boost::beast::error_code ec;
    stream->socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream.reset();
  }
};

HttpConnection::HttpConnection(std::uint16_t port) : impl_(new Impl(port)) {}
HttpConnection::~HttpConnection() {
  impl_->close();
  delete impl_;
}

HttpResult HttpConnection::request(const std::string& method, const std::string& target,
                                   const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  // A kept-alive connection the server closed in the meantime fails on first use: one retry on a
  // fresh connection. Callers that retry further must make their requests idempotent.
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      return impl_->once(method, target, body, headers);
    } catch (const std::exception&) {
      impl_->close();
    }
  }
  return HttpResult{};
}

bool wait_for_http(std::uint16_t port, const std::string& target, std::chrono::milliseconds timeout) {
  return wait_until(timeout, [&] { return http_request(port, "GET", target).status == 200; },
                    std::chrono::milliseconds(100));
}

namespace {
struct Rk {
  rd_kafka_t* rk = nullptr;
  ~Rk() {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};
rd_kafka_t* make_client(rd_kafka_type_t type, const std::map<std::string, std::string>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  return rk;
}
}  // namespace

std::vector<TopicRecord> read_topic(const std::string& bootstrap, const std::string& topic) {
  Rk c;
  c.rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                         {"group.id", unique("test-reader")},
                                         {"isolation.level", "read_committed"},
                                         {"enable.auto.commit", "false"},
                                         {"enable.partition.eof", "true"}});
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(c.rk, topic.c_str(), nullptr);
  if (rd_kafka_metadata(c.rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_topic_destroy(t);
    throw std::runtime_error("metadata for " + topic + " failed");
  }
  const int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(c.rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<TopicRecord> out;
  // Done when every partition is at its end: a set, so that a partition reporting its end twice
  // does not stand in for another; a record after a partition's end (one that arrived meanwhile)
  // waits for that partition's next end.
  std::set<int> at_end;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (static_cast<int>(at_end.size()) < partitions) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("timed out reading " + topic);
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 200);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert(m->partition);
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      at_end.erase(m->partition);
      TopicRecord r;
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
      r.partition = m->partition;
      r.offset = m->offset;
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c.rk);
  return out;
}

std::vector<std::int64_t> end_offsets(const std::string& bootstrap, const std::string& topic,
                                      int partitions) {
  Rk c;
  c.rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap}, {"group.id", unique("test-ends")}});
  std::vector<std::int64_t> ends;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = -1;
    if (rd_kafka_query_watermark_offsets(c.rk, topic.c_str(), p, &low, &high, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      high = -1;
    }
    ends.push_back(high);
  }
  return ends;
}

void produce(const std::string& bootstrap, const std::string& topic,
             const std::vector<std::pair<std::string, std::string>>& records) {
  Rk p;
  p.rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                         {"partitioner", "murmur2_random"},
                                         {"enable.idempotence", "true"}});
  for (const auto& [k, v] : records) {
    const auto err = rd_kafka_producev(
        p.rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(k.data(), k.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error(rd_kafka_err2str(err));
  }
  if (rd_kafka_flush(p.rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("produce to " + topic + " not acknowledged in 30 s");
  }
}

std::string stripe_signature(const std::string& payload, const std::string& secret,
                             std::int64_t timestamp) {
  const std::string signed_payload = std::to_string(timestamp) + "." + payload;
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_payload.data()), signed_payload.size(), mac,
       &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[mac[i] >> 4];
    hex += kHex[mac[i] & 0xf];
  }
  return "t=" + std::to_string(timestamp) + ",v1=" + hex;
}

std::pair<std::int64_t, int> processor_lag(std::uint16_t port) {
  const auto r = http_request(port, "GET", "/metrics");
  if (r.status != 200) return {-1, 0};
  std::int64_t sum = 0;
  int partitions = 0;
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("revtrace_processor_consumer_lag{")) continue;
    sum += std::stoll(line.substr(line.rfind(' ') + 1));
    ++partitions;
  }
  return {sum, partitions};
}

}  // namespace revtrace::testing

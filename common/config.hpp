#pragma once
// Configuration of every revtrace service, read from one TOML file (deploy/revtrace.example.toml
// documents every key), then overridden by REVTRACE_<SECTION>_<KEY> environment variables, then by
// `--set section.key=value` flags. Per-site settings live in [[sites]] tables of the file only.
//
// Loading throws ConfigError with a message naming the key: configuration errors are start-up
// failures, never hot-path ones.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::common {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SiteConfig {
  std::string id;
  std::vector<std::string> webhook_secrets;   // whsec_..., several while rotating
  std::vector<std::string> allowed_origins;   // CORS for the pixel; "*" allows any
  std::vector<std::string> query_tokens;      // bearer tokens of the query API
  std::int64_t lookback_days = 90;
  std::int64_t idle_margin_days = 30;         // anonymous visitors expire after lookback + this
  std::vector<std::string> visitor_id_keys;   // extra metadata keys (e.g. attribu_visitor_id)
  std::vector<std::string> session_id_keys;
  std::vector<std::string> own_domains;
  std::vector<std::string> affiliate_params;  // empty = the defaults
  std::string email_hash_key;                 // HMAC key of email hashes; empty = derived from id
  std::string stripe_api_key;                 // restricted read-only key for reconciliation
  std::string stripe_links_api_key;           // key allowed to create Payment Links; empty = stripe_api_key
  std::string stripe_api_base = "https://api.stripe.com";  // stripe-mock in tests: http://127.0.0.1:12111
};

struct KafkaConfig {
  std::string bootstrap = "127.0.0.1:9092";
  int partitions = 6;
  int replication_factor = 1;
  // Prepended to every topic name (default none). Lets several independent revtrace deployments
  // (or test runs) share one cluster; the names after the prefix are the public contract.
  std::string topic_prefix;
  // Extra librdkafka properties for every client (security.protocol, sasl.*, ...).
  std::map<std::string, std::string> client_properties;
};

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;  // 0 = one io_context thread per core
  std::size_t max_body_bytes = 256 * 1024;
  std::size_t max_webhook_body_bytes = 1024 * 1024;
  std::size_t max_batch = 100;
  std::size_t max_connections = 10000;
  std::int64_t header_timeout_ms = 10000;
  std::int64_t body_timeout_ms = 30000;
  std::int64_t webhook_ack_timeout_ms = 5000;
  std::int64_t webhook_tolerance_s = 300;
  std::size_t producer_queue_max = 100000;
  std::string trusted_country_header;  // e.g. CF-IPCountry
  std::string maxmind_db;              // path of a MaxMind-format country database
  // Header carrying the visitor's address for the maxmind_db lookup when the gateway sits behind
  // a load balancer or proxy (e.g. X-Forwarded-For: its right-most entry, the one the nearest
  // proxy appended). Empty = the TCP peer's address. When set, a request without a parsable
  // address in it gets no country (the peer is then the proxy, whose country says nothing).
  std::string client_ip_header;
};

struct ProcessorConfig {
  std::string data_dir = "/var/lib/revtrace/processor";
  std::string group_id = "revtrace-processor";
  // Stable identity of this instance: its transactional.id is <group_id>-<instance_id>, so a
  // restarted instance fences its own zombie. Empty = derived from the host name and data_dir.
  std::string instance_id;
  std::string metrics_listen = "127.0.0.1:9101";
  std::int64_t transaction_interval_ms = 100;
  // Output generation: every attributed-revenue record carries it, and consumers order revisions
  // by (generation, revision). Bump it (and run `revtrace replay`) to recompute everything after
  // a rule change: the new results then supersede the old ones.
  std::int64_t generation = 1;
  // Processing threads. Partition number p is always processed by thread p % threads (its own
  // state cache and engines), so results do not depend on the count; 0 = one per core.
  std::int64_t threads = 0;
  // A checkpoint of at least this many bytes (a replay's, a catch-up's) is written as a table file
  // and ingested into RocksDB instead of through the WAL and the memtable; shared by the threads.
  // 0: every checkpoint (processor.exactly_once.scale runs an instance so).
  std::int64_t checkpoint_ingest_bytes = 16 << 20;
  // Event-time alignment (processor/README.md): at most this many redirect and Stripe records
  // wait in memory for an earlier topic to deliver up to their Kafka timestamp (each keeps its
  // fetched message set in memory); 0 turns the alignment off.
  std::int64_t event_time_max_waiting = 50000;
  // A partition's records stop waiting after this long.
  std::int64_t event_time_max_wait_ms = 120000;
};

struct QueryConfig {
  std::string listen = "127.0.0.1:8081";
  std::string data_dir = "/var/lib/revtrace/query";
  std::string group_id = "revtrace-query";
};

struct Config {
  KafkaConfig kafka;
  GatewayConfig gateway;
  ProcessorConfig processor;
  QueryConfig query;
  std::string log_level = "info";
  std::vector<SiteConfig> sites;

  [[nodiscard]] const SiteConfig* find_site(std::string_view id) const noexcept;
};

// Sources of overrides, in increasing priority: file < environment < `--set` flags.
struct ConfigSources {
  std::optional<std::string> file;                 // path of the TOML file
  std::vector<std::string> environment;            // "NAME=value" entries (usually environ)
  std::vector<std::string> assignments;            // "section.key=value"
};

[[nodiscard]] Config load_config(const ConfigSources& sources);
[[nodiscard]] Config parse_config_text(std::string_view toml_text, const ConfigSources& overrides);
[[nodiscard]] std::vector<std::string> process_environment();

// "host:port" → parts; throws ConfigError naming `what` when malformed.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
};
[[nodiscard]] Endpoint parse_endpoint(std::string_view text, std::string_view what);

}  // namespace revtrace::common

#include "common/config.hpp"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <toml++/toml.h>

extern char** environ;

namespace revtrace::common {
namespace {

using Setter = std::function<void(Config&, std::string_view value)>;

struct Field {
  std::string_view path;  // "section.key" (or "key" for top-level keys)
  Setter set;
};

template <typename Int>
Int parse_int(std::string_view path, std::string_view text) {
  Int value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) {
    throw ConfigError("config: " + std::string(path) + " must be an integer, got '" +
                      std::string(text) + "'");
  }
  return value;
}

#define REVTRACE_STR(path, member) \
  Field{path, [](Config& c, std::string_view v) { c.member = std::string(v); }}
#define REVTRACE_INT(path, member)                                                    \
  Field{path, [](Config& c, std::string_view v) {                                     \
          c.member = parse_int<std::remove_reference_t<decltype(c.member)>>(path, v); \
        }}

const std::vector<Field>& fields() {
  static const std::vector<Field> table{
      REVTRACE_STR("log_level", log_level),
      REVTRACE_STR("kafka.bootstrap", kafka.bootstrap),
      REVTRACE_INT("kafka.partitions", kafka.partitions),
      REVTRACE_INT("kafka.replication_factor", kafka.replication_factor),
      REVTRACE_STR("kafka.topic_prefix", kafka.topic_prefix),
      REVTRACE_STR("gateway.listen", gateway.listen),
      REVTRACE_INT("gateway.threads", gateway.threads),
      REVTRACE_INT("gateway.max_body_bytes", gateway.max_body_bytes),
      REVTRACE_INT("gateway.max_webhook_body_bytes", gateway.max_webhook_body_bytes),
      REVTRACE_INT("gateway.max_batch", gateway.max_batch),
      REVTRACE_INT("gateway.max_connections", gateway.max_connections),
      REVTRACE_INT("gateway.header_timeout_ms", gateway.header_timeout_ms),
      REVTRACE_INT("gateway.body_timeout_ms", gateway.body_timeout_ms),
      REVTRACE_INT("gateway.webhook_ack_timeout_ms", gateway.webhook_ack_timeout_ms),
      REVTRACE_INT("gateway.webhook_tolerance_s", gateway.webhook_tolerance_s),
      REVTRACE_INT("gateway.producer_queue_max", gateway.producer_queue_max),
      REVTRACE_STR("gateway.trusted_country_header", gateway.trusted_country_header),
      REVTRACE_STR("gateway.maxmind_db", gateway.maxmind_db),
      REVTRACE_STR("gateway.client_ip_header", gateway.client_ip_header),
      REVTRACE_STR("processor.data_dir", processor.data_dir),
      REVTRACE_STR("processor.group_id", processor.group_id),
      REVTRACE_STR("processor.instance_id", processor.instance_id),
      REVTRACE_STR("processor.metrics_listen", processor.metrics_listen),
      REVTRACE_INT("processor.transaction_interval_ms", processor.transaction_interval_ms),
      REVTRACE_INT("processor.generation", processor.generation),
      REVTRACE_INT("processor.threads", processor.threads),
      REVTRACE_INT("processor.checkpoint_ingest_bytes", processor.checkpoint_ingest_bytes),
      REVTRACE_INT("processor.event_time_max_waiting", processor.event_time_max_waiting),
      REVTRACE_INT("processor.event_time_max_wait_ms", processor.event_time_max_wait_ms),
      REVTRACE_STR("query.listen", query.listen),
      REVTRACE_STR("query.data_dir", query.data_dir),
      REVTRACE_STR("query.group_id", query.group_id),
  };
  return table;
}

#undef REVTRACE_STR
#undef REVTRACE_INT

const Field* find_field(std::string_view path) {
  for (const auto& f : fields()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

std::string env_name(std::string_view path) {
  std::string name = "REVTRACE_";
  for (char ch : path) {
    name += ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return name;
}

std::string scalar_text(const toml::node& node, std::string_view path) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (auto b = node.value<bool>()) return *b ? "true" : "false";
  throw ConfigError("config: " + std::string(path) + " must be a string or an integer");
}

std::vector<std::string> string_list(const toml::table& site, std::string_view key,
                                     std::string_view where) {
  std::vector<std::string> out;
  const toml::node* node = site.get(key);
  if (node == nullptr) return out;
  const toml::array* arr = node->as_array();
  if (arr == nullptr) {
    throw ConfigError("config: " + std::string(where) + "." + std::string(key) +
                      " must be an array of strings");
  }
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) {
      throw ConfigError("config: " + std::string(where) + "." + std::string(key) +
                        " must contain only strings");
    }
    out.push_back(*s);
  }
  return out;
}

SiteConfig parse_site(const toml::table& t, std::size_t index) {
  const std::string where = "sites[" + std::to_string(index) + "]";
  static const std::vector<std::string_view> known{
      "id",          "webhook_secrets", "allowed_origins",  "query_tokens",
      "lookback_days", "idle_margin_days", "visitor_id_keys", "session_id_keys", "own_domains",
      "affiliate_params", "email_hash_key", "stripe_api_key",
      "stripe_links_api_key", "stripe_api_base"};
  for (const auto& [k, v] : t) {
    if (std::find(known.begin(), known.end(), k.str()) == known.end()) {
      throw ConfigError("config: unknown key " + where + "." + std::string(k.str()));
    }
  }
  SiteConfig site;
  auto id = t["id"].value<std::string>();
  if (!id || id->empty()) throw ConfigError("config: " + where + ".id is required");
  for (char ch : *id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
      throw ConfigError("config: " + where + ".id '" + *id +
                        "' may only contain letters, digits, '-' and '_'");
    }
  }
  site.id = *id;
  site.webhook_secrets = string_list(t, "webhook_secrets", where);
  site.allowed_origins = string_list(t, "allowed_origins", where);
  site.query_tokens = string_list(t, "query_tokens", where);
  site.visitor_id_keys = string_list(t, "visitor_id_keys", where);
  site.session_id_keys = string_list(t, "session_id_keys", where);
  site.own_domains = string_list(t, "own_domains", where);
  site.affiliate_params = string_list(t, "affiliate_params", where);
  if (const auto* n = t.get("lookback_days")) {
    auto v = n->value<std::int64_t>();
    if (!v || *v < 1 || *v > 3650) {
      throw ConfigError("config: " + where + ".lookback_days must be an integer in 1..3650");
    }
    site.lookback_days = *v;
  }
  if (const auto* n = t.get("idle_margin_days")) {
    auto v = n->value<std::int64_t>();
    if (!v || *v < 1 || *v > 3650) {
      throw ConfigError("config: " + where + ".idle_margin_days must be an integer in 1..3650");
    }
    site.idle_margin_days = *v;
  }
  site.email_hash_key = t["email_hash_key"].value_or(std::string{});
  site.stripe_api_key = t["stripe_api_key"].value_or(std::string{});
  site.stripe_links_api_key = t["stripe_links_api_key"].value_or(std::string{});
  site.stripe_api_base = t["stripe_api_base"].value_or(std::string("https://api.stripe.com"));
  for (const auto& secret : site.webhook_secrets) {
    if (secret.empty()) throw ConfigError("config: " + where + ".webhook_secrets has an empty secret");
  }
  return site;
}

void apply(Config& config, std::string_view path, std::string_view value) {
  if (path.starts_with("kafka.client_properties.")) {
    config.kafka.client_properties[std::string(path.substr(24))] = std::string(value);
    return;
  }
  const Field* f = find_field(path);
  if (f == nullptr) throw ConfigError("config: unknown key '" + std::string(path) + "'");
  f->set(config, value);
}

void apply_table(Config& config, const toml::table& root) {
  for (const auto& [key, node] : root) {
    const std::string_view k = key.str();
    if (k == "sites") continue;
    if (const auto* section = node.as_table()) {
      for (const auto& [sub, value] : *section) {
        const std::string path = std::string(k) + "." + std::string(sub.str());
        if (path == "kafka.client_properties") {
          const auto* props = value.as_table();
          if (props == nullptr) throw ConfigError("config: kafka.client_properties must be a table");
          for (const auto& [pk, pv] : *props) {
            config.kafka.client_properties[std::string(pk.str())] =
                scalar_text(pv, path + "." + std::string(pk.str()));
          }
          continue;
        }
        apply(config, path, scalar_text(value, path));
      }
    } else {
      apply(config, k, scalar_text(node, k));
    }
  }
  if (const auto* sites = root.get("sites")) {
    const auto* arr = sites->as_array();
    if (arr == nullptr) throw ConfigError("config: sites must be an array of tables ([[sites]])");
    std::size_t i = 0;
    for (const auto& item : *arr) {
      const auto* t = item.as_table();
      if (t == nullptr) throw ConfigError("config: sites must be an array of tables ([[sites]])");
      config.sites.push_back(parse_site(*t, i++));
    }
  }
}

void apply_overrides(Config& config, const ConfigSources& sources) {
  for (const auto& entry : sources.environment) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || !entry.starts_with("REVTRACE_")) continue;
    const std::string_view name(entry.data(), eq);
    const std::string_view value(entry.data() + eq + 1, entry.size() - eq - 1);
    for (const auto& f : fields()) {
      if (env_name(f.path) == name) f.set(config, value);
    }
  }
  for (const auto& assignment : sources.assignments) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos) {
      throw ConfigError("config: --set expects section.key=value, got '" + assignment + "'");
    }
    apply(config, std::string_view(assignment).substr(0, eq),
          std::string_view(assignment).substr(eq + 1));
  }
}

void validate(const Config& config) {
  if (config.kafka.partitions < 1) throw ConfigError("config: kafka.partitions must be >= 1");
  if (config.kafka.replication_factor < 1) {
    throw ConfigError("config: kafka.replication_factor must be >= 1");
  }
  if (config.processor.threads < 0 || config.processor.threads > 64) {
    throw ConfigError("config: processor.threads must be in 0..64 (0 = one per core)");
  }
  if (config.processor.checkpoint_ingest_bytes < 0) {
    throw ConfigError("config: processor.checkpoint_ingest_bytes must be >= 0");
  }
  if (config.processor.event_time_max_waiting < 0) {
    throw ConfigError("config: processor.event_time_max_waiting must be >= 0 (0 = no alignment)");
  }
  if (config.processor.event_time_max_wait_ms < 0) {
    throw ConfigError("config: processor.event_time_max_wait_ms must be >= 0");
  }
  for (std::size_t i = 0; i < config.sites.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (config.sites[i].id == config.sites[j].id) {
        throw ConfigError("config: site '" + config.sites[i].id + "' is defined twice");
      }
    }
  }
}

}  // namespace

const SiteConfig* Config::find_site(std::string_view id) const noexcept {
  for (const auto& s : sites) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

Config parse_config_text(std::string_view toml_text, const ConfigSources& overrides) {
  Config config;
  try {
    const toml::table root = toml::parse(toml_text);
    apply_table(config, root);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "config: " << e.description() << " at line " << e.source().begin.line;
    throw ConfigError(msg.str());
  }
  apply_overrides(config, overrides);
  validate(config);
  return config;
}

Config load_config(const ConfigSources& sources) {
  std::string text;
  if (sources.file) {
    std::ifstream in(*sources.file, std::ios::binary);
    if (!in) throw ConfigError("config: cannot read " + *sources.file);
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  return parse_config_text(text, sources);
}

std::vector<std::string> process_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("REVTRACE_")) out.emplace_back(*e);
  }
  return out;
}

Endpoint parse_endpoint(std::string_view text, std::string_view what) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    throw ConfigError("config: " + std::string(what) + " must be host:port, got '" +
                      std::string(text) + "'");
  }
  Endpoint ep;
  ep.host = std::string(text.substr(0, colon));
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') {
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  }
  unsigned port = 0;
  const auto digits = text.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || ptr != digits.data() + digits.size() || port > 65535) {
    throw ConfigError("config: " + std::string(what) + " has an invalid port in '" +
                      std::string(text) + "'");
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

}  // namespace revtrace::common

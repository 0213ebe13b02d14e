#include <catch2/catch.hpp>

#include "common/config.hpp"

using revtrace::common::ConfigError;
using revtrace::common::ConfigSources;
using revtrace::common::parse_config_text;

TEST_CASE("config: file values, then environment, then --set", "[config]") {
  const char* text = R"(
log_level = "debug"
[kafka]
bootstrap = "file:1"
partitions = 12
[kafka.client_properties]
"security.protocol" = "ssl"
[gateway]
listen = "127.0.0.1:9000"
[[sites]]
id = "acme"
webhook_secrets = ["whsec_a", "whsec_b"]
query_tokens = ["tok"]
lookback_days = 30
visitor_id_keys = ["attribu_visitor_id"]
)";
  ConfigSources overrides;
  overrides.environment = {"REVTRACE_KAFKA_BOOTSTRAP=env:2", "REVTRACE_GATEWAY_LISTEN=0.0.0.0:1",
                           "UNRELATED=1"};
  overrides.assignments = {"gateway.listen=127.0.0.1:7"};
  const auto c = parse_config_text(text, overrides);
  CHECK(c.log_level == "debug");
  CHECK(c.kafka.bootstrap == "env:2");
  CHECK(c.kafka.partitions == 12);
  CHECK(c.kafka.client_properties.at("security.protocol") == "ssl");
  CHECK(c.gateway.listen == "127.0.0.1:7");
  REQUIRE(c.sites.size() == 1);
  CHECK(c.sites[0].webhook_secrets == std::vector<std::string>{"whsec_a", "whsec_b"});
  CHECK(c.sites[0].lookback_days == 30);
  CHECK(c.find_site("acme") != nullptr);
  CHECK(c.find_site("other") == nullptr);
}

TEST_CASE("config: gateway.client_ip_header from the file, the environment or --set", "[config]") {
  const char* text = "[gateway]\nmaxmind_db = \"/geo.mmdb\"\nclient_ip_header = \"X-Forwarded-For\"\n";
  CHECK(parse_config_text("", {}).gateway.client_ip_header.empty());  // default: the TCP peer
  CHECK(parse_config_text(text, {}).gateway.client_ip_header == "X-Forwarded-For");
  CHECK(parse_config_text(text, {}).gateway.maxmind_db == "/geo.mmdb");
  ConfigSources env;
  env.environment = {"REVTRACE_GATEWAY_CLIENT_IP_HEADER=X-Real-IP"};
  CHECK(parse_config_text(text, env).gateway.client_ip_header == "X-Real-IP");
  env.assignments = {"gateway.client_ip_header=CF-Connecting-IP"};
  CHECK(parse_config_text(text, env).gateway.client_ip_header == "CF-Connecting-IP");
}

TEST_CASE("config: errors name the offending key", "[config]") {
  auto error_of = [](const char* text, ConfigSources o = {}) -> std::string {
    try {
      (void)parse_config_text(text, o);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK_THAT(error_of("[kafka]\npartitions = \"many\""),
             Catch::Contains("kafka.partitions must be an integer"));
  CHECK_THAT(error_of("[gateway]\nlisen = \"x\""), Catch::Contains("unknown key 'gateway.lisen'"));
  CHECK_THAT(error_of("[[sites]]\nwebhook_secrets = []"), Catch::Contains("sites[0].id is required"));
  CHECK_THAT(error_of("[[sites]]\nid = \"a b\""), Catch::Contains("may only contain"));
  CHECK_THAT(error_of("[[sites]]\nid = \"a\"\n[[sites]]\nid = \"a\""),
             Catch::Contains("defined twice"));
  CHECK_THAT(error_of("[[sites]]\nid = \"a\"\ncolour = 1"),
             Catch::Contains("unknown key sites[0].colour"));
  CHECK_THAT(error_of("[kafka\n"), Catch::Contains("at line"));
  CHECK_THAT(error_of("[processor]\nthreads = -1"), Catch::Contains("processor.threads must be in 0..64"));
  CHECK_THAT(error_of("[processor]\nthreads = 65"), Catch::Contains("processor.threads must be in 0..64"));
  CHECK(parse_config_text("[processor]\nthreads = 3", {}).processor.threads == 3);
  CHECK_THAT(error_of("[processor]\ncheckpoint_ingest_bytes = -1"),
             Catch::Contains("processor.checkpoint_ingest_bytes must be >= 0"));
  CHECK(parse_config_text("[processor]\ncheckpoint_ingest_bytes = 0", {}).processor.checkpoint_ingest_bytes == 0);
  CHECK(parse_config_text("", {}).processor.checkpoint_ingest_bytes == 16 << 20);
  CHECK_THAT(error_of("[processor]\nevent_time_max_waiting = -1"),
             Catch::Contains("processor.event_time_max_waiting must be >= 0"));
  CHECK_THAT(error_of("[processor]\nevent_time_max_wait_ms = -5"),
             Catch::Contains("processor.event_time_max_wait_ms must be >= 0"));
  CHECK(parse_config_text("", {}).processor.event_time_max_waiting == 50000);
  CHECK(parse_config_text("", {}).processor.event_time_max_wait_ms == 120000);
  CHECK(parse_config_text("[processor]\nevent_time_max_waiting = 0", {}).processor.event_time_max_waiting == 0);
  ConfigSources bad_set;
  bad_set.assignments = {"novalue"};
  CHECK_THAT(error_of("", bad_set), Catch::Contains("--set expects"));
}

TEST_CASE("config: endpoints", "[config]") {
  using revtrace::common::parse_endpoint;
  CHECK(parse_endpoint("127.0.0.1:8080", "x").port == 8080);
  CHECK(parse_endpoint("[::1]:1", "x").host == "::1");
  CHECK_THROWS_AS(parse_endpoint("nohost", "x"), ConfigError);
  CHECK_THROWS_AS(parse_endpoint("h:99999", "x"), ConfigError);
}

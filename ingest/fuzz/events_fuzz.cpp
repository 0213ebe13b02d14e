// libFuzzer target: request bodies. Whatever the bytes, the parsers answer with a status and
// never crash; what they accept becomes valid JSON records; a Stripe event body survives in its
// record byte for byte.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/event_parser.hpp"

using namespace revtrace::ingest;

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

bool known(std::string_view site) { return site == "shop" || site == "blog"; }

void check_records(const EventParse& p) {
  require(p.status == 202 || p.status == 400 || p.status == 404 || p.status == 413);
  require((p.status == 202) != p.records.empty());
  require(p.status == 202 || !p.error.empty());
  thread_local simdjson::dom::parser parser;
  for (const auto& r : p.records) {
    simdjson::dom::element doc;
    require(!parser.parse(r.value).get(doc));
    std::string_view site;
    require(!doc["site_id"].get(site) && site == r.site_id && known(site));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  RequestContext ctx;
  ctx.received_at = 1'700'000'000'000;
  ctx.device = parse_user_agent(input.substr(0, 200));

  check_records(parse_events(input, ctx, 5, known));

  // The same bytes as the GIF's decoded query: key=value pairs separated by '&'.
  std::vector<std::pair<std::string, std::string>> params;
  std::string_view rest = input;
  while (!rest.empty() && params.size() < 32) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    params.emplace_back(std::string(pair.substr(0, eq)),
                        eq == std::string_view::npos ? std::string{} : std::string(pair.substr(eq + 1)));
  }
  check_records(parse_query_event(params, ctx, known));

  const auto stripe = stripe_event_record("shop", input, 1);
  if (stripe) {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    require(!parser.parse(stripe.value).get(doc));
    std::string_view payload;
    require(!doc["payload"].get(payload) && payload == input);
    std::string_view id;
    require(!doc["event_id"].get(id) && id == stripe.event_id);
  }
  return 0;
}

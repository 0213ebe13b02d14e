#include "projections/read_model.hpp"

#include <rocksdb/write_batch.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <stdexcept>

namespace revtrace::projections {
namespace {

constexpr char kSep = '\x1f';  // separates key parts (escaped inside parts, see join)
const std::vector<std::string_view> kModels{"first_touch", "last_touch",     "last_non_direct",
                                            "linear",      "position_based", "time_decay"};
const std::vector<std::string_view> kTouchDims{"channel",  "source",   "medium",
                                               "campaign", "referrer", "landing_path",
                                               "country",  "browser",  "device_class"};
const std::vector<std::string_view> kPaymentDims{"method", "all"};
constexpr std::string_view kUnattributed = "(unattributed)";
constexpr std::string_view kNone = "(none)";

// 128-bit intermediate products keep credit * net exact for any 64-bit amounts.
__extension__ using Int128 = __int128;

struct Amounts {
  std::int64_t revenue = 0;
  std::int64_t net = 0;
  std::int64_t payments = 0;
  void add(const Amounts& o, std::int64_t sign = 1) {
    revenue += sign * o.revenue;
    net += sign * o.net;
    payments += sign * o.payments;
  }
  [[nodiscard]] bool zero() const { return revenue == 0 && net == 0 && payments == 0; }
};

std::string encode(const Amounts& a) {
  return std::to_string(a.revenue) + "," + std::to_string(a.net) + "," + std::to_string(a.payments);
}

Amounts decode(std::string_view s) {
  Amounts a;
  std::int64_t* fields[] = {&a.revenue, &a.net, &a.payments};
  std::size_t pos = 0;
  for (auto* f : fields) {
    const auto end = std::min(s.find(',', pos), s.size());
    std::from_chars(s.data() + pos, s.data() + end, *f);
    pos = end + 1;
  }
  return a;
}

// Key parts may hold anything a record or an ad-spend entry carries (a UTM value decoded from a
// URL can contain any byte), so each part is escaped: kSep and kEsc become kEsc followed by the
// byte + 0x40. The escaped part never contains kSep, the escaping is injective, and parts without
// either byte (every id, day and ordinary value) are stored as they are.
constexpr char kEsc = '\x1e';

void append_part(std::string& k, std::string_view part) {
  for (const char c : part) {
    if (c == kSep || c == kEsc) {
      k += kEsc;
      k += static_cast<char>(c + 0x40);
    } else {
      k += c;
    }
  }
}

std::string join(std::initializer_list<std::string_view> parts) {
  std::string k;
  bool first = true;
  for (auto p : parts) {
    if (!first) k += kSep;
    first = false;
    append_part(k, p);
  }
  return k;
}

// The parts of a key built by join, unescaped.
std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out(1);
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == kSep) {
      out.emplace_back();
    } else if (s[i] == kEsc && i + 1 < s.size()) {
      out.back() += static_cast<char>(s[++i] - 0x40);
    } else {
      out.back() += s[i];
    }
  }
  return out;
}

std::string_view mode_name(bool live) { return live ? "live" : "test"; }

// Net credits: the gross credits scaled by net/amount, largest remainder, ties to the earlier touch.
std::vector<std::int64_t> scale(const std::vector<std::int64_t>& credits, std::int64_t amount,
                                std::int64_t net) {
  std::vector<std::int64_t> out(credits.size(), 0);
  if (amount <= 0) return out;
  std::int64_t assigned = 0;
  std::vector<std::pair<Int128, std::size_t>> rem;
  for (std::size_t i = 0; i < credits.size(); ++i) {
    const Int128 p = static_cast<Int128>(credits[i]) * net;
    out[i] = static_cast<std::int64_t>(p / amount);
    assigned += out[i];
    rem.emplace_back(p % amount, i);
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (std::size_t j = 0; assigned < net && j < rem.size(); ++j, ++assigned) ++out[rem[j].second];
  return out;
}

using Filters = std::vector<std::pair<std::string, std::string>>;

std::string_view touch_value(simdjson::dom::element touch, std::string_view dim) {
  auto field = touch[dim];
  if (field.error() || !field.is_string()) return kNone;
  std::string_view v = field.get_string().value();
  return v.empty() ? kNone : v;
}

// One record's contributions, keyed "model|dim|currency|value", for the given models and
// dimensions, restricted by filters (touch filters select touches, payment filters payments).
std::map<std::string, Amounts> contributions(simdjson::dom::element rec,
                                             const std::vector<std::string_view>& models,
                                             const std::vector<std::string_view>& dims,
                                             const Filters& filters) {
  std::map<std::string, Amounts> out;
  const std::string_view currency = rec["currency"];
  const std::int64_t amount = rec["amount"];
  const std::int64_t net = rec["net"];
  const std::string_view method = rec["method"];
  simdjson::dom::array touches = rec["touches"];
  simdjson::dom::object credits = rec["credits"];
  bool touch_filtered = false;
  for (const auto& [dim, value] : filters) {
    if (dim == "method" && value != method) return out;
    if (is_touch_dimension(dim)) touch_filtered = true;
  }
  std::vector<bool> selected;
  for (auto touch : touches) {
    bool keep = true;
    for (const auto& [dim, value] : filters) {
      if (is_touch_dimension(dim) && touch_value(touch, dim) != value) keep = false;
    }
    selected.push_back(keep);
  }
  const bool unattributed = selected.empty();
  if (unattributed && touch_filtered) {
    for (const auto& [dim, value] : filters) {
      if (is_touch_dimension(dim) && value != kUnattributed) return out;
    }
  }
  for (auto model : models) {
    std::vector<std::int64_t> cr;
    if (!unattributed) {
      for (auto v : credits[model].get_array()) cr.push_back(v.get_int64());
    }
    const auto net_cr = scale(cr, amount, net);
    for (auto dim : dims) {
      std::map<std::string_view, Amounts> per_value;
      if (unattributed) {
        const std::string_view value =
            dim == "method" ? method : (dim == "all" ? std::string_view("all") : kUnattributed);
        per_value[value] = Amounts{amount, net, 1};
      } else {
        std::size_t i = 0;
        for (auto touch : touches) {
          if (selected[i]) {
            const std::string_view value =
                dim == "method" ? method : (dim == "all" ? std::string_view("all") : touch_value(touch, dim));
            auto& a = per_value[value];
            a.revenue += cr[i];
            a.net += net_cr[i];
            a.payments = 1;
          }
          ++i;
        }
      }
      for (auto& [value, a] : per_value) {
        // A payment counts for a value only when that value earned some of it.
        if (a.revenue == 0 && amount != 0) continue;
        out[join({model, dim, currency, value})].add(a);
      }
    }
  }
  return out;
}

std::int64_t generation_of(simdjson::dom::element rec) {
  std::int64_t g = 0;
  if (rec["generation"].get(g)) return 0;
  return g;
}

std::string index_key(std::string_view site, bool live, std::int64_t paid_at,
                      std::string_view payment) {
  char ts[24];
  std::snprintf(ts, sizeof ts, "%015lld", static_cast<long long>(paid_at));
  return join({"t", site, mode_name(live), utc_day(paid_at), ts, payment});
}

std::vector<BreakdownRow> sorted_rows(std::map<std::pair<std::string, std::string>, Amounts>& acc,
                                      bool by_key) {
  std::vector<BreakdownRow> rows;
  for (auto& [k, a] : acc) {
    if (a.zero()) continue;
    rows.push_back({k.first, k.second, a.revenue, a.net, a.payments});
  }
  if (!by_key) {
    std::stable_sort(rows.begin(), rows.end(), [](const BreakdownRow& a, const BreakdownRow& b) {
      return a.revenue > b.revenue;
    });
  }
  return rows;
}

// Aggregate changes of one write: full aggregate key -> change.
using Delta = std::map<std::string, Amounts>;

// Adds (sign +1) or retracts (sign -1) one record's contributions to every day aggregate.
void accumulate(Delta& delta, std::string_view site, simdjson::dom::element r, std::int64_t sign) {
  const bool live = r["livemode"];
  const std::string day = utc_day(r["paid_at"].get_int64());
  for (auto& [k, a] : contributions(r, kModels, group_by_dimensions(), {})) {
    const auto parts = split(k);  // model, dim, currency, value
    delta[join({"d", site, mode_name(live), parts[0], parts[1], day, parts[2], parts[3]})].add(a, sign);
  }
}

// Folds the changes into the stored aggregates (a zero aggregate is deleted).
void write_delta(rocksdb::DB& db, rocksdb::WriteBatch& batch, const Delta& delta) {
  for (const auto& [k, d] : delta) {
    if (d.zero()) continue;
    Amounts cur;
    std::string v;
    if (db.Get(rocksdb::ReadOptions(), k, &v).ok()) cur = decode(v);
    cur.add(d);
    if (cur.zero()) {
      batch.Delete(k);
    } else {
      batch.Put(k, encode(cur));
    }
  }
}

std::string position_key(std::string_view topic, std::int32_t partition) {
  return join({"o", topic, std::to_string(partition)});
}

void put_position(rocksdb::WriteBatch& batch, const std::optional<TopicPosition>& position) {
  if (position) {
    batch.Put(position_key(position->topic, position->partition), std::to_string(position->offset + 1));
  }
}

void write(rocksdb::DB& db, rocksdb::WriteBatch& batch) {
  const auto s = db.Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) throw std::runtime_error("query: write failed: " + s.ToString());
}

}  // namespace

const std::vector<std::string_view>& group_by_dimensions() {
  static const std::vector<std::string_view> all = [] {
    std::vector<std::string_view> v(kTouchDims);
    v.insert(v.end(), kPaymentDims.begin(), kPaymentDims.end());
    return v;
  }();
  return all;
}

const std::vector<std::string_view>& model_names() { return kModels; }

bool is_touch_dimension(std::string_view dim) {
  return std::find(kTouchDims.begin(), kTouchDims.end(), dim) != kTouchDims.end();
}

std::string utc_day(std::int64_t unix_ms) {
  // Howard Hinnant's civil_from_days.
  std::int64_t z = (unix_ms >= 0 ? unix_ms : unix_ms - 86'399'999) / 86'400'000 + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return buf;
}

bool valid_day(std::string_view day) {
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (day[i] < '0' || day[i] > '9') return false;
  }
  const int month = (day[5] - '0') * 10 + (day[6] - '0');
  const int dom = (day[8] - '0') * 10 + (day[9] - '0');
  return month >= 1 && month <= 12 && dom >= 1 && dom <= 31;
}

ReadModels::ReadModels(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  const auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) throw std::runtime_error("query: cannot open read models " + dir + ": " + s.ToString());
  db_.reset(raw);
}

void ReadModels::drop(const std::string& dir) {
  {
    // Opening takes RocksDB's lock: a running query side on the same directory makes this fail
    // instead of having its files removed underneath it.
    ReadModels in_use_check(dir);
  }
  const auto s = rocksdb::DestroyDB(dir, rocksdb::Options());
  if (!s.ok()) throw std::runtime_error("query: cannot drop read models " + dir + ": " + s.ToString());
}

void ReadModels::skip(const TopicPosition& position) {
  rocksdb::WriteBatch batch;
  put_position(batch, position);
  write(*db_, batch);
}

std::optional<std::int64_t> ReadModels::next_offset(const std::string& topic,
                                                    std::int32_t partition) const {
  std::string v;
  if (!db_->Get(rocksdb::ReadOptions(), position_key(topic, partition), &v).ok()) return std::nullopt;
  std::int64_t offset = 0;
  std::from_chars(v.data(), v.data() + v.size(), offset);
  return offset;
}

std::vector<std::string> ReadModels::dump() const {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().starts_with(std::string("o") + kSep)) continue;
    out.push_back(it->key().ToString() + "=" + it->value().ToString());
  }
  return out;
}

bool ReadModels::apply(std::string_view record, std::string& error,
                       const std::optional<TopicPosition>& position) {
  simdjson::dom::parser parser;
  simdjson::dom::parser previous_parser;
  try {
    simdjson::dom::element rec = parser.parse(record.data(), record.size());
    const std::string_view site = rec["site_id"];
    const std::string_view payment = rec["payment_key"];
    const std::int64_t revision = rec["revision"];
    const std::string pkey = join({"p", site, payment});
    rocksdb::WriteBatch batch;
    Delta delta;
    std::string stored;
    if (db_->Get(rocksdb::ReadOptions(), pkey, &stored).ok()) {
      simdjson::dom::element prev = previous_parser.parse(stored);
      // Revisions are ordered by (generation, revision); a replay with a new generation supersedes.
      if (std::make_pair(generation_of(prev), std::int64_t(prev["revision"])) >=
          std::make_pair(generation_of(rec), revision)) {
        if (position) skip(*position);
        return true;  // an old or repeated revision
      }
      accumulate(delta, site, prev, -1);
      batch.Delete(index_key(site, prev["livemode"].get_bool(), prev["paid_at"].get_int64(), payment));
    }
    accumulate(delta, site, rec, +1);
    write_delta(*db_, batch, delta);
    batch.Put(pkey, std::string(record));
    batch.Put(index_key(site, rec["livemode"].get_bool(), rec["paid_at"].get_int64(), payment), "");
    put_position(batch, position);
    write(*db_, batch);
    return true;
  } catch (const simdjson::simdjson_error& e) {
    error = std::string("malformed attributed-revenue record: ") + e.what();
    if (position) skip(*position);
    return false;
  }
}

void ReadModels::retire(std::string_view key, const std::optional<TopicPosition>& position) {
  const auto slash = key.find('/');
  const std::string_view site = key.substr(0, slash == std::string_view::npos ? 0 : slash);
  const std::string_view payment = slash == std::string_view::npos ? "" : key.substr(slash + 1);
  const std::string pkey = join({"p", site, payment});
  std::string stored;
  if (slash == std::string_view::npos || !db_->Get(rocksdb::ReadOptions(), pkey, &stored).ok()) {
    if (position) skip(*position);
    return;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element prev = parser.parse(stored);
  rocksdb::WriteBatch batch;
  Delta delta;
  accumulate(delta, site, prev, -1);
  write_delta(*db_, batch, delta);
  const bool live = prev["livemode"];
  const std::int64_t paid_at = prev["paid_at"];
  batch.Delete(index_key(site, live, paid_at, payment));
  batch.Delete(pkey);
  put_position(batch, position);
  write(*db_, batch);
}

namespace {

// Visits the records of the time index in [from, to] (days), newest first.
template <typename Visit>
void scan_records(rocksdb::DB& db, const BreakdownQuery& q, Visit&& visit) {
  const std::string prefix = join({"t", q.site, mode_name(q.livemode)}) + kSep;
  const std::string upper = prefix + (q.to_day.empty() ? std::string("9999-99-99") : q.to_day) + '\x7f';
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  simdjson::dom::parser parser;
  for (it->SeekForPrev(upper); it->Valid() && it->key().starts_with(prefix); it->Prev()) {
    const auto parts = split(std::string_view(it->key().data(), it->key().size()));
    if (!q.from_day.empty() && parts[3] < q.from_day) break;
    std::string record;
    if (!db.Get(rocksdb::ReadOptions(), join({"p", q.site, parts[5]}), &record).ok()) continue;
    if (!visit(parser.parse(record), record, std::string(it->key().ToString()))) break;
  }
}

}  // namespace

std::vector<BreakdownRow> ReadModels::breakdown(const BreakdownQuery& q) const {
  std::map<std::pair<std::string, std::string>, Amounts> acc;  // (value, currency)
  if (q.filters.empty()) {
    const std::string prefix = join({"d", q.site, mode_name(q.livemode), q.model, q.group_by}) + kSep;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix + q.from_day); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const auto parts = split(std::string_view(it->key().data(), it->key().size()));
      // d, site, mode, model, dim, day, currency, value
      if (!q.to_day.empty() && parts[5] > q.to_day) break;
      if (!q.currency.empty() && parts[6] != q.currency) continue;
      acc[{std::string(parts[7]), std::string(parts[6])}].add(decode(it->value().ToString()));
    }
  } else {
    scan_records(*db_, q, [&](simdjson::dom::element rec, const std::string&, const std::string&) {
      if (!q.currency.empty() && std::string_view(rec["currency"]) != q.currency) return true;
      for (auto& [k, a] : contributions(rec, {q.model}, {q.group_by}, q.filters)) {
        const auto parts = split(k);
        acc[{std::string(parts[3]), std::string(parts[2])}].add(a);
      }
      return true;
    });
  }
  return sorted_rows(acc, false);
}

std::vector<BreakdownRow> ReadModels::timeseries(const BreakdownQuery& q) const {
  std::map<std::pair<std::string, std::string>, Amounts> acc;  // (day, currency)
  if (q.filters.empty()) {
    const std::string prefix = join({"d", q.site, mode_name(q.livemode), q.model, "all"}) + kSep;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix + q.from_day); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const auto parts = split(std::string_view(it->key().data(), it->key().size()));
      if (!q.to_day.empty() && parts[5] > q.to_day) break;
      if (!q.currency.empty() && parts[6] != q.currency) continue;
      acc[{std::string(parts[5]), std::string(parts[6])}].add(decode(it->value().ToString()));
    }
  } else {
    scan_records(*db_, q, [&](simdjson::dom::element rec, const std::string&, const std::string&) {
      if (!q.currency.empty() && std::string_view(rec["currency"]) != q.currency) return true;
      const std::string day = utc_day(rec["paid_at"].get_int64());
      for (auto& [k, a] : contributions(rec, {q.model}, {"all"}, q.filters)) {
        acc[{day, std::string(split(k)[2])}].add(a);
      }
      return true;
    });
  }
  return sorted_rows(acc, true);
}

PaymentPage ReadModels::payments(const BreakdownQuery& q, std::size_t limit,
                                 const std::string& cursor) const {
  PaymentPage page;
  scan_records(*db_, q, [&](simdjson::dom::element rec, const std::string& raw, const std::string& key) {
    if (!cursor.empty() && key > cursor) return true;  // shown on an earlier page
    if (!q.currency.empty() && std::string_view(rec["currency"]) != q.currency) return true;
    if (!q.filters.empty() && contributions(rec, {q.model}, {"all"}, q.filters).empty()) return true;
    if (page.records.size() == limit) {
      page.next_cursor = key;  // the first record of the next page
      return false;
    }
    page.records.push_back(raw);
    return true;
  });
  return page;
}

namespace {

// Live spend keeps the layout it always had ("s"); spend marked as test-mode money has its own
// prefix, so neither can ever be read as the other.
std::string_view spend_prefix(bool live) { return live ? "s" : "st"; }

// The key part of a spend dimension: s|site|day|channel|source|campaign|currency.
std::size_t spend_field(std::string_view dim) {
  return dim == "channel" ? 3 : dim == "source" ? 4 : dim == "campaign" ? 5 : 0;
}

}  // namespace

bool is_spend_dimension(std::string_view dim) { return spend_field(dim) != 0; }

void ReadModels::apply_spend(const AdSpendEntry& e, const std::optional<TopicPosition>& position) {
  const std::string key = join(
      {spend_prefix(e.livemode), e.site_id, e.day, e.channel, e.source, e.campaign, e.currency});
  rocksdb::WriteBatch batch;
  batch.Put(key, std::to_string(e.amount));
  put_position(batch, position);
  write(*db_, batch);
}

std::vector<BreakdownRow> ReadModels::spend(const BreakdownQuery& q) const {
  for (const auto& [dim, value] : q.filters) {
    if (!is_spend_dimension(dim)) {
      throw std::invalid_argument("ad spend cannot be filtered by " + dim);
    }
  }
  const std::size_t field = spend_field(q.group_by);
  if (field == 0) throw std::invalid_argument("ad spend cannot be grouped by " + q.group_by);
  std::map<std::pair<std::string, std::string>, Amounts> acc;
  const std::string prefix = join({spend_prefix(q.livemode), q.site}) + kSep;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  // An entry not tied to a channel, source or campaign has the value (none) there, as a touch
  // without the field has.
  auto value_of = [](const std::string& part) { return part.empty() ? std::string(kNone) : part; };
  for (it->Seek(prefix + q.from_day); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const auto parts = split(std::string_view(it->key().data(), it->key().size()));
    // s, site, day, channel, source, campaign, currency
    if (!q.to_day.empty() && parts[2] > q.to_day) break;
    if (!q.currency.empty() && parts[6] != q.currency) continue;
    bool keep = true;
    for (const auto& [dim, value] : q.filters) {
      if (value_of(parts[spend_field(dim)]) != value) keep = false;
    }
    if (!keep) continue;
    std::int64_t amount = 0;
    const auto v = it->value();
    std::from_chars(v.data(), v.data() + v.size(), amount);
    auto& a = acc[{value_of(parts[field]), parts[6]}];
    a.revenue += amount;
    a.payments = 1;
  }
  return sorted_rows(acc, false);
}

std::vector<RoasRow> ReadModels::roas(const BreakdownQuery& q) const {
  std::map<std::pair<std::string, std::string>, RoasRow> acc;
  std::map<std::pair<std::string, std::string>, std::set<std::string>> customers;
  scan_records(*db_, q, [&](simdjson::dom::element rec, const std::string&, const std::string&) {
    if (!q.currency.empty() && std::string_view(rec["currency"]) != q.currency) return true;
    // Who paid: the Stripe customer, else the email hash, else the payment itself.
    std::string who;
    auto customer = rec["stripe"]["customer"];
    auto email = rec["email_hash"];
    if (!customer.error() && customer.is_string()) {
      who = "c:" + std::string(customer.get_string().value());
    } else if (!email.error() && email.is_string()) {
      who = "e:" + std::string(email.get_string().value());
    } else {
      who = "p:" + std::string(std::string_view(rec["payment_key"]));
    }
    for (auto& [k, a] : contributions(rec, {q.model}, {q.group_by}, q.filters)) {
      const auto parts = split(k);
      const std::pair<std::string, std::string> key{std::string(parts[3]), std::string(parts[2])};
      auto& row = acc[key];
      row.revenue += a.revenue;
      row.net += a.net;
      row.payments += a.payments;
      customers[key].insert(who);
    }
    return true;
  });
  for (const auto& s : spend(q)) acc[{s.key, s.currency}].spend += s.revenue;
  std::vector<RoasRow> rows;
  for (auto& [k, row] : acc) {
    row.key = k.first;
    row.currency = k.second;
    row.customers = static_cast<std::int64_t>(customers[k].size());
    rows.push_back(row);
  }
  std::stable_sort(rows.begin(), rows.end(), [](const RoasRow& a, const RoasRow& b) {
    return a.spend != b.spend ? a.spend > b.spend : a.revenue > b.revenue;
  });
  return rows;
}

std::optional<std::string> ReadModels::payment(const std::string& site,
                                               const std::string& payment_key) const {
  std::string record;
  if (!db_->Get(rocksdb::ReadOptions(), join({"p", site, payment_key}), &record).ok()) return std::nullopt;
  return record;
}

}  // namespace revtrace::projections

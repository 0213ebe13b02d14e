#include "projections/read_model.hpp"

#include <rocksdb/write_batch.h>
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace revtrace::projections {
namespace {

constexpr std::string_view kSep = "\x1f";  // separates key parts; never occurs in ids
const std::vector<std::string_view> kModels{"first_touch",    "last_touch", "last_non_direct",
                                            "linear",         "position_based", "time_decay"};
const std::vector<std::string_view> kTouchDims{"channel",  "source",  "medium",
                                               "campaign", "referrer", "landing_path",
                                               "country",  "browser", "device_class"};
const std::vector<std::string_view> kPaymentDims{"method"};
constexpr std::string_view kUnattributed = "(unattributed)";
constexpr std::string_view kNone = "(none)";

struct Amounts {
  std::int64_t revenue = 0;
  std::int64_t net = 0;
  std::int64_t payments = 0;
};

std::string encode(const Amounts& a) {
  return std::to_string(a.revenue) + "," + std::to_string(a.net) + "," + std::to_string(a.payments);
}

Amounts decode(const std::string& s) {
  Amounts a;
  const auto c1 = s.find(',');
  const auto c2 = s.find(',', c1 + 1);
  a.revenue = std::stoll(s.substr(0, c1));
  a.net = std::stoll(s.substr(c1 + 1, c2 - c1 - 1));
  a.payments = std::stoll(s.substr(c2 + 1));
  return a;
}

std::string agg_key(std::string_view site, bool live, std::string_view model, std::string_view dim,
                    std::string_view value, std::string_view currency) {
  std::string k = "a";
  for (auto part : {site, std::string_view(live ? "live" : "test"), model, dim, currency, value}) {
    k += kSep;
    k += part;
  }
  return k;
}

// 128-bit intermediate products keep credit * net exact for any 64-bit amounts.
__extension__ using Int128 = __int128;

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

struct Contribution {
  std::map<std::string, Amounts> by_key;
};

// What one record adds to the aggregates.
Contribution contributions(simdjson::dom::element rec) {
  Contribution c;
  const std::string_view site = rec["site_id"];
  const bool live = rec["livemode"];
  const std::string_view currency = rec["currency"];
  const std::int64_t amount = rec["amount"];
  const std::int64_t net = rec["net"];
  const std::string_view method = rec["method"];
  simdjson::dom::array touches = rec["touches"];
  simdjson::dom::object credits = rec["credits"];
  for (auto model : kModels) {
    for (auto dim : kPaymentDims) {
      auto& a = c.by_key[agg_key(site, live, model, dim, method, currency)];
      a.revenue += amount;
      a.net += net;
      a.payments += 1;
    }
    std::vector<std::int64_t> cr;
    if (touches.size() > 0) {
      for (auto v : credits[model].get_array()) cr.push_back(v.get_int64());
    }
    if (cr.empty()) {
      for (auto dim : kTouchDims) {
        auto& a = c.by_key[agg_key(site, live, model, dim, kUnattributed, currency)];
        a.revenue += amount;
        a.net += net;
        a.payments += 1;
      }
      continue;
    }
    const auto net_cr = scale(cr, amount, net);
    for (auto dim : kTouchDims) {
      std::map<std::string, Amounts> per_value;
      std::size_t i = 0;
      for (auto touch : touches) {
        std::string_view value = kNone;
        auto field = touch[dim];
        if (!field.error() && field.is_string()) value = field.get_string().value();
        if (value.empty()) value = kNone;
        auto& a = per_value[std::string(value)];
        a.revenue += cr[i];
        a.net += net_cr[i];
        ++i;
      }
      for (auto& [value, a] : per_value) {
        if (a.revenue == 0 && amount != 0) continue;
        auto& t = c.by_key[agg_key(site, live, model, dim, value, currency)];
        t.revenue += a.revenue;
        t.net += a.net;
        t.payments += 1;
      }
    }
  }
  return c;
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

ReadModels::ReadModels(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  const auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) throw std::runtime_error("query: cannot open read models " + dir + ": " + s.ToString());
  db_.reset(raw);
}

bool ReadModels::apply(std::string_view record, std::string& error) {
  simdjson::dom::parser parser;
  simdjson::dom::parser previous_parser;
  try {
    simdjson::dom::element rec = parser.parse(record.data(), record.size());
    const std::string_view site = rec["site_id"];
    const std::string_view payment = rec["payment_key"];
    const std::int64_t revision = rec["revision"];
    const std::string pkey = "p" + std::string(kSep) + std::string(site) + std::string(kSep) +
                             std::string(payment);
    std::string stored;
    std::map<std::string, Amounts> delta;
    if (db_->Get(rocksdb::ReadOptions(), pkey, &stored).ok()) {
      simdjson::dom::element prev = previous_parser.parse(stored);
      if (std::int64_t(prev["revision"]) >= revision) return true;  // old or repeated revision
      for (auto& [k, a] : contributions(prev).by_key) {
        auto& d = delta[k];
        d.revenue -= a.revenue;
        d.net -= a.net;
        d.payments -= a.payments;
      }
    }
    for (auto& [k, a] : contributions(rec).by_key) {
      auto& d = delta[k];
      d.revenue += a.revenue;
      d.net += a.net;
      d.payments += a.payments;
    }
    rocksdb::WriteBatch batch;
    for (auto& [k, d] : delta) {
      Amounts cur;
      std::string v;
      if (db_->Get(rocksdb::ReadOptions(), k, &v).ok()) cur = decode(v);
      cur.revenue += d.revenue;
      cur.net += d.net;
      cur.payments += d.payments;
      if (cur.revenue == 0 && cur.net == 0 && cur.payments == 0) {
        batch.Delete(k);
      } else {
        batch.Put(k, encode(cur));
      }
    }
    batch.Put(pkey, std::string(record));
    const auto s = db_->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok()) throw std::runtime_error("query: write failed: " + s.ToString());
    return true;
  } catch (const simdjson::simdjson_error& e) {
    error = std::string("malformed attributed-revenue record: ") + e.what();
    return false;
  }
}

std::vector<BreakdownRow> ReadModels::breakdown(const BreakdownQuery& q) const {
  std::string prefix = "a";
  for (std::string_view part : {std::string_view(q.site), std::string_view(q.livemode ? "live" : "test"),
                                std::string_view(q.model), std::string_view(q.group_by)}) {
    prefix += kSep;
    prefix += part;
  }
  prefix += kSep;
  std::vector<BreakdownRow> rows;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string rest = it->key().ToString().substr(prefix.size());
    const auto sep = rest.find(kSep);
    BreakdownRow row;
    row.currency = rest.substr(0, sep);
    row.key = rest.substr(sep + 1);
    if (!q.currency.empty() && row.currency != q.currency) continue;
    const Amounts a = decode(it->value().ToString());
    row.revenue = a.revenue;
    row.net = a.net;
    row.payments = a.payments;
    rows.push_back(std::move(row));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const BreakdownRow& a, const BreakdownRow& b) {
    return a.revenue > b.revenue;
  });
  return rows;
}

}  // namespace revtrace::projections

#include "common/topic_scan.hpp"

#include <set>
#include <vector>

#include "common/kafka.hpp"

namespace revtrace::common::kafka {

std::string scan_topic(const KafkaConfig& config, const std::string& topic, std::int64_t since_ms,
                       std::chrono::milliseconds timeout,
                       const std::function<void(std::string_view, std::string_view)>& each) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  HandlePtr rk;
  try {
    rk = make_handle(RD_KAFKA_CONSUMER, make_conf(config, {{"group.id", "revtrace-topic-scan"},
                                                           {"enable.auto.commit", "false"},
                                                           {"isolation.level", "read_committed"},
                                                           {"enable.partition.eof", "true"}}));
  } catch (const std::exception& e) {
    return std::string("cannot create a Kafka consumer: ") + e.what();
  }
  const rd_kafka_metadata_t* md = nullptr;
  {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
    const auto err = rd_kafka_metadata(rk.get(), 0, rkt, &md, left());
    rd_kafka_topic_destroy(rkt);
    if (err) return "metadata of " + topic + ": " + rd_kafka_err2str(err);
  }
  std::vector<int> partitions;
  if (md->topic_cnt == 1 && !md->topics[0].err) {
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) partitions.push_back(md->topics[0].partitions[i].id);
  }
  const auto topic_err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  rd_kafka_metadata_destroy(md);
  if (partitions.empty()) return "topic " + topic + ": " + rd_kafka_err2str(topic_err);

  PartitionListPtr assignment(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  std::set<int> open;
  for (const int p : partitions) {
    std::int64_t low = 0, high = 0;
    if (auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, left())) {
      return "offsets of " + topic + " partition " + std::to_string(p) + ": " + rd_kafka_err2str(err);
    }
    if (high <= low) continue;
    rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset =
        since_ms > 0 ? since_ms : RD_KAFKA_OFFSET_BEGINNING;
    open.insert(p);
  }
  if (open.empty()) return "";
  if (since_ms > 0) {
    if (auto err = rd_kafka_offsets_for_times(rk.get(), assignment.get(), left())) {
      return "offsets for time in " + topic + ": " + rd_kafka_err2str(err);
    }
    for (int i = 0; i < assignment->cnt; ++i) {
      auto& tp = assignment->elems[i];
      if (tp.offset == RD_KAFKA_OFFSET_END || tp.offset < 0) {
        open.erase(tp.partition);  // nothing at or after since_ms
        tp.offset = RD_KAFKA_OFFSET_END;
      }
    }
    if (open.empty()) return "";
  }
  if (auto err = rd_kafka_assign(rk.get(), assignment.get())) {
    return "assign " + topic + ": " + rd_kafka_err2str(err);
  }
  while (!open.empty()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return "reading " + topic + " took longer than " + std::to_string(timeout.count()) + " ms";
    }
    MessagePtr m(rd_kafka_consumer_poll(rk.get(), 100));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      open.erase(m->partition);
      continue;
    }
    if (m->err) return "reading " + topic + ": " + rd_kafka_message_errstr(m.get());
    each(std::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0),
         std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0));
  }
  return "";
}

}  // namespace revtrace::common::kafka

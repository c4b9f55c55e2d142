// Produce admission: what happens to one produced batch, in one place and
// in this order -
//   1. the partition is healthy and the batch within max_message_bytes;
//   2. validate once (format::check_batch: header, CRC, every record's
//      framing) - nothing below reads unchecked bytes, and the log does not
//      check them again;
//   3. idempotence (producer_state.h): a batch with a producer id is
//      current, fenced, out of order or a duplicate of one already stored
//      (answered with the original offset, after this round's sync);
//   4. the schema rule of the topic (SetTopicSchema): each record with a
//      value carries exactly one ferry.schema-id header naming a schema
//      registered under the topic's subject;
//   5. append (stamps the base offset), and the producer's state notes it.
// Nothing is acknowledged here: settle() gives the final answer once the
// round's sync returned (pipeline.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::broker {

class round;

struct produce_outcome {
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  std::int64_t base_offset = -1;
  bool duplicate = false;       ///< an idempotent retry: stored before at base_offset
  partition* synced = nullptr;  ///< whose sync this round decides the outcome
  std::int32_t records = 0;     ///< appended this round (counted once synced)
  std::size_t bytes = 0;
};

/// Admits one batch produced to `p` (steps 1-5 above).
[[nodiscard]] produce_outcome admit(round& r, partition& p, std::span<std::byte> batch)
    FERRY_REQUIRES(core_thread);

/// After the round's sync: applies a sync failure of the partition to the
/// outcome and counts what was stored (records/bytes in) or refused.
void settle(round& r, produce_outcome& o) FERRY_REQUIRES(core_thread);

}  // namespace ferry::broker

// Decoding and encoding of Ferry's wire envelopes (schemas/protocol/protocol.fbs).
//
// decode_envelope() is the one function that turns bytes from a socket into
// something code may read: size check, FlatBuffers Verifier with explicit
// limits, then semantic checks the Verifier does not do (union type known and
// of the right direction, required vectors present, enum ranges, frame
// references in range and unique, partition and offset signs, topic names).
// Nothing reads an envelope that did not pass it.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"
#include "ferry/protocol/apis.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::protocol {

inline constexpr std::uint16_t kProtocolVersion = 1;

struct limits {
  std::size_t max_envelope_bytes = 4u << 20;  ///< frame 0
  std::size_t max_frames = 4097;              ///< envelope + data frames
  std::uint32_t max_entries = 4096;           ///< entries per produce/fetch/list-offsets request
  std::uint32_t max_depth = 16;               ///< Verifier nesting limit
  std::uint32_t max_tables = 100'000;         ///< Verifier table count limit
};

enum class direction { request, response };

/// Verifies frame 0 of a message that has `frame_count` frames in total.
/// Precondition: `frame0` is 8-byte aligned (FlatBuffers reads it in place);
/// call protocol::ensure_aligned() on a received zmq::message_t first.
/// On failure returns a protocol::errc and, if `why` is non-null, a reason
/// that names the offending field.
[[nodiscard]] result<const wire::Envelope*> decode_envelope(std::span<const std::byte> frame0,
                                                            std::size_t frame_count, direction dir,
                                                            const limits& lim = {},
                                                            std::string* why = nullptr);

/// The request id of a frame holding a verifiable envelope, whatever its
/// body (a type this side does not know, a field that fails a check): lets
/// the broker answer a request it refuses, so the client gets the error
/// instead of waiting out its timeout. nullopt when the frame is not an
/// envelope (then no client can be told). Same alignment precondition as
/// decode_envelope.
[[nodiscard]] std::optional<std::uint64_t> request_id_of(std::span<const std::byte> frame0,
                                                         const limits& lim = {});

/// Topic names: 1..249 characters from [A-Za-z0-9._-], not starting with '.'
/// (reserved for the broker's own directories).
[[nodiscard]] bool valid_topic_name(std::string_view name) noexcept;
/// Group names follow the topic name rules: 1-249 of [A-Za-z0-9._-], no
/// leading '.'.
[[nodiscard]] bool valid_group_name(std::string_view name) noexcept;
/// Schema registry subjects follow the same rules (e.g. "orders-value").
[[nodiscard]] bool valid_subject_name(std::string_view name) noexcept;

/// Idempotency keys (record header kIdempotencyKeyHeader, ledger entries).
inline constexpr std::size_t kMaxIdempotencyKeyBytes = 1024;
inline constexpr std::uint32_t kMaxLedgerKeysPerRequest = 65536;
/// The record header that carries a record's idempotency key.
inline constexpr std::string_view kIdempotencyKeyHeader = "ferry.idempotency-key";

/// Schema registry: binary schemas and their source text, each at most this.
inline constexpr std::size_t kMaxSchemaBytes = 1u << 20;
/// The record header that carries the id of the schema a payload was
/// written with (decimal ASCII, e.g. "17").
inline constexpr std::string_view kSchemaIdHeader = "ferry.schema-id";
/// A dead-letter topic's marker record (runtime/dlq.h): redrive-start,
/// redriven or purged; the broker's audit log records each one.
inline constexpr std::string_view kDlqMarkerHeader = "ferry.dlq-marker";

/// Finishes `fbb` with an envelope around `body` and returns its bytes;
/// `throttle_ms` in a response says how long a quota held it.
[[nodiscard]] std::vector<std::byte> finish_envelope(flatbuffers::FlatBufferBuilder& fbb,
                                                     std::uint64_t request_id, wire::Body type,
                                                     flatbuffers::Offset<void> body,
                                                     std::uint32_t throttle_ms = 0);

inline std::span<const std::byte> as_bytes(const flatbuffers::FlatBufferBuilder& fbb) noexcept {
  return {reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

}  // namespace ferry::protocol

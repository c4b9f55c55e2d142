// Fuzz target: protocol::decode_envelope, the one function that parses
// bytes from a socket. Input: byte 0 = number of extra data frames (mod 8)
// and direction, the rest = frame 0. Invariants: no crash, no sanitizer
// report, and whatever is accepted can be walked completely (every string,
// vector and referenced frame index is in bounds).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ferry/protocol/codec.h"
#include "fuzz_check.h"

namespace {

std::size_t touch(const flatbuffers::String* s) {
  return s ? s->size() + (s->size() ? static_cast<std::size_t>(s->c_str()[s->size() - 1]) : 0) : 0;
}

void walk(const ferry::wire::Envelope* env, std::size_t frames) {
  using namespace ferry::wire;
  std::size_t sink = 0;
  switch (env->body_type()) {
    case Body::ProduceRequest:
      for (auto* e : *env->body_as_ProduceRequest()->entries()) {
        sink += touch(e->topic());
        FERRY_FUZZ_CHECK(e->frame() >= 1 && e->frame() < frames);
        FERRY_FUZZ_CHECK(e->partition() >= 0);
      }
      break;
    case Body::FetchRequest:
      for (auto* e : *env->body_as_FetchRequest()->entries()) sink += touch(e->topic());
      break;
    case Body::ListOffsetsRequest:
      for (auto* e : *env->body_as_ListOffsetsRequest()->entries()) sink += touch(e->topic());
      break;
    case Body::CreateTopicRequest:
      FERRY_FUZZ_CHECK(ferry::protocol::valid_topic_name(
          env->body_as_CreateTopicRequest()->name()->string_view()));
      break;
    case Body::FetchResponse:
      for (auto* r : *env->body_as_FetchResponse()->results()) {
        sink += touch(r->topic()) + touch(r->message());
        FERRY_FUZZ_CHECK(r->frame() < frames);
      }
      break;
    case Body::DescribeTopicResponse: {
      auto* d = env->body_as_DescribeTopicResponse();
      sink += touch(d->name()) + touch(d->message());
      if (d->partitions())
        for (auto* p : *d->partitions()) sink += touch(p->message());
      break;
    }
    default:
      break;
  }
  (void)sink;
}

}  // namespace

bool ferry_fuzz_wire_one(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return false;
  const std::size_t frames = 1 + (data[0] & 7);
  const auto dir =
      (data[0] & 8) ? ferry::protocol::direction::response : ferry::protocol::direction::request;
  // Copy into an aligned buffer, as the broker does for frame 0.
  std::vector<std::uint64_t> aligned((size - 1) / 8 + 1);
  std::memcpy(aligned.data(), data + 1, size - 1);
  std::span<const std::byte> frame0(reinterpret_cast<const std::byte*>(aligned.data()), size - 1);
  ferry::protocol::limits lim;
  lim.max_entries = 64;
  auto env = ferry::protocol::decode_envelope(frame0, frames, dir, lim);
  if (env) walk(env.value(), frames);
  return static_cast<bool>(env);
}

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ferry_fuzz_wire_one(data, size);
  return 0;
}
#endif

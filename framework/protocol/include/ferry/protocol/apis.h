// The native protocol's APIs: every request type with the response it is
// answered with. This is the one list that the codec's checks
// (is_request, decode_envelope), the broker's handler table
// (framework/broker/handlers) and the request metrics follow; tests check
// that each entry has a request check, a response check and exactly one
// handler. Adding a request: the .fbs, an entry here, its checks in
// codec.cc, its handler.
#pragma once

#include <array>
#include <string_view>

#include "ferry/schemas/protocol_generated.h"

namespace ferry::protocol {

struct api {
  wire::Body request;
  wire::Body response;
  std::string_view name;  ///< for metrics and logs: "Produce", "JoinGroup", ...
};

inline constexpr std::array<api, 26> kApis = {{
    {wire::Body::CreateTopicRequest, wire::Body::CreateTopicResponse, "CreateTopic"},
    {wire::Body::DeleteTopicRequest, wire::Body::DeleteTopicResponse, "DeleteTopic"},
    {wire::Body::ListTopicsRequest, wire::Body::ListTopicsResponse, "ListTopics"},
    {wire::Body::DescribeTopicRequest, wire::Body::DescribeTopicResponse, "DescribeTopic"},
    {wire::Body::ProduceRequest, wire::Body::ProduceResponse, "Produce"},
    {wire::Body::FetchRequest, wire::Body::FetchResponse, "Fetch"},
    {wire::Body::ListOffsetsRequest, wire::Body::ListOffsetsResponse, "ListOffsets"},
    {wire::Body::JoinGroupRequest, wire::Body::JoinGroupResponse, "JoinGroup"},
    {wire::Body::HeartbeatRequest, wire::Body::HeartbeatResponse, "Heartbeat"},
    {wire::Body::LeaveGroupRequest, wire::Body::LeaveGroupResponse, "LeaveGroup"},
    {wire::Body::CommitOffsetsRequest, wire::Body::CommitOffsetsResponse, "CommitOffsets"},
    {wire::Body::FetchOffsetsRequest, wire::Body::FetchOffsetsResponse, "FetchOffsets"},
    {wire::Body::ListGroupsRequest, wire::Body::ListGroupsResponse, "ListGroups"},
    {wire::Body::DescribeGroupRequest, wire::Body::DescribeGroupResponse, "DescribeGroup"},
    {wire::Body::DeleteGroupRequest, wire::Body::DeleteGroupResponse, "DeleteGroup"},
    {wire::Body::InitProducerRequest, wire::Body::InitProducerResponse, "InitProducer"},
    {wire::Body::LedgerLookupRequest, wire::Body::LedgerLookupResponse, "LedgerLookup"},
    {wire::Body::RegisterSchemaRequest, wire::Body::RegisterSchemaResponse, "RegisterSchema"},
    {wire::Body::GetSchemaRequest, wire::Body::GetSchemaResponse, "GetSchema"},
    {wire::Body::ListSubjectsRequest, wire::Body::ListSubjectsResponse, "ListSubjects"},
    {wire::Body::SetCompatibilityRequest, wire::Body::SetCompatibilityResponse, "SetCompatibility"},
    {wire::Body::SetTopicSchemaRequest, wire::Body::SetTopicSchemaResponse, "SetTopicSchema"},
    {wire::Body::AlterTopicRequest, wire::Body::AlterTopicResponse, "AlterTopic"},
    {wire::Body::AddAclsRequest, wire::Body::AddAclsResponse, "AddAcls"},
    {wire::Body::RemoveAclsRequest, wire::Body::RemoveAclsResponse, "RemoveAcls"},
    {wire::Body::ListAclsRequest, wire::Body::ListAclsResponse, "ListAcls"},
}};

/// The API whose request is `request`; null for any other body type.
[[nodiscard]] constexpr const api* find_api(wire::Body request) noexcept {
  for (const auto& a : kApis)
    if (a.request == request) return &a;
  return nullptr;
}

/// True for the Body types a client sends.
[[nodiscard]] constexpr bool is_request(wire::Body b) noexcept {
  return find_api(b) != nullptr;
}

/// True for the Body types the broker answers with (ErrorResponse included).
[[nodiscard]] constexpr bool is_response(wire::Body b) noexcept {
  if (b == wire::Body::ErrorResponse) return true;
  for (const auto& a : kApis)
    if (a.response == b) return true;
  return false;
}

// Every body type of the union is a request, a response or ErrorResponse.
static_assert(static_cast<std::size_t>(wire::Body::MAX) == 2 * kApis.size() + 1,
              "a Body type is missing from kApis");

}  // namespace ferry::protocol

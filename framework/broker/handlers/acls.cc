// AddAcls, RemoveAcls, ListAcls (`ferry acls`): the rules of acl.h, changed
// durably before the answer and in force for the next request. authorize()
// has checked alter (describe for the list) on the cluster.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "ferry/core/logging.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

std::vector<acl_rule> rules_of(const flatbuffers::Vector<flatbuffers::Offset<AclRule>>* v) {
  std::vector<acl_rule> out;
  out.reserve(v->size());
  for (const auto* r : *v) out.push_back(protocol::from_wire(*r));
  return out;
}

nlohmann::json audit_target(const std::vector<acl_rule>& rules) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rules) out.push_back(protocol::describe(r));
  return {{"rules", out}};
}

// Add or remove: the same answer and audit line.
template <typename Response, typename Create>
void change_acls(round& r, std::unique_ptr<native_request> q,
                 const flatbuffers::Vector<flatbuffers::Offset<AclRule>>* wire_rules, bool adding,
                 Body type, Create create) FERRY_REQUIRES(core_thread) {
  auto& c = r.core();
  const auto rules = rules_of(wire_rules);
  ErrorCode error = ErrorCode::None;
  std::string message;
  int changed = 0;
  if (!c.acls) {
    error = ErrorCode::InvalidConfig;
    message = "security is off: there are no ACLs to change (docs/security.md)";
  } else {
    std::string why;
    auto done = adding ? c.acls->add(rules, changed, why) : c.acls->remove(rules, changed, why);
    if (!done) {
      error = done.error() == std::errc::invalid_argument ? ErrorCode::InvalidConfig
                                                          : ErrorCode::Internal;
      message = why;
    } else if (changed > 0) {
      for (const auto& x : rules)
        log::get("security")
            ->info("ACL {} by {}: {}", adding ? "added" : "removed",
                   q->principal.empty() ? "anonymous" : q->principal, protocol::describe(x));
    }
  }
  audit(c, *q, adding ? "acl.add" : "acl.remove", audit_target(rules), error, message);
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = create(fbb, error, opt_string(fbb, message), changed);
  q->respond(envelope(fbb, q->id(), type, body.Union()));
}

}  // namespace

void handle_add_acls(round& r, std::unique_ptr<native_request> q) {
  const auto* rules = q->env->body_as_AddAclsRequest()->rules();
  change_acls<AddAclsResponse>(
      r, std::move(q), rules, true, Body::AddAclsResponse,
      [](auto& fbb, ErrorCode e, auto m, int n) { return CreateAddAclsResponse(fbb, e, m, n); });
}

void handle_remove_acls(round& r, std::unique_ptr<native_request> q) {
  const auto* rules = q->env->body_as_RemoveAclsRequest()->rules();
  change_acls<RemoveAclsResponse>(
      r, std::move(q), rules, false, Body::RemoveAclsResponse,
      [](auto& fbb, ErrorCode e, auto m, int n) { return CreateRemoveAclsResponse(fbb, e, m, n); });
}

void handle_list_acls(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto* req = q->env->body_as_ListAclsRequest();
  flatbuffers::FlatBufferBuilder fbb(256);
  if (!c.acls) {
    auto body = CreateListAclsResponse(
        fbb, ErrorCode::InvalidConfig,
        fbb.CreateString("security is off: there are no ACLs (docs/security.md)"));
    q->respond(envelope(fbb, q->id(), Body::ListAclsResponse, body.Union()));
    return;
  }
  const std::string_view who = req->principal() ? req->principal()->string_view() : "";
  std::vector<flatbuffers::Offset<AclRule>> out;
  for (const auto& x : c.acls->rules())
    if (who.empty() || x.principal == who || x.principal == "*")
      out.push_back(protocol::to_wire(fbb, x));
  auto body = CreateListAclsResponse(fbb, ErrorCode::None, 0, fbb.CreateVector(out),
                                     fbb.CreateString(c.acls->file().string()));
  q->respond(envelope(fbb, q->id(), Body::ListAclsResponse, body.Union()));
}

}  // namespace ferry::broker

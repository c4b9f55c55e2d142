// The schema registry (schema_registry.h): register, get, list, set a
// subject's compatibility mode, and bind a topic to a subject with or
// without produce-time validation.
#include <fmt/format.h>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/compatibility.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

std::string_view bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
           : std::string_view();
}

}  // namespace

void handle_register_schema(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto* req = q->env->body_as_RegisterSchemaRequest();
  auto out = c.registry->register_schema(req->subject()->string_view(), bytes_of(req->schema()),
                                         req->source() ? req->source()->string_view() : "",
                                         req->action(), c.cfg.schema_compatibility);
  if (req->action() == SchemaAction::Register)
    audit(c, *q, "schema.register",
          {{"subject", req->subject()->string_view()},
           {"version", out.version},
           {"id", out.id},
           {"created", out.created}},
          out.error, out.message);
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<SchemaFinding>> found;
  for (const auto& f : out.findings)
    found.push_back(CreateSchemaFinding(fbb, fbb.CreateString(schema::to_string(f.f.what)),
                                        opt_string(fbb, f.f.type), opt_string(fbb, f.f.field),
                                        fbb.CreateString(f.f.message), f.against_version,
                                        f.f.is_warning()));
  auto body = CreateRegisterSchemaResponse(fbb, out.error, opt_string(fbb, out.message), out.id,
                                           out.version, found.empty() ? 0 : fbb.CreateVector(found),
                                           out.mode, out.created);
  q->respond(envelope(fbb, q->id(), Body::RegisterSchemaResponse, body.Union()));
}

void handle_get_schema(round& r, std::unique_ptr<native_request> q) {
  auto& reg = *r.core().registry;
  const auto* req = q->env->body_as_GetSchemaRequest();
  const stored_schema* s = nullptr;
  std::int32_t version = -1;
  std::string subject;
  std::string missing;
  if (req->subject()) {
    subject = req->subject()->str();
    s = reg.by_subject(subject, req->version(), &version);
    if (s == nullptr)
      missing = reg.subject(subject) == nullptr
                    ? fmt::format("unknown subject {}", subject)
                    : fmt::format("subject {} has no version {}", subject, req->version());
  } else {
    s = reg.by_id(req->id());
    if (s != nullptr) {
      subject = s->subject;
      version = s->version;
    } else {
      missing = fmt::format("no schema with id {}", req->id());
    }
  }
  flatbuffers::FlatBufferBuilder fbb(256);
  flatbuffers::Offset<GetSchemaResponse> body;
  if (s == nullptr) {
    const bool no_subject = req->subject() && reg.subject(subject) == nullptr;
    body = CreateGetSchemaResponse(
        fbb, no_subject ? ErrorCode::UnknownSubject : ErrorCode::UnknownSchema,
        fbb.CreateString(missing));
  } else {
    auto bfbs =
        fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(s->bfbs.data()), s->bfbs.size());
    body = CreateGetSchemaResponse(fbb, ErrorCode::None, 0, s->id, fbb.CreateString(subject),
                                   version, bfbs, opt_string(fbb, s->source),
                                   fbb.CreateString(s->root_type), s->registered_ms);
  }
  q->respond(envelope(fbb, q->id(), Body::GetSchemaResponse, body.Union()));
}

void handle_list_subjects(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<SubjectSummary>> subjects;
  for (const auto& [name, st] : c.registry->subjects()) {
    if (!may(c, *q, acl_resource::schema, name, acl_op::describe)) continue;
    std::vector<flatbuffers::Offset<SubjectVersion>> versions;
    for (const auto& v : st.versions) {
      const auto* sch = c.registry->by_id(v.id);
      versions.push_back(CreateSubjectVersion(
          fbb, v.version, v.id, sch ? fbb.CreateString(sch->root_type) : 0, v.registered_ms));
    }
    subjects.push_back(CreateSubjectSummary(
        fbb, fbb.CreateString(name), protocol::to_wire(st.own_mode), fbb.CreateVector(versions)));
  }
  auto body = CreateListSubjectsResponse(fbb, fbb.CreateVector(subjects),
                                         protocol::to_wire(c.cfg.schema_compatibility));
  q->respond(envelope(fbb, q->id(), Body::ListSubjectsResponse, body.Union()));
}

void handle_set_compatibility(round& r, std::unique_ptr<native_request> q) {
  const auto* req = q->env->body_as_SetCompatibilityRequest();
  auto done = r.core().registry->set_mode(req->subject()->string_view(), req->mode());
  audit(r.core(), *q, "schema.mode",
        {{"subject", req->subject()->string_view()}, {"mode", EnumNameCompatibility(req->mode())}},
        done ? ErrorCode::None : to_wire(done.error()),
        done ? std::string() : done.error().message());
  flatbuffers::FlatBufferBuilder fbb(128);
  flatbuffers::Offset<SetCompatibilityResponse> body;
  if (done) {
    log::get("broker")->info("schema registry: subject {} compatibility := {}",
                             req->subject()->string_view(), EnumNameCompatibility(req->mode()));
    body = CreateSetCompatibilityResponse(fbb, ErrorCode::None);
  } else {
    body = CreateSetCompatibilityResponse(
        fbb, to_wire(done.error()),
        fbb.CreateString("storing the mode failed: " + done.error().message() +
                         "; the registry log stops after a write or sync error: fix the disk and "
                         "restart the broker"));
  }
  q->respond(envelope(fbb, q->id(), Body::SetCompatibilityResponse, body.Union()));
}

void handle_set_topic_schema(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old rule
  const auto* req = q->env->body_as_SetTopicSchemaRequest();
  const auto name = req->topic()->string_view();
  outcome o;
  auto* t = c.topics.find(name);
  if (t == nullptr) {
    o = {ErrorCode::UnknownTopic, fmt::format("unknown topic {}", name)};
  } else {
    auto s = t->settings;
    s.schema_subject = req->subject() ? req->subject()->str() : std::string();
    s.schema_validation = req->validation();
    o = schema_rule_problem(c, t->name, s);
    if (o) o = c.topics.update(*t, std::move(s));
    if (o)
      log::get("broker")->info("topic {}: schema subject {}, validation {}", t->name,
                               schema_subject_of(t->name, t->settings),
                               t->settings.schema_validation ? "on" : "off");
  }
  audit(c, *q, "topic.schema",
        {{"topic", name},
         {"subject", req->subject() ? req->subject()->string_view() : std::string_view()},
         {"validation", req->validation()}},
        o.error, o.message);
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = CreateSetTopicSchemaResponse(fbb, o.error, opt_string(fbb, o.message));
  q->respond(envelope(fbb, q->id(), Body::SetTopicSchemaResponse, body.Union()));
}

}  // namespace ferry::broker

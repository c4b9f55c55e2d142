#include "core.h"

#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/storage/env.h"
#include "pipeline.h"

namespace ferry::broker {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

}  // namespace

result<void> open_core(broker_core& c, pipeline& line) {
  const auto& cfg = c.cfg;
  FERRY_TRY(c.topics.load());
  std::string why;
  if (!cfg.security.audit_file.empty()) {
    auto a = audit_log::open(cfg.security.audit_file, c.stats, why);
    if (!a) {
      logger()->error("{}", why);
      return a.error();
    }
    c.audit = std::move(a).value();
  }
  if (cfg.security.enabled) {
    // Fail closed: without the users and the rules there is no broker.
    c.users = std::make_unique<user_directory>(cfg.security.users_file);
    if (auto r = c.users->load(why); !r) {
      logger()->error("security.users_file: {}", why);
      return ferry::errc::config_invalid;
    }
    c.acls = std::make_unique<acl_store>(storage::posix_env(), acl_file_of(cfg));
    if (auto r = c.acls->load(why); !r) {
      logger()->error("security.acl_file: {}", why);
      return ferry::errc::config_invalid;
    }
    c.access = std::make_unique<authorizer>(*c.users, *c.acls);
  }
  if (cfg.security.enabled || cfg.quotas.any()) {
    // The users file may give quotas online; without security every
    // client is "anonymous", under [quotas].
    c.quotas = std::make_unique<quota_book>(
        [&c](std::string_view who) {
          return c.users ? c.users->quotas_of(who, c.cfg.quotas) : c.cfg.quotas;
        },
        cfg.quota_max_throttle);
  }
  auto ids = producer_registry::open(storage::posix_env(), cfg.data_dir / "producers", &why);
  if (!ids) {
    logger()->error("cannot open the producer registry: {}",
                    why.empty() ? ids.error().message() : why);
    return ids.error();
  }
  c.producer_ids = std::move(ids).value();
  for (const auto& [_, t] : c.topics.all())
    for (const auto& p : t.partitions)
      c.producer_ids->observe(producer_id(p->producers.max_producer_id()));
  offset_store::options so;
  so.compact_bytes = cfg.offsets_compact_bytes;
  so.flush = cfg.flush;
  so.ledger_retention = cfg.ledger_retention;
  so.ledger_max_keys = static_cast<std::size_t>(cfg.ledger_max_keys);
  const auto offsets_dir = cfg.data_dir / "groups" / "offsets";
  auto store = offset_store::open(storage::posix_env(), offsets_dir, so, system_clock::instance());
  if (!store) {
    logger()->error("cannot open the group offsets at {}: {}", offsets_dir.string(),
                    store.error().message());
    return store.error();
  }
  c.offsets = std::move(store).value();
  auto reg = schema_registry::open(storage::posix_env(), cfg.data_dir / "schemas",
                                   system_clock::instance());
  if (!reg) {
    logger()->error("cannot open the schema registry at {}: {}",
                    (cfg.data_dir / "schemas").string(), reg.error().message());
    return reg.error();
  }
  c.registry = std::move(reg).value();
  group_coordinator::options go;
  go.min_session_timeout = cfg.min_session_timeout;
  go.max_session_timeout = cfg.max_session_timeout;
  // The coordinator calls both on the core thread, from inside its own calls.
  c.groups = std::make_unique<group_coordinator>(
      go,
      [&c](std::string_view t) {
        core_thread.assert_held();
        return c.topics.partition_count(t);
      },
      [&line](std::uint64_t token, join_outcome o) {
        core_thread.assert_held();
        line.finish_join(token, std::move(o));
      });
  // Membership as of the last stop (groups_state.cc): soft state, so a
  // file that cannot be read only costs the members a rejoin.
  const auto members_file = group_members_file(cfg);
  if (std::error_code ec; std::filesystem::exists(members_file, ec)) {
    std::string why_not;
    auto bytes = storage::read_file(storage::posix_env(), members_file);
    const std::string text =
        bytes
            ? std::string(reinterpret_cast<const char*>(bytes.value().data()), bytes.value().size())
            : std::string();
    if (!bytes) {
      logger()->warn("cannot read {}: {}; every group's members join again", members_file.string(),
                     bytes.error().message());
    } else if (const auto n = c.groups->restore(text, std::chrono::steady_clock::now(), &why_not);
               !why_not.empty()) {
      logger()->warn("{} does not parse ({}); every group's members join again",
                     members_file.string(), why_not);
    } else if (n > 0) {
      logger()->info("groups: {} group(s) restored with their members from {}", n,
                     members_file.string());
    }
  }
  return success();
}

}  // namespace ferry::broker

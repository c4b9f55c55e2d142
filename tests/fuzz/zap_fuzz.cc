// Fuzz target: what ferryd authenticates - the ZAP requests its handler
// decides on (security.h: decide_zap), the users file it reads
// (parse_users), and the SASL/SCRAM-SHA-256 messages of Kafka clients
// (scram.h: server_exchange) and SASL/PLAIN logins (parse_plain,
// verify_password) - with the invariants that matter: only the
// exact key of a listed user, offered over CURVE in a well-formed version
// 1.0 request, is admitted, and then as that user; a SCRAM exchange never
// succeeds without the password's proof (which no input can hold: it
// depends on the server's random nonce), and a failed one stays failed; a
// PLAIN login passes only with the password.
//
// Input: byte 0 picks the target (0 mod 4: ZAP request, 6 mod 8: a
// SASL/PLAIN message, 2 mod 8: SCRAM, odd: users file); for a ZAP request
// or SCRAM the rest is frames (messages), each a 1-byte length and its
// bytes, for PLAIN the rest is the message.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ferry/protocol/curve.h"
#include "ferry/protocol/scram.h"
#include "security.h"

namespace {

// One listed user with a fixed key (raw bytes 0..31).
struct fixture {
  std::string raw_key;
  std::string z85;
  std::unique_ptr<ferry::broker::user_directory> users;
  fixture() {
    for (int i = 0; i < 32; ++i) raw_key += static_cast<char>(i);
    z85 = ferry::protocol::z85_of_key(raw_key);
    const auto path = std::filesystem::temp_directory_path() /
                      ("ferry-zap-fuzz-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(path) << "[users.alice]\npublic_key = \"" << z85 << "\"\n";
    users = std::make_unique<ferry::broker::user_directory>(path);
    std::string why;
    if (!users->load(why)) std::abort();
    std::filesystem::remove(path);
  }
};

const fixture& fx() {
  static const fixture f;
  return f;
}

std::vector<std::string> frames_of(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < size) {
    const std::size_t n = data[i++];
    const std::size_t take = std::min(n, size - i);
    out.emplace_back(reinterpret_cast<const char*>(data + i), take);
    i += take;
  }
  return out;
}

}  // namespace

// 0: refused, 1: admitted, 2: users file parsed; aborts on a broken invariant.
int ferry_fuzz_zap_one(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 1) {
    std::string why;
    auto users = ferry::broker::parse_users(
        std::string(reinterpret_cast<const char*>(data + 1), size - 1), "fuzz.toml", why);
    if (!users) return 0;
    for (const auto& u : *users) {
      if (u.name.empty()) std::abort();
      if (!u.public_key.empty() && !ferry::protocol::valid_z85_key(u.public_key)) std::abort();
      if (u.public_key.empty() && u.scram_sha256.empty() && !u.tls_client) std::abort();
    }
    return 2;
  }
  if (data[0] % 8 == 6) {
    // SASL/PLAIN: alice's password is "pw" (one iteration: the fuzzer's
    // time goes to the parser). Only alice with "pw" passes.
    static const auto cred = ferry::protocol::scram::make_credential("pw", 1);
    const std::string_view message(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string why;
    auto login = ferry::protocol::scram::parse_plain(message, why);
    if (!login) {
      if (why.empty()) std::abort();  // a refusal says why
      return 0;
    }
    if (login->user.empty() || login->password.empty() ||
        login->user.find('\0') != std::string::npos ||
        login->password.find('\0') != std::string::npos)
      std::abort();
    const bool ok = ferry::protocol::scram::verify_password(cred, login->password);
    if (ok != (login->password == "pw")) std::abort();
    return ok && login->user == "alice" ? 1 : 0;
  }
  const auto frames = frames_of(data + 1, size - 1);
  if (data[0] % 4 == 2) {
    // alice's password is "pw"; the fuzzer does not know the server nonce.
    static const auto cred = ferry::protocol::scram::make_credential("pw", 4096);
    ferry::protocol::scram::server_exchange ex(
        [](const std::string& user) -> std::optional<ferry::protocol::scram::credential> {
          if (user == "alice") return cred;
          return std::nullopt;
        });
    bool failed = false;
    for (const auto& f : frames) {
      auto step = ex.next(f);
      if (failed && step.ok) std::abort();  // a failed exchange stays failed
      if (!step.ok) {
        failed = true;
        if (step.reply.rfind("e=", 0) != 0) std::abort();  // a refusal is "e=..."
      }
      if (ex.where() == ferry::protocol::scram::server_exchange::state::done) std::abort();
    }
    return 0;
  }
  const auto d = ferry::broker::decide_zap(frames, *fx().users);
  if (d.status != "200") {
    if (!d.user_id.empty()) std::abort();  // a refusal names nobody
    return 0;
  }
  const bool exact =
      frames.size() == 7 && frames[0] == "1.0" && frames[5] == "CURVE" && frames[6] == fx().raw_key;
  if (!exact || d.user_id != "alice:" + fx().z85) std::abort();
  return 1;
}

std::vector<std::vector<std::uint8_t>> ferry_fuzz_zap_seeds() {
  auto request = [](const std::vector<std::string>& frames) {
    std::vector<std::uint8_t> out{0};
    for (const auto& f : frames) {
      out.push_back(static_cast<std::uint8_t>(f.size()));
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  };
  const auto& key = fx().raw_key;
  std::string other = key;
  other[0] = 'x';
  std::vector<std::vector<std::uint8_t>> seeds = {
      request({"1.0", "1", "ferry", "127.0.0.1", "", "CURVE", key}),    // admitted
      request({"1.0", "2", "ferry", "127.0.0.1", "", "CURVE", other}),  // unknown key
      request({"1.0", "3", "ferry", "127.0.0.1", "", "NULL"}),
      request({"1.0", "4", "ferry", "127.0.0.1", "", "PLAIN", "alice", "secret"}),
  };
  const std::string users = "[users.alice]\npublic_key = \"" + fx().z85 +
                            "\"\nsuper_user = true\n[users.bob]\npublic_key = \"" +
                            ferry::protocol::z85_of_key(other) + "\"\n";
  std::vector<std::uint8_t> u{1};
  u.insert(u.end(), users.begin(), users.end());
  seeds.push_back(u);
  // SCRAM: a real client's first message and a final one for it (its proof
  // is for another server nonce, as any fuzzed one is).
  ferry::protocol::scram::client_exchange client("alice", "pw");
  const auto first = client.first();
  const auto final = client
                         .final("r=" + first.substr(first.find("r=") + 2) + "abc,s=" +
                                ferry::protocol::scram::base64_encode("salt") + ",i=4096")
                         .value_or("");
  auto scram = request({first, final});
  scram[0] = 2;
  seeds.push_back(scram);
  auto scram_user = request({"n,,n=bob,r=abcdef", "c=biws,r=abcdefxyz,p=AAAA"});
  scram_user[0] = 2;
  seeds.push_back(scram_user);
  // PLAIN: the right login, a wrong password, an authorization id.
  for (const std::string& m : {std::string("\0alice\0pw", 10), std::string("\0alice\0guess", 13),
                               std::string("bob\0alice\0pw", 12)}) {
    std::vector<std::uint8_t> p{6};
    p.insert(p.end(), m.begin(), m.end());
    seeds.push_back(p);
  }
  // A users file with a certificate-only user and a SCRAM one.
  const std::string more =
      "[users.carol]\ntls_client = true\n[users.dave]\nscram_sha256 = \"" +
      ferry::protocol::scram::format(ferry::protocol::scram::make_credential("pw", 4096, "salt")) +
      "\"\n";
  std::vector<std::uint8_t> m{1};
  m.insert(m.end(), more.begin(), more.end());
  seeds.push_back(m);
  return seeds;
}

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)ferry_fuzz_zap_one(data, size);
  return 0;
}
#endif

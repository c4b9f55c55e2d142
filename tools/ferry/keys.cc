// ferry keys generate NAME: a CURVE key pair for ferryd or a client
// (docs/security.md).
#include <fmt/format.h>

#include <iostream>

#include "cli.h"
#include "commands.h"
#include "ferry/protocol/curve.h"

namespace ferry::cli {

int keys_generate(const globals& g, const std::string& name, const std::string& dir) {
  if (name.empty() || name.size() > 249 ||
      name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          std::string::npos) {
    std::cerr << "error: a key name is 1-249 of [A-Za-z0-9._-] (it is also the user's name in "
                 "the broker's users file)\n";
    return kUsage;
  }
  auto keys = protocol::generate_curve_keys();
  if (!keys) {
    std::cerr << "error: cannot generate a key pair: " << keys.error().message() << "\n";
    return kFailed;
  }
  std::string why;
  if (auto r = protocol::write_key_files(dir, name, keys.value(), why); !r) {
    std::cerr << "error: " << why << "\n";
    return kFailed;
  }
  const auto base = (std::filesystem::path(dir) / name).string();
  if (g.json()) {
    print_json({{"name", name},
                {"key_file", base + ".key"},
                {"public_file", base + ".pub"},
                {"public_key", keys.value().public_key}});
  } else {
    std::cout << fmt::format(
        "wrote {0}.key (the key pair: keep it secret, mode 0600) and {0}.pub\n"
        "public key: {1}\n"
        "to let it in, add to the broker's users file:\n"
        "  [users.{2}]\n  public_key = \"{1}\"\n",
        base, keys.value().public_key, name);
  }
  return kOk;
}

}  // namespace ferry::cli

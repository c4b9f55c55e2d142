// ferry keys generate NAME: a CURVE key pair for ferryd or a client;
// ferry users hash-password NAME: a SASL/SCRAM-SHA-256 entry for the users
// file (docs/security.md).
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include "cli.h"
#include "commands.h"
#include "ferry/protocol/curve.h"
#include "ferry/protocol/scram.h"

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

namespace {

// One line from stdin; on a terminal, asked for without echo.
std::optional<std::string> read_password(const char* prompt) {
  const bool tty = isatty(STDIN_FILENO) != 0;
  termios old{};
  if (tty) {
    std::cerr << prompt << std::flush;
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  if (!got) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int users_hash_password(const globals& g, const std::string& name, int iterations) {
  if (name.empty() || name.size() > 249 ||
      name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          std::string::npos) {
    std::cerr << "error: a user name is 1-249 of [A-Za-z0-9._-]\n";
    return kUsage;
  }
  if (iterations < protocol::scram::kMinIterations || iterations > 10'000'000) {
    std::cerr << fmt::format("error: --iterations must be {} to 10000000\n",
                             protocol::scram::kMinIterations);
    return kUsage;
  }
  auto password = read_password("password: ");
  if (!password || password->empty()) {
    std::cerr << "error: no password: give it on stdin (one line), e.g. from a file: ferry users "
                 "hash-password NAME < password.txt\n";
    return kUsage;
  }
  if (isatty(STDIN_FILENO) != 0) {
    auto again = read_password("again: ");
    if (!again || *again != *password) {
      std::cerr << "error: the two passwords differ\n";
      return kUsage;
    }
  }
  const auto entry =
      protocol::scram::format(protocol::scram::make_credential(*password, iterations));
  if (g.json()) {
    print_json({{"name", name}, {"scram_sha256", entry}});
  } else {
    std::cout << fmt::format("[users.{}]\nscram_sha256 = \"{}\"\n", name, entry);
  }
  return kOk;
}

}  // namespace ferry::cli

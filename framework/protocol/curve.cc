#include "ferry/protocol/curve.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ferry/core/errc.h"

namespace ferry::protocol {

namespace {

std::error_code io_error(int e) {
  return {e, std::generic_category()};
}

// `key = "value"` lines; # comments. Empty when the key is not there.
std::string field(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto eq = line.find('=', first);
    if (eq == std::string::npos) continue;
    auto k = line.substr(first, eq - first);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
    if (k != key) continue;
    const auto open = line.find('"', eq);
    const auto close = open == std::string::npos ? open : line.find('"', open + 1);
    if (close == std::string::npos) return {};
    return line.substr(open + 1, close - open - 1);
  }
  return {};
}

result<std::string> read_text(const std::filesystem::path& file, std::string& why) {
  std::ifstream in(file);
  if (!in) {
    const int e = errno;
    why = fmt::format("cannot read {}: {}", file.string(), std::strerror(e));
    return io_error(e == 0 ? ENOENT : e);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

result<void> write_file(const std::filesystem::path& file, const std::string& text, mode_t mode,
                        std::string& why) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    const int e = errno;
    why = e == EEXIST ? fmt::format("{} exists; keys are never overwritten (move it away first)",
                                    file.string())
                      : fmt::format("cannot write {}: {}", file.string(), std::strerror(e));
    return io_error(e);
  }
  const auto n = ::write(fd, text.data(), text.size());
  const int e = errno;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()) || !synced) {
    why = fmt::format("cannot write {}: {}", file.string(), std::strerror(e));
    return io_error(e == 0 ? EIO : e);
  }
  return success();
}

}  // namespace

bool valid_z85_key(std::string_view z85) noexcept {
  if (z85.size() != 40) return false;
  std::string copy(z85);
  std::uint8_t raw[32];
  return zmq_z85_decode(raw, copy.c_str()) != nullptr;
}

result<curve_keys> generate_curve_keys() {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) return io_error(zmq_errno());
  return curve_keys{pub, sec};
}

result<std::string> public_of(std::string_view secret_z85) {
  if (!valid_z85_key(secret_z85)) return ferry::errc::config_invalid;
  std::string sec(secret_z85);
  char pub[41] = {};
  if (zmq_curve_public(pub, sec.c_str()) != 0) return io_error(zmq_errno());
  return std::string(pub);
}

result<curve_keys> read_key_file(const std::filesystem::path& file, std::string& why) {
  FERRY_TRY(auto text, read_text(file, why));
  curve_keys k{field(text, "public_key"), field(text, "secret_key")};
  if (k.secret_key.empty()) {
    why = fmt::format(
        "{} has no secret_key: give the NAME.key file `ferry keys generate` wrote "
        "(NAME.pub holds only the public half)",
        file.string());
    return ferry::errc::config_invalid;
  }
  if (!valid_z85_key(k.public_key) || !valid_z85_key(k.secret_key)) {
    why = fmt::format("{}: public_key and secret_key must be 40 characters of Z85", file.string());
    return ferry::errc::config_invalid;
  }
  auto derived = public_of(k.secret_key);
  if (!derived || derived.value() != k.public_key) {
    why = fmt::format("{}: public_key is not the public half of secret_key", file.string());
    return ferry::errc::config_invalid;
  }
  return k;
}

result<std::string> read_public_key(const std::string& file_or_z85, std::string& why) {
  if (valid_z85_key(file_or_z85) && !std::filesystem::exists(file_or_z85)) return file_or_z85;
  FERRY_TRY(auto text, read_text(file_or_z85, why));
  auto key = field(text, "public_key");
  if (!valid_z85_key(key)) {
    why = fmt::format(
        "{} has no public_key of 40 Z85 characters (a NAME.pub or NAME.key file "
        "from `ferry keys generate`)",
        file_or_z85);
    return ferry::errc::config_invalid;
  }
  return key;
}

result<void> write_key_files(const std::filesystem::path& dir, const std::string& name,
                             const curve_keys& keys, std::string& why) {
  const auto pub = fmt::format(
      "# CURVE public key \"{}\" (ferry keys generate): hand it to whoever must know it\n"
      "public_key = \"{}\"\n",
      name, keys.public_key);
  const auto pair = fmt::format(
      "# CURVE key pair \"{}\" (ferry keys generate): keep this file secret\n"
      "public_key = \"{}\"\nsecret_key = \"{}\"\n",
      name, keys.public_key, keys.secret_key);
  // The .pub first: a failure leaves no secret behind without its public half.
  FERRY_TRY(write_file(dir / (name + ".pub"), pub, 0644, why));
  if (auto r = write_file(dir / (name + ".key"), pair, 0600, why); !r) {
    std::error_code ec;
    std::filesystem::remove(dir / (name + ".pub"), ec);
    return r.error();
  }
  return success();
}

std::string z85_of_key(std::string_view raw32) {
  if (raw32.size() != 32) return {};
  char out[41] = {};
  zmq_z85_encode(out, reinterpret_cast<const std::uint8_t*>(raw32.data()), 32);
  return out;
}

}  // namespace ferry::protocol

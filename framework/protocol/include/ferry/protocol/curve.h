// CURVE keys (ZeroMQ's CurveZMQ: Curve25519 keys, written in Z85) and the
// files that hold them (docs/security.md):
//
//   NAME.key   public_key = "Z85..."     mode 0600: the pair; keep it secret
//              secret_key = "Z85..."
//   NAME.pub   public_key = "Z85..."     the public half, to hand out
//
// `ferry keys generate NAME` writes both; ferryd reads its pair from
// security.server_key_file, clients read theirs from --key-file and the
// broker's public key from --server-key (a .pub or .key file, or the Z85
// text itself).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "ferry/core/result.h"

namespace ferry::protocol {

struct curve_keys {
  std::string public_key;  ///< 40 characters of Z85
  std::string secret_key;  ///< 40 characters of Z85; empty for a public key alone
};

/// True for 40 characters of Z85 (a 32-byte key).
[[nodiscard]] bool valid_z85_key(std::string_view z85) noexcept;

/// A fresh key pair (libzmq's zmq_curve_keypair, from the OS's randomness).
[[nodiscard]] result<curve_keys> generate_curve_keys();

/// The public key of a secret one (to check a .key file's two halves match).
[[nodiscard]] result<std::string> public_of(std::string_view secret_z85);

/// Reads NAME.key: both halves, which must match. Errors name the file and
/// what is wrong in `why`.
[[nodiscard]] result<curve_keys> read_key_file(const std::filesystem::path& file, std::string& why);

/// A public key: Z85 text as it is, else a .pub or .key file's public_key.
[[nodiscard]] result<std::string> read_public_key(const std::string& file_or_z85, std::string& why);

/// Writes DIR/NAME.key (0600) and DIR/NAME.pub (0644); refuses to replace
/// existing files.
[[nodiscard]] result<void> write_key_files(const std::filesystem::path& dir,
                                           const std::string& name, const curve_keys& keys,
                                           std::string& why);

/// The Z85 text of 32 raw key bytes (a ZAP request carries them raw).
[[nodiscard]] std::string z85_of_key(std::string_view raw32);

}  // namespace ferry::protocol

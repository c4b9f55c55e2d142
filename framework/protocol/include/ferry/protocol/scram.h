// SCRAM-SHA-256 (RFC 5802, RFC 7677): the password check of the Kafka
// listener's SASL (docs/security.md#kafka-clients), and the credential
// `ferry users hash-password` writes into the users file.
//
// The users file keeps no password, only what RFC 5803 stores:
//
//   scram_sha256 = "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"   (base64)
//
// A server_exchange runs one authentication: client-first → server-first,
// client-final → server-final. A user who does not exist gets a salt made
// from the name and a server secret, and fails only at the proof, so the
// exchange does not tell who exists.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::protocol::scram {

inline constexpr std::string_view kMechanism = "SCRAM-SHA-256";
inline constexpr int kDefaultIterations = 8192;
inline constexpr int kMinIterations = 4096;  ///< RFC 7677's minimum

struct credential {
  int iterations = kDefaultIterations;
  std::string salt;        ///< raw bytes
  std::string stored_key;  ///< H(HMAC(SaltedPassword, "Client Key")), 32 bytes
  std::string server_key;  ///< HMAC(SaltedPassword, "Server Key"), 32 bytes
};

/// A credential for `password` with a random 16-byte salt (or `salt`).
[[nodiscard]] credential make_credential(std::string_view password,
                                         int iterations = kDefaultIterations,
                                         std::string_view salt = {});
/// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>".
[[nodiscard]] std::string format(const credential& c);
/// The credential in that text; nullopt with `why`.
[[nodiscard]] std::optional<credential> parse(std::string_view text, std::string& why);

[[nodiscard]] std::string base64_encode(std::string_view bytes);
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

/// Whether `password` is the one `c` was made from (a SASL/PLAIN login,
/// checked against the same stored credential as SCRAM). Constant time in
/// the comparison; the derivation costs c.iterations.
[[nodiscard]] bool verify_password(const credential& c, std::string_view password);

/// SASL/PLAIN (RFC 4616): "[authzid] NUL authcid NUL passwd". Only over TLS
/// (docs/security.md#kafka-clients): the password travels as it is.
inline constexpr std::string_view kPlainMechanism = "PLAIN";
struct plain_login {
  std::string user;
  std::string password;
};
/// The login in a PLAIN message; nullopt with `why` when it is malformed,
/// or names an authorization id other than the user (acting as someone
/// else is not supported).
[[nodiscard]] std::optional<plain_login> parse_plain(std::string_view message, std::string& why);

/// The server's side of one exchange. `lookup` gives a user's credential
/// (nullopt: no such user).
class server_exchange {
 public:
  using lookup_fn = std::function<std::optional<credential>(const std::string& user)>;
  /// `server_nonce`: the server's part of the nonce, random when empty
  /// (tests give one to replay a known exchange).
  explicit server_exchange(lookup_fn lookup, std::string server_nonce = {});

  enum class state { start, sent_first, done, failed };
  struct step {
    bool ok = false;
    std::string reply;  ///< to send (server-first, server-final, or "e=..." on failure)
    std::string why;    ///< for the log and the client's error message on failure
  };
  /// The next client message. After a failure every step fails.
  [[nodiscard]] step next(std::string_view client_message);
  [[nodiscard]] state where() const noexcept { return state_; }
  /// The authenticated user (state done).
  [[nodiscard]] const std::string& user() const noexcept { return user_; }
  /// The credential the user authenticated with (to notice a changed one).
  [[nodiscard]] const credential& used() const noexcept { return cred_; }

 private:
  step fail(std::string why, std::string_view e = "invalid-proof");

  lookup_fn lookup_;
  state state_ = state::start;
  std::string user_;
  bool known_ = false;
  credential cred_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client's + server's
  std::string gs2_header_;
  std::string fixed_nonce_;
};

/// The client's side, for tests and tools: the messages a SCRAM client sends.
class client_exchange {
 public:
  client_exchange(std::string user, std::string password);
  [[nodiscard]] std::string first();
  /// client-final for `server_first`; nullopt when it is malformed.
  [[nodiscard]] std::optional<std::string> final(std::string_view server_first);
  /// Whether server-final proves the server knew the credential.
  [[nodiscard]] bool verify(std::string_view server_final) const;

 private:
  std::string user_, password_, nonce_, first_bare_, auth_message_;
  std::string server_key_;
};

}  // namespace ferry::protocol::scram

#include "ferry/protocol/scram.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <charconv>
#include <stdexcept>

namespace ferry::protocol::scram {

namespace {

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return {reinterpret_cast<const char*>(out.data()), len};
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return {reinterpret_cast<const char*>(out.data()), out.size()};
}

std::string salted_password(std::string_view password, std::string_view salt, int iterations) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                    static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string xor_of(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (std::size_t i = 0; i < a.size(); ++i)
    out[i] = static_cast<char>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  return out;
}

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// "n=alice,r=abc" → the value of `key` among the attributes; nullopt if absent.
std::optional<std::string_view> attribute(std::string_view msg, char key) {
  while (!msg.empty()) {
    const auto comma = msg.find(',');
    const auto part = msg.substr(0, comma);
    if (part.size() >= 2 && part[0] == key && part[1] == '=') return part.substr(2);
    if (comma == std::string_view::npos) break;
    msg.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

// RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    const auto code = s.substr(i + 1, 2);
    if (code == "2C")
      out += ',';
    else if (code == "3D")
      out += '=';
    else
      return std::nullopt;
    i += 2;
  }
  return out;
}

std::string encode_saslname(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out += c;
  }
  return out;
}

// A printable nonce (RFC 5802: printable ASCII but ',').
std::string make_nonce() {
  return base64_encode(random_bytes(18));
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
        static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  const auto rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      std::uint32_t d = 0;
      if (c == '=') {
        // Padding only at the very end, in the last two places.
        if (i + 4 != text.size() || j < 2) return std::nullopt;
        ++pad;
      } else {
        if (pad > 0) return std::nullopt;
        const auto at = kAlphabet.find(c);
        if (at == std::string_view::npos) return std::nullopt;
        d = static_cast<std::uint32_t>(at);
      }
      v = (v << 6) | d;
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

credential make_credential(std::string_view password, int iterations, std::string_view salt) {
  credential c;
  c.iterations = iterations;
  c.salt = salt.empty() ? random_bytes(16) : std::string(salt);
  const auto salted = salted_password(password, c.salt, iterations);
  c.stored_key = sha256(hmac(salted, "Client Key"));
  c.server_key = hmac(salted, "Server Key");
  return c;
}

bool verify_password(const credential& c, std::string_view password) {
  const auto salted = salted_password(password, c.salt, c.iterations);
  return same(sha256(hmac(salted, "Client Key")), c.stored_key);
}

std::optional<plain_login> parse_plain(std::string_view message, std::string& why) {
  const auto first = message.find('\0');
  const auto second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  if (second == std::string_view::npos ||
      message.find('\0', second + 1) != std::string_view::npos) {
    why = "a PLAIN message is [authzid] NUL user NUL password";
    return std::nullopt;
  }
  plain_login l{std::string(message.substr(first + 1, second - first - 1)),
                std::string(message.substr(second + 1))};
  const auto authzid = message.substr(0, first);
  if (l.user.empty() || l.user.size() > 255 || l.password.empty() || l.password.size() > 1024) {
    why = "a PLAIN login needs a user (at most 255 bytes) and a password (at most 1024)";
    return std::nullopt;
  }
  if (!authzid.empty() && authzid != l.user) {
    why = "a PLAIN authorization id other than the user (acting as another user) is not served";
    return std::nullopt;
  }
  return l;
}

std::string format(const credential& c) {
  return fmt::format("{}${}:{}${}:{}", kMechanism, c.iterations, base64_encode(c.salt),
                     base64_encode(c.stored_key), base64_encode(c.server_key));
}

std::optional<credential> parse(std::string_view text, std::string& why) {
  auto bad = [&](std::string_view what) {
    why = fmt::format(
        "not a SCRAM-SHA-256 credential ({}): expected SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:"
        "SERVERKEY, as `ferry users hash-password` prints it",
        what);
    return std::nullopt;
  };
  const std::string prefix = std::string(kMechanism) + "$";
  if (!text.starts_with(prefix)) return bad("it does not start with SCRAM-SHA-256$");
  text.remove_prefix(prefix.size());
  const auto dollar = text.find('$');
  if (dollar == std::string_view::npos) return bad("no second $");
  const auto left = text.substr(0, dollar);
  const auto right = text.substr(dollar + 1);
  const auto c1 = left.find(':');
  const auto c2 = right.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return bad("a : is missing");
  credential c;
  const auto iters = left.substr(0, c1);
  auto [p, ec] = std::from_chars(iters.data(), iters.data() + iters.size(), c.iterations);
  if (ec != std::errc() || p != iters.data() + iters.size()) return bad("bad iteration count");
  if (c.iterations < kMinIterations || c.iterations > 10'000'000)
    return bad(fmt::format("iterations must be {} to 10000000", kMinIterations));
  auto salt = base64_decode(left.substr(c1 + 1));
  auto stored = base64_decode(right.substr(0, c2));
  auto server = base64_decode(right.substr(c2 + 1));
  if (!salt || salt->empty()) return bad("bad salt");
  if (!stored || stored->size() != SHA256_DIGEST_LENGTH) return bad("bad StoredKey");
  if (!server || server->size() != SHA256_DIGEST_LENGTH) return bad("bad ServerKey");
  c.salt = std::move(*salt);
  c.stored_key = std::move(*stored);
  c.server_key = std::move(*server);
  return c;
}

server_exchange::server_exchange(lookup_fn lookup, std::string server_nonce)
    : lookup_(std::move(lookup)), fixed_nonce_(std::move(server_nonce)) {}

server_exchange::step server_exchange::fail(std::string why, std::string_view e) {
  state_ = state::failed;
  return {false, fmt::format("e={}", e), std::move(why)};
}

server_exchange::step server_exchange::next(std::string_view msg) {
  switch (state_) {
    case state::start: {
      // gs2-header: "n,," or "y,," (no channel binding); an authzid, if
      // given, must be the user itself.
      if (!(msg.starts_with("n,") || msg.starts_with("y,")))
        return fail("client-first: channel binding is not supported",
                    "channel-binding-not-supported");
      const auto second = msg.find(',', 2);
      if (second == std::string_view::npos) return fail("client-first: malformed", "other-error");
      const auto authzid = msg.substr(2, second - 2);
      gs2_header_ = std::string(msg.substr(0, second + 1));
      client_first_bare_ = std::string(msg.substr(second + 1));
      if (!client_first_bare_.starts_with("n="))
        return fail("client-first: no user name", "other-error");
      auto name = attribute(client_first_bare_, 'n');
      auto cnonce = attribute(client_first_bare_, 'r');
      if (!name || !cnonce || cnonce->empty() || client_first_bare_.starts_with("m="))
        return fail("client-first: malformed", "other-error");
      auto user = decode_saslname(*name);
      // A users-file name is 1-249 of [A-Za-z0-9._-]; anything else is no
      // user (and never reaches a log line).
      if (user && (user->size() > 249 ||
                   user->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789._-") != std::string::npos))
        user.reset();
      if (!user || user->empty())
        return fail("client-first: bad user name", "invalid-username-encoding");
      if (!authzid.empty() && authzid != "a=" + std::string(*name))
        return fail("client-first: authorization identity differs from the user", "other-error");
      if (attribute(client_first_bare_, 'e') ||
          client_first_bare_.find(",tokenauth=") != std::string::npos)
        return fail("client-first: extensions (delegation tokens) are not supported",
                    "extensions-not-supported");
      user_ = std::move(*user);
      if (auto c = lookup_(user_)) {
        cred_ = std::move(*c);
        known_ = true;
      } else {
        // A salt that does not tell the user is unknown: the same for the
        // same name within this process, unrelated to any real one.
        static const std::string secret = random_bytes(32);
        cred_.iterations = kDefaultIterations;
        cred_.salt = hmac(secret, user_).substr(0, 16);
        known_ = false;
      }
      nonce_ = std::string(*cnonce) + (fixed_nonce_.empty() ? make_nonce() : fixed_nonce_);
      server_first_ =
          fmt::format("r={},s={},i={}", nonce_, base64_encode(cred_.salt), cred_.iterations);
      state_ = state::sent_first;
      return {true, server_first_, {}};
    }
    case state::sent_first: {
      const auto proof_at = msg.rfind(",p=");
      if (proof_at == std::string_view::npos) return fail("client-final: no proof", "other-error");
      const auto without_proof = msg.substr(0, proof_at);
      auto channel = attribute(without_proof, 'c');
      auto nonce = attribute(without_proof, 'r');
      auto proof = base64_decode(msg.substr(proof_at + 3));
      if (!channel || !nonce || !proof) return fail("client-final: malformed", "other-error");
      if (*channel != base64_encode(gs2_header_))
        return fail("client-final: channel binding differs", "channel-bindings-dont-match");
      // RFC 5802 wants the nonce of server-first here. librdkafka (2.0)
      // sends its own nonce in front of it; Kafka's broker accepts any
      // nonce ending with the server's, and so does this.
      if (!nonce->ends_with(nonce_)) return fail("client-final: wrong nonce", "other-error");
      const auto auth_message =
          fmt::format("{},{},{}", client_first_bare_, server_first_, without_proof);
      const auto client_signature = hmac(cred_.stored_key, auth_message);
      if (!known_ || proof->size() != client_signature.size())
        return fail(fmt::format("user {}: invalid credentials", user_));
      const auto client_key = xor_of(*proof, client_signature);
      if (!same(sha256(client_key), cred_.stored_key))
        return fail(fmt::format("user {}: invalid credentials", user_));
      state_ = state::done;
      return {true, "v=" + base64_encode(hmac(cred_.server_key, auth_message)), {}};
    }
    case state::done:
      return fail("the exchange is over", "other-error");
    case state::failed:
      break;
  }
  return fail("the exchange failed before", "other-error");
}

client_exchange::client_exchange(std::string user, std::string password)
    : user_(std::move(user)), password_(std::move(password)), nonce_(make_nonce()) {}

std::string client_exchange::first() {
  first_bare_ = fmt::format("n={},r={}", encode_saslname(user_), nonce_);
  return "n,," + first_bare_;
}

std::optional<std::string> client_exchange::final(std::string_view server_first) {
  auto nonce = attribute(server_first, 'r');
  auto salt64 = attribute(server_first, 's');
  auto iters = attribute(server_first, 'i');
  if (!nonce || !salt64 || !iters || !nonce->starts_with(nonce_)) return std::nullopt;
  auto salt = base64_decode(*salt64);
  int n = 0;
  auto [p, ec] = std::from_chars(iters->data(), iters->data() + iters->size(), n);
  if (!salt || ec != std::errc() || n <= 0) return std::nullopt;
  const auto salted = salted_password(password_, *salt, n);
  const auto client_key = hmac(salted, "Client Key");
  const auto stored_key = sha256(client_key);
  server_key_ = hmac(salted, "Server Key");
  const auto without_proof = fmt::format("c={},r={}", base64_encode("n,,"), *nonce);
  auth_message_ = fmt::format("{},{},{}", first_bare_, server_first, without_proof);
  const auto proof = xor_of(client_key, hmac(stored_key, auth_message_));
  return fmt::format("{},p={}", without_proof, base64_encode(proof));
}

bool client_exchange::verify(std::string_view server_final) const {
  auto v = attribute(server_final, 'v');
  return v && same(*v, base64_encode(hmac(server_key_, auth_message_)));
}

}  // namespace ferry::protocol::scram

#pragma once
// Keyed email hashes and content digests (OpenSSL). Private to revtrace::domain.
#include <string>
#include <string_view>

namespace revtrace::domain {

// Lower-case hex HMAC-SHA256 of the normalised email (see normalise_email) under the site's key.
// Keyed, so a leaked state store or output topic does not let anyone test guessed addresses
// without the key; the raw email is never stored.
[[nodiscard]] std::string email_hash(std::string_view key, std::string_view normalised_email);

// Raw (32-byte) SHA-256 of `data`: a compact fingerprint of an emitted record's content.
[[nodiscard]] std::string sha256(std::string_view data);

}  // namespace revtrace::domain

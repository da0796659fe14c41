#pragma once
// Who may open which hub. Tokens say who the caller is; roles per site say what they may see. KS keeps roles in its
// own database, not in the token, so they come from a RoleDirectory: a JSON file, or a claim for identity servers
// that can put them in the token.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "auth/token_verifier.h"

namespace hubflow::signalr {

// Role codes of the KS API that grant something here; every other code (site_guest, site_mobile_user, ...) is none.
enum class Role { none, site_admin, site_super_user, site_user };

// "site_admin" -> Role::site_admin, and so on; anything else -> Role::none.
Role role_from_code(const std::string& code);
const char* role_code(Role role);

class RoleDirectory {
public:
    virtual ~RoleDirectory() = default;
    // Implementations must be thread-safe and should not throw.
    virtual Role role(const std::string& site_id, const Principal& who) = 0;
};

// Roles from a JSON file: {"SITE": {"USER": "site_admin", ...}, ...}. The file is re-checked (modification time,
// size and inode) at most once per second on lookup; a new version that does not load is reported through on_error,
// once per version, and the previous table stays in force. Thread-safe.
class FileRoleDirectory : public RoleDirectory {
public:
    // Throws std::invalid_argument naming the file and the problem (with line and column for JSON syntax errors).
    explicit FileRoleDirectory(std::string path, std::function<void(const std::string&)> on_error = {});

    Role role(const std::string& site_id, const Principal& who) override;

private:
    using Table = std::map<std::string, std::map<std::string, Role, std::less<>>, std::less<>>;
    struct Stamp {
        std::int64_t mtime_ns = 0;
        std::int64_t size = -1;  // -1: the file could not be examined
        std::uint64_t inode = 0;
        std::uint64_t device = 0;
        bool operator==(const Stamp&) const = default;
    };

    Stamp stamp() const;
    Table parse(const std::string& text) const;  // throws std::invalid_argument
    void refresh_if_due();

    const std::string path_;
    const std::function<void(const std::string&)> on_error_;
    std::mutex mutex_;
    Table table_;
    // The version last looked at (loaded or refused): a new stamp or new content makes a new version.
    Stamp seen_stamp_;
    std::optional<std::size_t> seen_hash_;  // nullopt: the file was missing or unreadable
    // A stamp taken within a moment of the file's modification may not change on the next write (timestamps are
    // coarse), so such a version is read again at the next check and compared by content.
    bool seen_racy_ = false;
    std::chrono::steady_clock::time_point last_check_;
};

// Roles from a claim of the verified token payload holding {"SITE": "ROLE", ...}. The claim may also be a string
// holding that JSON object, as identity servers that only emit string claims write it.
class ClaimRoleDirectory : public RoleDirectory {
public:
    explicit ClaimRoleDirectory(std::string claim = "site_roles");

    Role role(const std::string& site_id, const Principal& who) override;

private:
    const std::string claim_;
};

enum class Hub { entries, incidents };

// The hub an event goes to: entries for kind "entry", incidents for "incident"; none for other kinds or an event
// without a site (no subscription can match it).
inline std::optional<Hub> hub_of(std::string_view kind, std::string_view site_id) {
    if (site_id.empty()) return std::nullopt;
    if (kind == "entry") return Hub::entries;
    if (kind == "incident") return Hub::incidents;
    return std::nullopt;
}

struct AccessDecision {
    int status;          // 0 = allowed, 403 = forbidden, 400 = bad request (empty site_id or user_id)
    std::string reason;  // empty when allowed; a fixed sentence otherwise, safe for a response body
};

// The KS permission table: scope user_api.full_access required; site_admin and site_super_user may open either hub
// for the whole site or any user; site_user only with user_id equal to the caller's own id; anyone else is refused.
AccessDecision authorize(Hub hub, const std::string& site_id, const std::optional<std::string>& requested_user,
                         const Principal& who, RoleDirectory& roles);

}  // namespace hubflow::signalr

#include "auth/roles.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sys/stat.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "auth/jose_util.h"

namespace hubflow::signalr {

namespace {

constexpr auto kCheckInterval = std::chrono::seconds(1);
constexpr std::size_t kMaxRoleFileBytes = 64 * 1024 * 1024;
constexpr const char* kRequiredScope = "user_api.full_access";

const char* hub_name(Hub hub) {
    return hub == Hub::entries ? "entries" : "incidents";
}

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(text);
    if (v.type() != typeid(Poco::JSON::Object::Ptr)) return nullptr;
    return v.extract<Poco::JSON::Object::Ptr>();
}

}  // namespace

Role role_from_code(const std::string& code) {
    if (code == "site_admin") return Role::site_admin;
    if (code == "site_super_user") return Role::site_super_user;
    if (code == "site_user") return Role::site_user;
    return Role::none;
}

const char* role_code(Role role) {
    switch (role) {
        case Role::site_admin:
            return "site_admin";
        case Role::site_super_user:
            return "site_super_user";
        case Role::site_user:
            return "site_user";
        case Role::none:
            break;
    }
    return "none";
}

// ---- FileRoleDirectory ----

namespace {

// Modifications younger than this may share a timestamp with the next write.
constexpr auto kRacyWindow = std::chrono::seconds(2);

bool is_racy(std::int64_t mtime_ns) {
    const auto now_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    return now_ns - mtime_ns < std::chrono::duration_cast<std::chrono::nanoseconds>(kRacyWindow).count();
}

}  // namespace

FileRoleDirectory::FileRoleDirectory(std::string path, std::function<void(const std::string&)> on_error)
    : path_(std::move(path)), on_error_(std::move(on_error)) {
    // Stamp first: if the file changes while it is read, the next check sees a newer stamp and reads it again.
    seen_stamp_ = stamp();
    std::string text;
    try {
        text = detail::read_text_file(path_, kMaxRoleFileBytes);
    } catch (const std::exception& e) {
        throw std::invalid_argument("role file: " + std::string(e.what()));
    }
    table_ = parse(text);
    seen_hash_ = std::hash<std::string>{}(text);
    seen_racy_ = is_racy(seen_stamp_.mtime_ns);
    last_check_ = std::chrono::steady_clock::now();
}

FileRoleDirectory::Stamp FileRoleDirectory::stamp() const {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return Stamp{};
    Stamp s;
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.size = static_cast<std::int64_t>(st.st_size);
    s.inode = static_cast<std::uint64_t>(st.st_ino);
    s.device = static_cast<std::uint64_t>(st.st_dev);
    return s;
}

FileRoleDirectory::Table FileRoleDirectory::parse(const std::string& text) const {
    Poco::JSON::Object::Ptr root;
    try {
        root = parse_object(text);
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument("role file " + path_ + ": " + detail::describe_json_error(text, e.message()));
    }
    if (!root) throw std::invalid_argument("role file " + path_ + ": must be a JSON object of sites");

    Table table;
    for (const auto& [site, users] : *root) {
        if (users.type() != typeid(Poco::JSON::Object::Ptr)) {
            throw std::invalid_argument("role file " + path_ + ": site \"" + site +
                                        "\": must be an object of user ids to role codes");
        }
        auto& site_table = table[site];
        for (const auto& [user, code] : *users.extract<Poco::JSON::Object::Ptr>()) {
            if (!code.isString()) {
                throw std::invalid_argument("role file " + path_ + ": site \"" + site + "\", user \"" + user +
                                            "\": the role must be a string such as \"site_admin\"");
            }
            // Codes this hub does not grant anything for (site_guest, ...) are kept as none, not refused: the file
            // may well be an export of the KS role list.
            site_table[user] = role_from_code(code.extract<std::string>());
        }
    }
    return table;
}

void FileRoleDirectory::refresh_if_due() {
    std::string error;
    {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now - last_check_ < kCheckInterval) return;
        last_check_ = now;

        const Stamp current = stamp();
        if (current == seen_stamp_ && !seen_racy_) return;
        std::optional<std::string> text;
        std::string read_error;
        try {
            text = detail::read_text_file(path_, kMaxRoleFileBytes);
        } catch (const std::exception& e) {
            read_error = e.what();
        }
        const std::optional<std::size_t> hash =
            text ? std::optional<std::size_t>(std::hash<std::string>{}(*text)) : std::nullopt;
        seen_stamp_ = current;
        seen_racy_ = text && is_racy(current.mtime_ns);
        if (hash == seen_hash_) return;  // same content (or still missing): nothing new to load or report
        seen_hash_ = hash;
        if (!text) {
            error = "role file: " + read_error + "; keeping the previous roles";
        } else {
            try {
                table_ = parse(*text);
            } catch (const std::exception& e) {
                error = std::string(e.what()) + "; keeping the previous roles";
            }
        }
    }
    // Outside the lock, so a listener may look roles up itself.
    if (!error.empty() && on_error_) {
        try {
            on_error_(error);
        } catch (...) {
            // A failing listener must not break role lookups.
        }
    }
}

Role FileRoleDirectory::role(const std::string& site_id, const Principal& who) {
    refresh_if_due();
    std::lock_guard lock(mutex_);
    const auto site = table_.find(site_id);
    if (site == table_.end()) return Role::none;
    const auto user = site->second.find(who.user_id);
    return user == site->second.end() ? Role::none : user->second;
}

// ---- ClaimRoleDirectory ----

ClaimRoleDirectory::ClaimRoleDirectory(std::string claim) : claim_(std::move(claim)) {
    if (claim_.empty()) throw std::invalid_argument("role claim: the claim name must not be empty");
}

Role ClaimRoleDirectory::role(const std::string& site_id, const Principal& who) {
    try {
        const auto payload = parse_object(who.claims_json);
        if (!payload || !payload->has(claim_)) return Role::none;
        Poco::JSON::Object::Ptr roles;
        if (payload->isObject(claim_)) {
            roles = payload->getObject(claim_);
        } else if (payload->get(claim_).isString()) {
            roles = parse_object(payload->get(claim_).extract<std::string>());
        }
        if (!roles || !roles->has(site_id) || !roles->get(site_id).isString()) return Role::none;
        return role_from_code(roles->get(site_id).extract<std::string>());
    } catch (const std::exception&) {
        // A claim that does not parse grants nothing.
        return Role::none;
    }
}

// ---- authorize ----

AccessDecision authorize(Hub hub, const std::string& site_id, const std::optional<std::string>& requested_user,
                         const Principal& who, RoleDirectory& roles) {
    if (std::find(who.scopes.begin(), who.scopes.end(), kRequiredScope) == who.scopes.end()) {
        return {403, "missing scope user_api.full_access"};
    }
    if (site_id.empty()) return {400, "missing site_id"};
    if (requested_user && requested_user->empty()) return {400, "empty user_id"};

    Role role = Role::none;
    try {
        role = roles.role(site_id, who);
    } catch (...) {
        // A directory that fails grants nothing.
        role = Role::none;
    }
    switch (role) {
        case Role::site_admin:
        case Role::site_super_user:
            return {0, ""};
        case Role::site_user:
            if (!requested_user) {
                return {403, std::string("site_user may open the ") + hub_name(hub) +
                                 " hub only with user_id set to its own id"};
            }
            if (*requested_user != who.user_id) return {403, "user_id is not the caller's own id"};
            return {0, ""};
        case Role::none:
            break;
    }
    return {403, "no role in this site"};
}

}  // namespace hubflow::signalr

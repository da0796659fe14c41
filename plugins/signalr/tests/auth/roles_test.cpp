// authorize() against every cell of the KS permission table, and the file and claim role directories.

#include "auth/roles.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "auth/token_minter.h"
#include "auth_test_support.h"

namespace hubflow::signalr::testing {
namespace {

constexpr const char* kSite = "site-1";
constexpr const char* kCaller = "caller-id";
constexpr const char* kOtherUser = "other-user-id";

Principal principal(const std::string& user = kCaller, std::vector<std::string> scopes = {"user_api.full_access"}) {
    Principal p;
    p.user_id = user;
    p.scopes = std::move(scopes);
    p.claims_json = "{\"sub\":\"" + user + "\"}";
    return p;
}

// Role codes per (site, user), mapped as the real directories map them.
class MapDirectory : public RoleDirectory {
public:
    std::map<std::pair<std::string, std::string>, std::string> codes;
    Role role(const std::string& site_id, const Principal& who) override {
        const auto it = codes.find({site_id, who.user_id});
        return it == codes.end() ? Role::none : role_from_code(it->second);
    }
};

// ---- the permission table ----

enum class Scope { whole_site, own_user, other_user };

struct Cell {
    std::string code;  // "" = the caller has no entry in the site
    Scope scope;
    Hub hub;
};

bool allowed_by_table(const Cell& c) {
    if (c.code == "site_admin" || c.code == "site_super_user") return true;
    if (c.code == "site_user") return c.scope == Scope::own_user;
    return false;
}

std::string cell_name(const ::testing::TestParamInfo<std::tuple<std::string, Scope, Hub>>& info) {
    static const char* const kScopes[] = {"whole_site", "own_user", "other_user"};
    const std::string code = std::get<0>(info.param).empty() ? "no_role" : std::get<0>(info.param);
    return code + "_" + kScopes[static_cast<int>(std::get<1>(info.param))] + "_" +
           (std::get<2>(info.param) == Hub::entries ? "entries" : "incidents");
}

class PermissionTable : public ::testing::TestWithParam<std::tuple<std::string, Scope, Hub>> {};

TEST_P(PermissionTable, MatchesTheKsTable) {
    const Cell cell{std::get<0>(GetParam()), std::get<1>(GetParam()), std::get<2>(GetParam())};
    MapDirectory roles;
    if (!cell.code.empty()) roles.codes[{kSite, kCaller}] = cell.code;
    std::optional<std::string> user;
    if (cell.scope == Scope::own_user) user = kCaller;
    if (cell.scope == Scope::other_user) user = kOtherUser;

    const AccessDecision d = authorize(cell.hub, kSite, user, principal(), roles);
    if (allowed_by_table(cell)) {
        EXPECT_EQ(d.status, 0) << d.reason;
        EXPECT_EQ(d.reason, "");
    } else {
        EXPECT_EQ(d.status, 403);
        EXPECT_FALSE(d.reason.empty());
    }
    // The same role in another site grants nothing there.
    EXPECT_EQ(authorize(cell.hub, "site-2", user, principal(), roles).status, 403);
}

INSTANTIATE_TEST_SUITE_P(AllCells, PermissionTable,
                         ::testing::Combine(::testing::Values("site_admin", "site_super_user", "site_user",
                                                              "site_guest", "site_mobile_user", "SITE_ADMIN",
                                                              "made_up_code", ""),
                                            ::testing::Values(Scope::whole_site, Scope::own_user, Scope::other_user),
                                            ::testing::Values(Hub::entries, Hub::incidents)),
                         cell_name);

TEST(Authorize, ReasonsSaySomethingUseful) {
    MapDirectory roles;
    roles.codes[{kSite, kCaller}] = "site_user";
    EXPECT_EQ(authorize(Hub::entries, kSite, std::nullopt, principal(), roles).reason,
              "site_user may open the entries hub only with user_id set to its own id");
    EXPECT_EQ(authorize(Hub::incidents, kSite, std::nullopt, principal(), roles).reason,
              "site_user may open the incidents hub only with user_id set to its own id");
    EXPECT_EQ(authorize(Hub::entries, kSite, std::string(kOtherUser), principal(), roles).reason,
              "user_id is not the caller's own id");
    EXPECT_EQ(authorize(Hub::entries, "site-2", std::nullopt, principal(), roles).reason, "no role in this site");
}

TEST(Authorize, ScopeIsRequiredBeforeAnyRole) {
    MapDirectory roles;
    roles.codes[{kSite, kCaller}] = "site_admin";
    for (const auto& scopes : std::vector<std::vector<std::string>>{
             {}, {"openid"}, {"user_api"}, {"user_api.full_access2"}, {"USER_API.FULL_ACCESS"}}) {
        const AccessDecision d = authorize(Hub::entries, kSite, std::nullopt, principal(kCaller, scopes), roles);
        EXPECT_EQ(d.status, 403);
        EXPECT_EQ(d.reason, "missing scope user_api.full_access");
    }
    EXPECT_EQ(
        authorize(Hub::entries, kSite, std::nullopt, principal(kCaller, {"openid", "user_api.full_access"}), roles)
            .status,
        0);
    // Without the scope even a bad request is a 403: nothing is said to a caller without access.
    EXPECT_EQ(authorize(Hub::entries, "", std::nullopt, principal(kCaller, {}), roles).status, 403);
}

TEST(Authorize, EmptySiteOrUserIsABadRequest) {
    MapDirectory roles;
    roles.codes[{kSite, kCaller}] = "site_admin";
    EXPECT_EQ(authorize(Hub::entries, "", std::nullopt, principal(), roles).status, 400);
    EXPECT_EQ(authorize(Hub::incidents, kSite, std::string(), principal(), roles).status, 400);
}

TEST(Authorize, FailingDirectoryGrantsNothing) {
    struct Throwing : RoleDirectory {
        Role role(const std::string&, const Principal&) override { throw std::runtime_error("database down"); }
    } roles;
    const AccessDecision d = authorize(Hub::entries, kSite, std::string(kCaller), principal(), roles);
    EXPECT_EQ(d.status, 403);
    EXPECT_EQ(d.reason.find("database"), std::string::npos);
}

TEST(RoleCodes, MapOnlyTheThreeGrantingCodes) {
    EXPECT_EQ(role_from_code("site_admin"), Role::site_admin);
    EXPECT_EQ(role_from_code("site_super_user"), Role::site_super_user);
    EXPECT_EQ(role_from_code("site_user"), Role::site_user);
    for (const char* other : {"site_guest", "site_mobile_user", "Site_Admin", " site_admin", "", "admin"}) {
        EXPECT_EQ(role_from_code(other), Role::none) << other;
    }
    EXPECT_STREQ(role_code(Role::site_super_user), "site_super_user");
    EXPECT_STREQ(role_code(Role::none), "none");
}

// ---- FileRoleDirectory ----

class FileRoles : public ::testing::Test {
protected:
    TempDir dir;
    std::string path = dir.file("roles.json");
    std::vector<std::string> errors;
    std::mutex errors_mutex;

    std::function<void(const std::string&)> collector() {
        return [this](const std::string& e) {
            std::lock_guard lock(errors_mutex);
            errors.push_back(e);
        };
    }
    static void wait_past_check_interval() { std::this_thread::sleep_for(std::chrono::milliseconds(1100)); }
    std::string what_of_load(const std::string& text) {
        write_file(path, text);
        try {
            FileRoleDirectory roles(path);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(no exception)";
    }
};

TEST_F(FileRoles, LooksUpRolesPerSiteAndUser) {
    write_file(path, R"({
        "site-1": {"alice": "site_admin", "bob": "site_super_user", "carol": "site_user", "dave": "site_guest"},
        "site-2": {"alice": "site_user"}
    })");
    FileRoleDirectory roles(path);
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_admin);
    EXPECT_EQ(roles.role("site-1", principal("bob")), Role::site_super_user);
    EXPECT_EQ(roles.role("site-1", principal("carol")), Role::site_user);
    EXPECT_EQ(roles.role("site-1", principal("dave")), Role::none);
    EXPECT_EQ(roles.role("site-1", principal("erin")), Role::none);
    EXPECT_EQ(roles.role("site-2", principal("alice")), Role::site_user);
    EXPECT_EQ(roles.role("site-3", principal("alice")), Role::none);

    EXPECT_EQ(authorize(Hub::incidents, "site-1", std::nullopt, principal("dave"), roles).status, 403);
    EXPECT_EQ(authorize(Hub::incidents, "site-1", std::string("carol"), principal("carol"), roles).status, 0);
}

TEST_F(FileRoles, LoadErrorsNameTheFileAndTheProblem) {
    std::string what;
    try {
        FileRoleDirectory roles(dir.file("missing.json"));
    } catch (const std::invalid_argument& e) {
        what = e.what();
    }
    EXPECT_NE(what.find("missing.json"), std::string::npos) << what;

    what = what_of_load("{\n  \"site-1\": {\"alice\": \"site_admin\"}\n  \"site-2\": {}\n}");
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("line 3, column 3"), std::string::npos) << what;

    what = what_of_load(R"(["site-1"])");
    EXPECT_NE(what.find("must be a JSON object"), std::string::npos) << what;

    what = what_of_load(R"({"site-1": "site_admin"})");
    EXPECT_NE(what.find("site \"site-1\""), std::string::npos) << what;

    what = what_of_load(R"({"site-1": {"alice": 3}})");
    EXPECT_NE(what.find("user \"alice\""), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << what;
}

TEST_F(FileRoles, ReloadsAChangedFile) {
    write_file(path, R"({"site-1": {"alice": "site_user"}})");
    FileRoleDirectory roles(path, collector());
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_user);
    write_file(path, R"({"site-1": {"alice": "site_admin"}})");
    // Within a second of the last check the file is not looked at.
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_user);
    wait_past_check_interval();
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_admin);
    EXPECT_TRUE(errors.empty());
}

TEST_F(FileRoles, BrokenNewVersionKeepsTheOldTableAndIsReportedOnce) {
    write_file(path, R"({"site-1": {"alice": "site_admin"}})");
    FileRoleDirectory roles(path, collector());
    write_file(path, "{\"site-1\": {\"alice\": \"site_user\",}}");
    wait_past_check_interval();
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_admin);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find(path), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("line 1"), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("keeping the previous roles"), std::string::npos) << errors[0];

    wait_past_check_interval();
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_admin);
    EXPECT_EQ(errors.size(), 1u) << "the same broken version is reported once";

    // A removed file is another broken version; the table stays.
    std::filesystem::remove(path);
    wait_past_check_interval();
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_admin);
    EXPECT_EQ(errors.size(), 2u);

    // Fixed: the new table takes over.
    write_file(path, R"({"site-1": {"alice": "site_user"}})");
    wait_past_check_interval();
    EXPECT_EQ(roles.role("site-1", principal("alice")), Role::site_user);
    EXPECT_EQ(errors.size(), 2u);
}

TEST_F(FileRoles, ConcurrentLookupsDuringRewrites) {
    write_file(path, R"({"site-1": {"alice": "site_admin"}})");
    FileRoleDirectory roles(path, collector());
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t) {
        readers.emplace_back([&] {
            while (!stop) {
                const Role r = roles.role("site-1", principal("alice"));
                if (r != Role::site_admin && r != Role::site_super_user) ++wrong;
            }
        });
    }
    for (int i = 0; i < 12; ++i) {
        write_file(path,
                   i % 2 ? R"({"site-1": {"alice": "site_admin"}})" : R"({"site-1": {"alice": "site_super_user"}})");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    stop = true;
    for (auto& th : readers)
        th.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_TRUE(errors.empty());
}

// ---- ClaimRoleDirectory ----

TEST(ClaimRoles, ReadsTheSiteFromTheClaim) {
    ClaimRoleDirectory roles;
    Principal who = principal("alice");
    who.claims_json = R"({"sub":"alice","site_roles":{"site-1":"site_admin","site-2":"site_guest","site-3":1}})";
    EXPECT_EQ(roles.role("site-1", who), Role::site_admin);
    EXPECT_EQ(roles.role("site-2", who), Role::none);
    EXPECT_EQ(roles.role("site-3", who), Role::none);
    EXPECT_EQ(roles.role("site-4", who), Role::none);
}

TEST(ClaimRoles, ClaimMayBeAJsonString) {
    ClaimRoleDirectory roles("ks_roles");
    Principal who = principal("alice");
    who.claims_json = R"({"sub":"alice","ks_roles":"{\"site-1\":\"site_user\"}"})";
    EXPECT_EQ(roles.role("site-1", who), Role::site_user);
}

TEST(ClaimRoles, MissingOrBrokenClaimGrantsNothing) {
    ClaimRoleDirectory roles;
    Principal who = principal("alice");
    for (const char* claims : {R"({"sub":"alice"})", R"({"site_roles":["site-1"]})", R"({"site_roles":"not json"})",
                               R"({"site_roles":null})", "not json at all", ""}) {
        who.claims_json = claims;
        EXPECT_EQ(roles.role("site-1", who), Role::none) << claims;
    }
    EXPECT_THROW(ClaimRoleDirectory(""), std::invalid_argument);
}

TEST(ClaimRoles, EndToEndFromAVerifiedToken) {
    AuthSettings s;
    s.hs256_secret = kSecret;
    TokenVerifier verifier(s);
    const std::string token = craft_hs256(
        R"({"alg":"HS256","typ":"at+jwt"})",
        claims(R"("sub":"carol","scope":"openid user_api.full_access","site_roles":{"site-1":"site_user"},)"));
    const VerifyResult r = verifier.verify(token, test_now());
    ASSERT_TRUE(r.ok) << r.reason;
    ClaimRoleDirectory roles;
    EXPECT_EQ(authorize(Hub::entries, "site-1", std::string("carol"), r.principal, roles).status, 0);
    EXPECT_EQ(authorize(Hub::entries, "site-1", std::nullopt, r.principal, roles).status, 403);
    EXPECT_EQ(authorize(Hub::entries, "site-2", std::string("carol"), r.principal, roles).status, 403);
}

}  // namespace
}  // namespace hubflow::signalr::testing

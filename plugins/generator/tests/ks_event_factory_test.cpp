#include "ks_event_factory.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hubflow/json.h"

namespace hubflow::generator {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> entry_fields = {"id",
                                               "event_category",
                                               "event_detail",
                                               "utc_date_time",
                                               "local_date_time",
                                               "lock_id",
                                               "lock_mac_address",
                                               "lock_customer_reference",
                                               "user_id",
                                               "user_first_name",
                                               "user_last_name",
                                               "user_image_url",
                                               "user_alias",
                                               "iq_id",
                                               "iq_customer_reference",
                                               "iq_mac_address",
                                               "iq_revision",
                                               "exit_requested",
                                               "access_by",
                                               "access_detail"};
const std::vector<std::string> incident_fields = {"id", "type", "utc_date_time", "local_date_time", "lock", "iq"};
const std::vector<std::string> device_fields = {"id", "customer_reference", "mac_address"};

Poco::JSON::Object::Ptr parse(const std::string& text) {
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));  // keeps key order
    return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

std::vector<std::string> names(const Poco::JSON::Object::Ptr& object) {
    std::vector<std::string> out;
    object->getNames(out);
    return out;
}

bool is_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

KsEventFactoryOptions fixed(std::uint64_t seed) {
    KsEventFactoryOptions o;
    o.seed = seed;
    o.start = *parse_rfc3339("2026-08-19T12:50:38Z");
    return o;
}

std::vector<Event> make(KsEventFactory& factory, int n) {
    std::vector<Event> out(static_cast<std::size_t>(n));
    for (auto& e : out)
        factory.next(e);
    return out;
}

TEST(KsEventFactory, SameSeedAndStartGiveIdenticalEvents) {
    KsEventFactory a(fixed(42)), b(fixed(42));
    auto ea = make(a, 2000);
    auto eb = make(b, 2000);
    for (std::size_t i = 0; i < ea.size(); ++i) {
        ASSERT_EQ(ea[i].payload, eb[i].payload) << i;
        ASSERT_EQ(ea[i].meta.id, eb[i].meta.id);
        ASSERT_EQ(ea[i].meta.site_id, eb[i].meta.site_id);
        ASSERT_EQ(ea[i].meta.user_id, eb[i].meta.user_id);
    }
}

TEST(KsEventFactory, AppendNextFollowsTheSameSequenceAsNext) {
    auto options = fixed(7);
    options.duplicate_ratio = 0.1;
    KsEventFactory a(options), b(options);
    auto events = make(a, 500);
    std::string all;
    for (int i = 0; i < 500; ++i) {
        b.append_next(all);
        all += '\n';
    }
    std::string expected;
    for (const auto& e : events)
        expected += e.payload + '\n';
    EXPECT_EQ(all, expected);
}

TEST(KsEventFactory, DifferentSeedGivesDifferentEvents) {
    KsEventFactory a(fixed(1)), b(fixed(2));
    auto ea = make(a, 100);
    auto eb = make(b, 100);
    int same = 0;
    for (std::size_t i = 0; i < ea.size(); ++i)
        same += ea[i].payload == eb[i].payload;
    EXPECT_EQ(same, 0);
    EXPECT_NE(a.site_ids(), b.site_ids());
}

TEST(KsEventFactory, EveryPayloadIsJsonWithTheServiceFieldsInOrder) {
    auto options = fixed(3);
    options.incident_ratio = 0.2;
    KsEventFactory factory(options);
    std::size_t total_size = 0, entries = 0, incidents = 0, unknown_users = 0;
    std::set<std::string> categories, access_by;
    for (int i = 0; i < 20000; ++i) {
        Event e;
        factory.next(e);
        total_size += e.payload.size();
        Poco::JSON::Object::Ptr o;
        ASSERT_NO_THROW(o = parse(e.payload)) << e.payload;
        ASSERT_TRUE(is_uuid(o->getValue<std::string>("id")));
        const auto utc = o->getValue<std::string>("utc_date_time");
        const auto local = o->getValue<std::string>("local_date_time");
        ASSERT_EQ(utc.size(), 20u);
        ASSERT_EQ(utc.back(), 'Z');
        ASSERT_EQ(local.size(), 19u);
        ASSERT_TRUE(parse_rfc3339(utc)) << utc;
        ASSERT_TRUE(parse_rfc3339(local + "Z")) << local;
        if (e.meta.kind == "entry") {
            ++entries;
            ASSERT_EQ(names(o), entry_fields) << e.payload;
            categories.insert(o->getValue<std::string>("event_category"));
            access_by.insert(o->getValue<std::string>("access_by"));
            ASSERT_TRUE(o->get("exit_requested").isBoolean());
            ASSERT_TRUE(o->isNull("user_image_url"));
            if (o->isNull("user_id")) {
                ++unknown_users;
                ASSERT_TRUE(o->isNull("user_first_name"));
            } else {
                ASSERT_TRUE(is_uuid(o->getValue<std::string>("user_id")));
                ASSERT_FALSE(o->getValue<std::string>("user_first_name").empty());
            }
            ASSERT_EQ(o->getValue<std::string>("lock_mac_address").size(), 14u);
            ASSERT_EQ(o->getValue<std::string>("lock_customer_reference").rfind("Door ", 0), 0u);
            ASSERT_EQ(o->getValue<std::string>("iq_customer_reference"), "IQ 01");
        } else {
            ASSERT_EQ(e.meta.kind, "incident");
            ++incidents;
            ASSERT_EQ(names(o), incident_fields) << e.payload;
            ASSERT_EQ(names(o->getObject("lock")), device_fields);
            ASSERT_EQ(names(o->getObject("iq")), device_fields);
        }
    }
    EXPECT_EQ(entries + incidents, 20000u);
    EXPECT_EQ(categories, (std::set<std::string>{"lock_opened", "lock_rejected", "easy_office_mode", "office_mode",
                                                 "privacy_mode"}));
    EXPECT_EQ(access_by, (std::set<std::string>{"tag", "inside_handle", "pin_code", "remote"}));
    EXPECT_GT(unknown_users, 0u);
    const double average = static_cast<double>(total_size) / 20000;
    EXPECT_GT(average, 300);
    EXPECT_LT(average, 700);
    EXPECT_LE(factory.max_payload_size(), 1024u);
}

TEST(KsEventFactory, OpeningByTagDominates) {
    KsEventFactory factory(fixed(11));
    int by_tag = 0, entries = 0;
    for (int i = 0; i < 10000; ++i) {
        Event e;
        factory.next(e);
        if (e.meta.kind != "entry") continue;
        ++entries;
        by_tag += e.payload.find(R"("event_category":"lock_opened")") != std::string::npos &&
                  e.payload.find(R"("access_by":"tag")") != std::string::npos;
    }
    EXPECT_GT(by_tag, entries / 2);
}

TEST(KsEventFactory, MetadataMatchesPayload) {
    auto options = fixed(5);
    options.sites = {"site-a", "site-b"};
    options.duplicate_ratio = 0.1;
    KsEventFactory factory(options);
    std::set<std::string> sites_seen;
    for (int i = 0; i < 5000; ++i) {
        Event e;
        factory.next(e);
        auto o = parse(e.payload);
        ASSERT_EQ(e.meta.id, o->getValue<std::string>("id"));
        if (e.meta.kind == "entry") {
            if (o->isNull("user_id"))
                ASSERT_EQ(e.meta.user_id, "");
            else
                ASSERT_EQ(e.meta.user_id, o->getValue<std::string>("user_id"));
        } else {
            ASSERT_EQ(e.meta.user_id, "");
        }
        ASSERT_TRUE(e.meta.source.empty());
        sites_seen.insert(e.meta.site_id);
    }
    EXPECT_EQ(sites_seen, (std::set<std::string>{"site-a", "site-b"}));
}

TEST(KsEventFactory, UsersAndLocksBelongToOneSite) {
    auto options = fixed(9);
    options.incident_ratio = 0;
    KsEventFactory factory(options);
    std::map<std::string, std::string> site_of_user, site_of_lock;
    for (int i = 0; i < 5000; ++i) {
        Event e;
        factory.next(e);
        auto o = parse(e.payload);
        auto [lock, inserted] = site_of_lock.emplace(o->getValue<std::string>("lock_id"), e.meta.site_id);
        ASSERT_EQ(lock->second, e.meta.site_id);
        if (!e.meta.user_id.empty()) {
            auto [user, fresh] = site_of_user.emplace(e.meta.user_id, e.meta.site_id);
            ASSERT_EQ(user->second, e.meta.site_id);
        }
    }
    EXPECT_LE(site_of_lock.size(), 3u * 20u);
    EXPECT_LE(site_of_user.size(), 3u * 50u);
    EXPECT_GT(site_of_user.size(), 100u);
}

TEST(KsEventFactory, TimestampsFollowStartAndRate) {
    auto options = fixed(1);
    options.events_per_second = 4;
    options.duplicate_ratio = 0;
    KsEventFactory factory(options);
    auto events = make(factory, 12);
    for (int i = 0; i < 12; ++i) {
        auto o = parse(events[static_cast<std::size_t>(i)].payload);
        auto expected = options.start + std::chrono::seconds(i / 4);
        EXPECT_EQ(o->getValue<std::string>("utc_date_time"), format_utc(expected)) << i;
    }

    KsEventFactory fast(fixed(1));  // 1000 per second: 1 ms apart
    auto many = make(fast, 2001);
    EXPECT_EQ(parse(many[999].payload)->getValue<std::string>("utc_date_time"), "2026-08-19T12:50:38Z");
    EXPECT_EQ(parse(many[1000].payload)->getValue<std::string>("utc_date_time"), "2026-08-19T12:50:39Z");
    EXPECT_EQ(parse(many[2000].payload)->getValue<std::string>("utc_date_time"), "2026-08-19T12:50:40Z");
}

TEST(KsEventFactory, LocalTimeIsUtcShiftedByAWholeSiteOffset) {
    KsEventFactory factory(fixed(21));
    std::map<std::string, std::chrono::seconds> offset_of_site;
    for (int i = 0; i < 3000; ++i) {
        Event e;
        factory.next(e);
        auto o = parse(e.payload);
        auto utc = *parse_rfc3339(o->getValue<std::string>("utc_date_time"));
        auto local = *parse_rfc3339(o->getValue<std::string>("local_date_time") + "Z");
        auto offset = std::chrono::duration_cast<std::chrono::seconds>(local - utc);
        ASSERT_EQ(offset.count() % 1800, 0);
        auto [it, inserted] = offset_of_site.emplace(e.meta.site_id, offset);
        ASSERT_EQ(it->second, offset) << "a site keeps one offset";
    }
}

// Within 5 standard deviations of a binomial count: fails by chance about once in 3.5 million runs.
void expect_binomial(std::uint64_t observed, std::uint64_t n, double p) {
    const double mean = static_cast<double>(n) * p;
    const double sd = std::sqrt(mean * (1 - p));
    EXPECT_NEAR(static_cast<double>(observed), mean, 5 * sd) << "n=" << n << " p=" << p;
}

TEST(KsEventFactory, RatiosAreRoughlyHonoured) {
    auto options = fixed(99);
    options.incident_ratio = 0.1;
    options.duplicate_ratio = 0.2;
    KsEventFactory factory(options);
    std::uint64_t incidents_seen = 0;
    for (int i = 0; i < 20000; ++i) {
        Event e;
        factory.next(e);
        incidents_seen += e.meta.kind == "incident";
    }
    EXPECT_EQ(factory.produced(), 20000u);
    expect_binomial(factory.duplicates(), 20000, 0.2);
    // A duplicate copies an event of either kind, so incidents keep their share among all events too.
    expect_binomial(factory.incidents(), factory.produced() - factory.duplicates(), 0.1);
    expect_binomial(incidents_seen, 20000, 0.1);
    EXPECT_EQ(factory.entries() + factory.incidents() + factory.duplicates(), 20000u);
}

TEST(KsEventFactory, NoDuplicatesOrIncidentsWhenTheRatiosAreZero) {
    auto options = fixed(4);
    options.incident_ratio = 0;
    KsEventFactory factory(options);
    std::set<std::string> ids;
    for (int i = 0; i < 20000; ++i) {
        Event e;
        factory.next(e);
        ASSERT_EQ(e.meta.kind, "entry");
        ASSERT_TRUE(ids.insert(e.meta.id).second);
    }
    EXPECT_EQ(factory.duplicates(), 0u);
}

TEST(KsEventFactory, DuplicatesAreExactCopiesOfEarlierEvents) {
    auto options = fixed(8);
    options.duplicate_ratio = 0.3;
    KsEventFactory factory(options);
    std::map<std::string, Event> first_by_id;
    std::uint64_t repeats = 0;
    for (int i = 0; i < 20000; ++i) {
        Event e;
        factory.next(e);
        auto [it, inserted] = first_by_id.emplace(e.meta.id, e);
        if (inserted) continue;
        ++repeats;
        ASSERT_EQ(e.payload, it->second.payload);
        ASSERT_EQ(e.meta.kind, it->second.meta.kind);
        ASSERT_EQ(e.meta.site_id, it->second.meta.site_id);
        ASSERT_EQ(e.meta.user_id, it->second.meta.user_id);
    }
    EXPECT_EQ(repeats, factory.duplicates());
    EXPECT_GT(repeats, 0u);
}

TEST(KsEventFactory, EveryEventADuplicateAfterTheFirstAtRatioOne) {
    auto options = fixed(8);
    options.duplicate_ratio = 1;
    options.incident_ratio = 1;
    KsEventFactory factory(options);
    auto events = make(factory, 10);
    for (const auto& e : events)
        EXPECT_EQ(e.payload, events[0].payload);
    EXPECT_EQ(events[0].meta.kind, "incident");
    EXPECT_EQ(factory.duplicates(), 9u);
}

TEST(KsEventFactory, RefusesOptionsOutOfRange) {
    auto options = fixed(1);
    options.incident_ratio = 1.5;
    EXPECT_THROW(KsEventFactory{options}, std::invalid_argument);
    options = fixed(1);
    options.users_per_site = 0;
    EXPECT_THROW(KsEventFactory{options}, std::invalid_argument);
    options = fixed(1);
    options.events_per_second = 0;
    EXPECT_THROW(KsEventFactory{options}, std::invalid_argument);
}

TEST(ParseRfc3339, AcceptsUtcFractionsAndOffsets) {
    using std::chrono::system_clock;
    auto base = *parse_rfc3339("2026-08-19T12:50:38Z");
    EXPECT_EQ(format_utc(base), "2026-08-19T12:50:38Z");
    EXPECT_EQ(*parse_rfc3339("2026-08-19T14:50:38+02:00"), base);
    EXPECT_EQ(*parse_rfc3339("2026-08-19T07:20:38-05:30"), base);
    EXPECT_EQ(*parse_rfc3339("2026-08-19t12:50:38.5z") - base, std::chrono::milliseconds(500));
    EXPECT_EQ(*parse_rfc3339("1970-01-01T00:00:00Z"), system_clock::time_point{});
    EXPECT_EQ(format_utc(*parse_rfc3339("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
}

TEST(ParseRfc3339, RefusesOtherText) {
    for (const char* bad :
         {"", "now", "2026-08-19", "2026-08-19T12:50:38", "2026-08-19 12:50:38Z", "2026-13-01T00:00:00Z",
          "2026-02-29T00:00:00Z", "2026-08-19T24:00:00Z", "2026-08-19T12:60:00Z", "2026-08-19T12:50:38.Z",
          "2026-08-19T12:50:38+0200", "2026-08-19T12:50:38Zjunk"})
        EXPECT_FALSE(parse_rfc3339(bad)) << bad;
}

}  // namespace
}  // namespace hubflow::generator

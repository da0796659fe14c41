// The file history store on a real temporary folder, with a moved clock: ordering, paging with a snapshot
// while events keep arriving, the delay, retention, and reading back after a restart and a torn write.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "history/file_history_store.h"

namespace hubflow::signalr {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class FileHistoryStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string templ = (fs::temp_directory_path() / "hubflow-history-XXXXXX").string();
        ASSERT_NE(::mkdtemp(templ.data()), nullptr);
        root_ = templ;
    }
    void TearDown() override { fs::remove_all(root_); }

    FileHistorySettings settings() {
        FileHistorySettings s;
        s.dir = root_ / "history";
        s.clock = [this] { return now_; };
        s.warn = [this](const std::string& w) { warnings_.push_back(w); };
        return s;
    }

    // Appends events n..n+count-1 of `site`, event time = 1000 * number (several per second when `same_second`).
    static void add(HistoryStore& store, const std::string& site, int first, int count, Hub hub = Hub::entries,
                    const std::string& user = "") {
        std::vector<std::string> payloads;
        for (int i = first; i < first + count; ++i)
            payloads.push_back("{\"id\":\"" + std::to_string(i) + "\"}");
        std::vector<HistoryRecord> records;
        for (int i = 0; i < count; ++i)
            records.push_back(
                {hub, std::int64_t{first + i} / 3 * 1000, "id", user, payloads[static_cast<std::size_t>(i)]});
        store.append(site, records);
    }

    static std::vector<std::string> all(HistoryStore& store, HistoryRequest r, std::size_t page_size,
                                        const std::function<void()>& between_pages = {}) {
        std::vector<std::string> out;
        r.limit = page_size;
        for (int guard = 0; guard < 100000; ++guard) {
            HistoryPage p = store.query(r);
            out.insert(out.end(), p.items.begin(), p.items.end());
            if (!p.next) return out;
            r.after = p.next;
            r.snapshot = p.snapshot;
            if (between_pages) between_pages();
        }
        ADD_FAILURE() << "the query never ended";
        return out;
    }

    static std::string item(int i) { return "{\"id\":\"" + std::to_string(i) + "\"}"; }

    fs::path root_;
    std::chrono::system_clock::time_point now_ = std::chrono::system_clock::time_point(1'800'000'000s);
    std::vector<std::string> warnings_;
};

TEST_F(FileHistoryStoreTest, PagesInTimeOrderWithoutSkipOrRepeatWhileEventsArrive) {
    FileHistoryStore store(settings());
    add(store, "s", 0, 100);
    HistoryRequest r;
    r.site = "s";
    int next = 100;
    // Events arrive between pages: they belong to the next query, not this one (its snapshot).
    auto items = all(store, r, 7, [&] {
        add(store, "s", next, 3);
        next += 3;
    });
    ASSERT_EQ(items.size(), 100u);
    for (int i = 0; i < 100; ++i)
        EXPECT_EQ(items[static_cast<std::size_t>(i)], item(i));
    // A new query sees everything; descending is the reverse.
    r.descending = true;
    auto down = all(store, r, 11);
    ASSERT_EQ(down.size(), static_cast<std::size_t>(next));
    EXPECT_EQ(down.front(), item(next - 1));
    EXPECT_EQ(down.back(), item(0));
}

TEST_F(FileHistoryStoreTest, TimeBoundsUserAndHub) {
    FileHistoryStore store(settings());
    add(store, "s", 0, 30);                        // times 0..9 s, three each
    add(store, "s", 30, 6, Hub::entries, "u1");    // times 10, 11 s
    add(store, "s", 36, 3, Hub::incidents, "u1");  // time 12 s
    add(store, "other", 0, 5);
    HistoryRequest r;
    r.site = "s";
    r.from_ms = 3000;
    r.to_ms = 4999;
    EXPECT_EQ(all(store, r, 2), (std::vector<std::string>{item(9), item(10), item(11), item(12), item(13), item(14)}));
    r = {};
    r.site = "s";
    r.user = "u1";
    EXPECT_EQ(all(store, r, 4).size(), 6u);
    r.hub = Hub::incidents;
    EXPECT_EQ(all(store, r, 4), (std::vector<std::string>{item(36), item(37), item(38)}));
    r = {};
    r.site = "nobody";
    HistoryPage p = store.query(r);
    EXPECT_TRUE(p.items.empty());
    EXPECT_FALSE(p.next);
}

TEST_F(FileHistoryStoreTest, AFullLastPageEndsTheQueryWithoutAnEmptyPage) {
    FileHistoryStore store(settings());
    add(store, "s", 0, 10);
    HistoryRequest r;
    r.site = "s";
    r.limit = 10;
    HistoryPage p = store.query(r);
    EXPECT_EQ(p.items.size(), 10u);
    EXPECT_FALSE(p.next);
    r.limit = 5;
    p = store.query(r);
    EXPECT_TRUE(p.next);
}

TEST_F(FileHistoryStoreTest, ScanLimitAnswersEmptyPagesThatStillCarryTheQuery) {
    auto s = settings();
    s.scan_limit = 10;
    FileHistoryStore store(s);
    add(store, "s", 0, 50);
    add(store, "s", 50, 2, Hub::entries, "rare");
    HistoryRequest r;
    r.site = "s";
    r.user = "rare";
    r.limit = 100;
    HistoryPage p = store.query(r);
    EXPECT_TRUE(p.items.empty());
    ASSERT_TRUE(p.next);
    EXPECT_EQ(all(store, r, 100), (std::vector<std::string>{item(50), item(51)}));
}

TEST_F(FileHistoryStoreTest, DelayHidesRecentEvents) {
    auto s = settings();
    s.delay = 2000ms;
    FileHistoryStore store(s);
    add(store, "s", 0, 3);
    HistoryRequest r;
    r.site = "s";
    EXPECT_TRUE(store.query(r).items.empty());
    now_ += 1500ms;
    add(store, "s", 3, 3);
    now_ += 600ms;
    EXPECT_EQ(all(store, r, 10), (std::vector<std::string>{item(0), item(1), item(2)}));
    now_ += 2s;
    EXPECT_EQ(all(store, r, 10).size(), 6u);
}

TEST_F(FileHistoryStoreTest, RetentionByCountAndAgeDeletesSegments) {
    auto s = settings();
    s.max_events = 1000;
    s.segment_events = 100;
    s.max_age = 60s;
    FileHistoryStore store(s);
    for (int i = 0; i < 30; ++i)
        add(store, "s", i * 100, 100);
    EXPECT_EQ(store.size("s"), 1000u);
    EXPECT_LE(store.segment_count("s"), 11u);
    HistoryRequest r;
    r.site = "s";
    auto items = all(store, r, 1000);
    ASSERT_EQ(items.size(), 1000u);
    EXPECT_EQ(items.front(), item(2000));
    now_ += 61s;
    add(store, "s", 3000, 5);
    EXPECT_EQ(store.size("s"), 5u);
    EXPECT_LE(store.segment_count("s"), 2u);
    // Files private to the service user.
    struct stat st {};
    ASSERT_EQ(::stat((root_ / "history").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    for (const auto& f : fs::directory_iterator(root_ / "history" / "s")) {
        ASSERT_EQ(::stat(f.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u) << f.path();
    }
}

TEST_F(FileHistoryStoreTest, ReadsBackAfterRestartAndCutsATornTail) {
    {
        FileHistoryStore store(settings());
        add(store, "site/1", 0, 20);
        add(store, "s", 0, 3, Hub::incidents, "u");
    }
    // A crash mid-write: half a record at the end of the newest segment.
    fs::path dir = root_ / "history" / FileHistoryStore::encode_site("site/1");
    fs::path newest;
    for (const auto& f : fs::directory_iterator(dir))
        newest = std::max(newest, f.path());
    {
        std::ofstream out(newest, std::ios::app | std::ios::binary);
        out << std::string("\x40\x00\x00\x00garbage", 11);
    }
    const auto size_before = fs::file_size(newest);
    FileHistoryStore store(settings());
    EXPECT_EQ(warnings_.size(), 1u);
    EXPECT_LT(fs::file_size(newest), size_before);
    HistoryRequest r;
    r.site = "site/1";
    auto items = all(store, r, 6);
    ASSERT_EQ(items.size(), 20u);
    // Appends continue the sequence: a token from before the restart still fits.
    add(store, "site/1", 20, 2);
    EXPECT_EQ(all(store, r, 100).size(), 22u);
    r.site = "s";
    r.hub = Hub::incidents;
    r.user = "u";
    EXPECT_EQ(all(store, r, 100).size(), 3u);
}

TEST(FileHistorySiteNames, EncodeDecode) {
    for (std::string site : {"b1f7c2d4-0c61-4a55-9f0e-5a3d3c1e2f01", "a/b", "..", ".x", "a%b", "é"}) {
        std::string name = FileHistoryStore::encode_site(site);
        EXPECT_EQ(name.find('/'), std::string::npos);
        EXPECT_NE(name.front(), '.');
        EXPECT_EQ(FileHistoryStore::decode_site(name), site);
    }
    EXPECT_FALSE(FileHistoryStore::decode_site("%4"));
    EXPECT_FALSE(FileHistoryStore::decode_site("%41"));  // 'A' would be written as itself
}

}  // namespace
}  // namespace hubflow::signalr

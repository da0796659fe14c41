#include "file_sink.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/testing/fake_context.h"

namespace {

namespace fs = std::filesystem;
using hubflow::ConfigError;
using hubflow::ConfigView;
using hubflow::Event;
using hubflow::EventBatch;
using hubflow::Value;
using hubflow::file::FileSink;
using std::chrono::system_clock;

Value str(std::string s) {
    return Value(std::move(s));
}
Value num(std::int64_t n) {
    return Value(n);
}
Value object(Value::Object members) {
    return Value(std::move(members));
}

Event make_event(std::string payload, std::string kind = {}, std::string site_id = {},
                 system_clock::time_point received_at = {}) {
    Event e;
    e.payload = std::move(payload);
    e.meta.kind = std::move(kind);
    e.meta.site_id = std::move(site_id);
    e.meta.received_at = received_at;
    return e;
}

// A numbered event whose line (payload plus '\n') is exactly `line_bytes` long.
Event numbered(int seq, std::size_t line_bytes = 100) {
    char head[32];
    std::snprintf(head, sizeof head, R"({"seq":%06d,"pad":")", seq);
    std::string payload = head;
    payload.append(line_bytes - payload.size() - 3, 'x');
    payload += "\"}";
    return make_event(std::move(payload));
}

int seq_of(const std::string& line) {
    return std::stoi(line.substr(7, 6));
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void spit(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

// The lines of a file; fails the test when the last one is not terminated.
std::vector<std::string> lines_of(const fs::path& p) {
    std::string text = slurp(p);
    std::vector<std::string> lines;
    if (text.empty()) return lines;
    EXPECT_EQ(text.back(), '\n') << p << " ends in a partial line";
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(text.substr(start, nl - start));
    return lines;
}

class FileSinkTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() / ("hubflow-file-sink-" + std::to_string(::getpid()) + "-" + info->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string at(const std::string& relative) const { return (dir_ / relative).string(); }

    std::unique_ptr<FileSink> make_sink(Value::Object members) {
        Value config = object(std::move(members));
        auto sink = std::make_unique<FileSink>();
        sink->configure(ConfigView(config), context_);
        sink->start();
        return sink;
    }

    std::uint64_t counter(const char* name) { return context_.metric_registry.counters[name].value(); }

    // Every regular file under the test directory, relative to it.
    std::set<std::string> files() const {
        std::set<std::string> out;
        for (const auto& e : fs::recursive_directory_iterator(dir_))
            if (e.is_regular_file()) out.insert(fs::relative(e.path(), dir_).string());
        return out;
    }

    fs::path dir_;
    hubflow::testing::FakeContext context_{"audit"};
};

TEST_F(FileSinkTest, WritesExactlyOneLinePerEvent) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}});
    int seq = 0;
    for (int b = 0; b < 5; ++b) {
        EventBatch batch;
        for (int i = 0; i < 200; ++i)
            batch.push_back(numbered(seq++, 60 + i % 50));
        sink->write(batch);
    }
    sink->write(EventBatch{});
    sink->flush();
    sink->stop();

    auto lines = lines_of(at("out.jsonl"));
    ASSERT_EQ(lines.size(), 1000u);
    for (int i = 0; i < 1000; ++i)
        ASSERT_EQ(seq_of(lines[i]), i);
    EXPECT_EQ(counter("bytes_written"), fs::file_size(at("out.jsonl")));
    EXPECT_EQ(context_.metric_registry.gauges["open_files"].value(), 0);
}

TEST_F(FileSinkTest, RoutesByKindAndSiteIntoSeparateFiles) {
    auto sink = make_sink({{"path", str(at("{site_id}/{kind}.jsonl"))}});
    EventBatch batch;
    for (int i = 0; i < 30; ++i) {
        std::string kind = i % 2 ? "entry" : "incident";
        std::string site = i % 3 ? "s1" : "s2";
        batch.push_back(make_event(R"({"i":)" + std::to_string(i) + "}", kind, site));
    }
    sink->write(batch);
    sink->stop();

    EXPECT_EQ(files(),
              (std::set<std::string>{"s1/entry.jsonl", "s1/incident.jsonl", "s2/entry.jsonl", "s2/incident.jsonl"}));
    std::size_t total = 0;
    for (const auto& f : files()) {
        auto lines = lines_of(dir_ / f);
        total += lines.size();
        for (const auto& line : lines) {
            int i = std::stoi(line.substr(5));
            EXPECT_EQ(f, std::string(i % 3 ? "s1" : "s2") + (i % 2 ? "/entry.jsonl" : "/incident.jsonl"));
        }
    }
    EXPECT_EQ(total, 30u);
}

TEST_F(FileSinkTest, RoutesByPayloadFieldAndMissingFieldIsUnknown) {
    auto sink = make_sink({{"path", str(at("locks/{lock_id}.jsonl"))}});
    sink->write({make_event(R"({"lock_id":"L1"})"), make_event(R"({"lock_id":"L2"})"),
                 make_event(R"({"door":"no lock"})"), make_event(R"({"lock_id":"L1","n":2})")});
    sink->stop();
    EXPECT_EQ(files(), (std::set<std::string>{"locks/L1.jsonl", "locks/L2.jsonl", "locks/unknown.jsonl"}));
    EXPECT_EQ(lines_of(at("locks/L1.jsonl")),
              (std::vector<std::string>{R"({"lock_id":"L1"})", R"({"lock_id":"L1","n":2})"}));
    EXPECT_EQ(lines_of(at("locks/unknown.jsonl")), (std::vector<std::string>{R"({"door":"no lock"})"}));
}

TEST_F(FileSinkTest, StrftimeFieldsComeFromReceivedAtInUtc) {
    auto sink = make_sink({{"path", str(at("%Y/%m/%d/%H.jsonl"))}});
    auto t = system_clock::time_point(std::chrono::seconds(1'700'000'000));  // 2023-11-14T22:13:20Z
    sink->write({make_event(R"({"n":1})", "", "", t), make_event(R"({"n":2})", "", "", t + std::chrono::seconds(5)),
                 make_event(R"({"n":3})", "", "", t + std::chrono::hours(1))});
    sink->write({make_event(R"({"n":4})", "", "", t + std::chrono::seconds(1))});
    // No received_at: the context's clock, which starts at 2027-01-15T08:00:00Z.
    sink->write({make_event(R"({"n":5})")});
    context_.clock_control().advance(std::chrono::hours(1));
    sink->write({make_event(R"({"n":6})")});
    sink->stop();

    EXPECT_EQ(files(), (std::set<std::string>{"2023/11/14/22.jsonl", "2023/11/14/23.jsonl", "2027/01/15/08.jsonl",
                                              "2027/01/15/09.jsonl"}));
    EXPECT_EQ(lines_of(at("2023/11/14/22.jsonl")),
              (std::vector<std::string>{R"({"n":1})", R"({"n":2})", R"({"n":4})"}));
    EXPECT_EQ(lines_of(at("2023/11/14/23.jsonl")), (std::vector<std::string>{R"({"n":3})"}));
    EXPECT_EQ(lines_of(at("2027/01/15/08.jsonl")), (std::vector<std::string>{R"({"n":5})"}));
    EXPECT_EQ(lines_of(at("2027/01/15/09.jsonl")), (std::vector<std::string>{R"({"n":6})"}));
}

TEST_F(FileSinkTest, FieldValuesCannotEscapeTheDirectory) {
    auto sink = make_sink({{"path", str(at("{site_id}/{kind}.jsonl"))}});
    sink->write({make_event("{}", "x", "../x"), make_event("{}", "a/b\\c", "s"), make_event("{}", "..", "/"),
                 make_event("{}", std::string("n\0l", 3), "s")});
    sink->stop();
    EXPECT_EQ(files(), (std::set<std::string>{"_._x/x.jsonl", "s/a_b_c.jsonl", "_/_..jsonl", "s/n_l.jsonl"}));
}

TEST_F(FileSinkTest, AppendsToAnExistingFile) {
    spit(at("out.jsonl"), "{\"old\":1}\n{\"old\":2}\n");
    auto sink = make_sink({{"path", str(at("out.jsonl"))}});
    sink->write({make_event(R"({"new":1})"), make_event(R"({"new":2})")});
    sink->stop();
    auto again = make_sink({{"path", str(at("out.jsonl"))}});
    again->write({make_event(R"({"new":3})")});
    again->stop();
    EXPECT_EQ(lines_of(at("out.jsonl")), (std::vector<std::string>{R"({"old":1})", R"({"old":2})", R"({"new":1})",
                                                                   R"({"new":2})", R"({"new":3})"}));
    EXPECT_EQ(counter("partial_lines_repaired"), 0u);
    EXPECT_FALSE(fs::exists(at("out.jsonl.partial")));
}

TEST_F(FileSinkTest, RepairsAPartialLastLineOnStart) {
    spit(at("out.jsonl"), "{\"a\":1}\n{\"trunc");
    auto sink = make_sink({{"path", str(at("out.jsonl"))}});
    // Repaired as soon as the file is opened, before any write.
    EXPECT_EQ(slurp(at("out.jsonl")), "{\"a\":1}\n");
    sink->write({make_event(R"({"b":2})"), make_event(R"({"c":3})")});
    sink->stop();

    EXPECT_EQ(lines_of(at("out.jsonl")), (std::vector<std::string>{R"({"a":1})", R"({"b":2})", R"({"c":3})"}));
    EXPECT_EQ(slurp(at("out.jsonl.partial")), "{\"trunc\n");
    EXPECT_EQ(counter("partial_lines_repaired"), 1u);
    EXPECT_TRUE(context_.logger.contains("7 bytes"));
    EXPECT_TRUE(context_.logger.contains("out.jsonl.partial"));
}

TEST_F(FileSinkTest, RepairsLazilyOpenedFilesAndLongTails) {
    // A tail longer than the repair buffer, in a file that has no complete line at all.
    std::string tail(200'000, 'x');
    spit(at("entry.jsonl"), tail);
    spit(at("incident.jsonl"), "{\"ok\":1}\n{\"half\":");
    spit(at("incident.jsonl.partial"), "{\"earlier\n");
    auto sink = make_sink({{"path", str(at("{kind}.jsonl"))}});
    sink->write({make_event(R"({"e":1})", "entry"), make_event(R"({"i":1})", "incident")});
    sink->stop();

    EXPECT_EQ(lines_of(at("entry.jsonl")), (std::vector<std::string>{R"({"e":1})"}));
    EXPECT_EQ(slurp(at("entry.jsonl.partial")), tail + "\n");
    EXPECT_EQ(lines_of(at("incident.jsonl")), (std::vector<std::string>{R"({"ok":1})", R"({"i":1})"}));
    EXPECT_EQ(slurp(at("incident.jsonl.partial")), "{\"earlier\n{\"half\":\n");
    EXPECT_EQ(counter("partial_lines_repaired"), 2u);
}

TEST_F(FileSinkTest, RotatesAtRotateBytesAndKeepsKeepFiles) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"rotate_bytes", num(1000)}, {"keep_files", num(3)}});
    int seq = 0;
    while (seq < 100) {
        EventBatch batch;
        for (int i = 0; i < 7 && seq < 100; ++i)
            batch.push_back(numbered(seq++));  // 100-byte lines
        sink->write(batch);
    }
    sink->stop();

    EXPECT_EQ(files(), (std::set<std::string>{"out.jsonl", "out.jsonl.1", "out.jsonl.2", "out.jsonl.3"}));
    // Oldest to newest: .3, .2, .1, then the live file with the newest events.
    int expected = 60;
    for (const char* name : {"out.jsonl.3", "out.jsonl.2", "out.jsonl.1", "out.jsonl"}) {
        EXPECT_LE(fs::file_size(at(name)), 1000u) << name;
        auto lines = lines_of(at(name));
        EXPECT_EQ(lines.size(), 10u) << name;
        for (const auto& line : lines)
            EXPECT_EQ(seq_of(line), expected++) << name;
    }
    EXPECT_EQ(expected, 100);
    EXPECT_EQ(counter("files_rotated"), 9u);
    EXPECT_EQ(counter("bytes_written"), 10'000u);
}

TEST_F(FileSinkTest, RotationLosesNoLinesWithUnevenSizes) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"rotate_bytes", num(1000)}, {"keep_files", num(1000)}});
    int seq = 0;
    for (int b = 0; b < 40; ++b) {
        EventBatch batch;
        for (int i = 0; i < 1 + b % 9; ++i, ++seq)
            batch.push_back(numbered(seq, 30 + (seq * 37) % 250));
        sink->write(batch);
    }
    sink->stop();

    auto names = files();
    int rotated = static_cast<int>(names.size()) - 1;
    ASSERT_GT(rotated, 3);
    EXPECT_EQ(counter("files_rotated"), static_cast<std::uint64_t>(rotated));
    int expected = 0;
    for (int n = rotated; n >= 0; --n) {
        std::string name = n == 0 ? "out.jsonl" : "out.jsonl." + std::to_string(n);
        ASSERT_TRUE(names.count(name)) << name;
        EXPECT_LE(fs::file_size(at(name)), 1000u) << name;
        auto lines = lines_of(at(name));
        EXPECT_FALSE(lines.empty()) << name;
        for (const auto& line : lines)
            EXPECT_EQ(seq_of(line), expected++) << name;
    }
    EXPECT_EQ(expected, seq);
}

TEST_F(FileSinkTest, LineLongerThanRotateBytesGetsAFileOfItsOwn) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"rotate_bytes", num(50)}});
    sink->write({numbered(0, 30), numbered(1, 100), numbered(2, 30)});
    sink->stop();
    EXPECT_EQ(lines_of(at("out.jsonl.2")).size(), 1u);
    EXPECT_EQ(seq_of(lines_of(at("out.jsonl.2"))[0]), 0);
    EXPECT_EQ(seq_of(lines_of(at("out.jsonl.1"))[0]), 1);
    EXPECT_EQ(fs::file_size(at("out.jsonl.1")), 100u);
    EXPECT_EQ(seq_of(lines_of(at("out.jsonl"))[0]), 2);
}

TEST_F(FileSinkTest, RotationDeletesFilesBeyondKeepFiles) {
    spit(at("out.jsonl"), std::string(99, 'x') + "\n");
    for (int n = 1; n <= 5; ++n)
        spit(at("out.jsonl." + std::to_string(n)), "old " + std::to_string(n) + "\n");
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"rotate_bytes", num(120)}, {"keep_files", num(2)}});
    sink->write({numbered(0, 50)});
    sink->stop();
    EXPECT_EQ(files(), (std::set<std::string>{"out.jsonl", "out.jsonl.1", "out.jsonl.2"}));
    EXPECT_EQ(slurp(at("out.jsonl.1")), std::string(99, 'x') + "\n");
    EXPECT_EQ(slurp(at("out.jsonl.2")), "old 1\n");
}

TEST_F(FileSinkTest, KeepFilesZeroDiscardsRotatedData) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"rotate_bytes", num(200)}, {"keep_files", num(0)}});
    sink->write({numbered(0), numbered(1), numbered(2)});
    sink->stop();
    EXPECT_EQ(files(), (std::set<std::string>{"out.jsonl"}));
    EXPECT_EQ(seq_of(lines_of(at("out.jsonl"))[0]), 2);
}

TEST_F(FileSinkTest, RawLineBreaksInAPayloadBecomeSpaces) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}});
    sink->write({make_event("{\"a\":\n1,\r\n\"b\":2}"), make_event(R"({"c":3})")});
    sink->stop();
    EXPECT_EQ(lines_of(at("out.jsonl")), (std::vector<std::string>{"{\"a\": 1,  \"b\":2}", R"({"c":3})"}));
}

TEST_F(FileSinkTest, EvictsLeastRecentlyUsedFilesAndStillWritesEverything) {
    auto sink = make_sink({{"path", str(at("{kind}.jsonl"))}, {"max_open_files", num(2)}});
    for (int b = 0; b < 5; ++b) {
        EventBatch batch;
        for (int i = 0; i < 50; ++i)
            batch.push_back(make_event(R"({"b":)" + std::to_string(b) + R"(,"i":)" + std::to_string(i) + "}",
                                       "k" + std::to_string(i % 10)));
        sink->write(batch);
        EXPECT_LE(context_.metric_registry.gauges["open_files"].value(), 2);
    }
    sink->flush();
    sink->stop();
    ASSERT_EQ(files().size(), 10u);
    for (int k = 0; k < 10; ++k) {
        auto lines = lines_of(at("k" + std::to_string(k) + ".jsonl"));
        ASSERT_EQ(lines.size(), 25u);
        std::size_t n = 0;
        for (int b = 0; b < 5; ++b)
            for (int i = k; i < 50; i += 10)
                EXPECT_EQ(lines[n++], R"({"b":)" + std::to_string(b) + R"(,"i":)" + std::to_string(i) + "}");
    }
}

TEST_F(FileSinkTest, FsyncBatchAndIntervalRunWithoutErrors) {
    {
        auto sink = make_sink({{"path", str(at("batch.jsonl"))}, {"fsync", str("batch")}});
        for (int i = 0; i < 3; ++i)
            sink->write({numbered(i)});
        sink->tick();
        sink->flush();
        sink->stop();
        EXPECT_EQ(lines_of(at("batch.jsonl")).size(), 3u);
    }
    {
        auto sink = make_sink(
            {{"path", str(at("interval/{kind}.jsonl"))}, {"fsync", str("interval")}, {"fsync_interval_ms", num(10)}});
        EXPECT_EQ(sink->tick_interval(), std::chrono::milliseconds(10));
        for (int i = 0; i < 3; ++i) {
            sink->write({numbered(i)});
            context_.clock_control().advance(std::chrono::milliseconds(20));
            sink->tick();
        }
        sink->flush();
        sink->stop();
        EXPECT_EQ(lines_of(at("interval/unknown.jsonl")).size(), 3u);
    }
    {
        auto sink = make_sink({{"path", str(at("never.jsonl"))}, {"fsync", str("never")}});
        sink->write({numbered(0)});
        sink->tick();
        sink->flush();
        sink->stop();
        EXPECT_EQ(lines_of(at("never.jsonl")).size(), 1u);
    }
    EXPECT_TRUE(context_.failures.empty());
}

// Acknowledgements follow the fsync policy: batch and never settle in deliver(), interval waits for the sync.
TEST_F(FileSinkTest, EventsAreDeliveredAsDurablyAsTheFsyncPolicyPromises) {
    using hubflow::testing::AckRecorder;
    {
        AckRecorder acks;
        auto sink = make_sink({{"path", str(at("batch.jsonl"))}, {"fsync", str("batch")}});
        sink->deliver({numbered(0), numbered(1)}, acks.ack());
        EXPECT_EQ(acks.delivered(), 2u);
        sink->stop();
    }
    {
        AckRecorder acks;
        auto sink = make_sink({{"path", str(at("interval.jsonl"))}, {"fsync_interval_ms", num(100)}});
        sink->deliver({numbered(0), numbered(1)}, acks.ack());
        sink->deliver({numbered(2)}, acks.ack());
        EXPECT_EQ(acks.settled(), 0u) << "written but not yet synced";
        sink->tick();
        EXPECT_EQ(acks.settled(), 0u) << "the interval has not passed";
        context_.clock_control().advance(std::chrono::milliseconds(150));
        sink->tick();
        EXPECT_EQ(acks.delivered(), 3u);
        sink->deliver({numbered(3)}, acks.ack());
        sink->stop();  // the last sync on the way out settles the rest
        EXPECT_EQ(acks.delivered(), 4u);
    }
    {
        AckRecorder acks;
        auto sink = make_sink({{"path", str(at("never.jsonl"))}, {"fsync", str("never")}});
        sink->deliver({numbered(0)}, acks.ack());
        EXPECT_EQ(acks.delivered(), 1u);
        sink->stop();
    }
}

TEST_F(FileSinkTest, EventsOfAWriteThatFailsAreSettledLost) {
    using hubflow::testing::AckRecorder;
    spit(at("blocked"), "a regular file where a directory should be\n");
    AckRecorder acks;
    auto sink = make_sink({{"path", str(at("{kind}/out.jsonl"))}, {"fsync", str("batch")}});
    EXPECT_THROW(sink->deliver({make_event(R"({"n":1})", "blocked"), make_event(R"({"n":2})", "fine")}, acks.ack()),
                 std::runtime_error);
    EXPECT_EQ(acks.lost(), 2u);
    EXPECT_EQ(acks.delivered(), 0u);
    sink->deliver({make_event(R"({"n":3})", "fine")}, acks.ack());
    EXPECT_EQ(acks.delivered(), 1u);
    sink->stop();
}

TEST_F(FileSinkTest, WriteErrorNamesTheFileAndOtherFilesAreStillWritten) {
    spit(at("blocked"), "a regular file where a directory should be\n");
    auto sink = make_sink({{"path", str(at("{kind}/out.jsonl"))}});
    try {
        sink->write({make_event(R"({"n":1})", "blocked"), make_event(R"({"n":2})", "fine")});
        FAIL() << "expected a write error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(at("blocked")), std::string::npos) << e.what();
    }
    EXPECT_EQ(lines_of(at("fine/out.jsonl")), (std::vector<std::string>{R"({"n":2})"}));
    // The sink goes on working after the error.
    sink->write({make_event(R"({"n":3})", "fine")});
    sink->stop();
    EXPECT_EQ(lines_of(at("fine/out.jsonl")), (std::vector<std::string>{R"({"n":2})", R"({"n":3})"}));
}

TEST_F(FileSinkTest, AWriteThatFailsPartWayLeavesOnlyWholeLines) {
    auto sink = make_sink({{"path", str(at("out.jsonl"))}, {"fsync", str("never")}});
    sink->write({numbered(0)});
    // A file size limit makes the kernel accept part of the next write and then refuse the rest (EFBIG), as
    // a full disk would.
    struct rlimit saved {};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limited = saved;
    limited.rlim_cur = 350;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
    std::string error;
    try {
        sink->write({numbered(1), numbered(2), numbered(3), numbered(4)});
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);

    EXPECT_NE(error.find(at("out.jsonl")), std::string::npos) << error;
    auto lines = lines_of(at("out.jsonl"));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(seq_of(lines[2]), 2);
    EXPECT_EQ(counter("bytes_written"), 300u);
    // Writing goes on at a line boundary.
    sink->write({numbered(5)});
    sink->stop();
    EXPECT_EQ(lines_of(at("out.jsonl")).size(), 4u);
    EXPECT_FALSE(fs::exists(at("out.jsonl.partial")));
}

TEST_F(FileSinkTest, StartRefusesAFixedPathThatCannotBeOpened) {
    spit(at("blocked"), "x\n");
    FileSink sink;
    Value config = object({{"path", str(at("blocked/out.jsonl"))}});
    sink.configure(ConfigView(config), context_);
    try {
        sink.start();
        FAIL() << "expected start() to throw";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(at("blocked")), std::string::npos) << e.what();
    }
}

TEST_F(FileSinkTest, ConfigureDoesNoIo) {
    FileSink sink;
    Value config = object({{"path", str(at("not/yet/{kind}.jsonl"))}, {"rotate_bytes", num(10)}});
    sink.configure(ConfigView(config), context_);
    EXPECT_TRUE(files().empty());
    EXPECT_FALSE(fs::exists(at("not")));
}

void expect_config_error(Value::Object members, const std::string& key) {
    hubflow::testing::FakeContext context("bad");
    Value config = object(std::move(members));
    FileSink sink;
    try {
        sink.configure(ConfigView(config), context);
        ADD_FAILURE() << "expected a ConfigError about '" << key << "'";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.key(), key) << e.what();
        EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
}

TEST(FileSinkConfig, ErrorsNameTheKey) {
    expect_config_error({{"path", str("x.jsonl")}, {"fsync", str("sometimes")}}, "fsync");
    expect_config_error({{"path", str("x.jsonl")}, {"rotate_bytes", num(-1)}}, "rotate_bytes");
    expect_config_error({{"path", str("x.jsonl")}, {"rotate_bytes", str("1MB")}}, "rotate_bytes");
    expect_config_error({{"path", str("x.jsonl")}, {"keep_files", num(-1)}}, "keep_files");
    expect_config_error({{"path", str("x.jsonl")}, {"fsync_interval_ms", num(0)}}, "fsync_interval_ms");
    expect_config_error({{"path", str("x.jsonl")}, {"max_open_files", num(0)}}, "max_open_files");
    expect_config_error({}, "path");
    expect_config_error({{"path", str("")}}, "path");
    expect_config_error({{"path", str("out/{kind")}}, "path");
    expect_config_error({{"path", str("out/{}.jsonl")}}, "path");
    expect_config_error({{"path", str("out/")}}, "path");
}

TEST(FileSinkConfig, DescribeListsEveryKeyWithItsDefault) {
    auto d = FileSink::describe();
    EXPECT_EQ(d.type, "file");
    EXPECT_EQ(d.kind, hubflow::ComponentKind::sink);
    std::map<std::string, hubflow::ConfigField> by_name;
    for (const auto& f : d.fields) {
        EXPECT_FALSE(f.doc.empty()) << f.name;
        by_name[f.name] = f;
    }
    ASSERT_EQ(by_name.size(), 6u);
    EXPECT_TRUE(by_name["path"].required);
    EXPECT_EQ(by_name["path"].claim, hubflow::Claim::file_path);
    EXPECT_TRUE(by_name["path"].default_json.empty());
    EXPECT_EQ(by_name["rotate_bytes"].default_json, "0");
    EXPECT_EQ(by_name["keep_files"].default_json, "5");
    EXPECT_EQ(by_name["fsync"].default_json, "\"interval\"");
    EXPECT_EQ(by_name["fsync_interval_ms"].default_json, "1000");
    EXPECT_EQ(by_name["max_open_files"].default_json, "64");
    for (const char* name : {"rotate_bytes", "keep_files", "fsync_interval_ms", "max_open_files"})
        EXPECT_EQ(by_name[name].type, hubflow::FieldType::integer) << name;
}

}  // namespace

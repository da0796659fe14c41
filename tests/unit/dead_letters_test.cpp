// hubflow/dead_letters.h against real files in a scratch directory.
#include "hubflow/dead_letters.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hubflow/json_parse.h"
#include "hubflow/testing/fake_context.h"
#include "process.h"

namespace {

namespace fs = std::filesystem;
using hubflow::DeadLetterRecord;
using hubflow::DeadLetterWriter;
using hubflow::parse_json;

const auto nov_14_2023_22h13 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::string> lines_of(const fs::path& path) {
    std::vector<std::string> lines;
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

unsigned mode_of(const fs::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
}

// Runs in a child process (a death test): writes `records` with the file size limited to `limit` bytes, and
// exits with 3 when the write throws an error naming the file.
[[noreturn]] void write_with_file_size_limit(const fs::path& path, rlim_t limit, std::vector<std::string> records) {
    std::signal(SIGXFSZ, SIG_IGN);  // a write beyond the limit fails with EFBIG instead of killing the process
    const rlimit r{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &r);
    hubflow::testing::FakeContext context("hook");
    DeadLetterWriter writer(path.string(), context);
    try {
        writer.write(records, nov_14_2023_22h13);
    } catch (const std::runtime_error& e) {
        std::exit(std::string(e.what()).find(path.filename().string()) != std::string::npos ? 3 : 4);
    }
    std::exit(5);
}

class DeadLetterWriterTest : public hubflow::test::ScratchDirTest {
protected:
    std::uint64_t counter(const std::string& name) { return context.metric_registry.counters[name].value(); }

    hubflow::testing::FakeContext context{"hook"};
};

TEST(DeadLetterRecord, FieldsInTheOrderAddedAsOneJsonObject) {
    DeadLetterRecord head;
    head.add_time("at", nov_14_2023_22h13)
        .add_integer("status", 400)
        .add_null("retry")
        .add_string("error", "field \"lock\" is\nrequired");
    EXPECT_EQ(head.text(),
              R"({"at":"2023-11-14T22:13:20Z","status":400,"retry":null,"error":"field \"lock\" is\nrequired"})");
    const std::string record = head.with_json("event", R"({"seq": 7})");
    EXPECT_EQ(parse_json(record).find("event")->find("seq")->as_int(), 7);
    EXPECT_EQ(head.text().find("event"), std::string::npos) << "with_json leaves the head as it was";
    EXPECT_EQ(DeadLetterRecord().with_json("event", "1"), R"({"event":1})");
    EXPECT_EQ(DeadLetterRecord().text(), "{}");
}

TEST_F(DeadLetterWriterTest, AppendsWholeSyncedLinesInPrivateDirectoriesAndFiles) {
    const fs::path path = dir / "a" / "b" / "dead.jsonl";
    DeadLetterWriter writer(path.string(), context);
    EXPECT_FALSE(fs::exists(dir / "a")) << "the constructor does no I/O";
    writer.open();
    ASSERT_TRUE(fs::exists(path));
    EXPECT_EQ(mode_of(dir / "a"), 0700u);
    EXPECT_EQ(mode_of(dir / "a" / "b"), 0700u);
    EXPECT_EQ(mode_of(path), 0600u);

    writer.write(std::vector<std::string>{R"({"n":1})", "{\"n\":\n2}"}, nov_14_2023_22h13);
    writer.write(R"({"n":3})", nov_14_2023_22h13);
    writer.close();
    writer.write(R"({"n":4})", nov_14_2023_22h13);  // reopens after close()

    const auto lines = lines_of(path);
    ASSERT_EQ(lines.size(), 4u);
    for (std::size_t i = 0; i < lines.size(); ++i)
        EXPECT_EQ(parse_json(lines[i]).find("n")->as_int(), static_cast<int>(i + 1)) << lines[i];
    EXPECT_EQ(lines[1], R"({"n": 2})") << "a raw line break becomes a space";
    EXPECT_EQ(counter("dead_letter_records_written"), 4u);
    EXPECT_EQ(counter("dead_letter_bytes_written"), read_file(path).size());
}

TEST_F(DeadLetterWriterTest, ExistingFilesKeepTheirMode) {
    const std::string path = write("dead.jsonl", "{\"old\":true}\n");
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    DeadLetterWriter writer(path, context);
    writer.write(R"({"new":true})", nov_14_2023_22h13);
    EXPECT_EQ(mode_of(path), 0640u);
    EXPECT_EQ(lines_of(path).size(), 2u);
}

TEST_F(DeadLetterWriterTest, APartialLastLineIsMovedAsideBeforeAppending) {
    const std::string path = write("dead.jsonl", "{\"whole\":1}\n{\"cut\":");
    DeadLetterWriter writer(path, context);
    writer.write(R"({"after":1})", nov_14_2023_22h13);
    EXPECT_EQ(read_file(path), "{\"whole\":1}\n{\"after\":1}\n");
    EXPECT_EQ(read_file(path + ".partial"), "{\"cut\":\n");
    EXPECT_EQ(mode_of(path + ".partial"), 0600u);
    EXPECT_EQ(counter("dead_letter_partial_lines_repaired"), 1u);
    EXPECT_TRUE(context.logger.contains("partial line of 7 bytes"));

    // A file that is one partial line loses nothing either.
    const std::string only = write("only.jsonl", "{\"no newline\"");
    DeadLetterWriter second(only, context);
    second.open();
    EXPECT_EQ(read_file(only), "");
    EXPECT_EQ(read_file(only + ".partial"), "{\"no newline\"\n");
}

TEST_F(DeadLetterWriterTest, PathTemplateTakesTimeFromTheWriteAndFieldsFromTheRecord) {
    DeadLetterWriter writer((dir / "%Y-%m-%d" / "{status}-{event.kind}.jsonl").string(), context);
    writer.open();  // a templated path opens nothing before the first record
    EXPECT_TRUE(fs::is_empty(dir));
    writer.write(std::vector<std::string>{R"({"status":400,"event":{"kind":"entry"}})",
                                          R"({"status":null,"event":{"kind":"../up"}})",
                                          R"({"status":400,"event":{"kind":"entry","n":2}})"},
                 nov_14_2023_22h13);
    const fs::path day = dir / "2023-11-14";
    EXPECT_EQ(lines_of(day / "400-entry.jsonl").size(), 2u);
    EXPECT_EQ(lines_of(day / "unknown-_._up.jsonl").size(), 1u) << "values cannot leave the directory";
    EXPECT_EQ(counter("dead_letter_records_written"), 3u);
}

TEST_F(DeadLetterWriterTest, RefusesWhatIsNotAJsonObjectAndWritesNothing) {
    const fs::path path = dir / "dead.jsonl";
    DeadLetterWriter writer(path.string(), context);
    try {
        writer.write(std::vector<std::string>{R"({"ok":1})", "not json", R"({"ok":2})"}, nov_14_2023_22h13);
        ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("record 2 of 3"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_THROW(writer.write("", nov_14_2023_22h13), std::invalid_argument);
}

TEST_F(DeadLetterWriterTest, BadPathsAreClearErrors) {
    EXPECT_THROW(DeadLetterWriter("x/{", context), std::invalid_argument);
    EXPECT_THROW(DeadLetterWriter("", context), std::invalid_argument);
    EXPECT_THROW(DeadLetterWriter("dir/", context), std::invalid_argument);

    // A directory where the file should be, and a file where a directory should be.
    fs::create_directories(dir / "taken.jsonl");
    DeadLetterWriter on_directory((dir / "taken.jsonl").string(), context);
    try {
        on_directory.open();
        ADD_FAILURE() << "opened a directory";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("taken.jsonl"), std::string::npos) << e.what();
    }
    const std::string file = write("plain", "");
    DeadLetterWriter under_file(file + "/dead.jsonl", context);
    try {
        under_file.write(R"({"a":1})", nov_14_2023_22h13);
        ADD_FAILURE() << "wrote below a regular file";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("plain/dead.jsonl"), std::string::npos) << e.what();
    }
}

// A write that the file system stops halfway (here the file size limit, as a full disk would) leaves whole
// lines only: the records that fitted, never a partial one.
TEST_F(DeadLetterWriterTest, AWriteCutShortIsCutBackToItsLastWholeLine) {
    const fs::path path = dir / "dead.jsonl";
    const std::string first = R"({"n":1,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";
    const std::string second = R"({"n":2,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";
    const rlim_t limit = first.size() + 1 + second.size() / 2;
    EXPECT_EXIT(write_with_file_size_limit(path, limit, {first, second}), ::testing::ExitedWithCode(3), "");
    EXPECT_EQ(read_file(path), first + "\n");

    // The next writer appends after the whole lines.
    DeadLetterWriter writer(path.string(), context);
    writer.write(second, nov_14_2023_22h13);
    EXPECT_EQ(lines_of(path), (std::vector<std::string>{first, second}));
    EXPECT_EQ(counter("dead_letter_partial_lines_repaired"), 0u);
}

TEST_F(DeadLetterWriterTest, ConcurrentWritersNeverInterleaveWithinALine) {
    const fs::path path = dir / "dead.jsonl";
    DeadLetterWriter writer(path.string(), context);
    constexpr int threads = 4;
    constexpr int per_thread = 50;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                DeadLetterRecord record;
                record.add_integer("thread", t).add_integer("i", i).add_string("pad", std::string(300, 'p'));
                writer.write(std::vector<std::string>{record.text(), record.text()}, nov_14_2023_22h13);
            }
        });
    }
    for (auto& w : workers)
        w.join();
    const auto lines = lines_of(path);
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(threads * per_thread * 2));
    std::vector<int> next(threads, 0);
    for (std::size_t k = 0; k < lines.size(); k += 2) {
        EXPECT_EQ(lines[k], lines[k + 1]) << "the records of one write() are contiguous";
        const auto record = parse_json(lines[k]);
        const int t = record.find("thread")->as_int();
        EXPECT_EQ(record.find("i")->as_int(), next[t]++) << "each thread's records in its order";
    }
    EXPECT_EQ(counter("dead_letter_records_written"), lines.size());
}

}  // namespace

// The `tail` source on real files in a temporary directory: lines complete and in order across read blocks,
// the last line without '\n', long lines skipped, metadata from the payload, following appends, rotation and
// truncation, globs, checkpoints resumed exactly once, and configuration errors naming the key.

#include "tail_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "hubflow/config.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"

namespace {

namespace fs = std::filesystem;
using hubflow::ConfigError;
using hubflow::ConfigView;
using hubflow::Event;
using hubflow::EventBatch;
using hubflow::SharedBatch;
using hubflow::Value;
using hubflow::file::TailSource;
using hubflow::testing::FakeContext;

// A context for a source running on its own thread: counts emitted events atomically, waits for real (briefly,
// so polling does not spin) while advancing the manual clock, and hands out batches holding stale events as
// the host's recycler does, so that every field a source forgets to set shows.
class TailContext : public FakeContext {
public:
    using FakeContext::emit;
    using FakeContext::FakeContext;
    void emit(SharedBatch batch, std::string_view output = {}) override {
        const auto n = batch->size();
        FakeContext::emit(std::move(batch), output);
        events += n;
    }
    bool wait_for(std::chrono::nanoseconds d) override {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return FakeContext::wait_for(d);
    }
    EventBatch reusable_batch(std::size_t size) override {
        EventBatch batch(size);
        for (auto& e : batch) {
            e.payload = "stale payload";
            e.meta.kind = "stale kind";
            e.meta.site_id = "stale site";
            e.meta.user_id = "stale user";
            e.meta.id = "stale id";
        }
        return batch;
    }
    std::vector<std::string> payloads() {
        std::vector<std::string> out;
        for (const auto& e : emitted[""])
            out.push_back(e.payload);
        return out;
    }
    std::atomic<std::size_t> events{0};
};

// Waits until `done` holds or the deadline passes; the caller asserts on the result.
bool eventually(const std::function<bool()>& done, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

std::string line_of(int n) {
    return R"({"n":)" + std::to_string(n) + R"(,"pad":"0123456789"})";
}

class Tail : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("hubflow-tail-" + std::to_string(::getpid()) + "-" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    void append(const fs::path& p, const std::string& text) {
        std::ofstream out(p, std::ios::binary | std::ios::app);
        out << text;
    }

    Value config(const std::string& extra_json) {
        return hubflow::testing::node_config(TailSource::describe(), extra_json);
    }
    std::string path_json(const fs::path& p) { return R"("path": ")" + p.string() + R"(")"; }

    // Configures, starts, runs to the end (follow=false) and stops.
    void read_all(TailSource& source, TailContext& context, const std::string& json) {
        Value c = config(json);
        source.configure(ConfigView(c), context);
        source.start();
        source.run();
        source.stop();
    }

    fs::path dir;
};

// A source on a thread of its own, following files until stopped.
class Follower {
public:
    Follower(TailContext& context, const Value& config) : context_(context) {
        source_.configure(ConfigView(config), context);
        source_.start();
        thread_ = std::thread([this] { source_.run(); });
    }
    ~Follower() { stop(); }
    void stop() {
        if (!thread_.joinable()) return;
        context_.stop_requested = true;
        thread_.join();
        source_.stop();
    }

private:
    TailContext& context_;
    TailSource source_;
    std::thread thread_;
};

TEST_F(Tail, ReadsEveryLineInOrderAcrossBlocksAndTheLastLineWithoutNewline) {
    const fs::path file = dir / "in.jsonl";
    std::string text;
    std::vector<std::string> expected;
    // About 3.5 MB: many 256 KiB blocks, lines cut at every block boundary.
    for (int i = 0; i < 100'000; ++i) {
        expected.push_back(line_of(i));
        text += expected.back() + "\n";
    }
    text += "\n";  // blank lines carry no event
    text += R"({"n":"crlf"})"
            "\r\n";  // CRLF line ends are taken off
    expected.emplace_back(R"({"n":"crlf"})");
    text += R"({"n":"last"})";  // no '\n': complete at the end of the file when not following
    expected.emplace_back(R"({"n":"last"})");
    append(file, text);

    TailContext context("t");
    TailSource source;
    read_all(source, context, "{" + path_json(file) + R"(, "follow": false, "batch_size": 300})");
    EXPECT_EQ(context.payloads(), expected);
    EXPECT_EQ(context.metric_registry.counters["bytes_read"].value(), text.size());
    EXPECT_TRUE(context.failures.empty());
}

TEST_F(Tail, SkipsLinesLongerThanMaxLineBytesAndNamesFileAndLine) {
    const fs::path file = dir / "long.jsonl";
    append(file, line_of(1) + "\n");
    append(file, R"({"big":")" + std::string(200, 'x') + "\"}\n");  // longer than max_line_bytes, fits a block
    append(file, line_of(3) + "\n");
    append(file, R"({"huge":")" + std::string(600'000, 'y') + "\"}\n");  // spans several blocks
    append(file, line_of(5) + "\n");
    append(file, R"({"tail":")" + std::string(300'000, 'z'));  // too long and never ends

    TailContext context("t");
    TailSource source;
    read_all(source, context, "{" + path_json(file) + R"(, "follow": false, "max_line_bytes": 100})");
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(1), line_of(3), line_of(5)}));
    EXPECT_EQ(context.metric_registry.counters["lines_too_long"].value(), 3u);
    // One message a second at most: the first is logged with its place, the rest are counted.
    EXPECT_TRUE(context.logger.contains("skipped line 2 of '" + file.string() + "' (at byte 27): 211 bytes"));
    EXPECT_TRUE(context.logger.contains("2 more lines longer than max_line_bytes 100 were skipped"));
}

TEST_F(Tail, ReportsEverySkippedLineWhenTheyAreRare) {
    const fs::path file = dir / "long.jsonl";
    append(file, std::string(50, 'a') + "\n" + line_of(2) + "\n" + std::string(50, 'b') + "\n");
    TailContext context("t");
    TailSource source;
    Value c = config("{" + path_json(file) + R"(, "follow": false, "max_line_bytes": 40})");
    source.configure(ConfigView(c), context);
    source.start();
    source.run();
    // The first is logged with its place; the second, within the same second, is counted in a last message.
    EXPECT_TRUE(context.logger.contains("skipped line 1 of '" + file.string() + "' (at byte 0): 51 bytes"));
    EXPECT_TRUE(context.logger.contains("1 more lines longer than max_line_bytes 40 were skipped"));
}

TEST_F(Tail, MetadataFromPayloadFieldsAndTheConfiguredKind) {
    const fs::path file = dir / "meta.jsonl";
    append(file, R"({"id":"e1","kind":"incident","site_id":"S1","user_id":"U1","lock":{"site_id":"nested"}})"
                 "\n");
    append(file, R"({"id":"e2","note":"mentions \"site_id\" in a string only"})"
                 "\n");
    append(file, R"({"user_id":null,"id":7})"
                 "\n");

    TailContext context("t");
    TailSource source;
    read_all(source, context, "{" + path_json(file) + R"(, "follow": false})");
    const auto& got = context.emitted[""];
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].meta.kind, "incident");
    EXPECT_EQ(got[0].meta.site_id, "S1");
    EXPECT_EQ(got[0].meta.user_id, "U1");
    EXPECT_EQ(got[0].meta.id, "e1");
    EXPECT_EQ(got[0].meta.source, "t");
    // Fields a payload lacks are empty, not left over from a recycled event.
    EXPECT_EQ(got[1].meta.kind, "");
    EXPECT_EQ(got[1].meta.site_id, "");
    EXPECT_EQ(got[1].meta.user_id, "");
    EXPECT_EQ(got[1].meta.id, "e2");
    EXPECT_EQ(got[2].meta.user_id, "");  // null is "not found"
    EXPECT_EQ(got[2].meta.id, "7");

    TailContext configured("k");
    TailSource with_kind;
    read_all(with_kind, configured, "{" + path_json(file) + R"(, "follow": false, "kind": "entry"})");
    for (const auto& e : configured.emitted[""])
        EXPECT_EQ(e.meta.kind, "entry");
}

TEST_F(Tail, FollowsAppendsAndHoldsBackAnIncompleteLine) {
    const fs::path file = dir / "live.jsonl";
    append(file, line_of(1) + "\n");
    TailContext context("t");
    Follower follower(context, config("{" + path_json(file) + R"(, "poll_interval_ms": 5})"));
    ASSERT_TRUE(eventually([&] { return context.events == 1; }));
    append(file, line_of(2) + "\n" + R"({"n":3,)");
    ASSERT_TRUE(eventually([&] { return context.events == 2; }));
    // Several polls later, the half line is still not an event.
    const auto waits = context.clock().monotonic();
    ASSERT_TRUE(eventually([&] { return context.clock().monotonic() - waits > std::chrono::milliseconds(50); }));
    EXPECT_EQ(context.events, 2u);
    append(file, R"("pad":"0123456789"})"
                 "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 3; }));
    follower.stop();
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(1), line_of(2), line_of(3)}));
}

TEST_F(Tail, FollowsRotationByRenameAndANewFile) {
    const fs::path file = dir / "app.jsonl";
    append(file, line_of(1) + "\n");
    TailContext context("t");
    Follower follower(context, config("{" + path_json(file) + R"(, "poll_interval_ms": 5, "rotate_wait_ms": 5000})"));
    ASSERT_TRUE(eventually([&] { return context.events == 1; }));
    fs::rename(file, dir / "app.jsonl.1");
    // The writer still has the old file open for a moment, then moves on to a new one. (rotate_wait_ms runs on
    // the manual clock, 5 ms a poll: a thousand polls, over a second of real time, before the old file is let go.)
    append(dir / "app.jsonl.1", line_of(2) + "\n");
    append(file, line_of(3) + "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 3; }));
    ASSERT_TRUE(eventually([&] { return context.metric_registry.counters["files_retired"].value() == 1; }));
    append(file, line_of(4) + "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 4; }));
    follower.stop();
    auto got = context.payloads();
    std::sort(got.begin(), got.end());  // the two files are read side by side
    EXPECT_EQ(got, (std::vector<std::string>{line_of(1), line_of(2), line_of(3), line_of(4)}));
}

TEST_F(Tail, StartsAgainAfterTruncation) {
    const fs::path file = dir / "trunc.jsonl";
    append(file, line_of(1) + "\n" + line_of(2) + "\n");
    TailContext context("t");
    Follower follower(context, config("{" + path_json(file) + R"(, "poll_interval_ms": 5})"));
    ASSERT_TRUE(eventually([&] { return context.events == 2; }));
    { std::ofstream(file, std::ios::trunc) << line_of(3) << "\n"; }  // copytruncate-style rotation
    ASSERT_TRUE(eventually([&] { return context.events == 3; }));
    follower.stop();
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(1), line_of(2), line_of(3)}));
    EXPECT_EQ(context.metric_registry.counters["truncations"].value(), 1u);
    EXPECT_TRUE(context.logger.contains("truncated"));
}

TEST_F(Tail, GlobReadsEveryMatchingFileOnceEvenWhenRenamedWithinThePattern) {
    append(dir / "a.jsonl", line_of(1) + "\n");
    append(dir / "b.jsonl", line_of(2) + "\n");
    append(dir / "skip.txt", line_of(99) + "\n");
    TailContext context("t");
    Follower follower(context, config(R"({"path": ")" + (dir / "*.jsonl").string() + R"(", "poll_interval_ms": 5})"));
    ASSERT_TRUE(eventually([&] { return context.events == 2; }));
    fs::rename(dir / "a.jsonl", dir / "a-old.jsonl");  // still matched: the same file, not read again
    append(dir / "c.jsonl", line_of(3) + "\n");        // a new file is read from its beginning
    ASSERT_TRUE(eventually([&] { return context.events == 3; }));
    append(dir / "a-old.jsonl", line_of(4) + "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 4; }));
    follower.stop();
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(1), line_of(2), line_of(3), line_of(4)}));
}

TEST_F(Tail, StartAtEndSkipsWhatIsThereAlready) {
    const fs::path file = dir / "end.jsonl";
    append(file, line_of(1) + "\n");
    TailContext context("t");
    Follower follower(context, config("{" + path_json(file) + R"(, "start_at": "end", "poll_interval_ms": 5})"));
    append(file, line_of(2) + "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 1; }));
    follower.stop();
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(2)}));
}

TEST_F(Tail, CheckpointResumesExactlyOnceAcrossARestart) {
    const fs::path file = dir / "cp.jsonl";
    const fs::path state = dir / "state";
    std::vector<std::string> expected;
    auto write = [&](int from, int to) {
        std::string text;
        for (int i = from; i < to; ++i) {
            expected.push_back(line_of(i));
            text += expected.back() + "\n";
        }
        append(file, text);
    };
    const std::string json = "{" + path_json(file) + R"(, "checkpoint": true, "poll_interval_ms": 5})";
    std::vector<std::string> got;

    write(0, 5000);
    {
        TailContext context("t", state);
        Follower follower(context, config(json));
        ASSERT_TRUE(eventually([&] { return context.events == 5000; }));
        follower.stop();  // the checkpoint is written on the way out
        got = context.payloads();
    }
    write(5000, 8000);
    append(file, R"({"n":"half)");  // not complete: neither emitted nor covered by the checkpoint
    {
        TailContext context("t", state);
        Follower follower(context, config(json));
        ASSERT_TRUE(eventually([&] { return context.events == 3000; }));
        append(file, "\"}\n");
        expected.emplace_back(R"({"n":"half"})");
        ASSERT_TRUE(eventually([&] { return context.events == 3001; }));
        follower.stop();
        EXPECT_TRUE(context.logger.contains("resuming '" + file.string() + "' at byte"));
        for (auto& p : context.payloads())
            got.push_back(p);
    }
    EXPECT_EQ(got, expected);

    // Reading to the end with a checkpoint: a second run finds nothing new.
    TailContext again("t", state);
    TailSource source;
    read_all(source, again, "{" + path_json(file) + R"(, "checkpoint": true, "follow": false})");
    EXPECT_EQ(again.events, 0u);
}

TEST_F(Tail, ACheckpointForAnotherFileIsNotApplied) {
    const fs::path file = dir / "cp.jsonl";
    const fs::path state = dir / "state";
    append(file, line_of(1) + "\n" + line_of(2) + "\n");
    {
        TailContext context("t", state);
        TailSource source;
        read_all(source, context, "{" + path_json(file) + R"(, "checkpoint": true, "follow": false})");
        ASSERT_EQ(context.events, 2u);
    }
    // Replaced by a longer file with other content. Whether or not the inode is reused, it is read whole.
    fs::remove(file);
    append(file, line_of(7) + "\n" + line_of(8) + "\n" + line_of(9) + "\n");
    TailContext context("t", state);
    TailSource source;
    read_all(source, context, "{" + path_json(file) + R"(, "checkpoint": true, "follow": false})");
    EXPECT_EQ(context.payloads(), (std::vector<std::string>{line_of(7), line_of(8), line_of(9)}));
}

TEST_F(Tail, FollowingAMissingFileWaitsForItAndStopsPromptly) {
    const fs::path file = dir / "later.jsonl";
    TailContext context("t");
    Follower follower(context, config("{" + path_json(file) + R"(, "poll_interval_ms": 5})"));
    append(file, line_of(1) + "\n");
    ASSERT_TRUE(eventually([&] { return context.events == 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    follower.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(Tail, AMissingFileRefusesTheStartWhenNotFollowing) {
    TailContext context("t");
    TailSource source;
    Value c = config("{" + path_json(dir / "none.jsonl") + R"(, "follow": false})");
    source.configure(ConfigView(c), context);
    try {
        source.start();
        FAIL() << "start() accepted a missing file";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot open '" + (dir / "none.jsonl").string() + "'"), std::string::npos)
            << e.what();
    }
}

TEST_F(Tail, ConfigErrorsNameTheKey) {
    auto key_of = [&](const std::string& json) -> std::string {
        TailContext context("t");
        TailSource source;
        try {
            Value c = config(json);
            source.configure(ConfigView(c), context);
        } catch (const ConfigError& e) {
            return e.key();
        }
        return "(accepted)";
    };
    EXPECT_EQ(key_of(R"({"path": ""})"), "path");
    EXPECT_EQ(key_of(R"({"path": "x", "start_at": "middle"})"), "start_at");
    EXPECT_EQ(key_of(R"({"path": "x", "batch_size": 0})"), "batch_size");
    EXPECT_EQ(key_of(R"({"path": "x", "max_line_bytes": 0})"), "max_line_bytes");
    EXPECT_EQ(key_of(R"({"path": "x", "poll_interval_ms": 0})"), "poll_interval_ms");
    EXPECT_EQ(key_of(R"({"path": "x", "rotate_wait_ms": -1})"), "rotate_wait_ms");
    EXPECT_EQ(key_of(R"({"path": "x", "checkpoint_interval_ms": 0})"), "checkpoint_interval_ms");
    EXPECT_EQ(key_of(R"({"path": "x", "follow": "yes"})"), "follow");
    EXPECT_EQ(key_of(R"({"path": "x", "start_at": "end", "checkpoint": true})"), "(accepted)");
}

}  // namespace

// With acknowledgements the checkpoint passes only lines whose batch, and every batch before it, has ended
// finished downstream: a restart reads again exactly from the first batch that had not.
TEST_F(Tail, CheckpointCoversOnlyWhatEndedFinishedInOrder) {
    const fs::path file = dir / "acked.jsonl";
    const fs::path state = dir / "state";
    std::string text;
    for (int i = 0; i < 100; ++i)
        text += line_of(i) + "\n";
    append(file, text);
    const std::string json = "{" + path_json(file) +
                             R"(, "checkpoint": true, "checkpoint_interval_ms": 1, "poll_interval_ms": 5,
                                  "batch_size": 10, "drain_wait_ms": 20})";
    {
        TailContext context("t", state);
        context.tracks_deliveries = true;
        Follower follower(context, config(json));
        ASSERT_TRUE(eventually([&] { return context.emitted_batches == 10; }));
        for (std::uint64_t n : {1, 2, 3, 5, 6})  // 4 has not ended: 5 and 6 must not count yet
            context.end_batch(n);
        follower.stop();
        EXPECT_TRUE(context.logger.contains("7 batches had not ended downstream"));
    }
    TailContext again("t", state);
    TailSource source;
    read_all(source, again, "{" + path_json(file) + R"(, "checkpoint": true, "follow": false})");
    ASSERT_EQ(again.events, 70u);
    EXPECT_EQ(again.payloads().front(), line_of(30));
}

TEST_F(Tail, ABatchLostDownstreamFreezesTheCheckpointBeforeIt) {
    const fs::path file = dir / "lost.jsonl";
    const fs::path state = dir / "state";
    std::string text;
    for (int i = 0; i < 50; ++i)
        text += line_of(i) + "\n";
    append(file, text);
    const std::string json = "{" + path_json(file) +
                             R"(, "checkpoint": true, "checkpoint_interval_ms": 1, "poll_interval_ms": 5,
                                  "batch_size": 10, "drain_wait_ms": 20})";
    {
        TailContext context("t", state);
        context.tracks_deliveries = true;
        Follower follower(context, config(json));
        ASSERT_TRUE(eventually([&] { return context.emitted_batches == 5; }));
        context.end_batch(1);
        // The checkpoint moves past the first batch before the second one is lost.
        const std::string past_first = " " + std::to_string(text.find(line_of(10))) + " 10 ";
        ASSERT_TRUE(eventually([&] {
            std::ifstream in(state / "tail-offsets");
            std::stringstream all;
            all << in.rdbuf();
            return all.str().find(past_first) != std::string::npos;
        }));
        context.end_batch(2, hubflow::BatchOutcome::lost);
        for (std::uint64_t n : {3, 4, 5})
            context.end_batch(n);
        ASSERT_TRUE(eventually([&] { return context.logger.contains("were lost downstream"); }));
        follower.stop();
    }
    TailContext again("t", state);
    TailSource source;
    read_all(source, again, "{" + path_json(file) + R"(, "checkpoint": true, "follow": false})");
    ASSERT_EQ(again.events, 40u);
    EXPECT_EQ(again.payloads().front(), line_of(10));
}

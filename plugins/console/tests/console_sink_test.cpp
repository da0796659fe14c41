#include "console_sink.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"

namespace hubflow::console {
namespace {

using namespace std::chrono_literals;
using hubflow::testing::FakeContext;

// A stream into memory. open_memstream publishes what was written only at fflush, so reading it without
// flushing here shows whether the sink flushed.
class Capture {
public:
    Capture() : file_(open_memstream(&data_, &size_)) {}
    ~Capture() {
        std::fclose(file_);
        std::free(data_);
    }
    std::FILE* file() { return file_; }
    std::string text() const { return data_ ? std::string(data_, size_) : std::string(); }

private:
    char* data_ = nullptr;
    std::size_t size_ = 0;
    std::FILE* file_;
};

struct Fixture {
    explicit Fixture(const std::string& json, std::FILE* out) : sink(out) {
        config = testing::node_config(ConsoleSink::describe(), json);
        sink.configure(ConfigView(config), context);
        sink.start();
    }
    FakeContext context{"screen"};
    Value config;
    ConsoleSink sink;
};

EventBatch batch_of(std::vector<std::string> payloads) {
    EventBatch batch;
    for (auto& p : payloads)
        batch.push_back(Event{std::move(p), {}});
    return batch;
}

EventBatch batch_of_size(std::size_t n) {
    return EventBatch(n, Event{"{}", {}});
}

std::string config_error_key(const std::string& json) {
    FakeContext context("screen");
    ConsoleSink sink;
    Value config = testing::node_config(ConsoleSink::describe(), json);
    try {
        sink.configure(ConfigView(config), context);
    } catch (const ConfigError& e) {
        return e.key();
    }
    return "(no error)";
}

TEST(ConsoleSink, DescribesItsKeys) {
    auto d = ConsoleSink::describe();
    EXPECT_EQ(d.type, "console");
    EXPECT_EQ(d.kind, ComponentKind::sink);
    ASSERT_EQ(d.fields.size(), 2u);
    EXPECT_EQ(d.fields[0].name, "mode");
    EXPECT_EQ(d.fields[0].default_json, R"("events")");
    EXPECT_EQ(d.fields[1].name, "interval_s");
    EXPECT_EQ(d.fields[1].default_json, "1");
}

TEST(ConsoleSink, EventsModeWritesOnePayloadPerLineAndFlushesEachBatch) {
    Capture out;
    Fixture f(R"({})", out.file());
    f.sink.write(batch_of({R"({"id":"1"})", R"({"id":"2"})"}));
    EXPECT_EQ(out.text(), "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
    f.sink.write(batch_of({R"({"id":"3"})"}));
    f.sink.tick();
    EXPECT_EQ(out.text(), "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n");
    f.sink.flush();
    EXPECT_EQ(out.text(), "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n");
}

TEST(ConsoleSink, LineBreaksInsideAPayloadBecomeSpaces) {
    Capture out;
    Fixture f(R"({"mode": "events"})", out.file());
    f.sink.write(batch_of({"{\n  \"id\": \"1\"\r\n}", "{}"}));
    EXPECT_EQ(out.text(), "{   \"id\": \"1\"  }\n{}\n");
}

TEST(ConsoleSink, EmptyBatchWritesNothing) {
    Capture out;
    Fixture f(R"({})", out.file());
    f.sink.write({});
    EXPECT_EQ(out.text(), "");
}

TEST(ConsoleSink, CountModePrintsTotalAndRateEveryInterval) {
    Capture out;
    Fixture f(R"({"mode": "count"})", out.file());
    auto& clock = f.context.clock_control();
    f.sink.write(batch_of_size(1000));
    clock.advance(500ms);
    f.sink.tick();
    EXPECT_EQ(out.text(), "");  // not due yet
    clock.advance(500ms);
    f.sink.tick();
    EXPECT_EQ(out.text(), "screen: 1000 events (1000/s)\n");
    f.sink.write(batch_of_size(3000));
    f.sink.write(batch_of_size(1));
    clock.advance(1s);
    f.sink.tick();
    f.sink.tick();  // same instant: nothing more
    EXPECT_EQ(out.text(), "screen: 1000 events (1000/s)\nscreen: 4001 events (3001/s)\n");
    clock.advance(1s);
    f.sink.tick();
    f.sink.flush();
    EXPECT_EQ(out.text(),
              "screen: 1000 events (1000/s)\nscreen: 4001 events (3001/s)\nscreen: 4001 events (0/s)\n"
              "screen: 4001 events in total (1334/s average)\n");
}

TEST(ConsoleSink, CountModeWritesNoPayloads) {
    Capture out;
    Fixture f(R"({"mode": "count", "interval_s": 0.5})", out.file());
    f.sink.write(batch_of({R"({"id":"1"})"}));
    f.context.clock_control().advance(500ms);
    f.sink.tick();
    EXPECT_EQ(out.text(), "screen: 1 events (2/s)\n");
}

TEST(ConsoleSink, CountModeKeepsToTheIntervalGrid) {
    Capture out;
    Fixture f(R"({"mode": "count", "interval_s": 2})", out.file());
    auto& clock = f.context.clock_control();
    f.sink.write(batch_of_size(10));
    clock.advance(2100ms);  // a tick arrives a little late
    f.sink.tick();
    clock.advance(1900ms);  // the next one is still due at 4 s, not at 4.1 s
    f.sink.tick();
    EXPECT_EQ(out.text(), "screen: 10 events (5/s)\nscreen: 10 events (0/s)\n");

    clock.advance(60s);  // after a long stall, one line, and the next a whole interval later
    f.sink.tick();
    clock.advance(1s);
    f.sink.tick();
    EXPECT_EQ(out.text(), "screen: 10 events (5/s)\nscreen: 10 events (0/s)\nscreen: 10 events (0/s)\n");
}

TEST(ConsoleSink, FlushPrintsTheTotalEvenBeforeTheFirstInterval) {
    Capture out;
    Fixture f(R"({"mode": "count"})", out.file());
    f.sink.write(batch_of_size(250));
    f.context.clock_control().advance(250ms);
    f.sink.flush();
    EXPECT_EQ(out.text(), "screen: 250 events in total (1000/s average)\n");
}

TEST(ConsoleSink, TickIntervalFollowsTheReportInterval) {
    Capture out;
    EXPECT_EQ(Fixture(R"({"mode": "count"})", out.file()).sink.tick_interval(), 100ms);
    EXPECT_EQ(Fixture(R"({"mode": "count", "interval_s": 0.2})", out.file()).sink.tick_interval(), 20ms);
    EXPECT_EQ(Fixture(R"({"mode": "count", "interval_s": 0.001})", out.file()).sink.tick_interval(), 1ms);
}

TEST(ConsoleSink, ABrokenStreamFailsTheNodeOnce) {
    std::FILE* read_only = std::fopen("/dev/null", "r");
    ASSERT_NE(read_only, nullptr);
    {
        Fixture f(R"({})", read_only);
        f.sink.write(batch_of({"{}"}));
        f.sink.write(batch_of({"{}"}));
        f.sink.flush();
        ASSERT_EQ(f.context.failures.size(), 1u);
        EXPECT_NE(f.context.failures[0].find("cannot write to the console"), std::string::npos);
    }
    std::fclose(read_only);
}

TEST(ConsoleSink, ConfigErrorsNameTheKey) {
    EXPECT_EQ(config_error_key(R"({"mode": "loud"})"), "mode");
    EXPECT_EQ(config_error_key(R"({"interval_s": 0})"), "interval_s");
    EXPECT_EQ(config_error_key(R"({"interval_s": -1})"), "interval_s");
    EXPECT_EQ(config_error_key(R"({"mode": "count", "interval_s": 0.25})"), "(no error)");
}

}  // namespace
}  // namespace hubflow::console

// The signalr source's per-event work without a socket: WebSocket frames in, events' payloads and ids out.
// The input is the stream hub_blaster sends (bench/cases/ingest), so these figures explain that case's.
//   build/bin/bench_signalr_decode --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <vector>

#include "entry_frames.h"
#include "hubflow/json.h"
#include "protocol/msgpack_protocol.h"
#include "protocol/utf8.h"

namespace {

using namespace hubflow;

constexpr int kEvents = 4096;
constexpr std::size_t kReadSize = std::size_t{256} * 1024;  // what the source asks recv() for

const std::string& frames() {
    static const std::string block = bench::entry_frames(kEvents, 7, "bench");
    return block;
}

std::vector<std::string> records() {
    std::vector<signalr::WsEvent> events;
    signalr::FrameDecoder decoder(signalr::Endpoint::client, 1 << 20);
    decoder.feed(frames(), events);
    std::vector<std::string> out;
    for (auto& e : events) {
        e.payload.pop_back();  // the record separator
        out.push_back(std::move(e.payload));
    }
    return out;
}

std::vector<std::string> payloads() {
    std::vector<std::string> out;
    signalr::HubMessage message;
    std::string error;
    for (const auto& r : records()) {
        signalr::parse_message(r, message, error);
        out.push_back(message.arguments.at(0));
    }
    return out;
}

void per_event(benchmark::State& state, std::size_t bytes) {
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kEvents);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// WebSocket frames, read as recv() hands them over, into whole text messages (UTF-8 checked).
void BM_FrameDecoder(benchmark::State& state) {
    const std::string& block = frames();
    std::vector<signalr::WsView> events;
    for (auto _ : state) {
        signalr::FrameDecoder decoder(signalr::Endpoint::client, 1 << 20);
        for (std::size_t at = 0; at < block.size(); at += kReadSize) {
            events.clear();  // as the source does: views of one read, handled before the next
            decoder.feed(std::string_view(block).substr(at, kReadSize), events);
            benchmark::DoNotOptimize(events.data());
        }
    }
    per_event(state, block.size());
}
BENCHMARK(BM_FrameDecoder);

// UTF-8 validation alone, over the same messages.
void BM_Utf8Validator(benchmark::State& state) {
    const auto input = records();
    std::size_t bytes = 0;
    for (const auto& r : input)
        bytes += r.size();
    for (auto _ : state)
        for (const auto& r : input) {
            signalr::Utf8Validator v;
            const char* data = r.data();
            benchmark::DoNotOptimize(data);  // so the text is read again each time, not judged once
            benchmark::DoNotOptimize(v.feed(std::string_view(data, r.size())));
        }
    per_event(state, bytes);
}
BENCHMARK(BM_Utf8Validator);

// One record into a HubMessage: the JSON string argument unescaped.
void BM_ParseMessage(benchmark::State& state) {
    const auto input = records();
    std::size_t bytes = 0;
    for (const auto& r : input)
        bytes += r.size();
    signalr::HubMessage message;
    std::string error;
    for (auto _ : state)
        for (const auto& r : input)
            benchmark::DoNotOptimize(signalr::parse_message(r, message, error));
    per_event(state, bytes);
}
BENCHMARK(BM_ParseMessage);

// The same events as MessagePack messages (what a hub sends a source with `protocol: "messagepack"`), without
// their size prefixes: one message into a HubMessage, the string argument copied into the reused buffer.
std::vector<std::string> messagepack_messages() {
    std::vector<std::string> out;
    for (const auto& p : payloads()) {
        std::string m;
        signalr::messagepack::append_invocation(m, "ReceiveMessage", p);
        std::uint32_t length = 0;
        std::size_t prefix = 0;
        signalr::messagepack::read_length_prefix(m, length, prefix);
        out.push_back(m.substr(prefix));
    }
    return out;
}

void BM_ParseMessagePack(benchmark::State& state) {
    const auto input = messagepack_messages();
    std::size_t bytes = 0;
    for (const auto& m : input)
        bytes += m.size();
    signalr::HubMessage message;
    std::string error;
    for (auto _ : state)
        for (const auto& m : input)
            benchmark::DoNotOptimize(signalr::messagepack::parse_message(m, message, error));
    per_event(state, bytes);
}
BENCHMARK(BM_ParseMessagePack);

// Binary WebSocket payloads of many prefixed messages, as recv() hands them over, cut into messages and parsed:
// the source's whole per-event MessagePack work after the frame decoder.
void BM_MessagePackStream(benchmark::State& state) {
    std::string stream;
    for (const auto& p : payloads())
        signalr::messagepack::append_invocation(stream, "ReceiveMessage", p);
    signalr::HubMessage message;
    std::string error;
    for (auto _ : state) {
        signalr::messagepack::MessageReader reader(1 << 20);
        for (std::size_t at = 0; at < stream.size(); at += kReadSize) {
            reader.feed(std::string_view(stream).substr(at, kReadSize));
            std::string_view body;
            while (reader.next(body))
                benchmark::DoNotOptimize(signalr::messagepack::parse_message(body, message, error));
        }
    }
    per_event(state, stream.size());
}
BENCHMARK(BM_MessagePackStream);

// The hub's side: one event serialised into its WebSocket frame, once per protocol in use (a hub with
// MessagePack clients does both).
void BM_HubFrameJson(benchmark::State& state) {
    const auto input = payloads();
    std::string record, frame;
    for (auto _ : state)
        for (const auto& p : input) {
            record.clear();
            signalr::append_invocation(record, "ReceiveMessage", p);
            frame.clear();
            signalr::append_frame(frame, signalr::Opcode::text, record);
            benchmark::DoNotOptimize(frame.data());
        }
    per_event(state, 0);
}
BENCHMARK(BM_HubFrameJson);

void BM_HubFrameMessagePack(benchmark::State& state) {
    const auto input = payloads();
    std::string message, frame;
    for (auto _ : state)
        for (const auto& p : input) {
            message.clear();
            signalr::messagepack::append_invocation(message, "ReceiveMessage", p);
            frame.clear();
            signalr::append_frame(frame, signalr::Opcode::binary, message);
            benchmark::DoNotOptimize(frame.data());
        }
    per_event(state, 0);
}
BENCHMARK(BM_HubFrameMessagePack);

// The event's user_id and id out of its payload, as the source sets its metadata.
void BM_EventIds(benchmark::State& state) {
    const auto input = payloads();
    std::size_t bytes = 0;
    for (const auto& p : input)
        bytes += p.size();
    std::string user_id, id;
    const JsonMember ids[] = {{"id", &id}, {"user_id", &user_id}};
    for (auto _ : state)
        for (const auto& p : input) {
            user_id.clear();
            id.clear();
            benchmark::DoNotOptimize(find_json_members(p, ids));
        }
    per_event(state, bytes);
}
BENCHMARK(BM_EventIds);

}  // namespace

BENCHMARK_MAIN();

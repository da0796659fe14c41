#pragma once
// The stream a KS entries hub sends: `count` of the generator's entries, each as a ReceiveMessage invocation
// in its own WebSocket text frame, serialised by signalr_hub's own code. Shared by hub_blaster (which sends
// it over and over) and the decode micro-benchmark (which decodes it without a socket).

#include <cstdint>
#include <string>

#include "ks_event_factory.h"
#include "protocol/hub_protocol.h"
#include "protocol/websocket.h"

namespace hubflow::bench {

inline std::string entry_frames(int count, std::uint64_t seed, const std::string& site) {
    generator::KsEventFactoryOptions options;
    options.sites = {site};
    options.incident_ratio = 0;
    options.seed = seed;
    generator::KsEventFactory factory(options);
    std::string block, payload, record;
    for (int i = 0; i < count; ++i) {
        payload.clear();
        factory.append_next(payload);
        record.clear();
        signalr::append_invocation(record, "ReceiveMessage", payload);
        signalr::append_frame(block, signalr::Opcode::text, record);
    }
    return block;
}

}  // namespace hubflow::bench

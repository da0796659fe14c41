// hubflow/backoff.h: the full-jitter delays the signalr source reconnects and the webhook sink retries with.
#include "hubflow/backoff.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <set>

namespace {

using hubflow::Backoff;

TEST(Backoff, FullJitterUnderADoublingBoundUpToTheCap) {
    using ms = std::chrono::milliseconds;
    Backoff b(ms(100), ms(1000), 42);
    EXPECT_EQ(b.bound_for(0), ms(100));
    EXPECT_EQ(b.bound_for(1), ms(200));
    EXPECT_EQ(b.bound_for(3), ms(800));
    EXPECT_EQ(b.bound_for(4), ms(1000));
    EXPECT_EQ(b.bound_for(200), ms(1000));
    // Many draws at one step: all within [0, bound], spread over the range (not a fixed delay).
    std::set<std::int64_t> seen;
    for (int i = 0; i < 200; ++i) {
        Backoff fresh(ms(100), ms(1000), static_cast<std::uint64_t>(i));
        for (int k = 0; k < 3; ++k)
            fresh.next();
        auto d = fresh.next();  // the fourth attempt: bound 800 ms
        EXPECT_GE(d.count(), 0);
        EXPECT_LE(d.count(), 800);
        seen.insert(d.count() / 100);
    }
    EXPECT_GE(seen.size(), 7u) << "draws should cover the range";
    b.next();
    b.next();
    EXPECT_EQ(b.failures(), 2u);
    b.reset();
    EXPECT_EQ(b.failures(), 0u);
}

}  // namespace

// The tap's bookkeeping (runtime/tap.h) with a clock the test sets: the limit, the rate's token bucket, the
// bounded queue, and what is counted as skipped (left out by the rate) and dropped (lost to a full queue).

#include "runtime/tap.h"

#include <gtest/gtest.h>

using namespace hubflow;
using namespace hubflow::core;
using namespace std::chrono_literals;

namespace {

SharedBatch batch_of(std::size_t n) {
    auto b = std::make_shared<EventBatch>(n);
    for (std::size_t i = 0; i < n; ++i)
        (*b)[i].payload = "{\"i\":" + std::to_string(i) + "}";
    return b;
}

std::size_t events_in(const std::vector<TapItem>& items) {
    std::size_t n = 0;
    for (const auto& i : items)
        n += i.events.size();
    return n;
}

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

TEST(Tap, TheRateLetsABurstOfOneSecondThroughThenRefillsWithTime) {
    TapSubscription s(/*limit=*/1000, /*per_second=*/10, /*queue_events=*/1000);
    std::atomic<std::uint64_t> dropped{0};
    s.offer(batch_of(25), "", t0, dropped);
    EXPECT_EQ(s.accepted(), 10u) << "a burst of one second's worth";
    EXPECT_EQ(s.skipped(), 15u);
    s.offer(batch_of(25), "", t0 + 500ms, dropped);
    EXPECT_EQ(s.accepted(), 15u) << "half a second refills half";
    s.offer(batch_of(25), "", t0 + 10s, dropped);
    EXPECT_EQ(s.accepted(), 25u) << "the bucket holds at most one second";
    EXPECT_EQ(s.dropped(), 0u);
    EXPECT_EQ(dropped.load(), 0u);
    const auto items = s.take(0ms);
    EXPECT_EQ(events_in(items), 25u);
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0].events[0].payload, "{\"i\":0}") << "the first events of a batch";
}

TEST(Tap, KeepsCopiesNotTheBatchSoThePipelineCanRecycleIt) {
    TapSubscription s(100, 100, 100);
    std::atomic<std::uint64_t> dropped{0};
    const SharedBatch b = batch_of(4);
    s.offer(b, "", t0, dropped);
    EXPECT_EQ(b.use_count(), 1);
    EXPECT_EQ(events_in(s.take(0ms)), 4u);
}

TEST(Tap, StopsAtTheLimit) {
    TapSubscription s(/*limit=*/7, /*per_second=*/1000, /*queue_events=*/7);
    std::atomic<std::uint64_t> dropped{0};
    s.offer(batch_of(5), "a", t0, dropped);
    s.offer(batch_of(5), "b", t0, dropped);
    EXPECT_EQ(s.accepted(), 7u);
    EXPECT_TRUE(s.exhausted());
    s.offer(batch_of(5), "c", t0, dropped);
    const auto items = s.take(0ms);
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[1].output, "b");
    EXPECT_EQ(items[1].events.size(), 2u);
    EXPECT_EQ(s.dropped(), 0u);
}

TEST(Tap, AFullQueueDropsWhatTheRateLetThroughAndCountsIt) {
    TapSubscription s(/*limit=*/100, /*per_second=*/100, /*queue_events=*/8);
    std::atomic<std::uint64_t> dropped{0};
    s.offer(batch_of(5), "", t0, dropped);
    s.offer(batch_of(5), "", t0, dropped);  // 3 fit
    EXPECT_EQ(s.accepted(), 8u);
    EXPECT_EQ(s.dropped(), 2u);
    EXPECT_EQ(dropped.load(), 2u) << "also counted for the metric";
    EXPECT_EQ(events_in(s.take(0ms)), 8u);
    s.offer(batch_of(5), "", t0, dropped);
    EXPECT_EQ(s.accepted(), 13u) << "room again once the reader took the queue";
}

TEST(Tap, APointOffersOnlyToAttachedReaders) {
    TapPoint point;
    EXPECT_FALSE(point.active());
    auto a = std::make_shared<TapSubscription>(100, 1000, 100);
    auto b = std::make_shared<TapSubscription>(100, 1000, 100);
    point.attach(a);
    point.attach(b);
    EXPECT_TRUE(point.active());
    EXPECT_EQ(point.readers(), 2u);
    point.offer(batch_of(3), "out");
    point.detach(a.get());
    point.offer(batch_of(3), "out");
    EXPECT_EQ(a->accepted(), 3u);
    EXPECT_EQ(b->accepted(), 6u);
    point.detach(b.get());
    EXPECT_FALSE(point.active());
}

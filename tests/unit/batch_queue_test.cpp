#include "runtime/batch_queue.h"
#include "runtime/batch_recycler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

using namespace hubflow;
using namespace hubflow::core;
using namespace std::chrono_literals;

namespace {

SharedBatch batch_of(std::size_t n) {
    EventBatch b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i].payload = std::to_string(i);
    return std::make_shared<const EventBatch>(std::move(b));
}

auto soon() {
    return std::chrono::steady_clock::now() + 5s;
}

}  // namespace

TEST(BatchQueue, FullQueueBlocksProducerUntilConsumerMakesRoom) {
    Counter dropped;
    BatchQueue q(10, WhenFull::block, dropped);
    q.add_producer();
    ASSERT_EQ(q.push(batch_of(8)), BatchQueue::Push::accepted);

    std::promise<void> pushed;
    auto done = pushed.get_future();
    std::thread producer([&] {
        q.push(batch_of(5));  // 8 + 5 > 10: must wait
        pushed.set_value();
    });
    // The producer must still be blocked after a generous interval...
    EXPECT_EQ(done.wait_for(200ms), std::future_status::timeout);
    // ...and released as soon as the consumer takes a batch.
    SharedBatch out;
    ASSERT_EQ(q.pop(out, soon()), BatchQueue::Pop::batch);
    EXPECT_EQ(out->size(), 8u);
    EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
    producer.join();
    EXPECT_EQ(q.queued_events(), 5u);
    EXPECT_EQ(dropped.value(), 0u);
}

TEST(BatchQueue, DropNewestCountsEveryDroppedEvent) {
    Counter dropped;
    BatchQueue q(10, WhenFull::drop_newest, dropped);
    q.add_producer();
    EXPECT_EQ(q.push(batch_of(6)), BatchQueue::Push::accepted);
    EXPECT_EQ(q.push(batch_of(4)), BatchQueue::Push::accepted);
    EXPECT_EQ(q.push(batch_of(3)), BatchQueue::Push::dropped);
    EXPECT_EQ(q.push(batch_of(1)), BatchQueue::Push::dropped);
    EXPECT_EQ(dropped.value(), 4u);
    EXPECT_EQ(q.queued_events(), 10u);
}

TEST(BatchQueue, OversizedBatchIsAdmittedIntoAnEmptyQueue) {
    Counter dropped;
    BatchQueue q(10, WhenFull::block, dropped);
    q.add_producer();
    EXPECT_EQ(q.push(batch_of(50)), BatchQueue::Push::accepted);
    EXPECT_EQ(q.queued_events(), 50u);
}

TEST(BatchQueue, EndsOnlyWhenEveryProducerIsDoneAndQueueIsEmpty) {
    Counter dropped;
    BatchQueue q(100, WhenFull::block, dropped);
    q.add_producer();
    q.add_producer();
    q.push(batch_of(2));
    q.producer_done();
    SharedBatch out;
    EXPECT_EQ(q.pop(out, soon()), BatchQueue::Pop::batch);
    EXPECT_EQ(q.pop(out, std::chrono::steady_clock::now() + 50ms), BatchQueue::Pop::timeout);
    q.producer_done();
    EXPECT_EQ(q.pop(out, soon()), BatchQueue::Pop::end);
}

TEST(BatchQueue, FanInKeepsEachProducersOrder) {
    Counter dropped;
    BatchQueue q(16, WhenFull::block, dropped);
    constexpr int producers = 3, batches = 500;
    for (int p = 0; p < producers; ++p)
        q.add_producer();
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < batches; ++i) {
                EventBatch b(1);
                b[0].payload = std::to_string(i);
                b[0].meta.source = std::to_string(p);
                q.push(std::make_shared<const EventBatch>(std::move(b)));
            }
            q.producer_done();
        });
    std::vector<int> next(producers, 0);
    SharedBatch out;
    int total = 0;
    while (q.pop(out, soon()) == BatchQueue::Pop::batch) {
        int p = std::stoi((*out)[0].meta.source);
        EXPECT_EQ(std::stoi((*out)[0].payload), next[p]++);
        ++total;
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(total, producers * batches);
}

TEST(BatchQueue, DiscardDropsQueuedAndFutureEventsWithoutBlocking) {
    Counter dropped;
    BatchQueue q(4, WhenFull::block, dropped);
    q.add_producer();
    q.push(batch_of(4));
    q.discard();
    EXPECT_EQ(q.push(batch_of(4)), BatchQueue::Push::dropped);  // would block if not discarding
    EXPECT_EQ(dropped.value(), 8u);
}

TEST(BatchRecycler, ReleasedBatchesComeBackWithTheirStorage) {
    auto recycler = std::make_shared<BatchRecycler>();
    EventBatch batch(3);
    for (auto& e : batch) {
        e.payload.assign(500, 'x');
        e.meta.source = "gen";
        e.meta.received_at = std::chrono::system_clock::now();
    }
    const char* storage = batch[0].payload.data();
    SharedBatch shared = recycler->share(std::move(batch));
    SharedBatch second_reference = shared;
    shared.reset();
    // Still referenced by a consumer: nothing to reuse yet, so a fresh batch comes out.
    EventBatch fresh = recycler->take(2);
    EXPECT_TRUE(fresh[0].payload.empty());
    second_reference.reset();
    EventBatch reused = recycler->take(2);
    ASSERT_EQ(reused.size(), 2u);
    EXPECT_EQ(reused[0].payload.data(), storage);  // the same memory, ready to be overwritten
    EXPECT_GE(reused[0].payload.capacity(), 500u);
    EXPECT_TRUE(reused[0].meta.source.empty());
    EXPECT_EQ(reused[0].meta.received_at.time_since_epoch().count(), 0);
}

TEST(BatchRecycler, BatchOutlivingItsRecyclerIsFreed) {
    auto recycler = std::make_shared<BatchRecycler>();
    SharedBatch shared = recycler->share(EventBatch(4));
    recycler.reset();
    shared.reset();  // must not touch the recycler (checked under the sanitizer build)
    SUCCEED();
}

// The disk buffer's log against a plain reference model, on a file layer that loses what was not synced,
// crashes in the middle of any operation, tears writes, flips bits and fails with ENOSPC/EIO. Thousands of
// random schedules of append/sync/next/release/checkpoint/crash/reopen, with tiny segments and few segment
// ids so segments roll, fill the log and their ids wrap around all the time.
//
// After every open and on every next() the model asserts: nothing synced and not released is lost (a full
// drain hands it out, unless open() reported it set aside), nothing is handed out twice within one run,
// nothing is handed out before its sync() returned, released records whose release was persisted never come
// back, seqs increase within a run, and open() never throws on damaged data.

#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "buffer/segment_log.h"
#include "fault_file_layer.h"

namespace hubflow::core::buffer {
namespace {

using testing::FaultFileLayer;
using testing::InjectedCrash;

struct Entry {
    enum class State { unsynced, synced, released, persisted, set_aside } state = State::unsynced;
    std::uint64_t seq = 0;
    std::string payload;
    int appended_run = 0;  // the run of the log that appended it
    int released_run = 0;
    bool acked = false;  // its sync() returned: durable from then on
};

class Schedule {
public:
    Schedule(std::uint64_t seed, bool flips) : rng_(seed), files_(seed * 7919 + 1), flips_(flips) {
        options_.dir = "/buffer/node";
        options_.segment_bytes = pick(64, 600);
        options_.max_bytes = options_.segment_bytes * pick(3, 12);
        options_.max_segment_ids = pick(2, 9);
        options_.memory_window_bytes = pick(0, 400);
        options_.memory_window_payloads = pick(0, 1) == 0;
        options_.deferred_removal = pick(0, 1) == 0;
        options_.read_chunk_bytes = pick(1, 3) * 4096;
        options_.ledger_interval = std::chrono::milliseconds(pick(0, 1) == 0 ? 0 : 3600 * 1000);
        // Unsynced ledger updates (ledger.recent) every few releases, or (practically) never.
        options_.ledger_every_records = pick(0, 1) == 0 ? pick(1, 8) : 4096;
        trace_ << "seed " << seed << " segment_bytes " << options_.segment_bytes << " max_bytes " << options_.max_bytes
               << " ids " << options_.max_segment_ids << " window " << options_.memory_window_bytes
               << (options_.memory_window_payloads ? "" : " (positions)")
               << (options_.deferred_removal ? " deferred removal" : "") << " ledger "
               << options_.ledger_interval.count() << " ms / " << options_.ledger_every_records << " records\n";
    }

    void run(int steps) {
        reopen();
        for (int i = 0; i < steps && !::testing::Test::HasFailure(); ++i) {
            try {
                step();
            } catch (const InjectedCrash&) {
                note("crash hit");
                power_cut();
            } catch (const SyncFailed& e) {
                // From any call that persisted the ledger: the log refuses further use and is reopened.
                note(std::string("failed: ") + e.what());
                EXPECT_THROW(log_->sync(), LogFailed) << context();
                restart_after_failure();
            }
        }
        if (::testing::Test::HasFailure()) return;
        // Finally: a clean restart hands out exactly what is owed.
        try {
            drain_and_check();
            close_cleanly();
            reopen();
            drain_and_check();
        } catch (const InjectedCrash&) {
            ADD_FAILURE() << "crash with no crash armed\n" << trace_.str();
        }
    }

    std::uint64_t crashes = 0;
    std::uint64_t flips_done = 0;
    std::uint64_t set_aside_seen = 0;
    std::uint64_t records_appended = 0;
    std::uint64_t records_taken = 0;  // handed out by take_front

private:
    std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {
        return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
    }
    void note(const std::string& what) { trace_ << what << "\n"; }
    std::string context() const { return "\ntrace:\n" + trace_.str(); }

    void step() {
        auto dice = pick(0, 99);
        if (dice < 30) {
            append(pick(1, 6));
        } else if (dice < 40) {
            sync();
        } else if (dice < 45) {
            write();
        } else if (dice < 56) {
            next(pick(1, 8));
        } else if (dice < 62) {
            take(pick(1, 6));
        } else if (dice < 77) {
            release();
        } else if (dice < 78) {
            note("remove released");
            log_->remove_released();
        } else if (dice < 80) {
            note("checkpoint");
            log_->checkpoint();
            persist_releases_of_this_run();
        } else if (dice < 85) {
            auto after = pick(1, 12);
            note("arm crash after " + std::to_string(after));
            files_.arm_crash(after);
        } else if (dice < 88) {
            note("power cut");
            power_cut();
        } else if (dice < 91) {
            note("clean restart");
            close_cleanly();
            reopen();
        } else if (dice < 93) {
            note("drain");
            drain_and_check();
        } else if (dice < 95) {
            // A write error: the records of that sync are dropped and may be appended again.
            note("fail next append with ENOSPC");
            files_.fail(FaultFileLayer::Op::append, ENOSPC);
            append(pick(1, 3));
            sync();
            files_.clear_failures();
        } else if (dice < 96) {
            note("fail next fdatasync with EIO");
            files_.fail(FaultFileLayer::Op::sync, EIO);
            append(1);
            sync();
            files_.clear_failures();
        } else if (flips_) {
            flip_and_restart();
        }
    }

    void append(std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
            std::string id = "r" + std::to_string(next_id_);
            std::string payload = id + ":" + std::string(pick(0, 90), static_cast<char>('a' + pick(0, 25)));
            std::uint64_t seq = 0;
            auto result = log_->append(payload, seq);
            if (result == SegmentLog::Append::full) {
                note("append full");
                return;
            }
            ++next_id_;
            ++records_appended;
            Entry e;
            e.seq = seq;
            e.payload = payload;
            e.appended_run = run_;
            entries_[id] = e;
            staged_.push_back(id);
            note("append " + id + " seq " + std::to_string(seq));
        }
    }

    // Into the files without a sync, as a writer does while a syncer syncs the group before: not durable yet.
    void write() {
        try {
            log_->write();
            written_.insert(written_.end(), staged_.begin(), staged_.end());
            note("write ok");
        } catch (const WriteFailed& e) {
            note(std::string("write: ") + e.what());  // what earlier writes wrote is still to be synced
        } catch (const SyncFailed& e) {
            note(std::string("write: ") + e.what());
            restart_after_failure();
        }
        staged_.clear();
    }

    void sync() {
        try {
            log_->sync();
            staged_.insert(staged_.begin(), written_.begin(), written_.end());
            written_.clear();
            for (const auto& id : staged_) {
                entries_[id].state = Entry::State::synced;
                entries_[id].acked = true;
                synced_this_run_.push_back(id);
            }
            note("sync ok");
        } catch (const WriteFailed& e) {
            note(std::string("sync: ") + e.what());
            // Dropped: may only come back as a survivor of a crash that cut the rollback short.
        } catch (const SyncFailed& e) {
            note(std::string("sync: ") + e.what());
            EXPECT_THROW(log_->sync(), LogFailed) << context();
            EXPECT_THROW(log_->append("x", dummy_), LogFailed) << context();
            restart_after_failure();
        }
        staged_.clear();
    }

    void next(std::uint64_t max) {
        std::vector<Record> out;
        log_->next(out, max);
        for (auto& r : out)
            check_handed_out(r);
    }

    // Like a disk buffer handing on the batch it has just synced (it still holds the payloads).
    void take(std::uint64_t count) {
        while (!synced_this_run_.empty() && handed_.count(synced_this_run_.front()) != 0)
            synced_this_run_.pop_front();
        if (synced_this_run_.empty()) return;
        count = std::min<std::uint64_t>(count, synced_this_run_.size());
        const std::uint64_t first = entries_[synced_this_run_.front()].seq;
        for (std::uint64_t i = 1; i < count; ++i)
            if (entries_[synced_this_run_[i]].seq != first + i) count = i;  // a run of consecutive seqs
        const auto result = log_->take_front(first, count);
        note("take " + std::to_string(first) + "+" + std::to_string(count) + ": " +
             (result == SegmentLog::Take::taken    ? "taken"
              : result == SegmentLog::Take::passed ? "passed"
                                                   : "not yet"));
        if (result != SegmentLog::Take::taken) return;
        for (const auto& [id, e] : entries_)
            ASSERT_FALSE(e.state == Entry::State::synced && e.seq < first && handed_.count(id) == 0)
                << id << " seq " << e.seq << " is owed and was passed over by take_front" << context();
        for (std::uint64_t i = 0; i < count; ++i) {
            const Entry& e = entries_[synced_this_run_[i]];
            check_handed_out(Record{e.seq, e.payload});
        }
        records_taken += count;
    }

    void check_handed_out(const Record& r) {
        std::string id = r.payload.substr(0, r.payload.find(':'));
        note("next " + id + " seq " + std::to_string(r.seq));
        auto it = entries_.find(id);
        ASSERT_NE(it, entries_.end()) << "handed out a record never appended: " << r.payload << context();
        Entry& e = it->second;
        ASSERT_EQ(e.payload, r.payload) << context();
        ASSERT_TRUE(handed_.insert(id).second) << id << " handed out twice in one run" << context();
        if (last_seq_) {
            ASSERT_GT(r.seq, *last_seq_) << "out of order" << context();
        }
        last_seq_ = r.seq;
        switch (e.state) {
            case Entry::State::synced:
                ASSERT_EQ(e.seq, r.seq) << id << context();
                break;
            case Entry::State::unsynced:
                // Only a survivor of a power cut, never a record of this run before its sync returned.
                // It may still be only in the page cache (after a failed fsync), so a crash may yet take it.
                ASSERT_LT(e.appended_run, run_) << id << " handed out before its sync()" << context();
                e.seq = r.seq;
                break;
            case Entry::State::released:
                ASSERT_LT(e.released_run, run_) << id << " released in this run came back" << context();
                break;
            case Entry::State::persisted:
                FAIL() << id << " was released and persisted, and came back" << context();
            case Entry::State::set_aside:
                FAIL() << id << " was reported set aside, and came back" << context();
        }
        // Back after a release that was not persisted: owed again (and durable only if it ever was).
        if (e.state == Entry::State::released) e.state = e.acked ? Entry::State::synced : Entry::State::unsynced;
        handed_seqs_[r.seq] = id;
    }

    void release() {
        if (handed_seqs_.empty()) return;
        // A random run of consecutive handed-out seqs, like a sink acknowledging a batch; in any order.
        auto start = handed_seqs_.begin();
        std::advance(start, pick(0, handed_seqs_.size() - 1));
        std::uint64_t first = start->first;
        std::uint64_t count = 0;
        auto it = start;
        std::uint64_t limit = pick(1, 6);
        std::vector<std::uint64_t> done;
        while (it != handed_seqs_.end() && it->first == first + count && count < limit) {
            done.push_back(it->first);
            ++count;
            ++it;
        }
        note("release " + std::to_string(first) + "+" + std::to_string(count));
        // The model first: if the release crashes, it may or may not have been persisted.
        for (auto seq : done) {
            Entry& e = entries_[handed_seqs_[seq]];
            e.state = Entry::State::released;
            e.released_run = run_;
            handed_seqs_.erase(seq);
        }
        log_->release(first, count);
    }

    void drain_and_check() {
        std::vector<Record> out;
        while (true) {
            out.clear();
            if (log_->next(out, 64) == 0) break;
            for (auto& r : out) {
                check_handed_out(r);
                if (::testing::Test::HasFailure()) return;
            }
        }
        for (auto& [id, e] : entries_) {
            // Released in an earlier run and not handed out by a full drain: the log knows it is released, and
            // open() persisted that.
            if (e.state == Entry::State::released && e.released_run < run_ && handed_.count(id) == 0)
                e.state = Entry::State::persisted;
            if (e.state != Entry::State::synced) continue;
            EXPECT_TRUE(handed_.count(id) == 1)
                << id << " seq " << e.seq << " was synced and never handed out" << context();
            if (::testing::Test::HasFailure()) return;
        }
    }

    void power_cut() {
        ++crashes;
        log_.reset();  // its destructor's I/O fails: the power is gone
        files_.crash(true);
        staged_.clear();
        written_.clear();
        reopen();
    }

    void close_cleanly() {
        log_.reset();
        if (files_.crashed()) {
            // An armed crash hit the destructor's ledger write: a power cut during shutdown.
            note("crash during close");
            ++crashes;
            files_.crash(true);
        } else {
            // The destructor persisted the release state.
            persist_releases_of_this_run();
        }
        staged_.clear();
        written_.clear();
    }

    void persist_releases_of_this_run() {
        for (auto& [id, e] : entries_)
            if (e.state == Entry::State::released && e.released_run == run_) e.state = Entry::State::persisted;
    }

    void restart_after_failure() {
        log_.reset();  // failed: persists nothing
        files_.clear_failures();
        staged_.clear();
        written_.clear();
        reopen();
    }

    void flip_and_restart() {
        // No power cut during this open(): its report is how the model learns which records the flip took (a
        // crashed open() leaves its findings in the ledger and set-aside/ only).
        files_.arm_crash(0);
        close_cleanly();
        auto names = files_.files_in(options_.dir);
        std::vector<std::string> segments;
        for (const auto& n : names)
            if (std::filesystem::path(n).extension() == ".hfb" && files_.durable_size(n) > 40) segments.push_back(n);
        if (!segments.empty()) {
            const auto& path = segments[pick(0, segments.size() - 1)];
            auto offset = pick(format::segment_header_size, files_.durable_size(path) - 1);
            note("flip " + path + " @" + std::to_string(offset));
            files_.flip_bit(path, offset, static_cast<int>(pick(0, 7)));
            ++flips_done;
            ++flips_since_open_;
        }
        reopen();
    }

    void reopen() {
        for (int attempt = 0;; ++attempt) {
            ASSERT_LT(attempt, 50) << "open() keeps crashing" << context();
            ++run_;
            handed_.clear();
            synced_this_run_.clear();
            handed_seqs_.clear();
            last_seq_.reset();
            log_ = std::make_unique<SegmentLog>(files_, options_);
            try {
                report_ = log_->open();
            } catch (const InjectedCrash&) {
                note("crash during open");
                log_.reset();
                files_.crash(true);
                continue;
            } catch (const std::exception& e) {
                FAIL() << "open() threw on damaged data: " << e.what() << context();
            }
            break;
        }
        note("open: " + std::to_string(report_.records) + " records, " + std::to_string(report_.records_set_aside) +
             " set aside, next seq " + std::to_string(report_.next_seq));
        for (const auto& p : report_.problems)
            note("  problem " + p.file.filename().string() + " @" + std::to_string(p.offset) + "+" +
                 std::to_string(p.length) + " seqs [" + std::to_string(p.first_seq) + "," + std::to_string(p.end_seq) +
                 ") " + std::to_string(p.records) + ": " + p.detail);
        // Set-aside records: only where bits were flipped or writes were cut short.
        std::uint64_t unsynced = 0;
        for (const auto& [id, e] : entries_)
            unsynced += !e.acked && (e.state == Entry::State::unsynced || e.state == Entry::State::released) ? 1 : 0;
        EXPECT_LE(report_.records_set_aside, flips_since_open_ + unsynced) << context();
        set_aside_seen += report_.records_set_aside;
        for (const auto& p : report_.problems) {
            if (p.kind == RecoveryReport::Problem::Kind::torn_tail && flips_since_open_ > 0) {
                // A flipped bit in the newest record cannot be told from a torn write (README.md).
                for (auto& [id, e] : entries_)
                    if (e.seq >= p.first_seq && e.state == Entry::State::synced) e.state = Entry::State::set_aside;
                continue;
            }
            if (p.kind != RecoveryReport::Problem::Kind::set_aside &&
                p.kind != RecoveryReport::Problem::Kind::damaged_tail)
                continue;
            for (auto& [id, e] : entries_) {
                if (e.seq >= p.first_seq && e.seq < p.end_seq &&
                    (e.state == Entry::State::synced || e.state == Entry::State::released))
                    e.state = Entry::State::set_aside;
            }
        }
        flips_since_open_ = 0;
        // Seqs of records that never reached the disk are given out again: forget those records.
        for (auto it = entries_.begin(); it != entries_.end();) {
            if (it->second.state == Entry::State::unsynced && it->second.seq >= report_.next_seq)
                it = entries_.erase(it);
            else
                ++it;
        }
    }

    std::mt19937_64 rng_;
    FaultFileLayer files_;
    bool flips_;
    SegmentLogOptions options_;
    std::unique_ptr<SegmentLog> log_;
    RecoveryReport report_;
    std::map<std::string, Entry> entries_;
    std::vector<std::string> staged_;   // appended since the last write() or sync()
    std::vector<std::string> written_;  // written by write(), not synced
    std::set<std::string> handed_;
    std::deque<std::string> synced_this_run_;           // in seq order; take() hands out from its front
    std::map<std::uint64_t, std::string> handed_seqs_;  // handed out in this run, not released
    std::optional<std::uint64_t> last_seq_;
    std::uint64_t next_id_ = 0;
    std::uint64_t flips_since_open_ = 0;
    std::uint64_t dummy_ = 0;
    int run_ = 0;
    std::ostringstream trace_;
};

// HUBFLOW_MODEL_SCALE=N runs N times as many schedules (other seeds), for a long search on a developer machine.
std::uint64_t scale() {
    const char* env = std::getenv("HUBFLOW_MODEL_SCALE");
    return env != nullptr && std::atoll(env) > 0 ? static_cast<std::uint64_t>(std::atoll(env)) : 1;
}

TEST(SegmentLogModel, RandomSchedulesWithCrashesAndTornWrites) {
    std::uint64_t crashes = 0;
    std::uint64_t appended = 0;
    std::uint64_t taken = 0;
    const std::uint64_t schedules = 2000 * scale();
    for (std::uint64_t seed = 1; seed <= schedules && !HasFailure(); ++seed) {
        Schedule schedule(seed, false);
        schedule.run(250);
        crashes += schedule.crashes;
        appended += schedule.records_appended;
        taken += schedule.records_taken;
    }
    std::printf("%llu schedules, %llu records (%llu handed out by take_front), %llu power cuts\n",
                static_cast<unsigned long long>(schedules), static_cast<unsigned long long>(appended),
                static_cast<unsigned long long>(taken), static_cast<unsigned long long>(crashes));
    EXPECT_GT(crashes, 2000U);
    EXPECT_GT(taken, 1000U);
}

TEST(SegmentLogModel, RandomSchedulesWithBitFlips) {
    std::uint64_t flips = 0;
    std::uint64_t set_aside = 0;
    const std::uint64_t schedules = 1000 * scale();
    for (std::uint64_t seed = 1000000001; seed <= 1000000000 + schedules && !HasFailure(); ++seed) {
        Schedule schedule(seed, true);
        schedule.run(250);
        flips += schedule.flips_done;
        set_aside += schedule.set_aside_seen;
    }
    std::printf("%llu schedules, %llu bit flips, %llu records set aside\n", static_cast<unsigned long long>(schedules),
                static_cast<unsigned long long>(flips), static_cast<unsigned long long>(set_aside));
    EXPECT_GT(set_aside, 0U);
}

}  // namespace
}  // namespace hubflow::core::buffer

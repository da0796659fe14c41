// Focused cases of the disk buffer's log: restarts, damage found by recovery, full and read-only disks (the fault
// layer and, as root, a real tmpfs), a failed fsync, a future format version, the ledger, id wrap-around,
// permissions, and a writer and a reader thread on the real disk.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "buffer/segment_log.h"
#include "fault_file_layer.h"

namespace hubflow::core::buffer {
namespace {

namespace fs = std::filesystem;
using testing::FaultFileLayer;

const fs::path dir = "/data/node";

// 50-byte payloads: records of 82 bytes, six to a 500-byte segment (the seventh starts a new one).
std::string payload(std::uint64_t i) {
    std::string p = "event-" + std::to_string(i);
    p.resize(50, '.');
    return p;
}
constexpr std::uint64_t record_bytes = 82;

SegmentLogOptions small(const fs::path& d = dir) {
    SegmentLogOptions o;
    o.dir = d;
    o.segment_bytes = 500;
    o.max_bytes = 1 << 20;
    return o;
}

void append_synced(SegmentLog& log, std::uint64_t from, std::uint64_t count) {
    for (std::uint64_t i = from; i < from + count; ++i) {
        std::uint64_t seq = 0;
        ASSERT_EQ(log.append(payload(i), seq), SegmentLog::Append::ok);
    }
    log.sync();
}

std::vector<Record> drain(SegmentLog& log) {
    std::vector<Record> all;
    while (log.next(all, 7) > 0) {
    }
    return all;
}

TEST(SegmentLog, HandsOutInOrderAndReleasedRecordsDoNotComeBack) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        auto report = log.open();
        EXPECT_EQ(report.records, 0U);
        append_synced(log, 0, 20);
        auto out = drain(log);
        ASSERT_EQ(out.size(), 20U);
        for (std::uint64_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i].seq, i);
            EXPECT_EQ(out[i].payload, payload(i));
        }
        log.release(10, 10);  // out of order
        log.release(0, 5);
        EXPECT_EQ(log.stats().records, 5U);
    }
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.records, 5U);
    EXPECT_EQ(report.next_seq, 20U);
    auto out = drain(log);
    ASSERT_EQ(out.size(), 5U);
    EXPECT_EQ(out.front().seq, 5U);
    EXPECT_EQ(out.back().seq, 9U);
}

// The byte layout README.md documents, checked on one record.
TEST(SegmentLog, RecordLayoutIsTheDocumentedOne) {
    FaultFileLayer files;
    SegmentLog log(files, small());
    log.open();
    std::uint64_t seq = 0;
    log.append("123456789", seq);
    log.sync();
    std::string bytes = files.content(dir / format::segment_file_name(0));
    ASSERT_EQ(bytes.size(), format::segment_header_size + format::record_header_size + 9);
    EXPECT_EQ(bytes.substr(0, 8), "HFBUFSEG");
    EXPECT_EQ(bytes[8], 1);  // version, little-endian u32
    const char* r = bytes.data() + format::segment_header_size;
    EXPECT_EQ(std::string(r, 4), "HFR1");
    EXPECT_EQ(static_cast<unsigned char>(r[4]), 9U);  // payload length
    // The payload's CRC-32 (zlib's): the standard check value of "123456789" is 0xCBF43926.
    EXPECT_EQ(static_cast<unsigned char>(r[24]), 0x26U);
    EXPECT_EQ(static_cast<unsigned char>(r[25]), 0x39U);
    EXPECT_EQ(static_cast<unsigned char>(r[26]), 0xF4U);
    EXPECT_EQ(static_cast<unsigned char>(r[27]), 0xCBU);
    EXPECT_EQ(std::string(r + 32, 9), "123456789");
}

TEST(SegmentLog, BacklogGoesBeforeNewRecords) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 8);
    }
    SegmentLog log(files, small());
    log.open();
    append_synced(log, 8, 4);
    auto out = drain(log);
    ASSERT_EQ(out.size(), 12U);
    for (std::uint64_t i = 0; i < out.size(); ++i)
        EXPECT_EQ(out[i].payload, payload(i));
    std::vector<Record> more;
    EXPECT_EQ(log.next(more, 10), 0U);
    append_synced(log, 12, 1);  // served from memory now that the backlog is drained
    EXPECT_EQ(log.next(more, 10), 1U);
}

TEST(SegmentLog, RecordsAreNotHandedOutBeforeSync) {
    FaultFileLayer files;
    SegmentLog log(files, small());
    log.open();
    std::uint64_t seq = 0;
    log.append("a", seq);
    std::vector<Record> out;
    EXPECT_EQ(log.next(out, 10), 0U);
    EXPECT_EQ(log.stats().records, 1U);
    log.sync();
    EXPECT_EQ(log.next(out, 10), 1U);
}

TEST(SegmentLog, DamagedRecordsAreSetAsideCountedAndKept) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 30);
    }
    const fs::path second = dir / format::segment_file_name(1);  // seqs 6..11 (ids start at 0)
    ASSERT_EQ(files.content(second).size(), format::segment_header_size + 6 * record_bytes);
    for (std::uint64_t k : {0, 2, 4})  // a payload bit in seqs 6, 8 and 10
        files.flip_bit(second, format::segment_header_size + k * record_bytes + 32 + 10, 3);
    {
        SegmentLog log(files, small());
        auto report = log.open();
        EXPECT_EQ(report.records_set_aside, 3U);
        EXPECT_EQ(report.records, 27U);
        int named = 0;
        for (const auto& p : report.problems) {
            EXPECT_EQ(p.kind, RecoveryReport::Problem::Kind::set_aside);
            EXPECT_EQ(p.file, second);
            named += p.records == 1 ? 1 : 0;
        }
        EXPECT_EQ(named, 3);
        EXPECT_EQ(log.stats().set_aside, 3U);
        auto out = drain(log);
        ASSERT_EQ(out.size(), 27U);
        for (const auto& r : out)
            EXPECT_TRUE(r.seq != 6 && r.seq != 8 && r.seq != 10);
        // The raw bytes are kept for inspection.
        std::string copy = files.content(dir / "set-aside" / (second.filename().string() + "-40.bin"));
        EXPECT_EQ(copy.size(), record_bytes);
    }
    // Counted once: the ledger remembers them.
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.records_set_aside, 0U);
    EXPECT_EQ(report.records, 27U);
}

TEST(SegmentLog, DamagedLengthFieldDoesNotHideTheRecordsAfterIt) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 18);
    }
    // The high byte of seq 7's length: read as is, it would point far past the end of the file.
    files.flip_bit(dir / format::segment_file_name(1), format::segment_header_size + record_bytes + 7, 6);
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.records_set_aside, 1U);
    ASSERT_EQ(report.problems.size(), 1U);
    EXPECT_EQ(report.problems[0].first_seq, 7U);
    EXPECT_EQ(report.problems[0].end_seq, 8U);
    auto out = drain(log);
    EXPECT_EQ(out.size(), 17U);
}

// Records and damage across the reader's chunk boundaries (4 KiB chunks, 82-byte records).
TEST(SegmentLog, DamageAcrossReadChunksIsFoundExactly) {
    FaultFileLayer files;
    auto options = small();
    options.segment_bytes = 64 << 10;
    options.read_chunk_bytes = 4096;
    {
        SegmentLog log(files, options);
        log.open();
        append_synced(log, 0, 600);
    }
    const fs::path seg = dir / format::segment_file_name(0);
    auto at = [](std::uint64_t record) { return format::segment_header_size + record * record_bytes; };
    files.flip_bit(seg, at(49) + 60, 0);  // payloads around the first chunk boundary
    files.flip_bit(seg, at(50) + 40, 7);
    files.flip_bit(seg, at(99) + 4, 3);    // a length field
    files.flip_bit(seg, at(300) + 29, 1);  // a header checksum
    files.flip_bit(seg, at(301), 5);       // the next record's magic: two damaged headers in a row
    SegmentLog log(files, options);
    auto report = log.open();
    EXPECT_EQ(report.records_set_aside, 5U);
    EXPECT_EQ(report.records, 595U);
    auto out = drain(log);
    ASSERT_EQ(out.size(), 595U);
    std::set<std::uint64_t> seen;
    for (const auto& r : out) {
        EXPECT_EQ(r.payload, payload(r.seq));
        seen.insert(r.seq);
    }
    for (std::uint64_t lost : {49, 50, 99, 300, 301})
        EXPECT_EQ(seen.count(lost), 0U) << lost;
}

// Damage that appears while the log runs, in records the reader has yet to read from the files.
TEST(SegmentLog, DamageFoundWhileReadingIsSetAsideAndCounted) {
    FaultFileLayer files;
    auto options = small();
    options.segment_bytes = 64 << 10;
    options.memory_window_bytes = 0;  // everything is read back from the files
    SegmentLog log(files, options);
    log.open();
    append_synced(log, 0, 100);
    const fs::path seg = dir / format::segment_file_name(0);
    files.flip_bit(seg, format::segment_header_size + 10 * record_bytes + 50, 2);  // a payload
    files.flip_bit(seg, format::segment_header_size + 20 * record_bytes + 6, 2);   // a length
    auto out = drain(log);
    EXPECT_EQ(out.size(), 98U);
    EXPECT_EQ(log.stats().set_aside, 2U);
    EXPECT_EQ(log.stats().records, 98U);
    EXPECT_FALSE(files.content(dir / "set-aside" / (seg.filename().string() + "-860.bin")).empty());
}

TEST(SegmentLog, TornTailIsLeftUnreadAndReported) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 4);
    }
    const fs::path seg = dir / format::segment_file_name(0);
    {
        auto file = files.open(seg, OpenMode::read_write);
        file->append("HFR1garbage of a write cut short!");  // 33 bytes
        file->sync();
    }
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.torn_bytes_cut, 33U);
    EXPECT_EQ(report.records_set_aside, 0U);
    EXPECT_EQ(report.records, 4U);
    EXPECT_EQ(drain(log).size(), 4U);
    append_synced(log, 4, 2);  // a new segment; the old one is never appended to
    EXPECT_EQ(drain(log).size(), 2U);
}

// The newest record's header damaged: a torn write would look the same, but the ledger says it was synced.
TEST(SegmentLog, DamagedNewestRecordIsSetAsideWhenTheLedgerSaysItWasSynced) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 10);
        log.checkpoint();  // the ledger now says: synced up to seq 10
    }
    files.flip_bit(dir / format::segment_file_name(1), format::segment_header_size + 3 * record_bytes + 5, 2);
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.records_set_aside, 1U);
    EXPECT_EQ(report.torn_bytes_cut, 0U);
    ASSERT_EQ(report.problems.size(), 1U);
    EXPECT_EQ(report.problems[0].kind, RecoveryReport::Problem::Kind::set_aside);
    EXPECT_EQ(report.problems[0].first_seq, 9U);
    EXPECT_EQ(report.problems[0].end_seq, 10U);
    EXPECT_EQ(drain(log).size(), 9U);
}

TEST(SegmentLog, FlippedVersionFieldIsDamageNotANewerFormat) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 10);
    }
    files.flip_bit(dir / format::segment_file_name(1), 8, 1);  // version 1 -> 3; the header checksum tells
    SegmentLog log(files, small());
    auto report = log.open();
    ASSERT_FALSE(report.problems.empty());
    EXPECT_EQ(report.problems[0].kind, RecoveryReport::Problem::Kind::damaged_header);
    EXPECT_EQ(drain(log).size(), 10U);
}

std::string future_segment() {
    std::string h(format::segment_header_size + 100, 'x');
    std::memcpy(h.data(), format::segment_magic, 8);
    h[8] = 2;  // version 2, little-endian
    h[9] = h[10] = h[11] = 0;
    return h;
}

TEST(SegmentLog, SegmentOfAFutureVersionIsRefusedNamingTheFile) {
    FaultFileLayer files;
    files.create_directories(dir);
    const fs::path seg = dir / format::segment_file_name(5);
    files.put_file(seg, future_segment());
    SegmentLog log(files, small());
    try {
        log.open();
        FAIL() << "opened a version 2 segment";
    } catch (const UnsupportedFormat& e) {
        EXPECT_EQ(e.path(), seg);
        EXPECT_EQ(e.version(), 2U);
        EXPECT_NE(std::string(e.what()).find(seg.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("version 2"), std::string::npos) << e.what();
    }
    EXPECT_EQ(files.content(seg), future_segment());  // untouched
}

// A new segment is written under a temporary name until its first sync; one cut short by a crash (here its
// header torn after the magic, garbage after it) is removed, not mistaken for a newer format.
TEST(SegmentLog, NewSegmentCutShortByACrashIsRemoved) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 3);
    }
    const fs::path torn = dir / (format::segment_file_name(7) + ".tmp");
    files.put_file(torn, std::string("HFBUFSEG") + std::string("\x81\x00\x00\x84garbage", 11));
    SegmentLog log(files, small());
    auto report = log.open();
    ASSERT_EQ(report.problems.size(), 1U);
    EXPECT_EQ(report.problems[0].kind, RecoveryReport::Problem::Kind::removed);
    EXPECT_EQ(report.problems[0].file, torn);
    EXPECT_EQ(drain(log).size(), 3U);
    for (const auto& name : files.files_in(dir))
        EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

TEST(SegmentLog, LedgerOfAFutureVersionIsRefusedNamingTheFile) {
    FaultFileLayer files;
    files.create_directories(dir);
    std::string ledger(64, '\0');
    std::memcpy(ledger.data(), format::ledger_magic, 8);
    ledger[8] = 7;
    files.put_file(dir / "ledger", ledger);
    SegmentLog log(files, small());
    EXPECT_THROW(
        {
            try {
                log.open();
            } catch (const UnsupportedFormat& e) {
                EXPECT_EQ(e.path(), dir / "ledger");
                throw;
            }
        },
        UnsupportedFormat);
}

TEST(SegmentLog, DamagedLedgerIsMovedAsideAndItsRecordsComeBack) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 10);
        drain(log);
        log.release(0, 4);
    }
    files.flip_bit(dir / "ledger", 20, 0);
    SegmentLog log(files, small());
    auto report = log.open();
    ASSERT_FALSE(report.problems.empty());
    EXPECT_EQ(report.problems[0].kind, RecoveryReport::Problem::Kind::moved_aside);
    EXPECT_EQ(drain(log).size(), 10U);  // duplicates, never loss
    EXPECT_FALSE(files.content(dir / "ledger.damaged").empty());
}

TEST(SegmentLog, LedgerAheadOfTheDataDoesNotBlockStartup) {
    FaultFileLayer files;
    std::string old_segment;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 5);
        old_segment = files.content(dir / format::segment_file_name(0));
        append_synced(log, 5, 95);
        drain(log);
        log.release(0, 100);
    }
    // The data goes back in time (a restored backup, a disk that lied): the ledger is ahead of it.
    files.put_file(dir / format::segment_file_name(0), old_segment);
    SegmentLog log(files, small());
    auto report = log.open();
    EXPECT_EQ(report.records, 0U);
    EXPECT_GE(report.next_seq, 100U);
    EXPECT_TRUE(drain(log).empty());
    std::uint64_t seq = 0;
    ASSERT_EQ(log.append("new", seq), SegmentLog::Append::ok);
    EXPECT_GE(seq, 100U);
    log.sync();
    EXPECT_EQ(drain(log).size(), 1U);
}

TEST(SegmentLog, FullWhenMaxBytesIsReachedAndFreeAgainAfterRelease) {
    FaultFileLayer files;
    auto options = small();
    options.max_bytes = 2000;
    SegmentLog log(files, options);
    log.open();
    std::uint64_t seq = 0;
    std::uint64_t appended = 0;
    while (log.append(payload(appended), seq) == SegmentLog::Append::ok)
        ++appended;
    EXPECT_GT(appended, 15U);
    EXPECT_LE(log.stats().bytes, 2000U);
    log.sync();
    auto out = drain(log);
    log.release(0, out.size());
    EXPECT_EQ(log.append(payload(0), seq), SegmentLog::Append::ok);
    EXPECT_THROW(log.append(std::string(3000, 'x'), seq), std::length_error);
}

TEST(SegmentLog, WriteErrorDropsTheBatchWhichCanBeAppendedAgain) {
    FaultFileLayer files;
    SegmentLog log(files, small());
    log.open();
    append_synced(log, 0, 3);
    files.set_capacity(files.content(dir / format::segment_file_name(0)).size() + 100);
    std::uint64_t seq = 0;
    for (int i = 3; i < 8; ++i)
        log.append(payload(i), seq);
    try {
        log.sync();
        FAIL() << "sync succeeded on a full disk";
    } catch (const WriteFailed& e) {
        EXPECT_EQ(e.error(), ENOSPC);
        EXPECT_EQ(e.path().parent_path(), dir);
    }
    EXPECT_EQ(log.stats().records, 3U);
    files.set_capacity(~std::uint64_t{0});
    append_synced(log, 3, 5);  // intake resumes: the same events again
    auto out = drain(log);
    ASSERT_EQ(out.size(), 8U);
    for (std::uint64_t i = 0; i < 8; ++i) {
        EXPECT_EQ(out[i].seq, i);
        EXPECT_EQ(out[i].payload, payload(i));
    }
}

TEST(SegmentLog, FailedFsyncFailsTheLogAndReopeningRecovers) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 3);
        files.fail(FaultFileLayer::Op::sync, EIO);
        std::uint64_t seq = 0;
        log.append(payload(3), seq);
        EXPECT_THROW(log.sync(), SyncFailed);
        EXPECT_THROW(log.sync(), LogFailed);
        EXPECT_THROW(log.append("x", seq), LogFailed);
        std::vector<Record> out;
        EXPECT_THROW(log.next(out, 1), LogFailed);
    }
    SegmentLog log(files, small());
    log.open();
    EXPECT_EQ(drain(log).size(), 3U);
}

TEST(SegmentLog, ReadOnlyDirectoryIsAClearErrorNamingThePath) {
    FaultFileLayer files;
    {
        SegmentLog log(files, small());
        log.open();
        append_synced(log, 0, 3);
    }
    files.set_read_only(true);
    SegmentLog log(files, small());
    try {
        log.open();
        FAIL() << "opened a read-only directory";
    } catch (const FileError& e) {
        EXPECT_EQ(e.error(), EROFS);
        EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
    }
}

TEST(SegmentLog, SegmentIdsWrapAroundWithoutStallingTheReader) {
    FaultFileLayer files;
    auto options = small();
    options.segment_bytes = 100;  // one record per segment
    options.max_segment_ids = 3;
    SegmentLog log(files, options);
    log.open();
    std::set<std::string> names;
    std::uint64_t delivered = 0;
    for (std::uint64_t i = 0; i < 60; ++i) {
        append_synced(log, i, 1);
        for (const auto& f : files.files_in(dir))
            names.insert(f);
        auto out = drain(log);
        ASSERT_EQ(out.size(), 1U) << "at " << i;
        EXPECT_EQ(out[0].seq, i);
        if (i % 2 == 1) {  // release two at a time, the later one first
            log.release(i, 1);
            log.release(i - 1, 1);
        }
        delivered += out.size();
    }
    EXPECT_EQ(delivered, 60U);
    EXPECT_TRUE(names.count((dir / format::segment_file_name(0)).string()) == 1);
    EXPECT_TRUE(names.count((dir / format::segment_file_name(3)).string()) == 0);
    // Every id in use: full, never a collision.
    std::uint64_t seq = 0;
    append_synced(log, 100, 1);
    append_synced(log, 101, 1);
    log.append(payload(102), seq);
    EXPECT_EQ(log.append(payload(103), seq), SegmentLog::Append::full);
}

TEST(SegmentLog, ReleaseOfRecordsNotHandedOutIsRefused) {
    FaultFileLayer files;
    SegmentLog log(files, small());
    log.open();
    append_synced(log, 0, 3);
    EXPECT_THROW(log.release(0, 1), std::out_of_range);
    std::vector<Record> out;
    log.next(out, 2);
    EXPECT_NO_THROW(log.release(0, 2));
    EXPECT_NO_THROW(log.release(0, 2));  // repeats are harmless
    EXPECT_THROW(log.release(1, 2), std::out_of_range);
    EXPECT_EQ(log.stats().records, 1U);
}

TEST(SegmentLog, StatsCountRecordsBytesAndTheOldestRecord) {
    FaultFileLayer files;
    SegmentLog log(files, small());
    log.open();
    auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
    append_synced(log, 0, 10);
    auto s = log.stats();
    EXPECT_EQ(s.records, 10U);
    EXPECT_EQ(s.bytes, 2 * format::segment_header_size + 10 * record_bytes);
    EXPECT_GE(s.oldest, before);
    EXPECT_LE(s.oldest, std::chrono::system_clock::now());
    drain(log);
    log.release(0, 10);
    s = log.stats();
    EXPECT_EQ(s.records, 0U);
    EXPECT_EQ(s.oldest, std::chrono::system_clock::time_point{});
}

// ---- the real file system ----------------------------------------------------------------------------------

class RealDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/var/tmp/hubflow-buffer-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        if (mounted_) ::umount2(root_.c_str(), MNT_DETACH);
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    // A tmpfs of `size` at the test's directory; false (and the test skips) where mounting is not allowed.
    bool mount_tmpfs(const char* size) {
        std::string options = std::string("size=") + size + ",mode=0755";
        if (::mount("tmpfs", root_.c_str(), "tmpfs", 0, options.c_str()) != 0) return false;
        mounted_ = true;
        return true;
    }
    fs::path root_;
    bool mounted_ = false;
};

TEST_F(RealDirTest, FilesArePrivateToTheServiceUser) {
    auto files = make_posix_file_layer();
    SegmentLog log(*files, small(root_ / "a" / "node"));
    log.open();
    append_synced(log, 0, 3);
    struct stat st {};
    ASSERT_EQ(::stat((root_ / "a" / "node").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700U);
    ASSERT_EQ(::stat((root_ / "a" / "node" / format::segment_file_name(0)).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
    ASSERT_EQ(::stat((root_ / "a" / "node" / "ledger").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
}

// A writer, a reader and a third thread releasing batches (two at a time, the later one first, as tickets of a
// disk buffer end on any thread), with frequent ledger writes from both sides.
TEST_F(RealDirTest, WriterReaderAndReleaserThreadsLoseAndRepeatNothing) {
    auto files = make_posix_file_layer();
    auto options = small(root_ / "node");
    options.segment_bytes = 64 << 10;
    options.max_bytes = 1 << 20;             // the writer waits for the releases now and then
    options.memory_window_bytes = 16 << 10;  // and the reader falls back to the files
    options.ledger_interval = std::chrono::milliseconds(2);
    constexpr std::uint64_t total = 40000;
    SegmentLog log(*files, options);
    log.open();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> to_release;
    std::atomic<bool> reading_done{false};

    std::thread writer([&] {
        std::uint64_t i = 0;
        while (i < total && !stop && std::chrono::steady_clock::now() < deadline) {
            std::uint64_t seq = 0;
            std::uint64_t batch = 0;
            while (batch < 400 && i < total && log.append(payload(i), seq) == SegmentLog::Append::ok) {
                ++i;
                ++batch;
            }
            log.sync();
            if (batch == 0) std::this_thread::yield();
        }
    });
    std::thread releaser([&] {
        while (!stop && std::chrono::steady_clock::now() < deadline) {
            std::vector<std::pair<std::uint64_t, std::uint64_t>> batches;
            {
                std::lock_guard lock(mutex);
                if (to_release.size() >= 2 || (reading_done && !to_release.empty())) batches.swap(to_release);
            }
            if (batches.empty()) {
                if (reading_done) break;
                std::this_thread::yield();
                continue;
            }
            for (auto it = batches.rbegin(); it != batches.rend(); ++it)
                log.release(it->first, it->second);
            (void)log.stats();
        }
    });
    std::uint64_t expected = 0;
    std::vector<Record> out;
    while (expected < total && !stop && std::chrono::steady_clock::now() < deadline) {
        out.clear();
        if (log.next(out, 256) == 0) {
            std::this_thread::yield();
            continue;
        }
        for (const auto& r : out) {
            if (r.seq != expected || r.payload != payload(expected)) {
                ADD_FAILURE() << "expected seq " << expected << ", got " << r.seq;
                stop = true;
                break;
            }
            ++expected;
        }
        std::lock_guard lock(mutex);
        to_release.emplace_back(out.front().seq, out.size());
    }
    reading_done = true;
    releaser.join();
    stop = true;
    writer.join();
    EXPECT_EQ(expected, total);
    EXPECT_EQ(log.stats().records, 0U);
}

TEST_F(RealDirTest, FullTmpfsStopsIntakeWithWriteFailedAndLosesNothing) {
    if (!mount_tmpfs("256k")) GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    auto files = make_posix_file_layer();
    auto options = small(root_ / "node");
    options.segment_bytes = 16 << 10;
    options.max_bytes = 64 << 20;  // more than the file system holds
    std::uint64_t synced = 0;
    {
        SegmentLog log(*files, options);
        log.open();
        bool failed = false;
        for (std::uint64_t i = 0; i < 100000 && !failed;) {
            std::uint64_t seq = 0;
            for (int k = 0; k < 50; ++k)
                log.append(payload(i + k), seq);
            try {
                log.sync();
                i += 50;
                synced = i;
            } catch (const WriteFailed& e) {
                EXPECT_EQ(e.error(), ENOSPC);
                EXPECT_NE(std::string(e.what()).find(options.dir.string()), std::string::npos) << e.what();
                failed = true;
            }
        }
        ASSERT_TRUE(failed);
        EXPECT_EQ(log.stats().records, synced);
    }
    SegmentLog log(*files, options);
    auto report = log.open();
    EXPECT_EQ(report.records, synced);
    EXPECT_EQ(report.records_set_aside, 0U);
    auto out = drain(log);
    ASSERT_EQ(out.size(), synced);
    EXPECT_EQ(out.back().payload, payload(synced - 1));
}

TEST_F(RealDirTest, ReadOnlyFileSystemIsAClearErrorNamingThePath) {
    if (!mount_tmpfs("1m")) GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    auto files = make_posix_file_layer();
    auto options = small(root_ / "node");
    {
        SegmentLog log(*files, options);
        log.open();
        append_synced(log, 0, 3);
    }
    ASSERT_EQ(::mount(nullptr, root_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0) << std::strerror(errno);
    SegmentLog log(*files, options);
    try {
        log.open();
        FAIL() << "opened a read-only file system";
    } catch (const FileError& e) {
        EXPECT_EQ(e.error(), EROFS);
        EXPECT_NE(std::string(e.what()).find(options.dir.string()), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace hubflow::core::buffer

#pragma once
// An in-memory FileLayer that behaves like a disk across power cuts, after LazyFS: every file keeps what was
// fdatasync'ed and what was only written; directory changes (create, rename, unlink) are journalled and become
// durable at a directory fsync. crash() throws away what was not made durable, keeping a random prefix of each
// file's unsynced tail (a torn write, sometimes followed by zeros or stale bytes) and of the directory journal
// (metadata persisted in order). It can also
// crash in the middle of the n-th mutating operation, flip bits, and fail operations with ENOSPC, EIO or EROFS.

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "buffer/file_layer.h"

namespace hubflow::core::buffer::testing {

// Thrown from the operation during which the simulated power cut happens, and from every operation after it
// until crash() "reboots" the machine.
struct InjectedCrash : std::runtime_error {
    InjectedCrash() : std::runtime_error("injected power cut") {}
};

class FaultFileLayer : public FileLayer {
public:
    explicit FaultFileLayer(std::uint64_t seed = 1) : rng_(seed) {}

    enum class Op { create, append, sync, truncate, rename, remove, sync_directory };

    // The n-th mutating operation from now (1 = the next) is cut in the middle, then everything throws
    // InjectedCrash until crash().
    void arm_crash(std::uint64_t after_ops) {
        std::lock_guard lock(mutex_);
        crash_countdown_ = after_ops;
    }
    // Power cut now (or completes one armed and triggered): the disk keeps only what was durable, plus a random
    // prefix of unsynced data when `tear` is set.
    void crash(bool tear = true);
    bool crashed() const {
        std::lock_guard lock(mutex_);
        return crashed_;
    }

    // The next `count` operations of kind `op` fail with `error` (a failed append writes a random prefix first;
    // a failed sync drops the file's unsynced data, as Linux does after a writeback error).
    void fail(Op op, int error, int count = 1) {
        std::lock_guard lock(mutex_);
        failures_.push_back({op, error, count});
    }
    void clear_failures() {
        std::lock_guard lock(mutex_);
        failures_.clear();
    }
    // Total bytes the files may hold; an append past it writes what fits and fails with ENOSPC.
    void set_capacity(std::uint64_t bytes) {
        std::lock_guard lock(mutex_);
        capacity_ = bytes;
    }
    void set_read_only(bool read_only) {
        std::lock_guard lock(mutex_);
        read_only_ = read_only;
    }

    // Flips one bit of a file, durably (bit rot, a misdirected write).
    void flip_bit(const std::filesystem::path& path, std::uint64_t offset, int bit) {
        std::lock_guard lock(mutex_);
        auto node = lookup(path.string());
        node->current[offset] = static_cast<char>(node->current[offset] ^ (1 << bit));
        if (offset < node->durable.size())
            node->durable[offset] = static_cast<char>(node->durable[offset] ^ (1 << bit));
    }
    // Writes a file directly and durably (a file left by another version, say).
    void put_file(const std::filesystem::path& path, const std::string& content) {
        std::lock_guard lock(mutex_);
        auto node = std::make_shared<Node>();
        node->current = node->durable = content;
        names_[path.string()] = node;
        durable_names_[path.string()] = node;
    }
    std::string content(const std::filesystem::path& path) const {
        std::lock_guard lock(mutex_);
        auto it = names_.find(path.string());
        return it == names_.end() ? std::string() : it->second->current;
    }
    std::uint64_t durable_size(const std::filesystem::path& path) const {
        std::lock_guard lock(mutex_);
        auto it = names_.find(path.string());
        return it == names_.end() ? 0 : it->second->durable.size();
    }
    std::vector<std::string> files_in(const std::filesystem::path& dir) const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& [name, node] : names_)
            if (std::filesystem::path(name).parent_path() == dir) out.push_back(name);
        return out;
    }
    std::uint64_t operations() const {
        std::lock_guard lock(mutex_);
        return operations_;
    }

    std::unique_ptr<File> open(const std::filesystem::path& path, OpenMode mode) override;
    void rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
    void remove(const std::filesystem::path& path) override;
    std::vector<std::string> list(const std::filesystem::path& dir) override;
    void create_directories(const std::filesystem::path& dir) override;
    void sync_directory(const std::filesystem::path& dir) override;

private:
    struct Node {
        std::string current;
        std::string durable;
    };
    struct Journal {
        bool remove;
        std::string from;
        std::string to;
        std::shared_ptr<Node> node;
    };
    struct Failure {
        Op op;
        int error;
        int count;
    };
    class FaultFile;

    std::shared_ptr<Node> lookup(const std::string& path) const {
        auto it = names_.find(path);
        if (it == names_.end()) throw FileError(ENOENT, "open", path);
        return it->second;
    }
    // Counts a mutating operation. Returns true when this one is to be cut by a crash (the caller does a
    // random part of it, then calls cut()); throws when crashed, read-only or failing.
    bool begin(Op op, const std::string& path, int& failure);
    [[noreturn]] void cut() {
        crashed_ = true;
        throw InjectedCrash();
    }
    bool coin() { return std::uniform_int_distribution<int>(0, 1)(rng_) == 1; }
    std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n)(rng_); }
    std::uint64_t used() const {
        std::uint64_t total = 0;
        for (const auto& [name, node] : names_)
            total += node->current.size();
        return total;
    }

    mutable std::mutex mutex_;
    std::mt19937_64 rng_;
    std::map<std::string, std::shared_ptr<Node>> names_;
    std::map<std::string, std::shared_ptr<Node>> durable_names_;
    std::vector<Journal> journal_;
    std::vector<std::string> dirs_;
    std::vector<Failure> failures_;
    std::uint64_t crash_countdown_ = 0;
    std::uint64_t capacity_ = ~std::uint64_t{0};
    std::uint64_t operations_ = 0;
    std::uint64_t generation_ = 0;
    bool crashed_ = false;
    bool read_only_ = false;
};

class FaultFileLayer::FaultFile final : public File {
public:
    FaultFile(FaultFileLayer& layer, std::shared_ptr<Node> node, std::string path, bool writable)
        : layer_(layer),
          node_(std::move(node)),
          path_(std::move(path)),
          writable_(writable),
          generation_(layer.generation_) {}

    void append(std::string_view data) override {
        std::lock_guard lock(layer_.mutex_);
        check();
        if (!writable_) throw FileError(EBADF, "write", path_);
        int failure = 0;
        bool crash = layer_.begin(Op::append, path_, failure);
        std::uint64_t room = layer_.capacity_ - std::min(layer_.capacity_, layer_.used());
        if (crash || failure != 0 || data.size() > room) {
            auto part = layer_.below(std::min<std::uint64_t>(data.size(), room));
            node_->current.append(data.substr(0, part));
            if (crash) layer_.cut();
            throw FileError(failure != 0 ? failure : ENOSPC, "write", path_);
        }
        node_->current.append(data);
    }
    std::size_t read_at(std::uint64_t offset, char* out, std::size_t size) override {
        std::lock_guard lock(layer_.mutex_);
        check();
        if (offset >= node_->current.size()) return 0;
        std::size_t n = std::min<std::size_t>(size, node_->current.size() - offset);
        std::copy_n(node_->current.data() + offset, n, out);
        return n;
    }
    void sync() override {
        std::lock_guard lock(layer_.mutex_);
        check();
        int failure = 0;
        bool crash = layer_.begin(Op::sync, path_, failure);
        if (crash) {
            if (layer_.coin()) node_->durable = node_->current;
            layer_.cut();
        }
        if (failure != 0) {
            node_->current = node_->durable;
            throw FileError(failure, "fdatasync", path_);
        }
        node_->durable = node_->current;
    }
    std::uint64_t size() override {
        std::lock_guard lock(layer_.mutex_);
        check();
        return node_->current.size();
    }
    void truncate(std::uint64_t size) override {
        std::lock_guard lock(layer_.mutex_);
        check();
        int failure = 0;
        bool crash = layer_.begin(Op::truncate, path_, failure);
        if (crash) {
            if (layer_.coin()) node_->current.resize(std::min<std::uint64_t>(size, node_->current.size()));
            layer_.cut();
        }
        if (failure != 0) throw FileError(failure, "truncate", path_);
        node_->current.resize(size, '\0');
    }

private:
    void check() const {
        if (layer_.crashed_ || generation_ != layer_.generation_) throw InjectedCrash();
    }
    FaultFileLayer& layer_;
    std::shared_ptr<Node> node_;
    std::string path_;
    bool writable_;
    std::uint64_t generation_;
};

inline bool FaultFileLayer::begin(Op op, const std::string& path, int& failure) {
    if (crashed_) throw InjectedCrash();
    if (read_only_) throw FileError(EROFS, "write", path);
    ++operations_;
    for (auto it = failures_.begin(); it != failures_.end(); ++it) {
        if (it->op != op) continue;
        failure = it->error;
        if (--it->count == 0) failures_.erase(it);
        break;
    }
    if (crash_countdown_ > 0 && --crash_countdown_ == 0) return true;
    return false;
}

inline std::unique_ptr<File> FaultFileLayer::open(const std::filesystem::path& path, OpenMode mode) {
    std::lock_guard lock(mutex_);
    if (crashed_) throw InjectedCrash();
    const std::string name = path.string();
    auto it = names_.find(name);
    if (mode == OpenMode::read || mode == OpenMode::read_write) {
        if (it == names_.end()) throw FileError(ENOENT, "open", path);
        if (mode == OpenMode::read_write && read_only_) throw FileError(EROFS, "open", path);
        return std::make_unique<FaultFile>(*this, it->second, name, mode == OpenMode::read_write);
    }
    if (mode == OpenMode::create_new && it != names_.end()) throw FileError(EEXIST, "open", path);
    if (std::find(dirs_.begin(), dirs_.end(), path.parent_path().string()) == dirs_.end())
        throw FileError(ENOENT, "open", path);
    int failure = 0;
    bool crash = begin(Op::create, name, failure);
    if (failure != 0) throw FileError(failure, "open", path);
    if (crash && coin()) cut();
    auto node = std::make_shared<Node>();
    names_[name] = node;
    journal_.push_back({false, "", name, node});
    if (crash) cut();
    return std::make_unique<FaultFile>(*this, node, name, true);
}

inline void FaultFileLayer::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::lock_guard lock(mutex_);
    auto node = lookup(from.string());
    int failure = 0;
    bool crash = begin(Op::rename, from.string(), failure);
    if (failure != 0) throw FileError(failure, "rename", from);
    if (crash && coin()) cut();
    names_.erase(from.string());
    names_[to.string()] = node;
    journal_.push_back({false, from.string(), to.string(), node});
    if (crash) cut();
}

inline void FaultFileLayer::remove(const std::filesystem::path& path) {
    std::lock_guard lock(mutex_);
    lookup(path.string());
    int failure = 0;
    bool crash = begin(Op::remove, path.string(), failure);
    if (failure != 0) throw FileError(failure, "unlink", path);
    if (crash && coin()) cut();
    names_.erase(path.string());
    journal_.push_back({true, path.string(), "", nullptr});
    if (crash) cut();
}

inline std::vector<std::string> FaultFileLayer::list(const std::filesystem::path& dir) {
    std::lock_guard lock(mutex_);
    if (crashed_) throw InjectedCrash();
    if (std::find(dirs_.begin(), dirs_.end(), dir.string()) == dirs_.end()) throw FileError(ENOENT, "list", dir);
    std::vector<std::string> out;
    for (const auto& [name, node] : names_)
        if (std::filesystem::path(name).parent_path() == dir) out.push_back(std::filesystem::path(name).filename());
    for (const auto& d : dirs_)
        if (std::filesystem::path(d).parent_path() == dir) out.push_back(std::filesystem::path(d).filename());
    return out;
}

// Directories are durable at once (a simplification: the log creates its directory once).
inline void FaultFileLayer::create_directories(const std::filesystem::path& dir) {
    std::lock_guard lock(mutex_);
    if (crashed_) throw InjectedCrash();
    std::filesystem::path partial;
    for (const auto& part : dir) {
        partial /= part;
        if (std::find(dirs_.begin(), dirs_.end(), partial.string()) != dirs_.end()) continue;
        if (read_only_) throw FileError(EROFS, "mkdir", partial);
        dirs_.push_back(partial.string());
    }
}

inline void FaultFileLayer::sync_directory(const std::filesystem::path& dir) {
    std::lock_guard lock(mutex_);
    int failure = 0;
    bool crash = begin(Op::sync_directory, dir.string(), failure);
    if (failure != 0) throw FileError(failure, "fsync directory", dir);
    if (crash && coin()) cut();
    for (const auto& j : journal_) {
        if (j.remove) {
            durable_names_.erase(j.from);
        } else {
            if (!j.from.empty()) durable_names_.erase(j.from);
            durable_names_[j.to] = j.node;
        }
    }
    journal_.clear();
    if (crash) cut();
}

inline void FaultFileLayer::crash(bool tear) {
    std::lock_guard lock(mutex_);
    // Metadata reaches the disk in order: a random prefix of the journal survives.
    std::size_t keep = tear ? static_cast<std::size_t>(below(journal_.size())) : 0;
    for (std::size_t i = 0; i < keep; ++i) {
        const auto& j = journal_[i];
        if (j.remove) {
            durable_names_.erase(j.from);
        } else {
            if (!j.from.empty()) durable_names_.erase(j.from);
            durable_names_[j.to] = j.node;
        }
    }
    journal_.clear();
    for (auto& [name, node] : durable_names_) {
        std::string kept = node->durable;
        const std::string& current = node->current;
        if (tear && current.size() > kept.size() && current.compare(0, kept.size(), kept) == 0 && coin()) {
            kept.append(current, kept.size(), below(current.size() - kept.size()));
            // Sometimes the block after the part that made it holds zeros or stale bytes instead.
            if (below(3) == 0) {
                const bool zeros = coin();
                for (auto n = below(64); n > 0; --n)
                    kept.push_back(zeros ? '\0' : static_cast<char>(below(255)));
            }
        }
        node->current = node->durable = kept;
    }
    names_ = durable_names_;
    crashed_ = false;
    crash_countdown_ = 0;
    failures_.clear();
    ++generation_;
}

}  // namespace hubflow::core::buffer::testing

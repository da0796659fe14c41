#pragma once
// Problems found in a pipeline file. Validation collects all of them instead of stopping at the first, and
// each names the file, the node and the key, with line and column where they are known.

#include <string>
#include <vector>

#include "hubflow/value.h"

namespace hubflow::core {

struct Diagnostic {
    std::string file;
    std::string node;  // "" for file-level problems
    std::string key;   // dotted path inside the node, or top-level key
    SourcePosition position;
    std::string message;

    // file:line:col: node 'x', key 'y': message
    std::string to_string() const;
};

class Diagnostics {
public:
    explicit Diagnostics(std::string file) : file_(std::move(file)) {}
    void add(std::string node, std::string key, SourcePosition position, std::string message);
    bool empty() const { return items_.empty(); }
    const std::vector<Diagnostic>& items() const { return items_; }
    const std::string& file() const { return file_; }
    std::string to_string() const;  // one line each, in file order

private:
    std::string file_;
    std::vector<Diagnostic> items_;
};

}  // namespace hubflow::core

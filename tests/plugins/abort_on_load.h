#pragma once
// Broken test plugins include this: if the host ever ran their code (a static constructor runs on dlopen),
// the test process would die here. The loader must refuse them from their symbol table alone.
#include <cstdlib>

namespace {
struct AbortOnLoad {
    AbortOnLoad() { std::abort(); }
} abort_on_load;
}  // namespace

#pragma once
// The live pipeline page served at /ui: one self-contained HTML file (ui.html, embedded at build time) that
// draws /api/v1/graph and polls it every second. No external scripts, fonts or styles.

#include <string_view>

namespace hubflow::core {

std::string_view ui_page();

}  // namespace hubflow::core

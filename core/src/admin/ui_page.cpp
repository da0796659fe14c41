#include "admin/ui_page.h"

#include "admin/ui_html.h"

namespace hubflow::core {

std::string_view ui_page() {
    return {hubflow_ui_html, sizeof(hubflow_ui_html) - 1};
}

}  // namespace hubflow::core

# Writes a header holding the text of IN as the constexpr char array NAME, for files served from the binary
# (the admin server's /ui page). Run at build time by core/CMakeLists.txt; the output changes only when IN does.
file(READ "${IN}" text)
string(FIND "${text}" ")hubflow_embed\"" clash)
if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${IN} contains the raw-string terminator )hubflow_embed\"")
endif()
file(WRITE "${OUT}.tmp" "// Generated from ${IN} at build time; edit that file instead.\n#pragma once\n\ninline constexpr char ${NAME}[] = R\"hubflow_embed(${text})hubflow_embed\";\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")

# hubflow_add_plugin(<target> SOURCES <files...> [LIBRARIES <targets...>])
# Builds a hubflow plugin: a shared library without the "lib" prefix, hidden symbols by default (only what
# HUBFLOW_PLUGIN exports is visible), linked against the SDK. Used in tree and by out-of-tree plugins alike.
function(hubflow_add_plugin target)
    cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
    add_library(${target} MODULE ${ARG_SOURCES})
    target_link_libraries(${target} PRIVATE hubflow::sdk ${ARG_LIBRARIES})
    set_target_properties(${target} PROPERTIES
        PREFIX ""
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    if(ARG_OUTPUT_DIRECTORY)
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
    endif()
endfunction()

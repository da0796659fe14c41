# In-tree plugins: one call declares a plugin and its implementation library, one call per test executable.
# (Out of tree, plugins use hubflow_add_plugin() from the SDK's CMake package; these build on it.)
#
#   hubflow_plugin(file SOURCES src/file_sink.cpp src/tail_source.cpp)
#   hubflow_plugin_test(file_sink_test SOURCES tests/file_sink_test.cpp tests/tail_source_test.cpp)
#   hubflow_plugin_test(tail_process_test PROCESS SOURCES tests/tail_process_test.cpp PLUGINS generator)

# hubflow_plugin_library(<target> SOURCES <files> [LIBRARIES <targets>] [PRIVATE_LIBRARIES <targets>])
# A static library of a plugin's code, linked into the plugin and into its tests and benchmarks, so that they
# all run the same code: position-independent, hidden symbols like the plugin itself, the folder's src/ on
# its include path, linked to the SDK. LIBRARIES are linked PUBLIC (their headers appear in src/'s).
function(hubflow_plugin_library target)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES;PRIVATE_LIBRARIES" ${ARGN})
    add_library(${target} STATIC ${ARG_SOURCES})
    set_target_properties(${target} PROPERTIES
        POSITION_INDEPENDENT_CODE ON
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC hubflow::sdk ${ARG_LIBRARIES} PRIVATE ${ARG_PRIVATE_LIBRARIES})
endfunction()

# hubflow_plugin(<name> SOURCES <files> [LIBRARIES <targets>] [PRIVATE_LIBRARIES <targets>]
#                [ENTRY <file>] [IMPL <target>])
# The plugin `hubflow_<name>.so` (into build/lib/hubflow, installed into lib/hubflow) built from ENTRY (the
# file holding HUBFLOW_PLUGIN; src/plugin.cpp by default) and its implementation library IMPL
# (<name>_impl by default), made by hubflow_plugin_library() from SOURCES and the LIBRARIES.
# hubflow_plugin_test() in the same folder tests this plugin.
function(hubflow_plugin name)
    cmake_parse_arguments(ARG "" "ENTRY;IMPL" "SOURCES;LIBRARIES;PRIVATE_LIBRARIES" ${ARGN})
    if(NOT ARG_ENTRY)
        set(ARG_ENTRY src/plugin.cpp)
    endif()
    if(NOT ARG_IMPL)
        set(ARG_IMPL ${name}_impl)
    endif()
    hubflow_plugin_library(${ARG_IMPL} SOURCES ${ARG_SOURCES}
        LIBRARIES ${ARG_LIBRARIES} PRIVATE_LIBRARIES ${ARG_PRIVATE_LIBRARIES})
    hubflow_add_plugin(hubflow_${name} SOURCES ${ARG_ENTRY} LIBRARIES ${ARG_IMPL}
        OUTPUT_DIRECTORY ${HUBFLOW_PLUGIN_OUTPUT_DIR})
    # lib/hubflow whatever CMAKE_INSTALL_LIBDIR says: the host looks for plugins at ../lib/hubflow.
    install(TARGETS hubflow_${name} LIBRARY DESTINATION lib/hubflow COMPONENT runtime)
    set(HUBFLOW_PLUGIN_NAME ${name} PARENT_SCOPE)
    set(HUBFLOW_PLUGIN_IMPL ${ARG_IMPL} PARENT_SCOPE)
endfunction()

# hubflow_plugin_test(<target> [PROCESS] SOURCES <files> [LIBRARIES <targets>] [IMPL <target>]
#                     [PLUGINS <names>])
# A GoogleTest executable (hubflow_add_test) of the plugin declared above in this folder, linked to its
# implementation library (or to IMPL, one of the plugin's libraries), with the folder's tests/ on its include
# path. PROCESS: the test runs the real hubflow program, so it gets the process support (tests/integration)
# and is built after the program, this plugin and the PLUGINS it loads too (names as in hubflow_plugin).
# Nothing happens when tests are not built.
function(hubflow_plugin_test target)
    if(NOT HUBFLOW_BUILD_TESTS)
        return()
    endif()
    cmake_parse_arguments(ARG "PROCESS" "IMPL" "SOURCES;LIBRARIES;PLUGINS" ${ARGN})
    if(NOT HUBFLOW_PLUGIN_NAME)
        message(FATAL_ERROR "hubflow_plugin_test(${target}): declare the plugin with hubflow_plugin() first")
    endif()
    if(NOT ARG_IMPL)
        set(ARG_IMPL ${HUBFLOW_PLUGIN_IMPL})
    endif()
    set(sources ${ARG_SOURCES})
    if(ARG_PROCESS)
        list(APPEND sources ${PROJECT_SOURCE_DIR}/tests/integration/process.cpp)
    endif()
    hubflow_add_test(${target} SOURCES ${sources} LIBRARIES ${ARG_IMPL} ${ARG_LIBRARIES})
    target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests)
    if(ARG_PROCESS)
        target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests/integration)
        target_link_libraries(${target} PRIVATE Threads::Threads)
        set(plugins hubflow_${HUBFLOW_PLUGIN_NAME})
        foreach(plugin IN LISTS ARG_PLUGINS)
            list(APPEND plugins hubflow_${plugin})
        endforeach()
        add_dependencies(${target} hubflow ${plugins})
    endif()
endfunction()

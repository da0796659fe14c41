# What `cmake --install` lays out beyond the targets, and the two Debian packages CPack builds from it:
#   hubflow      bin/hubflow, lib/hubflow/*.so (plugins), lib/libhubflow-sdk.so.*, the systemd unit, the man page,
#                /etc/hubflow/pipeline.json (a conffile)
#   hubflow-dev  include/hubflow/, lib/libhubflow-sdk.so, lib/cmake/hubflow-sdk/, share/hubflow-sdk/template/
# Install components: `runtime` (the default of every install() without one) and `dev`.
#   cpack --config build/CPackConfig.cmake -B out  ->  out/hubflow_<v>-1_<arch>.deb, out/hubflow-dev_<v>-1_<arch>.deb

set(HUBFLOW_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)

# The unit names the program and the pipeline by absolute path, and the pipeline belongs in /etc when the
# prefix is /usr (as GNUInstallDirs has it), else in <prefix>/etc. Both are decided at install time, because
# CPack installs with prefix /usr into a staging DESTDIR while `cmake --install --prefix P` installs into P:
# either way the unit points at the program it was installed with, so `systemd-analyze verify` can check it.
set(hubflow_install_code [[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(hubflow_etc "/etc/hubflow")
  else()
    set(hubflow_etc "${CMAKE_INSTALL_PREFIX}/etc/hubflow")
  endif()
  set(HUBFLOW_BIN "${CMAKE_INSTALL_PREFIX}/bin/hubflow")
  set(HUBFLOW_CONFIG "${hubflow_etc}/pipeline.json")
  # An operator's pipeline is never overwritten (the package marks it a conffile; a plain install keeps it).
  if(EXISTS "$ENV{DESTDIR}${hubflow_etc}/pipeline.json")
    message(STATUS "Kept: $ENV{DESTDIR}${hubflow_etc}/pipeline.json (the example is in the source tree's packaging/)")
  else()
    # file(INSTALL) puts DESTDIR in front of absolute destinations itself.
    file(INSTALL DESTINATION "${hubflow_etc}" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
         FILES "@HUBFLOW_PACKAGING_DIR@/pipeline.json")
  endif()
  file(READ "@HUBFLOW_PACKAGING_DIR@/hubflow.service.in" unit)
  string(CONFIGURE "${unit}" unit @ONLY)
  # Written straight to its place: two installs at once (cpack, a test's --prefix) must not share a file.
  set(unit_file "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system/hubflow.service")
  message(STATUS "Installing: ${unit_file}")
  file(WRITE "${unit_file}" "${unit}")
  file(CHMOD "${unit_file}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${unit_file}")
]])
# The @...@ are this tree's paths, filled in now; the ${...} are evaluated at install time.
string(CONFIGURE "${hubflow_install_code}" hubflow_install_code @ONLY)
install(CODE "${hubflow_install_code}" COMPONENT runtime)
install(FILES ${HUBFLOW_PACKAGING_DIR}/hubflow.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/template/ DESTINATION ${CMAKE_INSTALL_DATADIR}/hubflow-sdk/template
        COMPONENT dev)

# --- CPack: two Debian packages ---------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hubflow)
set(CPACK_PACKAGE_VENDOR "hubflow")
set(CPACK_PACKAGE_CONTACT "hubflow maintainers <hubflow@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPackDeb would put it above each package's own first line (its synopsis).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# Install with DESTDIR (prefix /usr) rather than into <staging>/usr, so the pipeline lands in /etc (above).
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Dependencies of the program and plugins from their ELF files (dpkg-shlibdeps, in dpkg-dev). The SDK library
# ships in the same package: shlibdeps finds it through the RPATH and needs no package for it.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR}/lib)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME hubflow)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "event pipelines described in JSON files
hubflow runs event pipelines from JSON files: sources, filters and sinks from plugins (generator, tail, file, \
console, route, dedupe, webhook, kafka, signalr), wired into a graph by name. The systemd unit hubflow.service \
runs /etc/hubflow/pipeline.json.")
set(hubflow_control ${CMAKE_CURRENT_BINARY_DIR}/packaging/control)
file(MAKE_DIRECTORY ${hubflow_control})
file(WRITE ${hubflow_control}/conffiles "/etc/hubflow/pipeline.json\n")
# systemd reads the new or removed unit; the service is neither enabled nor started (edit the pipeline first).
# Not for an install into another root (DPKG_ROOT set by dpkg --root): that systemd is not this one's.
set(hubflow_reload "#!/bin/sh\nset -e\nif [ -z \"\${DPKG_ROOT:-}\" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\nexit 0\n")
file(WRITE ${hubflow_control}/postinst "${hubflow_reload}")
file(WRITE ${hubflow_control}/postrm "${hubflow_reload}")
file(CHMOD ${hubflow_control}/postinst ${hubflow_control}/postrm
     PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${hubflow_control}/conffiles ${hubflow_control}/postinst ${hubflow_control}/postrm)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME hubflow-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The CMake package finds Poco (find_dependency) and plugins build with a C++20 compiler and CMake.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "hubflow (= ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}), libpoco-dev, cmake (>= 3.20)")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_DEV_DESCRIPTION "hubflow plugin SDK: headers, CMake package and template
Builds hubflow plugins out of tree: find_package(hubflow-sdk) gives the target hubflow::sdk and \
hubflow_add_plugin(); /usr/share/hubflow-sdk/template is a plugin to start from.")

include(CPack)

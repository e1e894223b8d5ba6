# Read by cpack once per generator (CPACK_PROJECT_CONFIG_FILE), with CPACK_GENERATOR set to
# the one running. The install rules put the licence in two components (CMakeLists.txt), and
# the system spool in a third:
#   license  LICENSE                                  cmake --install, the binary tarball
#   deb      copyright (DEP-5), changelog.Debian.gz   the .deb only (EXCLUDE_FROM_ALL)
#   spool    the system spool (install-spool.cmake)   cmake --install only: the .deb's postinst
#                                                     makes it; a tarball has no /var
# A .deb must not carry LICENSE next to its copyright file (lintian: extra-license-file).
# (The source tarball installs no project: its list is empty.)
if(NOT CPACK_INSTALL_CMAKE_PROJECTS)
  return()
endif()
list(GET CPACK_INSTALL_CMAKE_PROJECTS 0 _crashmail_build_dir)
if(CPACK_GENERATOR STREQUAL "DEB")
  set(CPACK_INSTALL_CMAKE_PROJECTS
      "${_crashmail_build_dir};crashmail;Unspecified;/"
      "${_crashmail_build_dir};crashmail;deb;/")
else()
  set(CPACK_INSTALL_CMAKE_PROJECTS
      "${_crashmail_build_dir};crashmail;Unspecified;/"
      "${_crashmail_build_dir};crashmail;license;/")
endif()

# Read by cpack once per generator (CPACK_PROJECT_CONFIG_FILE), with CPACK_GENERATOR set to
# the one running. The install rules put the licence in two components (CMakeLists.txt):
#   license  LICENSE                                  cmake --install, the binary tarball
#   deb      copyright (DEP-5), changelog.Debian.gz   the .deb only (EXCLUDE_FROM_ALL)
# A .deb must not carry LICENSE next to its copyright file (lintian: extra-license-file).
if(CPACK_GENERATOR STREQUAL "DEB")
  list(GET CPACK_INSTALL_CMAKE_PROJECTS 0 _crashmail_build_dir)
  set(CPACK_INSTALL_CMAKE_PROJECTS
      "${_crashmail_build_dir};crashmail;Unspecified;/"
      "${_crashmail_build_dir};crashmail;deb;/")
endif()

# CPack settings for crashmail, included at the end of the top-level CMakeLists.txt (after the
# install() rules, which define what goes into every package).
#
#   cpack -G DEB       crashmail_<version>-1_<arch>.deb   (Depends computed by dpkg-shlibdeps)
#   cpack -G TGZ       crashmail-<version>-Linux.tar.gz    (bin/, share/man/, share/doc/)
#   cpack --config CPackSourceConfig.cmake   crashmail-<version>-src.tar.gz
#
# packaging/build-packages.sh runs all three from a Release build.
#
# The man page is installed gzipped (gzip -9n) everywhere; the .deb also carries
# share/doc/crashmail/copyright (DEP-5) and changelog.Debian.gz, and its Maintainer is the
# cache variable CRASHMAIL_MAINTAINER (a placeholder by default: set it for releases, e.g.
# cmake -DCRASHMAIL_MAINTAINER="Jane Doe <jane@example.org>").

set(CPACK_PACKAGE_NAME "crashmail")
set(CPACK_PACKAGE_VENDOR "crashmail")
set(CPACK_PACKAGE_CONTACT "${CRASHMAIL_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "supervisord event listener that reports crashes by mail and webhooks")
# Lines of at most 80 characters (lintian: extended-description-line-too-long).
set(CPACK_PACKAGE_DESCRIPTION
    "crashmail is an event listener for supervisord that tells you when a process
crashes: by mail (a sendmail command, or SMTP with STARTTLS or implicit TLS and
authentication) and by webhooks (JSON with an HMAC signature, Slack, Discord,
Prometheus Alertmanager). Undelivered alerts are kept in a spool and retried.
It is a drop-in successor to superlance's crashmail: the same flags keep
working, and -p filters.")
set(CPACK_PACKAGE_HOMEPAGE_URL "${PROJECT_HOMEPAGE_URL}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_INSTALL_DIRECTORY "crashmail")
# Packages carry a stripped binary; the build tree keeps its debug information.
set(CPACK_STRIP_FILES ON)
# Files in packages belong to root, with 0755 directories, however the build tree was made.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# Per package: the .deb takes the debian component (copyright, changelog.Debian.gz) instead of
# the license component (LICENSE); see packaging/CPackProjectConfig.cmake.
set(CPACK_PROJECT_CONFIG_FILE "${CMAKE_CURRENT_LIST_DIR}/CPackProjectConfig.cmake")

if(NOT CPACK_GENERATOR)
  set(CPACK_GENERATOR "DEB;TGZ")
endif()

# ---------------------------------------------------------------------------------- DEB
set(CPACK_DEBIAN_PACKAGE_NAME "crashmail")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_RELEASE "1")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: computed from the binary by dpkg-shlibdeps (Debian package dpkg-dev; CPack also
# needs the `file` command to find the ELF files).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# supervisord runs crashmail; a mail transport agent provides /usr/sbin/sendmail for -m
# without --smtp. Neither is needed to run `crashmail --test` with webhooks or SMTP.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "supervisor")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "default-mta | mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${PROJECT_HOMEPAGE_URL}")
set(CPACK_DEBIAN_COMPRESSION_TYPE "xz")

# Maintainer scripts (packaging/debian/*.in, configured here with the system spool and the
# installed binary's path): postinst makes the spool (CRASHMAIL_SYSTEM_SPOOL 0755, users/ 1733,
# or as dpkg-statoverride says) and, on an upgrade, restarts the running listeners through
# supervisorctl (or names the ones it could not restart and the command); prerm names the
# listeners that still run when the package is removed; postrm purge removes the spool. The
# functions both postinst and prerm use are in listeners.sh.in.
set(CRASHMAIL_BINARY "/usr/${CMAKE_INSTALL_BINDIR}/crashmail")
file(READ "${CMAKE_CURRENT_LIST_DIR}/debian/listeners.sh.in" _crashmail_listeners)
string(CONFIGURE "${_crashmail_listeners}" CRASHMAIL_LISTENERS_FUNCTION @ONLY)
set(_crashmail_scripts "")
foreach(_script postinst prerm postrm)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               "${CMAKE_CURRENT_LIST_DIR}/debian/${_script}.in")
  configure_file("${CMAKE_CURRENT_LIST_DIR}/debian/${_script}.in"
                 "${PROJECT_BINARY_DIR}/debian/${_script}" @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                  GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  list(APPEND _crashmail_scripts "${PROJECT_BINARY_DIR}/debian/${_script}")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${CMAKE_CURRENT_LIST_DIR}/debian/listeners.sh.in")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${_crashmail_scripts}")
# Modes as Debian policy wants them in control.tar (0755 scripts), whatever the build tree has.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# ------------------------------------------------------------------------ source tarball
set(CPACK_SOURCE_GENERATOR "TGZ")
set(CPACK_SOURCE_PACKAGE_FILE_NAME "crashmail-${PROJECT_VERSION}-src")
# Everything under the source tree except build trees, VCS data and caches (CMake regexes,
# matched against absolute paths).
set(CPACK_SOURCE_IGNORE_FILES
    "/\\\\.git/"
    "/\\\\.cache/"
    "${PROJECT_SOURCE_DIR}/build[^/]*/"
    "${PROJECT_SOURCE_DIR}/demo-output/"
    "/__pycache__/"
    "\\\\.pyc$"
    "~$")

include(CPack)

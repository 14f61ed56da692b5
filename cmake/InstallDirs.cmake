# Install folders (GNUInstallDirs), with lib/ as the library folder also for the /usr
# prefix: libshmrepl finds the engine at <its folder>/../bin/shmrepl-engine, which a
# multiarch folder (lib/x86_64-linux-gnu) would break.
include_guard(DIRECTORY)  # GNUInstallDirs sets some of its variables per directory
if(NOT DEFINED CMAKE_INSTALL_LIBDIR)
  set(CMAKE_INSTALL_LIBDIR lib CACHE PATH "Object code libraries (lib)")
endif()
include(GNUInstallDirs)
file(RELATIVE_PATH _shmrepl_lib_to_bin /${CMAKE_INSTALL_LIBDIR} /${CMAKE_INSTALL_BINDIR})
get_property(_shmrepl_warned GLOBAL PROPERTY SHMREPL_LIBDIR_WARNED)
if(NOT _shmrepl_warned AND (NOT _shmrepl_lib_to_bin STREQUAL "../bin"
   OR IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_BINDIR}"))
  set_property(GLOBAL PROPERTY SHMREPL_LIBDIR_WARNED TRUE)
  message(WARNING "CMAKE_INSTALL_LIBDIR=${CMAKE_INSTALL_LIBDIR} and CMAKE_INSTALL_BINDIR="
                  "${CMAKE_INSTALL_BINDIR}: the installed libshmrepl will not find the installed "
                  "shmrepl-engine at <libdir>/../bin (set SHMREPL_ENGINE, or the client "
                  "options' engine_path)")
endif()

# Installation and package metadata: the programs, the CMake package (shmrepl::shmrepl),
# shmrepl.pc and the licence. The library and its header are installed by abi/.
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/InstallDirs.cmake)
include(CMakePackageConfigHelpers)

set(SHMREPL_DESCRIPTION "Run Python code in an engine process; read its output from shared-memory rings")
set(SHMREPL_LICENSE "MIT")

# The programs. shmrepl links libshmrepl statically and needs no RPATH (one, even
# unused, makes every start search it for libc; CMake's build-tree placeholder for it
# was empty entries: the current folder).
install(TARGETS shmrepl-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET shmrepl-engine)
  install(TARGETS shmrepl-engine RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# CMake package: <libdir>/cmake/shmrepl/shmrepl{Config,ConfigVersion,Targets}.cmake.
set(SHMREPL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shmrepl)
install(EXPORT shmreplTargets NAMESPACE shmrepl:: DESTINATION ${SHMREPL_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/shmreplConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/shmreplConfig.cmake
  INSTALL_DESTINATION ${SHMREPL_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR)
# The SOVERSION is the major version: any 0.x library serves a 0.y request (y <= x).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/shmreplConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/package/shmreplConfig.cmake
              ${PROJECT_BINARY_DIR}/package/shmreplConfigVersion.cmake
        DESTINATION ${SHMREPL_CMAKE_DIR})

# pkg-config: <libdir>/pkgconfig/shmrepl.pc, relocatable (prefix from ${pcfiledir}).
file(RELATIVE_PATH SHMREPL_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" SHMREPL_PC_TO_PREFIX "${SHMREPL_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/shmrepl.pc.in ${PROJECT_BINARY_DIR}/package/shmrepl.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/package/shmrepl.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})

# SHMREPL_SANITIZE applies to every target of the build (separate build dirs per kind).
if(SHMREPL_SANITIZE)
  add_compile_options(-fsanitize=${SHMREPL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SHMREPL_SANITIZE})
endif()

/* A stand-in libshmrepl.so.0 of another ABI version, for the binding's load check. */
#include <stdint.h>

uint32_t shmrepl_abi_version(void);
const char* shmrepl_version(void);

uint32_t shmrepl_abi_version(void) { return 2; }
const char* shmrepl_version(void) { return "2.0.0"; }

/* Negative control for the header tests: the same flags must reject this. */
#include "shmrepl/shmrepl.h"

int main(void) {
  int unused_variable_here;
  return 0;
}

# os.fork: the child prints and exits; the parent waits, then prints.
import os
import sys
print("parent before fork", flush=True)
pid = os.fork()
if pid == 0:
    print("in child")
    sys.stdout.flush()
    os._exit(3)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))

# os._exit(4) inside try/finally: no finally, no atexit, no flush of buffered data.
import atexit
import os
import sys
atexit.register(print, "atexit must not run")
print("before", flush=True)
try:
    sys.stdout.write("buffered but unflushed? ")
    os._exit(4)
finally:
    print("finally must not run")

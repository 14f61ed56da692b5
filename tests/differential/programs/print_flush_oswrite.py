# print(flush=True) mixed with os.write on fd 1 and fd 2: the order is kept.
import os
import sys
for i in range(5):
    print("print", i, flush=True)
    os.write(1, b"os.write %d\n" % i)
    print("err print", i, file=sys.stderr, flush=True)
    os.write(2, b"err os.write %d\n" % i)
print("no newline at end", end="", flush=True)
os.write(1, b"<raw>")

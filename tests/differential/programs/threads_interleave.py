# Several threads write at once; each line (one write) must arrive whole.
# (print() writes the text and the end separately: python3 -u interleaves those.)
import sys
import threading


def work(n):
    for i in range(200):
        sys.stdout.write(f"T{n}: line {i} " + "x" * (n * 10) + "\n")


ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("main: joined")

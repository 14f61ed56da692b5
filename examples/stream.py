# Prints a line every 0.3 s, with notes on stderr. Run with `shmrepl run`, each line
# shows up as it is printed, although stdout is not flushed and may be a pipe
# (`shmrepl run examples/stream.py | cat`); plain `python3 examples/stream.py | cat`
# shows everything only at the end.
import sys
import time

for i in range(1, 11):
    print(f"line {i} of 10")
    if i % 3 == 0:
        print(f"  a note on stderr after line {i}", file=sys.stderr)
    time.sleep(0.3)
print("done")

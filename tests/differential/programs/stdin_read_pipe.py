# Reads all of stdin (a pipe).
import sys
data = sys.stdin.read()
print(repr(data))
print(len(data.splitlines()), "lines")
print(sys.stdin.read() == "")

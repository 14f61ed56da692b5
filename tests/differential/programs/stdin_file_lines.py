# Iterates over stdin (a file) line by line.
import sys
for i, line in enumerate(sys.stdin, 1):
    print(i, line.rstrip("\n")[::-1])
print("done", sys.stdin.readline() == "")

# Reads stdin as bytes.
import sys
data = sys.stdin.buffer.read()
print(len(data), data[:16].hex(), data[-16:].hex())
print(sorted(set(data)) == list(range(256)))

# Binary writes to sys.stdout.buffer, mixed with text.
import sys
print("text first")
sys.stdout.buffer.write(bytes(range(256)))
sys.stdout.buffer.write(b"\n\x00\xff\xfe invalid utf-8 \xc3\x28\n")
sys.stdout.buffer.flush()
print("text after")
sys.stderr.buffer.write(b"err bytes \x80\x81\n")

# What the standard streams look like to the program (pipes / files, not terminals).
import os
import sys
for name in ("stdin", "stdout", "stderr"):
    s = getattr(sys, name)
    print(name, s.fileno(), s.isatty(), s.encoding, s.errors, s.mode, s.name)
print(sys.stdout.write_through, sys.stdout.line_buffering)
print(sys.flags.utf8_mode, sys.flags.unbuffered, sys.getfilesystemencoding())
try:
    os.get_terminal_size()
except OSError as e:
    print("no terminal:", e.errno)

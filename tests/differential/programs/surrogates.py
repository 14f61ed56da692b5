# A lone surrogate printed (surrogateescape on stdout in a C/POSIX/UTF-8 locale), then to
# stderr (backslashreplace), then the stream settings.
import sys
print("bad \udcff char")
print("also \udc80\udcfe", "ok")
print("on stderr \udcff", file=sys.stderr)
print(sys.stdout.encoding, sys.stdout.errors, sys.stderr.errors)

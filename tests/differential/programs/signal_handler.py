# A SIGTERM handler installed by the program.
import os
import signal
import sys


def on_term(signum, frame):
    print("got", signal.Signals(signum).name)
    sys.exit(7)


signal.signal(signal.SIGTERM, on_term)
os.kill(os.getpid(), signal.SIGTERM)
print("not reached")

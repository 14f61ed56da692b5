# atexit handlers run after the main code, in reverse order of registration;
# unregister(bye) removes every registration of bye made before it.
import atexit
import sys


def bye(who, stream=sys.stdout):
    print("bye from", who, file=stream)


atexit.register(bye, "first")
atexit.register(bye, "second", stream=sys.stderr)


@atexit.register
def last():
    print("decorated handler")


atexit.register(bye, "unregistered")
atexit.unregister(bye)
atexit.register(bye, "third")
atexit.register(lambda: print("handler on stderr", file=sys.stderr))
print("main done")

# An exception in a thread: threading.excepthook prints it; the program goes on.
import threading


def boom():
    raise ValueError("in thread")


t = threading.Thread(target=boom, name="worker")
t.start()
t.join()
print("main continues")

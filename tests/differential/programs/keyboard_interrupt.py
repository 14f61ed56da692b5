# KeyboardInterrupt raised and not caught: traceback, then death by SIGINT.
def inner():
    raise KeyboardInterrupt


print("start")
inner()

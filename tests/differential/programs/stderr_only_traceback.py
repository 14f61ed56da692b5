# Output on both streams, then a traceback from a raise inside a with-block.
import sys
print("out 1")
print("err 1", file=sys.stderr)


class Ctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        print("exit", exc[0].__name__)
        return False


with Ctx():
    raise LookupError("inside with")

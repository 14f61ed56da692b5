# The program's namespace is __main__: its globals, pickle of its classes.
import pickle
import sys


class Point:
    def __init__(self, x):
        self.x = x


print(sorted(k for k in globals() if k.startswith("__")))
print(__doc__, __builtins__.__name__ if hasattr(__builtins__, "__name__") else type(__builtins__))
p = pickle.loads(pickle.dumps(Point(3)))
print(type(p).__module__, type(p).__qualname__, p.x)
print(Point.__module__, sys.modules["__main__"].Point is Point)
print(repr(__loader__.__class__.__name__))

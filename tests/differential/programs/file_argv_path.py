# __file__, sys.argv, sys.path[0], __name__ and the main module.
import os
import sys
print(__file__)
print(os.path.isabs(__file__))
print(sys.argv)
print(sys.path[0])
print(sys.path[0] == os.path.dirname(__file__))
print(__name__, __spec__, __package__)
print(sys.modules["__main__"].__file__ == __file__)
print(sys.orig_argv[1:] == sys.argv[1:] if hasattr(sys, "orig_argv") else None)

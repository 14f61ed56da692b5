# PYTHONWARNINGS=error from the caller's environment turns a warning into an exception.
import sys
import warnings
print(sys.warnoptions)
warnings.warn("now an error")
print("not reached")

# PYTHONSAFEPATH=1 from the caller's environment: the program's folder is not put on
# sys.path, so the module beside it is not found.
import os
import sys
print(sys.flags.safe_path, os.path.dirname(os.path.abspath(__file__)) in sys.path)
import diff_helper

# Imports a module that sits beside the program (sys.path[0] is the program's folder),
# run from the parent folder.
import os
import sys
import diff_helper
print(diff_helper.GREETING)
print(diff_helper.where())
print(diff_helper.double(21))
print(os.path.dirname(diff_helper.__file__) == sys.path[0])
print(os.path.basename(os.getcwd()) != "programs")

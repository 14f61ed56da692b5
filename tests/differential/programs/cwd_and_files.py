# The working folder is the caller's.
import os
print(os.getcwd())
print(sorted(f for f in os.listdir(".") if f.endswith(".txt")))
print(os.path.abspath("x/../data.txt"))

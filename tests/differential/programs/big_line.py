# A 50 MB line on stdout, and one on stderr of 1 MB.
import sys
sys.stdout.write("x" * (50 * 1024 * 1024) + "\n")
print("after the big line")
sys.stderr.write("e" * (1024 * 1024) + "\n")

# Deep recursion: RecursionError and its traceback.
import sys
print(sys.getrecursionlimit())


def down(n):
    return down(n + 1)


down(0)

# An uncaught exception: the traceback with source lines and the 3.11 carets.
def a(x):
    return b(x) + 1


def b(x):
    d = {"k": [1, 2]}
    return d["k"][x] * 2


print(a(1))
print(a(5))
